using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Configuration;
using CcRelay.Host.Reload;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Pipelines;

/// <summary>
/// A plugin's process pool (<c>plugins.&lt;name&gt;.processes</c>, docs/plugins.md "Processes") end to end, with real
/// python3 plugin processes: concurrent streams through a slow stream plugin run side by side on their own
/// processes (each sandboxed alike, each stream's events in order on one process); a crash in one process fails
/// only its own stream; a reload under load drains the old processes without dropping a call.
/// </summary>
public sealed class PluginPoolTests : IAsyncLifetime
{
    private const string RelayKey = "relay-secret";

    private readonly string _dir = Directory.CreateTempSubdirectory("ccrelay-plugin-pool-").FullName;
    private FakeUpstream _upstream = null!;

    /// <summary>
    /// A stream plugin that adds its pid and <c>GEN</c> to every event's data, refuses an event out of its stream's
    /// order, waits at each stream's <c>message_start</c> until <c>BARRIER_N</c> streams have begun (files in
    /// <c>BARRIER_DIR</c>: the streams are all bound before any goes on), reports its limits and environment there,
    /// sleeps <c>SLEEP_MS</c> per other event, and exits on a delta that says CRASH.
    /// </summary>
    private const string Plugin = """
        import json, os, resource, sys, time
        barrier, n = os.environ.get('BARRIER_DIR', ''), int(os.environ.get('BARRIER_N', '0'))
        pause = int(os.environ.get('SLEEP_MS', '0')) / 1000
        seen = {}
        for line in sys.stdin:
            r = json.loads(line)
            data, stream = r['data'], r['stream']
            if r['seq'] != seen.get(stream, -1) + 1:
                print(json.dumps({'v': 2, 'id': r['id'], 'error': 'event %d of %s out of order' % (r['seq'], stream)}), flush=True)
                continue
            seen[stream] = r['seq']
            if r['event'] == 'message_start':
                if barrier:
                    open(os.path.join(barrier, stream), 'w').close()
                    deadline = time.time() + 30
                    while len(os.listdir(barrier)) < n and time.time() < deadline:
                        time.sleep(0.02)
                data['released'] = time.time()
                data['data_limit'] = resource.getrlimit(resource.RLIMIT_DATA)[0]
                data['cpu_limit'] = resource.getrlimit(resource.RLIMIT_CPU)[0]
                data['env'] = sorted(os.environ)
            else:
                time.sleep(pause)
                if 'CRASH' in json.dumps(data):
                    sys.exit(3)
            data['pid'] = os.getpid()
            data['gen'] = os.environ.get('GEN', '')
            print(json.dumps({'v': 2, 'id': r['id'], 'data': data}), flush=True)
        """;

    private string ConfigPath => Path.Combine(_dir, "cc-relay.yaml");

