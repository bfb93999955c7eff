using System.Net;
using System.Threading.Channels;
using CcRelay.Core;
using CcRelay.Host.Configuration;
using CcRelay.Host.Reload;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Reload;

public sealed class HotReloadTests : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);
    private readonly string _dir = Directory.CreateTempSubdirectory("cc-relay-reload-").FullName;
    private FakeUpstream _upstream = null!;

    private string ConfigPath => Path.Combine(_dir, "cc-relay.yaml");

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _upstream.Handler = async context =>
        {
            var body = System.Text.Encoding.UTF8.GetString(FakeUpstream.Current(context).Body);
            if (body.Contains("\"stream\":true", StringComparison.Ordinal))
            {
                await Fake.StartStreamAsync(context);
                await Fake.WriteAsync(context, Fake.MessageStart() + Fake.TextBlock(0, "hi") + Fake.MessageEnd());
            }
            else
            {
                await Fake.WriteJsonAsync(context, 200, Fake.MessageJson());
            }
        };
    }

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private string Valid(int version, string level = "info", string listen = "127.0.0.1:0", string pricing = "{}") => $"""
        server:
          listen: "{listen}"
        providers:
          - name: fake
            type: anthropic_compatible
            base_url: "{_upstream.BaseUrl}"
            keys:
              - key: "k"
            model_mapping:
              "claude-sonnet-4-6": "up-{version}"
            pricing: {pricing}
        logging:
          level: {level}
        """;

    private const string Invalid = """
        server:
          listen: "127.0.0.1:0"
        providers:
          - name: fake
            type: bogus
            base_url: "not a url"
        """;

    private async Task<RelayHost> StartAsync(string text)
    {
        await File.WriteAllTextAsync(ConfigPath, text);
        var load = (ConfigLoad.Loaded)ConfigFile.Load(ConfigPath, Environment.GetEnvironmentVariable);
        return await RelayHost.StartAsync(load.Config, ConfigPath);
    }

    private static string? MappedModel(RelayHost relay) =>
        relay.State.Current.Config.Providers.Head.ModelMapping.TryGetValue("claude-sonnet-4-6", out var model) ? model : null;

    /// <summary>Writes like an editor: half the time in place, half the time to a temp file renamed over it.</summary>
    private async Task WriteAsync(string text, bool byRename)
    {
        if (byRename)
        {
            var temp = Path.Combine(_dir, ".cc-relay.yaml.swp");
            await File.WriteAllTextAsync(temp, text);
            File.Move(temp, ConfigPath, overwrite: true);
        }
        else
        {
            await File.WriteAllTextAsync(ConfigPath, text);
        }
    }

    [Fact]
    public async Task FiftyRewrites_UnderSteadyTraffic_NoRequestFails_LastValidWins_EveryInvalidReported()
    {
        // Arrange: a relay watching its config file, and a client sending streaming and plain requests nonstop
        await using var relay = await StartAsync(Valid(0));
        var results = Channel.CreateUnbounded<ReloadResult>();
        relay.Reloader.Reloaded += r => results.Writer.TryWrite(r);
        using var stop = new CancellationTokenSource();
        var failures = new List<string>();
        var completed = 0;
        async Task ClientLoop(bool stream)
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    using var response = await relay.Client.SendAsync(Requests.Messages(stream ? Requests.StreamingBody : Requests.PlainBody));
                    var text = await response.Content.ReadAsStringAsync();
                    if (response.StatusCode != HttpStatusCode.OK || (stream && !text.Contains("event: message_stop", StringComparison.Ordinal)))
                    {
                        lock (failures)
                        {
                            failures.Add($"{(int)response.StatusCode}: {text}");
                        }
                    }

                    Interlocked.Increment(ref completed);
                }
                catch (HttpRequestException e)
                {
                    lock (failures)
                    {
                        failures.Add(e.Message);
                    }
                }
            }
        }

        var clients = new[] { ClientLoop(stream: true), ClientLoop(stream: false), ClientLoop(stream: true) };
        var lastValid = 0;
        var invalidWrites = 0;
        var rejected = 0;

        // Act: 50 rewrites, every third one and the last invalid; each waits for the reload it causes
        for (var i = 1; i <= 50; i++)
        {
            var invalid = i % 3 == 0 || i == 50; // the last write is invalid: the one before it must stay
            await WriteAsync(invalid ? Invalid : Valid(i), byRename: i % 2 == 0);
            using var timeout = new CancellationTokenSource(Bound);
            if (invalid)
            {
                invalidWrites++;
                while ((await results.Reader.ReadAsync(timeout.Token)).Outcome != ReloadOutcome.Rejected)
                {
                }

                rejected++;
                Assert.Equal($"up-{lastValid}", MappedModel(relay));
            }
            else
            {
                lastValid = i;
                while (MappedModel(relay) != $"up-{i}")
                {
                    await results.Reader.ReadAsync(timeout.Token);
                }
            }
        }

        await stop.CancelAsync();
        await Task.WhenAll(clients);

        // Assert
        Assert.Empty(failures);
        Assert.True(completed > 50, $"only {completed} requests completed during the rewrites");
        Assert.Equal("up-49", MappedModel(relay));
        Assert.Equal(17, invalidWrites);
        Assert.Equal(invalidWrites, rejected);
        Assert.True(relay.Logs.Lines.Count(l => l.EventId == 8) >= invalidWrites);
        Assert.Contains(relay.Logs.Lines, l => l.EventId == 9 && l.Message.Contains("providers[0].type", StringComparison.Ordinal));
    }

    [Fact]
    public async Task WritesToAFileBesideTheConfig_NeverWakeTheWatcher_AConfigWriteStillReloads()
    {
        // Arrange: a file beside the config that is kept open and appended to, as a usage ledger or a log file is
        var sibling = Path.Combine(_dir, "ledger.db");
        await File.WriteAllTextAsync(sibling, "");
        await using var relay = await StartAsync(Valid(0));
        var reloaded = new TaskCompletionSource<ReloadResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        relay.Reloader.Reloaded += r => reloaded.TrySetResult(r);
        await using var appender = new FileStream(sibling, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);

        // the control: a FileSystemWatcher as the relay had before, which does see the sibling's writes
        var controlSaw = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var control = new FileSystemWatcher(_dir)
        {
            NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
        };
        control.Changed += (_, e) =>
        {
            if (e.Name == "ledger.db")
            {
                controlSaw.TrySetResult();
            }
        };
        control.EnableRaisingEvents = true;

        // Act: a hundred writes to it, then one to the config (the watcher sees events in the order they happened, so
        // by the time the config's reload is reported, any event of the sibling's would have been seen before it)
        for (var i = 0; i < 100; i++)
        {
            appender.Write("a row\n"u8);
            appender.Flush(flushToDisk: false);
        }

        await File.WriteAllTextAsync(ConfigPath, Valid(1));
        var result = await reloaded.Task.WaitAsync(Bound);
        await controlSaw.Task.WaitAsync(Bound);

        // Assert: reloaded for the config's write; never woken for the sibling's (which the control saw)
        Assert.Equal(ReloadOutcome.Applied, result.Outcome);
        Assert.Equal("file change", result.Trigger);
        Assert.Equal("up-1", MappedModel(relay));
        Assert.Equal(0, relay.Reloader.WatcherWokenByOthers);
    }

    [Fact]
    public async Task Reload_AppliesLoggingLevelLive_AndReportsRestartOnlySettings()
    {
        await using var relay = await StartAsync(Valid(1));
        using (await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody)))
        {
        }

        await relay.Logs.RequestLinesAsync(1);

        // Act: raise the level to error and move the listener (which only a restart can do)
        await File.WriteAllTextAsync(ConfigPath, Valid(2, level: "error", listen: "127.0.0.1:1"));
        var result = relay.Reloader.Reload();
        using (await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody)))
        {
        }

        // Assert
        Assert.Equal(ReloadOutcome.Applied, result.Outcome);
        Assert.Contains(ConfigChange.NewRestartRequired("server.listen"), result.Changes);
        Assert.Equal(0, relay.State.Current.Config.Server.Listen.Port); // the running value stays
        Assert.Equal("up-2", MappedModel(relay));
        Assert.Contains(relay.Logs.Lines, l => l.EventId == 10 && l.Message.StartsWith("server.listen", StringComparison.Ordinal));
        Assert.Single(relay.Logs.Lines, l => l.EventId == 1); // the second request was not logged at info
    }

    [Fact]
    public async Task Reload_InvalidConfig_KeepsTheRunningOne_AndListsEveryError()
    {
        await using var relay = await StartAsync(Valid(1));
        await File.WriteAllTextAsync(ConfigPath, Invalid);

        var result = relay.Reloader.Reload();

        Assert.Equal(ReloadOutcome.Rejected, result.Outcome);
        Assert.Equal(["providers[0].type", "providers[0].base_url"], result.Errors.Select(e => e.Path).Order().Reverse());
        Assert.Equal("up-1", MappedModel(relay));
        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Reload_EmptyFile_IsRejected_NotTakenForTheBuiltInDefault()
    {
        // an editor that truncates before writing must not reroute traffic to the built-in default
        await using var relay = await StartAsync(Valid(1));
        await File.WriteAllTextAsync(ConfigPath, "");

        var result = relay.Reloader.Reload();

        Assert.Equal(ReloadOutcome.Rejected, result.Outcome);
        Assert.Equal("up-1", MappedModel(relay));
    }

    [Fact]
    public async Task SnapshotAndRoutingPolicy_ShareOneCompiledPriceTable_AtStartAndAfterAReload()
    {
        // Arrange: the provider prices its mapped model, differently in each version
        string Priced(int version) => Valid(version, pricing: $$"""{ "up-*": { input: {{version}}, output: 1 } }""");
        await using var relay = await StartAsync(Priced(1));
        var cell = (CcRelay.Host.Routing.RuntimeCell)relay.Services.GetService(typeof(CcRelay.Host.Routing.RuntimeCell))!;
        var atStart = relay.State.Current.PricesFor("fake");
        var sharedAtStart = cell.Current.Policy.Providers[0].Pricing;

        // Act
        await File.WriteAllTextAsync(ConfigPath, Priced(2));
        var result = relay.Reloader.Reload();

        // Assert: one table per config load, the same instance on both sides, with the new prices
        Assert.Equal(ReloadOutcome.Applied, result.Outcome);
        Assert.Same(atStart, sharedAtStart);
        var reloaded = relay.State.Current.PricesFor("fake");
        Assert.Same(reloaded, cell.Current.Policy.Providers[0].Pricing);
        Assert.Equal(1m, Pricing.tryFind(atStart, "up-1")!.Value.Input);
        Assert.Equal(2m, Pricing.tryFind(reloaded, "up-2")!.Value.Input);
    }

    [Fact]
    public async Task Reload_UnchangedFile_ReportsUnchanged()
    {
        await using var relay = await StartAsync(Valid(1));

        var result = relay.Reloader.Reload();

        Assert.Equal(ReloadOutcome.Unchanged, result.Outcome);
        Assert.Empty(result.Changes);
    }

    [Fact]
    public async Task Reload_OfAFileThatDiffersOnlyInItsGrpcSection_AppliesNothing_AndSaysItNeedsARestart_EveryTime()
    {
        await using var relay = await StartAsync(Valid(1));
        var running = relay.State.Current;

        // Act: the file gains a grpc section (its listener is set up once, at start), and is reloaded twice
        await File.WriteAllTextAsync(ConfigPath, Valid(1) + "\n" + """
            grpc:
              listen: "127.0.0.1:0"
            """);
        var first = relay.Reloader.Reload();
        var second = relay.Reloader.Reload();

        // Assert: not "applied": nothing was swapped in, and each reload names what needs a restart
        foreach (var result in new[] { first, second })
        {
            Assert.Equal(ReloadOutcome.RestartRequired, result.Outcome);
            Assert.Contains(ConfigChange.NewRestartRequired("grpc.enabled"), result.Changes);
            Assert.All(result.Changes, c => Assert.True(c.IsRestartRequired));
        }

        Assert.Same(running, relay.State.Current);
        // (the file watcher may reload it once more: each time the same)
        Assert.True(relay.Logs.Lines.Count(l => l.EventId == 10 && l.Message.StartsWith("grpc.enabled", StringComparison.Ordinal)) >= 2);
        Assert.DoesNotContain(relay.Logs.Lines, l => l.EventId == 7); // no "config reloaded"

        // a change that takes effect now is applied beside it, the grpc section still reported
        await File.WriteAllTextAsync(ConfigPath, Valid(2) + "\n" + """
            grpc:
              listen: "127.0.0.1:0"
            """);
        var applied = relay.Reloader.Reload();
        Assert.Equal(ReloadOutcome.Applied, applied.Outcome);
        Assert.Contains(ConfigChange.NewRestartRequired("grpc.enabled"), applied.Changes);
        Assert.Equal("up-2", MappedModel(relay));
        Assert.False(relay.State.Current.Config.Grpc.Enabled);
    }
}
