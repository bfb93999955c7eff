using System.Diagnostics;
using System.Net;
using System.Text.Json;
using CcRelay.Host.Tests.Infrastructure;
using CcRelay.Host.Tests.Metrics;

namespace CcRelay.Host.Tests.Pipelines;

/// <summary>
/// Answer-side plugins end to end (protocol version 2, docs/plugins.md): a plugin given the whole JSON answer
/// (<c>sees: [response]</c>) or each SSE event of a streamed one (<c>sees: [event]</c>), against a fake upstream
/// and real plugin processes (python3, node). A stream plugin that crashes, hangs, exceeds its memory limit or
/// answers garbage mid-stream ends the client's stream with an SSE <c>error</c> event (never a clean end) under
/// <c>on_error: fail</c>, or lets the original event through under <c>skip</c>; the upstream attempt is recorded
/// once, and the relay keeps serving.
/// </summary>
public sealed class AnswerPluginTests : TwoUpstreamTests, IDisposable
{
    private const string RelayKey = "relay-secret";

    private const string JsonBody =
        """{"model":"claude-sonnet-4-6","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}""";

    private const string StreamBody =
        """{"model":"claude-sonnet-4-6","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}""";

    private static readonly string Stream =
        Fake.MessageStart() + Fake.TextBlock(0, "write to bob@example.com") + Fake.Ping + Fake.MessageEnd();

    private readonly string _dir = Directory.CreateTempSubdirectory("ccrelay-answer-plugins-").FullName;

