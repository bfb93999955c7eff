using System.Net;
using System.Text;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;
using CcRelay.Host.Tests.Translation;

namespace CcRelay.Host.Tests.Pipelines;

/// <summary>
/// Pipelines end to end: the relay on a real Kestrel, pipelines from a TOML config (the real decoder), a fake
/// upstream that records what it received. Provider <c>a</c> is Anthropic-shaped (fake A), <c>oa</c> is
/// <c>type: openai</c> (a strict fake Chat Completions server on A too, set per test).
/// </summary>
public sealed class PipelineTests : TwoUpstreamTests
{
    private const string RelayKey = "relay-secret";

    private const string Body =
        """{"model":"claude-sonnet-4-6","max_tokens":32000,"temperature":1.7,"metadata":{"user_id":"u"},"system":[{"type":"text","text":"be brief","cache_control":{"type":"ephemeral"}}],"tools":[{"name":"get_weather","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}]}""";

    /// <summary>Decodes the providers and <paramref name="pipelines"/> (TOML) with the real decoder; fails on any error.</summary>
    internal static PipelinesConfig Pipelines(Uri a, string pipelines)
    {
        var toml = $$"""
            [[providers]]
            name = "a"
            type = "anthropic_compatible"
            base_url = "{{a}}"
            keys = [ { key = "sk-a" } ]

            [[providers]]
            name = "oa"
            type = "openai"
            base_url = "{{a}}"
            keys = [ { key = "sk-openai" } ]

            {{pipelines}}
            """;
        var document = Toml.parse(toml);
        Assert.True(document.IsOk, "TOML: " + (document.IsError ? document.ErrorValue.Message : ""));
        var load = ConfigDecoder.Decode(document.ResultValue, _ => null);
        if (load is ConfigLoad.Invalid invalid)
        {
            Assert.Fail(string.Join("\n", invalid.Errors.Select(e => e.ToString())));
        }

        return ((ConfigLoad.Loaded)load).Config.Pipelines;
    }

    private Task<RelayHost> RelayAsync(string pipelines, string provider = "a") =>
        RelayHost.StartAsync(TestConfig.Relay(
            [provider == "a"
                ? TestConfig.Provider("a", A.BaseUrl, keys: ["sk-a"])
                : TestConfig.Provider("oa", A.BaseUrl, type: ProviderType.OpenAi, keys: ["sk-openai"], cloud: CloudSettings.NewOpenAi(new OpenAiSettings(ReasoningField.ReasoningContent, MaxTokensField.MaxTokens, true, ThinkingControl.NoControl, OpenAiApi.Chat, DroppedPolicy.Report, MidSystem.InPlace)))],
            apiKey: RelayKey,
            routing: TestConfig.Routing(),
            pipelines: Pipelines(A.BaseUrl, pipelines)));

    private static Task<HttpResponseMessage> SendAsync(RelayHost relay, string body = Body) =>
        relay.Client.SendAsync(Requests.Messages(body, apiKey: RelayKey));

    private JsonElement Received() => FakeOpenAi.Body(A.Requests.Single());

    [Theory]
    [InlineData("""{ use = "max_tokens", cap = 8192 }""", "max_tokens")]
    [InlineData("""{ use = "sampling", temperature_max = 1.0, top_k = 40 }""", "sampling")]
    [InlineData("""{ use = "strip_cache_control" }""", "strip_cache_control")]
    [InlineData("""{ use = "tool_choice" }""", "tool_choice")]
    [InlineData("""{ use = "system", append = " Answer in French." }""", "system")]
    [InlineData("""{ use = "rename_model", map = { "claude-sonnet-*" = "glm-5" } }""", "rename_model")]
    [InlineData("""{ use = "drop_fields", fields = ["metadata"] }""", "drop_fields")]
    public async Task BuiltInTransformer_TheUpstreamReceivesTheEdit_AndTheReportNamesIt(string step, string name)
    {
        // Arrange
        await using var relay = await RelayAsync($$"""
            [pipelines.p]
            providers = ["a"]
            request = [ {{step}} ]
            """);

        // Act
        using var response = await SendAsync(relay);

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(name, response.Headers.GetValues("x-cc-relay-transformers").Single());
        var sent = Encoding.UTF8.GetString(A.Requests.Single().Body);
        var body = Received();
        switch (name)
        {
            case "max_tokens":
                Assert.Equal(Body.Replace("32000", "8192", StringComparison.Ordinal), sent); // in place: every other byte as the client sent it
                break;
            case "sampling":
                Assert.Equal(1.0, body.GetProperty("temperature").GetDouble());
                Assert.Equal(40, body.GetProperty("top_k").GetInt32());
                break;
            case "strip_cache_control":
                Assert.DoesNotContain("cache_control", sent, StringComparison.Ordinal);
                Assert.Equal(Body.Replace(""","cache_control":{"type":"ephemeral"}""", "", StringComparison.Ordinal), sent);
                break;
            case "tool_choice":
                Assert.Equal("any", body.GetProperty("tool_choice").GetProperty("type").GetString());
                break;
            case "system":
                Assert.Equal(" Answer in French.", body.GetProperty("system")[1].GetProperty("text").GetString());
                break;
            case "rename_model":
                Assert.Equal("glm-5", body.GetProperty("model").GetString());
                break;
            default:
                Assert.False(body.TryGetProperty("metadata", out _));
                break;
        }
    }

