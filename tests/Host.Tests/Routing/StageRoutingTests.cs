using System.Net;
using System.Text;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;
using CcRelay.Host.Tests.Metrics;

namespace CcRelay.Host.Tests.Routing;

/// <summary>
/// Stages end to end: three fake upstreams (main, cheap, reasoner); recorded Claude Code requests
/// (tests/fixtures/claude-code) and <c>provider,model</c> names land where <c>routing.stages</c> says, with the
/// target's model patched into the body in place and the decision in the debug headers, the log line and the metrics.
/// </summary>
public sealed class StageRoutingTests : IAsyncLifetime
{
    private const string RelayKey = "relay-secret";

    private FakeUpstream _main = null!;
    private FakeUpstream _cheap = null!;
    private FakeUpstream _reasoner = null!;

    public async Task InitializeAsync()
    {
        _main = await FakeUpstream.StartAsync();
        _cheap = await FakeUpstream.StartAsync();
        _reasoner = await FakeUpstream.StartAsync();
        _main.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-main"));
        _cheap.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-cheap"));
        _reasoner.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-reasoner"));
    }

    public async Task DisposeAsync()
    {
        await _main.DisposeAsync();
        await _cheap.DisposeAsync();
        await _reasoner.DisposeAsync();
    }

    private Task<RelayHost> RelayAsync(StagesConfig stages, RoutingStrategy? strategy = null) =>
        RelayHost.StartAsync(TestConfig.Relay(
            [
                TestConfig.Provider("main", _main.BaseUrl, keys: ["sk-main-0123456789"], models: ["claude-sonnet-4-6"]),
                TestConfig.Provider("cheap", _cheap.BaseUrl, keys: ["sk-cheap-0123456789"], models: ["claude-haiku-4-5"]),
                TestConfig.Provider("reasoner", _reasoner.BaseUrl, keys: ["sk-reasoner-0123456789"]),
            ],
            apiKey: RelayKey,
            routing: TestConfig.Routing(stages: stages, strategy: strategy)));

    private static StagesConfig Classic() => TestConfig.Stages(
        (Stage.Background, ["cheap,claude-haiku-4-5"]),
        (Stage.Think, ["reasoner,deepseek-reasoner", "main"]),
        (Stage.Subagent, ["cheap"]),
        (Stage.Default, ["main"]));

    private static string Fixture(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "fixtures", "claude-code", name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException(name);
    }

    /// <summary>A recorded request with the headers Claude Code sent it with.</summary>
    private static HttpRequestMessage Recorded(string name, string key = RelayKey)
    {
        var request = Requests.Messages(File.ReadAllText(Fixture(name + ".body.json")), apiKey: key);
        using var headers = JsonDocument.Parse(File.ReadAllText(Fixture(name + ".headers.json")));
        foreach (var header in headers.RootElement.GetProperty("headers").EnumerateObject())
        {
            request.Headers.TryAddWithoutValidation(header.Name, header.Value.GetString());
        }

        return request;
    }

    private static string ModelOf(UpstreamRequest request)
    {
        using var body = JsonDocument.Parse(request.Body);
        return body.RootElement.GetProperty("model").GetString()!;
    }

    [Theory]
    [InlineData("main-loop", "reasoner", "deepseek-reasoner", "think", "thinking-adaptive")]
    [InlineData("quota", "cheap", "claude-haiku-4-5", "background", "probe")]
    [InlineData("title", "cheap", "claude-haiku-4-5", "background", "title")]
    [InlineData("subagent", "cheap", "claude-sonnet-4-6", "subagent", "agent-header")]
    [InlineData("web-search", "main", "claude-sonnet-4-6", "default", "default")]
    public async Task EachStageReachesItsTarget_WithItsModel(string fixture, string provider, string model, string stage, string reason)
    {
        // Arrange
        await using var relay = await RelayAsync(Classic());
        var upstreams = new Dictionary<string, FakeUpstream> { ["main"] = _main, ["cheap"] = _cheap, ["reasoner"] = _reasoner };

        // Act
        using var response = await relay.Client.SendAsync(Recorded(fixture));
        _ = await response.Content.ReadAsStringAsync();

        // Assert: only the target saw it, with the target's model; the decision is in the debug headers
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        foreach (var (name, upstream) in upstreams)
        {
            Assert.Equal(name == provider ? 1 : 0, upstream.Requests.Count);
        }

        var seen = upstreams[provider].Requests.Single();
        Assert.Equal(model, ModelOf(seen));
        Assert.Equal(stage, response.Headers.GetValues("x-cc-relay-stage").Single());
        Assert.Equal(reason, response.Headers.GetValues("x-cc-relay-stage-reason").Single());
        Assert.Equal(provider, response.Headers.GetValues("x-cc-relay-provider").Single());
    }

    [Fact]
    public async Task AClientLimitedToBackground_IsRefusedAMainLoopRequest_BeforeAnyUpstreamCall_AndPassesATitle()
    {
        // Arrange: a client that may send background requests only
        const string key = "background-client-key-0123456789";
        var client = Teams.ClientKeyTests.Client("bg", key, maxConcurrent: 1, stages: ["background"]);
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay(
            [
                TestConfig.Provider("main", _main.BaseUrl, keys: ["sk-main-0123456789"], models: ["claude-sonnet-4-6"]),
                TestConfig.Provider("cheap", _cheap.BaseUrl, keys: ["sk-cheap-0123456789"], models: ["claude-haiku-4-5"]),
                TestConfig.Provider("reasoner", _reasoner.BaseUrl, keys: ["sk-reasoner-0123456789"]),
            ],
            routing: TestConfig.Routing(stages: Classic()),
            clients: [client]));