    private static string Examples
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !Directory.Exists(Path.Combine(dir.FullName, "examples", "plugins")))
            {
                dir = dir.Parent;
            }

            Assert.NotNull(dir);
            return Path.Combine(dir.FullName, "examples", "plugins");
        }
    }

    private static string Tool(string name)
    {
        foreach (var dir in new[] { "/usr/bin", "/usr/local/bin", "/bin" })
        {
            if (File.Exists(Path.Combine(dir, name)))
            {
                return Path.Combine(dir, name);
            }
        }

        Assert.Fail($"{name} is not installed in /usr/bin or /usr/local/bin (tests/run-all.sh installs it)");
        return name;
    }

    private static string Quoted(string path) => JsonSerializer.Serialize(path);

    private string Python(string name, string code)
    {
        var path = Path.Combine(_dir, name + ".py");
        File.WriteAllText(path, code);
        return $"command = {Quoted(Tool("python3"))}\nargs = [{Quoted(path)}]";
    }

    private async Task<RelayHost> RelayAsync(string plugin, string sees, string onError = "fail", string extra = "")
    {
        var pipelines = PipelineTests.Pipelines(A.BaseUrl, $$"""
            [plugins.p]
            {{plugin}}
            sees = {{sees}}
            on_error = "{{onError}}"
            {{extra}}

            [pipelines.main]
            providers = ["a"]
            response = [ { plugin = "p" } ]
            """);
        A.Handler = async context =>
        {
            if (IsStream(context))
            {
                await Fake.StartStreamAsync(context);
                await Fake.WriteAsync(context, Stream);
            }
            else
            {
                await Fake.WriteJsonAsync(context, 200, Fake.MessageJson("mail bob@example.com"));
            }
        };
        return await RelayHost.StartAsync(TestConfig.Relay(
            [TestConfig.Provider("a", A.BaseUrl, keys: ["sk-a"])],
            apiKey: RelayKey,
            routing: TestConfig.Routing(),
            pipelines: pipelines));
    }

    private static bool IsStream(Microsoft.AspNetCore.Http.HttpContext context) =>
        System.Text.Encoding.UTF8.GetString(FakeUpstream.Current(context).Body).Contains("\"stream\":true", StringComparison.Ordinal);

    private static async Task<(HttpResponseMessage Response, string Text)> SendAsync(RelayHost relay, string body)
    {
        var response = await relay.Client.SendAsync(Requests.Messages(body, apiKey: RelayKey), HttpCompletionOption.ResponseHeadersRead);
        return (response, await response.Content.ReadAsStringAsync());
    }

    private static async Task<JsonElement> PluginHealthAsync(RelayHost relay) =>
        JsonDocument.Parse(await relay.Client.GetStringAsync("/health")).RootElement.GetProperty("plugins")[0];

    private static async Task<double> AttemptsAsync(RelayHost relay, string outcome)
    {
        var scrape = PrometheusTextParser.Parse(await relay.ScrapeAsync());
        return scrape.Has("ccrelay_upstream_attempts_total", ("provider", "a"), ("outcome", outcome))
            ? scrape.Value("ccrelay_upstream_attempts_total", ("provider", "a"), ("outcome", outcome))
            : 0;
    }

    [Fact]
    public async Task PythonExample_OnAJsonAnswer_RedactsTheAddress_AndTheReportNamesIt()
    {
        // Arrange
        await using var relay = await RelayAsync(
            $"command = {Quoted(Tool("python3"))}\nargs = [{Quoted(Path.Combine(Examples, "python", "redact_emails.py"))}]",
            """["request", "response", "event"]""");

        // Act
        var (response, text) = await SendAsync(relay, JsonBody);
        using var _ = response;

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var answer = JsonDocument.Parse(text).RootElement;
        Assert.Equal("mail [email]", answer.GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal("plugin:p(reserialised)", response.Headers.GetValues("x-cc-relay-transformers").Single());
    }

    [Fact]
    public async Task PythonExample_OnAStream_RedactsTheDelta_EveryOtherEventByteForByte()
    {
        // Arrange
        await using var relay = await RelayAsync(
            $"command = {Quoted(Tool("python3"))}\nargs = [{Quoted(Path.Combine(Examples, "python", "redact_emails.py"))}]",
            """["event"]""");

        // Act
        var (response, text) = await SendAsync(relay, StreamBody);
        using var _ = response;

        // Assert: only the text delta changed (the plugin re-serialised its data); pings and the rest as sent
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var expected = Stream.Replace(
            Fake.Event("content_block_delta", """{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"write to bob@example.com"}}"""),
            Fake.Event("content_block_delta", """{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "write to [email]"}}"""),
            StringComparison.Ordinal);
        Assert.NotEqual(Stream, expected);
        Assert.Equal(expected, text);

        // every event but the ping was one call (six), none failed
        var plugin = await PluginHealthAsync(relay);
        Assert.Equal((6, 0), (plugin.GetProperty("calls").GetInt32(), plugin.GetProperty("failures").GetInt32()));
        Assert.Equal(1, await AttemptsAsync(relay, "success"));
    }

    [Fact]
    public async Task JavaScriptExample_OnAStream_NotesTheCapOnMessageDelta_AndOnAJsonAnswer()
    {
        // Arrange: the upstream stops at max_tokens
        await using var relay = await RelayAsync(
            $"command = {Quoted(Tool("node"))}\nargs = [{Quoted(Path.Combine(Examples, "javascript", "token_budget.mjs"))}]",
            """["response", "event"]""",
            extra: "memory_mb = 2048\nenv = { BUDGET_DEFAULT = \"100\" }");
        A.Handler = async context =>
        {
            if (IsStream(context))
            {
                await Fake.StartStreamAsync(context);
                await Fake.WriteAsync(context, Fake.MessageStart() + Fake.TextBlock(0, "cut") + Fake.MessageEnd("max_tokens"));
            }
            else
            {
                await Fake.WriteJsonAsync(context, 200, Fake.MessageJson("cut").Replace("\"end_turn\"", "\"max_tokens\"", StringComparison.Ordinal));
            }
        };

        // Act
        var (stream, text) = await SendAsync(relay, StreamBody);
        var (json, answer) = await SendAsync(relay, JsonBody);
        using var _ = stream;
        using var __ = json;

        // Assert
        var delta = text.Split("\n\n").SingleOrDefault(e => e.StartsWith("event: message_delta", StringComparison.Ordinal));
        Assert.True(delta is not null, text);
        Assert.Contains("\"stop_details\":{\"cap\":100,\"by\":\"cc-relay token_budget\"}", delta, StringComparison.Ordinal);
        Assert.EndsWith(Fake.Event("message_stop", """{"type":"message_stop"}"""), text, StringComparison.Ordinal);
        Assert.Equal(100, JsonDocument.Parse(answer).RootElement.GetProperty("stop_details").GetProperty("cap").GetInt32());
        var plugin = await PluginHealthAsync(relay);
        Assert.Equal(("running", 0, 0), (plugin.GetProperty("state").GetString(), plugin.GetProperty("failures").GetInt32(), plugin.GetProperty("restarts").GetInt32()));
    }

    /// <summary>Stream plugins that answer two events, then misbehave on the third (the text delta).</summary>
    public static TheoryData<string, string> Misbehaving => new()
    {
        { "crash", "sys.exit(3)" },
        { "hang", "time.sleep(120)" },
        // more than its memory limit (memory_mb = 64): MemoryError, and it dies
        { "memory", "hog = bytearray(512 * 1024 * 1024)" },
        { "garbage", "print('hello, I am not JSON', flush=True)\n        continue" },
        // valid JSON, but an event of another type than it was given
        { "retyped", "d = r['data']; d['type'] = 'message_stop'\n        print(json.dumps({'v': 2, 'id': r['id'], 'data': d}), flush=True)\n        continue" },
    };

    private static string Misbehaves(string misbehaviour) => $$"""
        import json, sys, time
        n = 0
        for line in sys.stdin:
            r = json.loads(line)
            n += 1
            if n >= 3:
                {{misbehaviour}}
            print(json.dumps({'v': 2, 'id': r['id'], 'unchanged': True}), flush=True)
        """;

    [Theory]
    [MemberData(nameof(Misbehaving))]
    public async Task MisbehavingStreamPlugin_OnErrorFail_EndsTheStreamWithAnErrorEvent_OneAttemptRecorded_TheRelayKeepsServing(string kind, string misbehaviour)
    {
        // Arrange
        await using var relay = await RelayAsync(Python(kind, Misbehaves(misbehaviour)), """["event"]""", extra: "event_timeout_ms = 500\nmemory_mb = 64");
        var clock = Stopwatch.StartNew();

        // Act
        var (response, text) = await SendAsync(relay, StreamBody);
        using var _ = response;
        clock.Stop();

        // Assert: the two events before the failure, then the relay's error event; never message_stop
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["event: message_start", "event: content_block_start", "event: error"], events.Select(e => e.Split('\n')[0]));
        Assert.Contains("\"type\":\"api_error\"", events[^1], StringComparison.Ordinal);
        Assert.Contains("transformer plugin:p failed", events[^1], StringComparison.Ordinal);
        Assert.DoesNotContain("event: message_stop", text, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");

        // the request line says the plugin failed; the upstream's one attempt is neither success nor failure
        var line = (await relay.Logs.RequestLinesAsync()).Single();
        Assert.Equal("plugin_error", line.Fields["result"]);
        Assert.Equal((1.0, 0.0, 0.0), (await AttemptsAsync(relay, "abandoned"), await AttemptsAsync(relay, "failure"), await AttemptsAsync(relay, "success")));
        var plugin = await PluginHealthAsync(relay);
        Assert.Equal(1, plugin.GetProperty("failures").GetInt32());
        Assert.NotEqual("", plugin.GetProperty("last_error").GetString());

        // the relay keeps serving: a JSON answer (the plugin sees events only) and another stream
        var (next, answer) = await SendAsync(relay, JsonBody);
        using var __ = next;
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        Assert.Equal("mail bob@example.com", JsonDocument.Parse(answer).RootElement.GetProperty("content")[0].GetProperty("text").GetString());
        var (again, againText) = await SendAsync(relay, StreamBody);
        using var ___ = again;
        Assert.StartsWith(Fake.MessageStart(), againText, StringComparison.Ordinal);
        Assert.Equal(2, (await PluginHealthAsync(relay)).GetProperty("failures").GetInt32());
    }

    [Fact]
    public async Task HangingStreamPlugin_OnErrorSkip_TheOriginalEventsGoThrough_ThePluginIsLeftOutForTheRestOfTheStream()
    {
        // Arrange
        await using var relay = await RelayAsync(Python("hang", Misbehaves("time.sleep(120)")), """["event"]""", onError: "skip", extra: "event_timeout_ms = 300");

        // Act
        var (response, text) = await SendAsync(relay, StreamBody);
        using var _ = response;

        // Assert: the whole stream, byte for byte; one deadline paid, not one per remaining event
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(Stream, text);
        var plugin = await PluginHealthAsync(relay);
        Assert.Equal((3, 1), (plugin.GetProperty("calls").GetInt32(), plugin.GetProperty("failures").GetInt32()));
        Assert.Equal("ok", (await relay.Logs.RequestLinesAsync()).Single().Fields["result"]);
        Assert.Equal(1, await AttemptsAsync(relay, "success"));
    }

    [Fact]
    public async Task CrashingResponsePlugin_OnErrorFail_TheClientGetsA500ApiError_TheUpstreamAttemptIsASuccess()
    {
        // Arrange
        await using var relay = await RelayAsync(Python("crash", "import sys\nsys.stdin.readline()\nsys.exit(3)\n"), """["response"]""");

        // Act
        var (response, text) = await SendAsync(relay, JsonBody);
        using var _ = response;

        // Assert: the answer is withheld (it never reaches the client), the upstream is not blamed
        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("api_error", error.GetProperty("type").GetString());
        Assert.Contains("plugin:p", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain("bob@example.com", text, StringComparison.Ordinal);
        Assert.Equal("plugin:p(failed)", response.Headers.GetValues("x-cc-relay-transformers").Single());
        var line = (await relay.Logs.RequestLinesAsync()).Single();
        Assert.Equal("plugin_error", line.Fields["result"]);
        Assert.Equal((1.0, 0.0), (await AttemptsAsync(relay, "success"), await AttemptsAsync(relay, "failure")));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
