using System.Net;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Translation;

/// <summary>
/// <c>type: openai</c> with <c>openai_api: responses</c> end to end: the relay on a real Kestrel against a strict
/// fake Responses server (A) that also refuses a tool turn whose reasoning item was not given back.
/// </summary>
public sealed class OpenAiResponsesTests : TwoUpstreamTests
{
    private const string RelayKey = "relay-secret";

    private static readonly OpenAiSettings Responses = new(
        ReasoningField.NoField, MaxTokensField.MaxCompletionTokens, true, ThinkingControl.ReasoningEffort, OpenAiApi.Responses, DroppedPolicy.Report, MidSystem.InPlace);

    private readonly FakeOpenAiResponses _server = new();

    private ProviderConfig OpenAi(string name = "a", OpenAiSettings? settings = null) =>
        TestConfig.Provider(
            name,
            A.BaseUrl,
            type: ProviderType.OpenAi,
            keys: ["sk-openai"],
            modelMapping: new Dictionary<string, string> { ["claude-sonnet-4-6"] = "gpt-5" },
            priority: 2,
            cloud: CloudSettings.NewOpenAi(settings ?? Responses));

    private static Task<RelayHost> RelayAsync(IEnumerable<ProviderConfig> providers) =>
        RelayHost.StartAsync(TestConfig.Relay(providers, apiKey: RelayKey, routing: TestConfig.Routing(), health: TestConfig.Health()));

    private static Task<HttpResponseMessage> SendAsync(RelayHost relay, string body, string path = "/v1/messages?beta=true") =>
        relay.Client.SendAsync(Requests.Messages(body, path, apiKey: RelayKey));