        // Act: the main loop (stage think), then a title (stage background)
        using var refused = await relay.Client.SendAsync(Recorded("main-loop", key));
        var refusedBody = await refused.Content.ReadAsStringAsync();
        using var passed = await relay.Client.SendAsync(Recorded("title", key));
        _ = await passed.Content.ReadAsStringAsync();

        // Assert: an Anthropic-shaped 400 naming the stage and the allowed ones, no upstream call for it
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        using var json = JsonDocument.Parse(refusedBody);
        Assert.Equal("error", json.RootElement.GetProperty("type").GetString());
        var error = json.RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        var message = error.GetProperty("message").GetString()!;
        Assert.Contains("stage think", message, StringComparison.Ordinal);
        Assert.Contains("allowed stages: background", message, StringComparison.Ordinal);
        Assert.Empty(_reasoner.Requests);
        Assert.Empty(_main.Requests);

        // the title passes to its stage's target; the refusal took no slot (max_concurrent 1 still admits it)
        Assert.Equal(HttpStatusCode.OK, passed.StatusCode);
        Assert.Equal("background", passed.Headers.GetValues("x-cc-relay-stage").Single());
        Assert.Single(_cheap.Requests);
    }

    [Fact]
    public async Task TheModelIsPatchedInPlace_EveryOtherByteKept()
    {
        // Arrange
        await using var relay = await RelayAsync(Classic());
        var sent = File.ReadAllBytes(Fixture("main-loop.body.json"));

        // Act
        using var response = await relay.Client.SendAsync(Recorded("main-loop"));
        _ = await response.Content.ReadAsStringAsync();

        // Assert: the recorded body with only its model token replaced
        var expected = Encoding.UTF8.GetString(sent).Replace("\"model\":\"claude-sonnet-4-6\"", "\"model\":\"deepseek-reasoner\"", StringComparison.Ordinal);
        Assert.Equal(expected, Encoding.UTF8.GetString(_reasoner.Requests.Single().Body));
    }

    [Fact]
    public async Task AFailingStageTarget_FailsOverToTheStagesNextTarget_WithTheClientsModel()
    {
        // Arrange
        _reasoner.Handler = context => Fake.WriteJsonAsync(context, 529, """{"type":"error","error":{"type":"overloaded_error","message":"busy"}}""");
        await using var relay = await RelayAsync(Classic());

        // Act
        using var response = await relay.Client.SendAsync(Recorded("main-loop"));
        var text = await response.Content.ReadAsStringAsync();

        // Assert: reasoner tried with its model, then main with the client's; cheap never
        Assert.Contains("from-main", text);
        Assert.Equal("deepseek-reasoner", ModelOf(_reasoner.Requests.Single()));
        Assert.Equal("claude-sonnet-4-6", ModelOf(_main.Requests.Single()));
        Assert.Empty(_cheap.Requests);
    }

    [Theory]
    [InlineData("cheap,claude-haiku-4-5", "cheap", "claude-haiku-4-5")]
    [InlineData("reasoner/deepseek-chat", "reasoner", "deepseek-chat")]
    public async Task AProviderModelName_GoesStraightToThatProvider(string name, string provider, string model)
    {
        // Arrange: no stage at all, model switching on by default
        await using var relay = await RelayAsync(TestConfig.Stages());
        var body = Requests.PlainBody.Replace("claude-sonnet-4-6", name, StringComparison.Ordinal);

        // Act
        using var response = await relay.Client.SendAsync(Requests.Messages(body, apiKey: RelayKey));
        _ = await response.Content.ReadAsStringAsync();

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var upstream = provider == "cheap" ? _cheap : _reasoner;
        Assert.Equal(model, ModelOf(upstream.Requests.Single()));
        Assert.Empty(_main.Requests);
        Assert.Equal("direct", response.Headers.GetValues("x-cc-relay-stage").Single());
    }

    [Fact]
    public async Task TheDecisionIsInTheLogLine_AndTheMetrics()
    {
        // Arrange
        await using var relay = await RelayAsync(Classic());

        // Act
        using var response = await relay.Client.SendAsync(Recorded("quota"));
        _ = await response.Content.ReadAsStringAsync();
        var line = (await relay.Logs.RequestLinesAsync(1)).Single();
        var metrics = PrometheusTextParser.Parse(await relay.ScrapeAsync());

        // Assert
        Assert.Equal("background", line.Fields["stage"]);
        Assert.Equal("probe", line.Fields["stage_reason"]);
        Assert.Contains("stage=background stage_reason=probe", line.Message, StringComparison.Ordinal);
        Assert.Equal(1, metrics.Value("ccrelay_stage_requests_total", ("stage", "background"), ("reason", "probe"), ("provider", "cheap")));
    }

    [Fact]
    public async Task ModelsListsProviderModelNames_WhenAsked()
    {
        // Arrange
        await using var relay = await RelayAsync(Classic());
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models?limit=1000");
        request.Headers.TryAddWithoutValidation("x-api-key", RelayKey);

        // Act
        using var response = await relay.Client.SendAsync(request);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());

        // Assert
        var ids = json.RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()!).ToArray();
        Assert.Equal(["claude-sonnet-4-6", "claude-haiku-4-5", "main,claude-sonnet-4-6", "cheap,claude-haiku-4-5"], ids);
    }
}
