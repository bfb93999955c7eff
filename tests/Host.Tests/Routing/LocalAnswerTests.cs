using System.Net;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;
using CcRelay.Host.Tests.Metrics;
using CcRelay.Host.Tests.Pipelines;

namespace CcRelay.Host.Tests.Routing;

/// <summary>
/// Answers the relay makes itself for an admitted attempt (a failed pipeline, an <c>on_dropped: refuse</c> refusal)
/// call no upstream, so they record nothing for the provider's breaker or keys: a half-open provider's probe is
/// still there for the next real call, which alone decides whether the circuit closes. They still get their request
/// line (<c>local</c>), the relay's own result, and <c>ccrelay_local_answers_total</c>, and no upstream attempt.
/// Provider <c>a</c> on fake A; its breaker opens after one failure for 30 s of a clock the test moves.
/// </summary>
public sealed class LocalAnswerTests : TwoUpstreamTests
{
    private const string RelayKey = "relay-secret";
    private const string Failure = """{"type":"error","error":{"type":"api_error","message":"from-a"}}""";

    /// <summary>A request the pipeline below fails (its forced tool does not exist): model <c>claude-haiku-4-5</c>.</summary>
    private const string PipelineFails = """{"model":"claude-haiku-4-5","max_tokens":64,"tools":[{"name":"get_weather","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"hi"}]}""";

    /// <summary>Asks for <c>top_k</c>, which an OpenAI Responses target cannot carry.</summary>
    private const string AsksForTopK = """{"model":"claude-sonnet-4-6","max_tokens":64,"top_k":5,"messages":[{"role":"user","content":"hi"}]}""";

    private const string ResponsesAnswer =
        """{"id":"resp_1","object":"response","model":"gpt-5","status":"completed","output":[{"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":"Hello"}]}],"usage":{"input_tokens":12,"output_tokens":5}}""";

    private readonly ShiftedTimeProvider _clock = new();
    private int _failing = 1;

    private static HealthConfig Breaker => TestConfig.Health(failureThreshold: 1, openDurationMs: 30_000, halfOpenProbes: 1);

    private Task<RelayHost> PipelineRelayAsync() =>
        RelayHost.StartAsync(
            TestConfig.Relay(
                [TestConfig.Provider("a", A.BaseUrl, keys: ["sk-a"])],
                apiKey: RelayKey,
                routing: TestConfig.Routing(),
                health: Breaker,
                pipelines: PipelineTests.Pipelines(A.BaseUrl, """
                    [pipelines.p]
                    models = ["claude-haiku-*"]
                    on_error = "fail"
                    request = [ { use = "tool_choice", type = "tool", name = "missing" } ]
                    """)),
            timeProvider: _clock);

    private Task<RelayHost> RefusingRelayAsync() =>
        RelayHost.StartAsync(
            TestConfig.Relay(
                [TestConfig.Provider(
                    "a",
                    A.BaseUrl,
                    type: ProviderType.OpenAi,
                    keys: ["sk-openai"],
                    modelMapping: new Dictionary<string, string> { ["claude-sonnet-4-6"] = "gpt-5" },
                    cloud: CloudSettings.NewOpenAi(new OpenAiSettings(
                        ReasoningField.NoField, MaxTokensField.MaxCompletionTokens, true, ThinkingControl.ReasoningEffort, OpenAiApi.Responses, DroppedPolicy.Refuse, MidSystem.InPlace)))],
                apiKey: RelayKey,
                routing: TestConfig.Routing(),
                health: Breaker),
            timeProvider: _clock);

    private static async Task<(HttpResponseMessage Response, CapturedLogs.LogLine Line)> SendAsync(RelayHost relay, string body)
    {
        var response = await relay.Client.SendAsync(Requests.Messages(body, apiKey: RelayKey));
        var id = response.Headers.GetValues("x-cc-relay-request-id").Single();
        var line = (await relay.Logs.WaitForAsync(l => l.EventId == 1 && (string?)l.Fields["request_id"] == id)).Single();
        return (response, line);
    }

    private static async Task<string> CircuitAsync(RelayHost relay)
    {
        using var response = await relay.Client.GetAsync("/health");
        using var health = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return health.RootElement.GetProperty("providers")[0].GetProperty("circuit").GetString()!;
    }

    /// <summary>Fails one real call on A (its breaker opens), then lets the break run out: A is half-open, its probe unused.</summary>
    private async Task OpenThenHalfOpenAsync(RelayHost relay, string body)
    {
        var (failed, _) = await SendAsync(relay, body);
        using (failed)
        {
            Assert.Equal(HttpStatusCode.InternalServerError, failed.StatusCode);
        }

        Assert.Equal("open", await CircuitAsync(relay));
        _clock.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal("half-open", await CircuitAsync(relay));
        Volatile.Write(ref _failing, 0);
    }