    /// <summary>The SSE events of a body: (event name, data).</summary>
    private static List<(string Name, JsonElement Data)> Events(string text) =>
        [.. text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e =>
        {
            var lines = e.Split('\n');
            var name = lines.Single(l => l.StartsWith("event: ", StringComparison.Ordinal))["event: ".Length..];
            var data = lines.Single(l => l.StartsWith("data: ", StringComparison.Ordinal))["data: ".Length..];
            return (name, JsonDocument.Parse(data).RootElement);
        })];

    private static string Joined(List<(string Name, JsonElement Data)> events, int index, string kind, string field) =>
        string.Concat(events
            .Where(e => e.Name == "content_block_delta" && e.Data.GetProperty("index").GetInt32() == index && e.Data.GetProperty("delta").GetProperty("type").GetString() == kind)
            .Select(e => e.Data.GetProperty("delta").GetProperty(field).GetString()));

    private const string Tools = """ "tools":[{"name":"Read","description":"read a file","input_schema":{"type":"object","properties":{"path":{"type":"string"}}}}] """;

    [Fact]
    public async Task ToolLoop_ReasoningIsCarriedInTheSignature_AndGivenBackOnTheNextTurn()
    {
        // Arrange: the first turn thinks (a summary, encrypted content) and calls Read; the second answers text
        var encrypted = _server.Issue("rs_1", "call_1");
        A.Handler = _server.Strict((context, body) => body.GetProperty("input").GetArrayLength() > 1
            ? FakeOpenAiResponses.StreamAsync(
                context,
                FakeOpenAiResponses.Created,
                """{"type":"response.output_item.added","output_index":0,"item":{"type":"message","id":"msg_2","role":"assistant","content":[]}}""",
                FakeOpenAiResponses.TextDelta("msg_2", "It says A."),
                FakeOpenAiResponses.Completed())
            : FakeOpenAiResponses.StreamAsync(
                context,
                FakeOpenAiResponses.Created,
                """{"type":"response.output_item.added","output_index":0,"item":{"type":"reasoning","id":"rs_1","summary":[]}}""",
                """{"type":"response.reasoning_summary_text.delta","item_id":"rs_1","output_index":0,"summary_index":0,"delta":"Read the file"}""",
                """{"type":"response.reasoning_summary_text.delta","item_id":"rs_1","output_index":0,"summary_index":0,"delta":" first."}""",
                $$$"""{"type":"response.output_item.done","output_index":0,"item":{"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"Read the file first."}],"encrypted_content":"{{{encrypted}}}"}}""",
                """{"type":"response.output_item.added","output_index":1,"item":{"type":"function_call","id":"fc_1","call_id":"call_1","name":"Read","arguments":""}}""",
                """{"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":1,"delta":"{\"path\":"}""",
                """{"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":1,"delta":"\"a\"}"}""",
                """{"type":"response.output_item.done","output_index":1,"item":{"type":"function_call","id":"fc_1","call_id":"call_1","name":"Read","arguments":"{\"path\":\"a\"}"}}""",
                FakeOpenAiResponses.Completed()));
        await using var relay = await RelayAsync([OpenAi()]);

        // Act: the first turn
        using var first = await SendAsync(relay, """{"model":"claude-sonnet-4-6","max_tokens":64,"stream":true,"thinking":{"type":"enabled","budget_tokens":8000},""" + Tools + ""","messages":[{"role":"user","content":"read a"}]}""");
        var events = Events(await first.Content.ReadAsStringAsync());

        // Assert: thinking with the envelope as its signature, then the tool call whole; usage in Anthropic's meaning
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        var starts = events.Where(e => e.Name == "content_block_start").Select(e => e.Data.GetProperty("content_block")).ToList();
        Assert.Equal(["thinking", "tool_use"], starts.Select(b => b.GetProperty("type").GetString()));
        Assert.Equal("call_1", starts[1].GetProperty("id").GetString());
        var thinking = Joined(events, 0, "thinking_delta", "thinking");
        var signature = Joined(events, 0, "signature_delta", "signature");
        Assert.Equal("Read the file first.", thinking);
        Assert.StartsWith(ReasoningEnvelope.Prefix, signature);
        Assert.Equal("""{"path":"a"}""", Joined(events, 1, "input_json_delta", "partial_json"));
        var end = events.Single(e => e.Name == "message_delta").Data;
        Assert.Equal("tool_use", end.GetProperty("delta").GetProperty("stop_reason").GetString());
        Assert.Equal(40, end.GetProperty("usage").GetProperty("input_tokens").GetInt32());
        Assert.Equal(60, end.GetProperty("usage").GetProperty("cache_read_input_tokens").GetInt32());
        Assert.Equal(20, end.GetProperty("usage").GetProperty("output_tokens").GetInt32());
        Assert.Equal("message_stop", events[^1].Name);

        // the request was a stateless Responses request asking for the encrypted reasoning
        var sent = FakeOpenAi.Body(A.Requests[0]);
        Assert.Equal("gpt-5", sent.GetProperty("model").GetString());
        Assert.Equal("medium", sent.GetProperty("reasoning").GetProperty("effort").GetString());
        Assert.Equal("Bearer sk-openai", A.Requests[0].Header("authorization"));

        // Act: the second turn replays the assistant turn as Claude Code does
        var assistant = $$"""{"role":"assistant","content":[{"type":"thinking","thinking":{{JsonSerializer.Serialize(thinking)}},"signature":{{JsonSerializer.Serialize(signature)}}},"""
            + """{"type":"tool_use","id":"call_1","name":"Read","input":{"path":"a"}}]}""";
        var result = """{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"A"}]}""";
        using var second = await SendAsync(relay, """{"model":"claude-sonnet-4-6","max_tokens":64,"stream":true,"thinking":{"type":"enabled","budget_tokens":8000},""" + Tools
            + ""","messages":[{"role":"user","content":"read a"},""" + assistant + "," + result + "]}");
        var text = await second.Content.ReadAsStringAsync();

        // Assert: the strict server verified its own reasoning item, right before the call it preceded
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Contains("It says A.", text);
        var input = FakeOpenAi.Body(A.Requests[1]).GetProperty("input");
        Assert.Equal(["message", "reasoning", "function_call", "function_call_output"], input.EnumerateArray().Select(i => i.GetProperty("type").GetString()));
        Assert.Equal(encrypted, input[1].GetProperty("encrypted_content").GetString());

        // Act: the same turn with the thinking block gone (a client that dropped it)
        using var withoutReasoning = await SendAsync(relay, """{"model":"claude-sonnet-4-6","max_tokens":64,"stream":true,""" + Tools
            + ""","messages":[{"role":"user","content":"read a"},{"role":"assistant","content":[{"type":"tool_use","id":"call_1","name":"Read","input":{"path":"a"}}]},""" + result + "]}");

        // Assert: the server refuses it, and the client reads its words in Anthropic's envelope
        Assert.Equal(HttpStatusCode.BadRequest, withoutReasoning.StatusCode);
        using var refusal = JsonDocument.Parse(await withoutReasoning.Content.ReadAsStringAsync());
        Assert.Equal("invalid_request_error", refusal.RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.Contains("rs_1", refusal.RootElement.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task ReasoningTheServerCannotVerify_IsRetriedOnceWithoutThinking()
    {
        // Arrange: a history whose reasoning envelope carries ciphertext the server did not issue (another
        // organisation's key, say): OpenAI refuses it with invalid_encrypted_content
        _server.Issue("rs_9");
        A.Handler = _server.Strict((context, _) => FakeOpenAiResponses.StreamAsync(
            context, FakeOpenAiResponses.Created, FakeOpenAiResponses.TextDelta("msg_1", "fresh answer"), FakeOpenAiResponses.Completed()));
        await using var relay = await RelayAsync([OpenAi()]);
        var envelope = ReasoningEnvelope.mint("a", "rs_9", "gAAAAB-not-what-the-server-issued");
        var body = """{"model":"claude-sonnet-4-6","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"},"""
            + $$"""{"role":"assistant","content":[{"type":"thinking","thinking":"","signature":"{{envelope}}"},{"type":"text","text":"hello"}]},"""
            + """{"role":"user","content":"again"}]}""";

        // Act
        using var response = await SendAsync(relay, body);
        var text = await response.Content.ReadAsStringAsync();

        // Assert: refused once, then answered without the reasoning item
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("fresh answer", text);
        Assert.Equal(2, A.Requests.Count);
        Assert.Contains(FakeOpenAi.Body(A.Requests[0]).GetProperty("input").EnumerateArray(), i => i.GetProperty("type").GetString() == "reasoning");
        Assert.DoesNotContain(FakeOpenAi.Body(A.Requests[1]).GetProperty("input").EnumerateArray(), i => i.GetProperty("type").GetString() == "reasoning");
    }

    [Fact]
    public async Task NotStreaming_TheResponseIsAnAnthropicMessage_DroppedFeaturesReported_CountTokensLocal()
    {
        // Arrange
        A.Handler = _server.Strict((context, _) => Fake.WriteJsonAsync(context, 200,
            """{"id":"resp_2","object":"response","model":"gpt-5","status":"completed","output":[{"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"Hello","annotations":[]}]}],"usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":0},"output_tokens":5,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":17}}"""));
        await using var relay = await RelayAsync([OpenAi()]);
        const string Body = """{"model":"claude-sonnet-4-6","max_tokens":1,"top_k":3,"stop_sequences":["END"],"system":[{"type":"text","text":"be brief","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"}]}""";

        // Act
        using var response = await SendAsync(relay, Body);
        using var count = await SendAsync(relay, Body, "/v1/messages/count_tokens?beta=true");

        // Assert: a Message; what Responses cannot take was left out (the strict server accepted) and named
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("Hello", json.RootElement.GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal("end_turn", json.RootElement.GetProperty("stop_reason").GetString());
        Assert.Equal(12, json.RootElement.GetProperty("usage").GetProperty("input_tokens").GetInt32());
        Assert.Equal("cache_control,top_k,stop_sequences", response.Headers.GetValues("x-cc-relay-dropped").Single());
        var sent = FakeOpenAi.Body(A.Requests.Single());
        Assert.Equal(16, sent.GetProperty("max_output_tokens").GetInt32());
        Assert.Equal("be brief", sent.GetProperty("instructions").GetString());

        Assert.Equal(HttpStatusCode.OK, count.StatusCode);
        using var tokens = JsonDocument.Parse(await count.Content.ReadAsStringAsync());
        Assert.InRange(tokens.RootElement.GetProperty("input_tokens").GetInt32(), 1, 200);
        Assert.Single(A.Requests); // the count called no upstream
    }

    [Fact]
    public async Task CutStream_EndsInAnErrorEvent_NeverMessageStop()
    {
        // Arrange: text, then the connection ends without response.completed
        A.Handler = _server.Strict((context, _) => FakeOpenAiResponses.StreamAsync(
            context,
            FakeOpenAiResponses.Created,
            FakeOpenAiResponses.TextDelta("msg_1", "half an ans")));
        await using var relay = await RelayAsync([OpenAi()]);

        // Act
        using var response = await SendAsync(relay, Requests.StreamingBody);
        var events = Events(await response.Content.ReadAsStringAsync());

        // Assert
        Assert.Contains(events, e => e.Name == "content_block_delta");
        Assert.Equal("error", events[^1].Name);
        Assert.Equal("api_error", events[^1].Data.GetProperty("error").GetProperty("type").GetString());
        Assert.DoesNotContain(events, e => e.Name == "message_stop");
    }

    [Fact]
    public async Task FailedResponse_MidStream_IsAnErrorEventOfTheMappedType()
    {
        // Arrange
        A.Handler = _server.Strict((context, _) => FakeOpenAiResponses.StreamAsync(
            context,
            FakeOpenAiResponses.Created,
            FakeOpenAiResponses.TextDelta("msg_1", "Hi"),
            """{"type":"response.failed","response":{"id":"resp_1","status":"failed","error":{"code":"rate_limit_exceeded","message":"Rate limit reached for gpt-5 on tokens per min."}}}"""));
        await using var relay = await RelayAsync([OpenAi()]);

        // Act
        using var response = await SendAsync(relay, Requests.StreamingBody);
        var events = Events(await response.Content.ReadAsStringAsync());

        // Assert
        Assert.Equal("error", events[^1].Name);
        Assert.Equal("rate_limit_error", events[^1].Data.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal("Rate limit reached for gpt-5 on tokens per min.", events[^1].Data.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task UpstreamError_ReachesTheClientInAnthropicsEnvelope()
    {
        // Arrange
        A.Handler = _server.Strict((context, _) => FakeOpenAiResponses.ErrorAsync(
            context, 400, "Your input exceeds the context window of this model: 272000 tokens; yours is 280001 tokens.", "invalid_request_error", "context_length_exceeded"));
        await using var relay = await RelayAsync([OpenAi()]);

        // Act
        using var response = await SendAsync(relay, Requests.StreamingBody);

        // Assert: worded the way Claude Code compacts on
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("prompt is too long: 280001 tokens > 272000 maximum", json.RootElement.GetProperty("error").GetProperty("message").GetString());
    }
}
