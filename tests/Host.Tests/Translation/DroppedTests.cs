using System.Net;
using System.Text;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;
using CcRelay.Host.Tests.Metrics;

namespace CcRelay.Host.Tests.Translation;

/// <summary>
/// Saying what was dropped (issue 18 §4): a translated request's left-out capabilities reach the client
/// (<c>x-cc-relay-dropped</c>), the request line (<c>dropped</c>) and <c>ccrelay_dropped_capabilities_total</c>;
/// with <c>on_dropped: refuse</c> the request is refused with a 400 naming them, and no upstream is called.
/// </summary>
public sealed class DroppedTests : TwoUpstreamTests
{
    private const string RelayKey = "relay-secret";

    private const string Asking =
        """{"model":"claude-sonnet-4-6","max_tokens":64,"top_k":5,"system":[{"type":"text","text":"be brief","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"}]}""";

    private readonly FakeOpenAiResponses _server = new();

    private ProviderConfig OpenAi(DroppedPolicy policy) =>
        TestConfig.Provider(
            "a",
            A.BaseUrl,
            type: ProviderType.OpenAi,
            keys: ["sk-openai"],
            modelMapping: new Dictionary<string, string> { ["claude-sonnet-4-6"] = "gpt-5" },
            cloud: CloudSettings.NewOpenAi(new OpenAiSettings(
                ReasoningField.NoField, MaxTokensField.MaxCompletionTokens, true, ThinkingControl.ReasoningEffort, OpenAiApi.Responses, policy, MidSystem.InPlace)));

    private async Task<(HttpResponseMessage Response, string Body, CapturedLogs.LogLine Line)> SendAsync(RelayHost relay, string body)
    {
        var response = await relay.Client.SendAsync(Requests.Messages(body, apiKey: RelayKey));
        var text = await response.Content.ReadAsStringAsync();
        var id = response.Headers.GetValues("x-cc-relay-request-id").Single();
        var line = (await relay.Logs.WaitForAsync(l => l.EventId == 1 && (string?)l.Fields["request_id"] == id)).Single();
        return (response, text, line);
    }

    private Task<RelayHost> RelayAsync(DroppedPolicy policy)
    {
        A.Handler = _server.Strict((context, _) => Fake.WriteJsonAsync(context, 200,
            """{"id":"resp_1","object":"response","model":"gpt-5","status":"completed","output":[{"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":"Hello"}]}],"usage":{"input_tokens":12,"output_tokens":5}}"""));
        return RelayHost.StartAsync(TestConfig.Relay([OpenAi(policy)], apiKey: RelayKey, routing: TestConfig.Routing(), health: TestConfig.Health()));
    }

    [Fact]
    public async Task Report_TheHeaderTheRequestLineAndTheMetricNameWhatWasLeftOut()
    {
        // Arrange
        await using var relay = await RelayAsync(DroppedPolicy.Report);

        // Act
        var (response, _, line) = await SendAsync(relay, Asking);
        using var _ = response;
        var scrape = PrometheusTextParser.Parse(await relay.ScrapeAsync());

        // Assert: answered without them, and said so three ways
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("cache_control,top_k", response.Headers.GetValues("x-cc-relay-dropped").Single());
        Assert.Equal("cache_control,top_k", line.Fields["dropped"]);
        Assert.Contains("dropped=cache_control,top_k", line.Message, StringComparison.Ordinal);
        Assert.Equal(1, scrape.Value("ccrelay_dropped_capabilities_total", ("provider", "a"), ("capability", "cache_control")));
        Assert.Equal(1, scrape.Value("ccrelay_dropped_capabilities_total", ("provider", "a"), ("capability", "top_k")));
        Assert.Single(A.Requests);
    }

    [Fact]
    public async Task Refuse_A400NamesWhatTheTargetCannotDo_NoUpstreamCall_ARequestWithoutDropsPasses()
    {
        // Arrange
        await using var relay = await RelayAsync(DroppedPolicy.Refuse);

        // Act
        var (refused, body, line) = await SendAsync(relay, Asking);
        using var _ = refused;
        var (plain, _, plainLine) = await SendAsync(relay, Requests.PlainBody);
        using var __ = plain;
        var scrape = PrometheusTextParser.Parse(await relay.ScrapeAsync());

        // Assert: the refusal, in Anthropic's envelope, named; the upstream never saw it
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        using var json = JsonDocument.Parse(body);
        var error = json.RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Contains("cache_control, top_k", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains("'a'", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal("cache_control,top_k", line.Fields["dropped"]);
        Assert.Equal(400, line.Fields["status"]);

        // a request that asks for nothing the target lacks is served as usual
        Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        Assert.Null(plainLine.Fields["dropped"]);
        Assert.Single(A.Requests);

        // nothing was dropped: refusing is not dropping
        Assert.Empty(scrape.Named("ccrelay_dropped_capabilities_total"));
    }

    [Fact]
    public async Task AnthropicSignedThinking_IsReportedAsThinkingBlocks_AndNotRefused()
    {
        // Arrange: a target that refuses what it cannot do; the conversation replays Anthropic's signed thinking (a
        // failover crossed families), which no translated target can take
        await using var relay = await RelayAsync(DroppedPolicy.Refuse);

        // Act
        var (response, _, line) = await SendAsync(relay,
            """{"model":"claude-sonnet-4-6","max_tokens":64,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"thinking","thinking":"Say hi.","signature":"EqQBCkYIBxgCKkAsigned"},{"type":"text","text":"Hi."}]},{"role":"user","content":"again"}]}""");
        using var _ = response;
        var scrape = PrometheusTextParser.Parse(await relay.ScrapeAsync());

        // Assert: sent without the thinking, and said so three ways (a family crossing is no reason to refuse)
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("thinking_blocks", response.Headers.GetValues("x-cc-relay-dropped").Single());
        Assert.Equal("thinking_blocks", line.Fields["dropped"]);
        Assert.Equal(1, scrape.Value("ccrelay_dropped_capabilities_total", ("provider", "a"), ("capability", "thinking_blocks")));
        var sent = Encoding.UTF8.GetString(Assert.Single(A.Requests).Body);
        Assert.DoesNotContain("EqQB", sent, StringComparison.Ordinal);
        Assert.DoesNotContain("Say hi.", sent, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Refuse_OnAGeminiProvider_CacheControlIsA400_NoUpstreamCall()
    {
        // Arrange: a Gemini provider that refuses rather than drops; Gemini cannot take cache_control
        A.Handler = context => Fake.WriteJsonAsync(context, 200, """{"candidates":[]}""");
        var gemini = TestConfig.Provider(
            "g",
            A.BaseUrl,
            type: ProviderType.Gemini,
            keys: ["AIza-gemini"],
            modelMapping: new Dictionary<string, string> { ["claude-sonnet-4-6"] = "gemini-2.5-pro" },
            cloud: CloudSettings.NewGemini(new GeminiSettings(GeminiEndpoint.AiStudio, GeminiThinking.Auto, DroppedPolicy.Refuse)));
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay([gemini], apiKey: RelayKey, routing: TestConfig.Routing(), health: TestConfig.Health()));

        // Act
        var (refused, body, line) = await SendAsync(relay,
            """{"model":"claude-sonnet-4-6","max_tokens":64,"system":[{"type":"text","text":"be brief","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"}]}""");
        using var _ = refused;

        // Assert: Anthropic's envelope naming what Gemini cannot do; Gemini never called
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        using var json = JsonDocument.Parse(body);
        var error = json.RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Contains("cache_control", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains("'g'", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal("cache_control", line.Fields["dropped"]);
        Assert.Empty(A.Requests);
    }
}
