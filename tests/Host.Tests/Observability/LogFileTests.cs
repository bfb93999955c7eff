using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Configuration;
using CcRelay.Host.Logging;
using CcRelay.Host.Tests.Infrastructure;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Tests.Observability;

/// <summary><c>logging.output</c> as a file: JSON lines, mode 0600, appended, and switched live by a reload.</summary>
public sealed class LogFileTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cc-relay-logfile-").FullName;
    private FakeUpstream _upstream = null!;

    private string ConfigPath => Path.Combine(_dir, "cc-relay.yaml");

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson(model: "claude-sonnet-4-6"));
    }

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private string Config(string output, string format = "json") => $"""
        server:
          listen: "127.0.0.1:0"
        providers:
          - name: fake
            type: anthropic_compatible
            base_url: "{_upstream.BaseUrl}"
            keys:
              - key: "k"
        logging:
          level: info
          format: {format}
          output: "{output}"
        """;

    private static void Flush(RelayHost relay) =>
        ((IEnumerable<ILoggerProvider>)relay.Services.GetService(typeof(IEnumerable<ILoggerProvider>))!).OfType<LogFile>().Single().Flush();

    private static void AssertPrivate(string path)
    {
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }
    }

    private static async Task<string> SendAsync(RelayHost relay)
    {
        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody));
        _ = await response.Content.ReadAsByteArrayAsync();
        var id = response.Headers.GetValues("x-cc-relay-request-id").Single();
        _ = await relay.Logs.WaitForAsync(l => l.EventId == 1 && (string?)l.Fields["request_id"] == id);
        return id;
    }

    [Fact]
    public async Task JsonFile_HoldsOneJsonObjectPerLine_CreatedPrivate_AndFollowsAReload()
    {
        // Arrange
        var first = Path.Combine(_dir, "logs", "first.log");
        var second = Path.Combine(_dir, "second.log");
        await File.WriteAllTextAsync(ConfigPath, Config(first));
        var load = (ConfigLoad.Loaded)ConfigFile.Load(ConfigPath, Environment.GetEnvironmentVariable);
        await using var relay = await RelayHost.StartAsync(load.Config, ConfigPath);

        // Act 1: a request logged to the first file
        var one = await SendAsync(relay);
        Flush(relay);

        // Assert 1: JSON lines with the completion line's fields under State; the file is private
        var lines = await File.ReadAllLinesAsync(first);
        Assert.NotEmpty(lines);
        var parsed = lines.Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var completion = parsed.Single(e => e.GetProperty("EventId").GetInt32() == 1);
        var state = completion.GetProperty("State");
        Assert.Equal(one, state.GetProperty("request_id").GetString());
        Assert.Equal("fake", state.GetProperty("provider").GetString());
        Assert.Equal(3, state.GetProperty("input_tokens").GetInt64());
        Assert.Equal(JsonValueKind.Number, state.GetProperty("cost_usd").ValueKind);
        Assert.Equal(JsonValueKind.Null, state.GetProperty("error_type").ValueKind);
        Assert.False(state.TryGetProperty("{OriginalFormat}", out _));
        Assert.False(completion.TryGetProperty("Message", out _)); // the request line's message is its fields in a row
        Assert.Equal("Information", completion.GetProperty("LogLevel").GetString());
        Assert.EndsWith("Z", completion.GetProperty("Timestamp").GetString(), StringComparison.Ordinal);
        AssertPrivate(first);

        // Act 2: a reload moves logging to a second file, as text
        await File.WriteAllTextAsync(ConfigPath, Config(second, format: "text"));
        Assert.Equal(CcRelay.Host.Reload.ReloadOutcome.Applied, relay.Reloader.Reload("test").Outcome);
        var two = await SendAsync(relay);
        Flush(relay);

        // Assert 2: the second request is in the second file only, in text
        Assert.DoesNotContain(two, await File.ReadAllTextAsync(first), StringComparison.Ordinal);
        var text = await File.ReadAllTextAsync(second);
        Assert.Contains(two + " POST /v1/messages -> 200", text, StringComparison.Ordinal);
        AssertPrivate(second);
    }

    [Fact]
    public async Task JsonFile_RequestLine_IsStampedWithTheRelaysClock_AtTheRequestsEnd()
    {
        // Arrange: the relay's clock 400 days ahead of the machine's, so a line stamped when written (by the
        // machine's clock) is told apart from one stamped with the request's end
        var path = Path.Combine(_dir, "clock.log");
        await File.WriteAllTextAsync(ConfigPath, Config(path));
        var load = (ConfigLoad.Loaded)ConfigFile.Load(ConfigPath, Environment.GetEnvironmentVariable);
        var clock = new ShiftedTimeProvider();
        clock.Advance(TimeSpan.FromDays(400));
        await using var relay = await RelayHost.StartAsync(load.Config, ConfigPath, clock);

        // Act
        var before = clock.GetUtcNow();
        var id = await SendAsync(relay);
        var after = clock.GetUtcNow();
        Flush(relay);

        // Assert
        var line = (await File.ReadAllLinesAsync(path)).Select(l => JsonDocument.Parse(l).RootElement)
            .Single(e => e.GetProperty("EventId").GetInt32() == 1 && e.GetProperty("State").GetProperty("request_id").GetString() == id);
        var stamp = DateTimeOffset.Parse(line.GetProperty("Timestamp").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(stamp, before.AddMilliseconds(-1), after);
    }

    [Fact]
    public async Task UnwritableFile_DoesNotStopTheRelay()
    {
        var blocker = Path.Combine(_dir, "a-file");
        await File.WriteAllTextAsync(blocker, "");
        var config = TestConfig.Relay([TestConfig.Provider("fake", _upstream.BaseUrl, keys: ["k"])])
            .With(logging: TestConfig.Logging(output: Path.Combine(blocker, "under-a-file.log")));
        await using var relay = await RelayHost.StartAsync(config);

        var id = await SendAsync(relay);
        Flush(relay);

        Assert.StartsWith("req_", id, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ExistingFile_IsAppendedTo()
    {
        var path = Path.Combine(_dir, "existing.log");
        await File.WriteAllTextAsync(path, "previous line\n");
        var config = TestConfig.Relay([TestConfig.Provider("fake", _upstream.BaseUrl, keys: ["k"])])
            .With(logging: TestConfig.Logging(format: LogFormat.Json, output: path));
        await using var relay = await RelayHost.StartAsync(config);

        var id = await SendAsync(relay);
        Flush(relay);

        var lines = await File.ReadAllLinesAsync(path);
        Assert.Equal("previous line", lines[0]);
        Assert.Contains(lines, l => l.Contains(id, StringComparison.Ordinal));
    }
}