    private string Barrier => Path.Combine(_dir, "barrier");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Barrier);
        await File.WriteAllTextAsync(Path.Combine(_dir, "plugin.py"), Plugin);
        _upstream = await FakeUpstream.StartAsync();
        _upstream.Handler = async context =>
        {
            var crash = Encoding.UTF8.GetString(FakeUpstream.Current(context).Body).Contains("crash me", StringComparison.Ordinal);
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart() + Fake.TextBlock(0, crash ? "CRASH" : "hello") + Fake.MessageEnd());
        };
    }

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private static string Python()
    {
        foreach (var dir in new[] { "/usr/bin", "/usr/local/bin", "/bin" })
        {
            if (File.Exists(Path.Combine(dir, "python3")))
            {
                return Path.Combine(dir, "python3");
            }
        }

        Assert.Fail("python3 is not installed in /usr/bin or /usr/local/bin (tests/run-all.sh installs it)");
        return "python3";
    }

    private string Yaml(int processes, string env, string onError = "fail") => $$"""
        server:
          listen: "127.0.0.1:0"
        auth:
          api_key: "{{RelayKey}}"
        providers:
          - name: a
            type: anthropic_compatible
            base_url: "{{_upstream.BaseUrl}}"
            keys:
              - key: "sk-a"
        plugins:
          p:
            command: {{JsonSerializer.Serialize(Python())}}
            args: [{{JsonSerializer.Serialize(Path.Combine(_dir, "plugin.py"))}}]
            sees: [event]
            on_error: {{onError}}
            processes: {{processes}}
            memory_mb: 96
            cpu_seconds: 77
            timeout_ms: 30000
            event_timeout_ms: 10000
            env: { {{env}} }
        pipelines:
          main:
            providers: [a]
            response:
              - {plugin: p}
        """;

    /// <summary>The same relay without the plugin (and its pipeline).</summary>
    private string YamlWithoutPlugin() => $$"""
        server:
          listen: "127.0.0.1:0"
        auth:
          api_key: "{{RelayKey}}"
        providers:
          - name: a
            type: anthropic_compatible
            base_url: "{{_upstream.BaseUrl}}"
            keys:
              - key: "sk-a"
        """;

    private async Task<RelayHost> RelayAsync(int processes, string env, string onError = "fail")
    {
        await File.WriteAllTextAsync(ConfigPath, Yaml(processes, env, onError));
        var load = ConfigFile.Load(ConfigPath, Environment.GetEnvironmentVariable);
        Assert.True(load is ConfigLoad.Loaded, load is ConfigLoad.Invalid invalid ? string.Join("\n", invalid.Errors.Select(e => e.ToString())) : "");
        return await RelayHost.StartAsync(((ConfigLoad.Loaded)load).Config, ConfigPath, watchConfig: false);
    }

    private static string Body(string text) =>
        $$"""{"model":"claude-sonnet-4-6","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"{{text}}"}]}""";

    private static async Task<string> StreamAsync(RelayHost relay, string text = "hi")
    {
        using var response = await relay.Client.SendAsync(Requests.Messages(Body(text), apiKey: RelayKey), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync();
    }

    /// <summary>The events of a stream: name and data.</summary>
    private static List<(string Name, JsonElement Data)> Events(string text) =>
        [.. text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e =>
        {
            var lines = e.Split('\n');
            return (lines[0]["event: ".Length..], JsonDocument.Parse(lines[1]["data: ".Length..]).RootElement);
        })];

    private static async Task<JsonElement> HealthAsync(RelayHost relay) =>
        JsonDocument.Parse(await relay.Client.GetStringAsync("/health")).RootElement.GetProperty("plugins")[0];

    [Fact]
    public async Task ConcurrentStreams_ThroughASlowPlugin_RunSideBySide_OneSandboxedProcessEach_EventsInOrder()
    {
        // Arrange: four streams, four processes; each event after message_start costs the plugin 500 ms
        const int Streams = 4;
        const double PerCallSeconds = 0.5;
        await using var relay = await RelayAsync(Streams, $"BARRIER_DIR: {JsonSerializer.Serialize(Barrier)}, BARRIER_N: \"{Streams}\", SLEEP_MS: \"500\"");

        // Act: all at once (each waits at message_start until all four are bound)
        var texts = await Task.WhenAll(Enumerable.Range(0, Streams).Select(_ => Task.Run(() => StreamAsync(relay))));
        var ended = TimeProvider.System.GetUtcNow().ToUnixTimeMilliseconds() / 1000.0;

        // Assert: every stream whole, its six events through one process (in order: the plugin checks seq)
        var streams = texts.Select(Events).ToList();
        Assert.All(streams, events => Assert.Equal(
            ["message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"],
            events.Select(e => e.Name)));
        var pids = streams.Select(events => events.Select(e => e.Data.GetProperty("pid").GetInt32()).Distinct().Single()).ToList();
        Assert.Equal(Streams, pids.Distinct().Count());

        // each process sandboxed alike: the limits and the emptied environment
        Assert.All(streams, events =>
        {
            var start = events[0].Data;
            Assert.Equal(96L * 1024 * 1024, start.GetProperty("data_limit").GetInt64());
            Assert.Equal(77, start.GetProperty("cpu_limit").GetInt64());
            Assert.All(start.GetProperty("env").EnumerateArray().Select(v => v.GetString()), name =>
                Assert.Contains(name, new[] { "BARRIER_DIR", "BARRIER_N", "SLEEP_MS", "HOME", "LANG", "PATH", "LC_CTYPE", "PWD" }));
        });

        // side by side: five calls of 500 ms each after the barrier took about 2.5 s, not 4 × 2.5 s
        var released = streams.Min(events => events[0].Data.GetProperty("released").GetDouble());
        var took = ended - released;
        Assert.True(took < 2 * 5 * PerCallSeconds, $"the streams took {took:F2} s after they were all bound; one process would take {Streams * 5 * PerCallSeconds} s");

        var health = await HealthAsync(relay);
        Assert.Equal((Streams, Streams, 0, 0, 0), (
            health.GetProperty("processes").GetInt32(), health.GetProperty("running").GetInt32(),
            health.GetProperty("busy").GetInt32(), health.GetProperty("streams").GetInt32(), health.GetProperty("failures").GetInt32()));
    }

    [Fact]
    public async Task ACrashInOneProcess_FailsOnlyItsOwnStream_TheOtherStreamsProcessGoesOn()
    {
        // Arrange: two streams on two processes; one stream's text makes its process exit
        await using var relay = await RelayAsync(2, $"BARRIER_DIR: {JsonSerializer.Serialize(Barrier)}, BARRIER_N: \"2\", SLEEP_MS: \"200\"");

        // Act
        var crashed = Task.Run(() => StreamAsync(relay, "crash me"));
        var fine = Task.Run(() => StreamAsync(relay));
        var (crashedText, fineText) = (await crashed, await fine);

        // Assert: the crashing stream ends with the relay's error event (on_error: fail), never a clean end
        var bad = Events(crashedText);
        Assert.Equal(["message_start", "content_block_start", "error"], bad.Select(e => e.Name));
        Assert.DoesNotContain("message_stop", crashedText, StringComparison.Ordinal);

        // the other stream: whole, on one process that was never replaced
        var good = Events(fineText);
        Assert.Equal("message_stop", good[^1].Name);
        Assert.Single(good.Select(e => e.Data.GetProperty("pid").GetInt32()).Distinct());
        Assert.NotEqual(bad[0].Data.GetProperty("pid").GetInt32(), good[0].Data.GetProperty("pid").GetInt32());
        var health = await HealthAsync(relay);
        Assert.Equal((1, 0), (health.GetProperty("failures").GetInt32(), health.GetProperty("restarts").GetInt32()));

        // and the plugin keeps serving
        Assert.Equal("message_stop", Events(await StreamAsync(relay))[^1].Name);
    }

    [Fact]
    public async Task Reload_UnderLoad_TheStreamsInFlightFinishOnTheOldProcesses_NewOnesUseTheNewSettings_NothingDropped()
    {
        // Arrange: two streams in flight (400 ms per event) when the plugin's settings change
        await using var relay = await RelayAsync(2, "SLEEP_MS: \"400\", GEN: \"1\"");
        var inFlight = new List<(HttpResponseMessage Response, Stream Body, StringBuilder Text)>();
        for (var i = 0; i < 2; i++)
        {
            var response = await relay.Client.SendAsync(Requests.Messages(Body("hi"), apiKey: RelayKey), HttpCompletionOption.ResponseHeadersRead);
            var body = await response.Content.ReadAsStreamAsync();
            var text = new StringBuilder();
            await ReadEventAsync(body, text);
            inFlight.Add((response, body, text));
        }

        // Act: reload with GEN 2, then a new stream while the old ones go on
        await File.WriteAllTextAsync(ConfigPath, Yaml(2, "SLEEP_MS: \"400\", GEN: \"2\""));
        Assert.Equal(ReloadOutcome.Applied, relay.Reloader.Reload().Outcome);
        var fresh = Task.Run(() => StreamAsync(relay));
        foreach (var (_, body, text) in inFlight)
        {
            text.Append(await new StreamReader(body).ReadToEndAsync());
        }

        var freshText = await fresh;

        // Assert: the streams in flight finished whole, every event on their old settings; the new one on the new
        foreach (var (response, _, text) in inFlight)
        {
            var events = Events(text.ToString());
            Assert.Equal("message_stop", events[^1].Name);
            Assert.Equal(6, events.Count);
            Assert.All(events, e => Assert.Equal("1", e.Data.GetProperty("gen").GetString()));
            response.Dispose();
        }

        Assert.All(Events(freshText), e => Assert.Equal("2", e.Data.GetProperty("gen").GetString()));

        // the old processes stop once their streams have ended (the relay lets go of a stream just after its last byte)
        var clock = Stopwatch.StartNew();
        var health = await HealthAsync(relay);
        while (health.GetProperty("draining").GetInt32() > 0 && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(TimeSpan.FromMilliseconds(50), TimeProvider.System);
            health = await HealthAsync(relay);
        }

        Assert.Equal((0, 0, 2), (health.GetProperty("draining").GetInt32(), health.GetProperty("failures").GetInt32(), health.GetProperty("processes").GetInt32()));
    }

    [Theory]
    [InlineData("removed")]
    [InlineData("changed")]
    public async Task Reload_ThatRemovesOrChangesThePlugin_StopsItsIdleProcess_WithoutWaitingForACall(string change)
    {
        // Arrange: a stream through the plugin leaves its process running, idle (its pid is in every event)
        await using var relay = await RelayAsync(1, "GEN: \"1\"");
        var events = Events(await StreamAsync(relay));
        Assert.Equal("1", events[0].Data.GetProperty("gen").GetString());
        using var process = Process.GetProcessById(events[0].Data.GetProperty("pid").GetInt32());
        Assert.False(process.HasExited);

        // Act: a reload without the plugin, or with other settings for it; no call follows
        await File.WriteAllTextAsync(ConfigPath, change == "removed" ? YamlWithoutPlugin() : Yaml(1, "GEN: \"2\""));
        Assert.Equal(ReloadOutcome.Applied, relay.Reloader.Reload().Outcome);

        // Assert: the idle process exits (it used to run until the relay stopped, or until the next call)
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await process.WaitForExitAsync(deadline.Token);
        if (change == "changed")
        {
            // the new settings serve the next stream, on a new process
            var fresh = Events(await StreamAsync(relay));
            Assert.All(fresh, e => Assert.Equal("2", e.Data.GetProperty("gen").GetString()));
            Assert.NotEqual(process.Id, fresh[0].Data.GetProperty("pid").GetInt32());
        }
    }

    /// <summary>Reads from <paramref name="body"/> until <paramref name="text"/> holds a whole event.</summary>
    private static async Task ReadEventAsync(Stream body, StringBuilder text)
    {
        var buffer = new byte[4096];
        while (!text.ToString().Contains("\n\n", StringComparison.Ordinal))
        {
            var read = await body.ReadAsync(buffer);
            Assert.NotEqual(0, read);
            text.Append(Encoding.UTF8.GetString(buffer, 0, read));
        }
    }
}