    [Fact]
    public async Task PipelineFailure_OnAHalfOpenProvider_DoesNotCloseIt_ItsProbeStaysForTheNextRealCall()
    {
        // Arrange: A fails until the test says; the pipeline fails every haiku request before anything is sent
        A.Handler = context => Volatile.Read(ref _failing) == 1
            ? Fake.WriteJsonAsync(context, 500, Failure)
            : Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-a"));
        await using var relay = await PipelineRelayAsync();
        await OpenThenHalfOpenAsync(relay, Requests.PlainBody);

        // Act: two pipeline failures on the half-open provider (half_open_probes = 1)
        for (var i = 0; i < 2; i++)
        {
            var (refused, line) = await SendAsync(relay, PipelineFails);
            using var _ = refused;
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Equal("pipeline_error", line.Fields["local"]);
            Assert.Equal("invalid_request_error", line.Fields["result"]);
            Assert.Equal(0, line.Fields["attempts"]);
        }

        // Assert: nothing went upstream, the circuit is still half-open, and its probe is the next real call's
        Assert.Single(A.Requests);
        Assert.Equal("half-open", await CircuitAsync(relay));
        var (probe, probeLine) = await SendAsync(relay, Requests.PlainBody);
        using (probe)
        {
            Assert.Equal(HttpStatusCode.OK, probe.StatusCode);
        }

        Assert.Null(probeLine.Fields["local"]);
        Assert.Equal(2, A.Requests.Count);
        Assert.Equal("closed", await CircuitAsync(relay));

        // the local answers are counted as such, and never as upstream attempts
        var scrape = PrometheusTextParser.Parse(await relay.ScrapeAsync());
        Assert.Equal(2, scrape.Value("ccrelay_local_answers_total", ("provider", "a"), ("reason", "pipeline_error")));
        Assert.Equal(1, scrape.Value("ccrelay_upstream_attempts_total", ("provider", "a"), ("outcome", "success")));
        Assert.Equal(1, scrape.Value("ccrelay_upstream_attempts_total", ("provider", "a"), ("outcome", "failure")));
    }

    [Fact]
    public async Task OnDroppedRefusal_OnAHalfOpenProvider_DoesNotCloseIt_AndAFailingProbeReopensIt()
    {
        // Arrange: A (OpenAI Responses, on_dropped: refuse) fails until the test says
        A.Handler = context => Volatile.Read(ref _failing) == 1
            ? Fake.WriteJsonAsync(context, 500, """{"error":{"message":"down","type":"server_error"}}""")
            : Fake.WriteJsonAsync(context, 200, ResponsesAnswer);
        await using var relay = await RefusingRelayAsync();
        await OpenThenHalfOpenAsync(relay, Requests.PlainBody);

        // Act: a refusal (top_k cannot be carried) on the half-open provider
        var (refused, line) = await SendAsync(relay, AsksForTopK);
        using (refused)
        {
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        }

        // Assert: the refusal was the relay's own, and closed nothing
        Assert.Equal("dropped_refused", line.Fields["local"]);
        Assert.Equal("invalid_request_error", line.Fields["result"]);
        Assert.Single(A.Requests);
        Assert.Equal("half-open", await CircuitAsync(relay));

        // the probe is still there: a real call takes it, and (failing) opens the circuit again
        Volatile.Write(ref _failing, 1);
        var (probe, _) = await SendAsync(relay, Requests.PlainBody);
        using (probe)
        {
            Assert.Equal(HttpStatusCode.InternalServerError, probe.StatusCode);
        }

        Assert.Equal(2, A.Requests.Count);
        Assert.Equal("open", await CircuitAsync(relay));
        var scrape = PrometheusTextParser.Parse(await relay.ScrapeAsync());
        Assert.Equal(1, scrape.Value("ccrelay_local_answers_total", ("provider", "a"), ("reason", "dropped_refused")));
        Assert.False(scrape.Has("ccrelay_upstream_attempts_total", ("provider", "a"), ("outcome", "success")));
    }

    [Fact]
    public async Task OnDroppedRefusal_GivesBackTheKeyCapacityItTook()
    {
        // Arrange: A's only key allows one request a minute; refusals must not spend it
        A.Handler = context => Fake.WriteJsonAsync(context, 200, ResponsesAnswer);
        await using var relay = await RelayHost.StartAsync(
            TestConfig.Relay(
                [TestConfig.Provider(
                    "a",
                    A.BaseUrl,
                    type: ProviderType.OpenAi,
                    modelMapping: new Dictionary<string, string> { ["claude-sonnet-4-6"] = "gpt-5" },
                    cloud: CloudSettings.NewOpenAi(new OpenAiSettings(
                        ReasoningField.NoField, MaxTokensField.MaxCompletionTokens, true, ThinkingControl.ReasoningEffort, OpenAiApi.Responses, DroppedPolicy.Refuse, MidSystem.InPlace)))
                    .WithKeys(new KeyConfig("sk-openai", 1, 0, 0, 0, 0, 1, null))],
                apiKey: RelayKey,
                routing: TestConfig.Routing(),
                health: Breaker),
            timeProvider: _clock);

        // Act: three refusals, then a request the provider can carry
        for (var i = 0; i < 3; i++)
        {
            var (refused, _) = await SendAsync(relay, AsksForTopK);
            using var _ = refused;
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        }

        var (served, _) = await SendAsync(relay, Requests.PlainBody);
        using var __ = served;

        // Assert: the one request a minute was still there for it
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        Assert.Single(A.Requests);
    }
}