    [Fact]
    public async Task ReasoningEffort_ATranslatedTargetGetsTheEffortFromTheBudget()
    {
        // Arrange
        A.Handler = FakeOpenAi.Strict((context, _) => Fake.WriteJsonAsync(context, 200, FakeOpenAi.Completion("""{"role":"assistant","content":"ok"}""")));
        await using var relay = await RelayAsync("""
            [pipelines.p]
            providers = ["oa"]
            request = [ { use = "reasoning_effort", low_below = 2000, high_from = 20000 }, { use = "drop_fields", fields = ["stream_options"] } ]
            """, provider: "oa");

        // Act
        using var response = await SendAsync(relay, """{"model":"gpt-5","max_tokens":64,"thinking":{"type":"enabled","budget_tokens":4096},"messages":[{"role":"user","content":"hi"}]}""");

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("medium", Received().GetProperty("reasoning_effort").GetString());
        Assert.Equal("reasoning_effort,drop_fields(unchanged)", response.Headers.GetValues("x-cc-relay-transformers").Single());
    }

    [Fact]
    public async Task RepairToolJson_AStreamedToolCallWithBrokenArgumentsArrivesRepaired()
    {
        // Arrange: the model's arguments end with a trailing comma and no closing brace
        A.Handler = FakeOpenAi.Strict((context, _) => FakeOpenAi.StreamAsync(
            context,
            FakeOpenAi.Chunk("""{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":"}}]}"""),
            FakeOpenAi.Chunk("""{"tool_calls":[{"index":0,"function":{"arguments":" \"Paris\","}}]}"""),
            FakeOpenAi.Chunk("{}", "tool_calls"),
            FakeOpenAi.Usage(),
            "[DONE]"));
        await using var relay = await RelayAsync("""
            [pipelines.p]
            providers = ["oa"]
            response = [ "repair_tool_json" ]
            """, provider: "oa");

        // Act
        using var response = await SendAsync(relay, """{"model":"gpt-5","max_tokens":64,"stream":true,"tools":[{"name":"get_weather","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"weather?"}]}""");
        var text = await response.Content.ReadAsStringAsync();

        // Assert: one input_json_delta with the repaired input, before the block's end
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var deltas = text.Split("\n\n").Where(e => e.Contains("input_json_delta", StringComparison.Ordinal)).ToList();
        var delta = Assert.Single(deltas);
        var json = JsonDocument.Parse(delta[(delta.IndexOf("data: ", StringComparison.Ordinal) + 6)..]).RootElement;
        var input = JsonDocument.Parse(json.GetProperty("delta").GetProperty("partial_json").GetString()!).RootElement;
        Assert.Equal("Paris", input.GetProperty("city").GetString());
        Assert.Contains("message_stop", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RepairToolJson_AJsonAnswersBrokenArgumentsAreRepaired()
    {
        // Arrange
        A.Handler = FakeOpenAi.Strict((context, _) => Fake.WriteJsonAsync(context, 200, FakeOpenAi.Completion(
            """{"role":"assistant","content":null,"tool_calls":[{"id":"call_9","type":"function","function":{"name":"get_weather","arguments":"{\"city\": 1, \"unit\": \"c\",}"}}]}""",
            "tool_calls")));
        await using var relay = await RelayAsync("""
            [pipelines.p]
            providers = ["oa"]
            response = [ "repair_tool_json" ]
            """, provider: "oa");

        // Act
        using var response = await SendAsync(relay, """{"model":"gpt-5","max_tokens":64,"tools":[{"name":"get_weather","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"weather?"}]}""");
        var answer = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var input = answer.GetProperty("content").EnumerateArray().Single(b => b.GetProperty("type").GetString() == "tool_use").GetProperty("input");
        Assert.Equal("c", input.GetProperty("unit").GetString());
        Assert.False(input.TryGetProperty("_raw_arguments", out _));
    }

    [Fact]
    public async Task OnErrorFail_TheRequestFailsWithAnAnthropicError_NothingIsSent()
    {
        // Arrange: the forced tool does not exist in the request
        await using var relay = await RelayAsync("""
            [pipelines.p]
            providers = ["a"]
            on_error = "fail"
            request = [ { use = "max_tokens", cap = 10 }, { use = "tool_choice", type = "tool", name = "missing" } ]
            """);

        // Act
        using var response = await SendAsync(relay);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

        // Assert
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("invalid_request_error", error.GetProperty("error").GetProperty("type").GetString());
        Assert.Contains("tool_choice", error.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Empty(A.Requests);
        Assert.Equal("max_tokens,tool_choice(failed)", response.Headers.GetValues("x-cc-relay-transformers").Single());
    }

    [Fact]
    public async Task OnErrorSkip_TheFailingStepIsLeftOut_TheRestApplies()
    {
        // Arrange
        await using var relay = await RelayAsync("""
            [pipelines.p]
            models = ["claude-sonnet-*"]
            on_error = "skip"
            request = [ { use = "tool_choice", type = "tool", name = "missing" }, { use = "max_tokens", cap = 10 } ]
            """);

        // Act
        using var response = await SendAsync(relay);

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("tool_choice(skipped),max_tokens", response.Headers.GetValues("x-cc-relay-transformers").Single());
        Assert.Equal(10, Received().GetProperty("max_tokens").GetInt32());
        Assert.False(Received().TryGetProperty("tool_choice", out _));
        Assert.Contains(relay.Logs.Lines, l => l.EventId == 31 && l.Message.Contains("transformers=tool_choice(skipped),max_tokens", StringComparison.Ordinal));
    }

    [Fact]
    public async Task NoPipelineAttached_TheClientsBytesGoThroughUntouched()
    {
        // Arrange
        await using var relay = await RelayAsync("""
            [pipelines.p]
            models = ["claude-haiku-*"]
            request = [ { use = "max_tokens", cap = 10 } ]
            """);

        // Act
        using var response = await SendAsync(relay);

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.False(response.Headers.Contains("x-cc-relay-transformers"));
        Assert.Equal(Body, Encoding.UTF8.GetString(A.Requests.Single().Body));
    }
}
