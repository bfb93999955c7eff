using System.Net;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Translation;

/// <summary>
/// <c>type: openai</c> end to end: the relay on a real Kestrel, a strict fake Chat Completions server (A) and an
/// Anthropic-shaped fake (B) for failover both ways.
/// </summary>
public sealed class OpenAiChatTests : TwoUpstreamTests
{
    private const string RelayKey = "relay-secret";

    private static readonly OpenAiSettings DeepSeek = new(ReasoningField.ReasoningContent, MaxTokensField.MaxTokens, true, ThinkingControl.ThinkingField, OpenAiApi.Chat, DroppedPolicy.Report, MidSystem.InPlace);

    private ProviderConfig OpenAi(string name = "a", int priority = 2, IEnumerable<string>? keys = null, OpenAiSettings? settings = null) =>
        TestConfig.Provider(
            name,
            A.BaseUrl,
            type: ProviderType.OpenAi,
            keys: keys ?? ["sk-openai"],
            modelMapping: new Dictionary<string, string> { ["claude-sonnet-4-6"] = "deepseek-chat" },
            priority: priority,
            cloud: CloudSettings.NewOpenAi(settings ?? DeepSeek));

    private static Task<RelayHost> RelayAsync(IEnumerable<ProviderConfig> providers, HealthConfig? health = null) =>
        RelayHost.StartAsync(TestConfig.Relay(providers, apiKey: RelayKey, routing: TestConfig.Routing(), health: health ?? TestConfig.Health()));

    private static Task<HttpResponseMessage> SendAsync(RelayHost relay, string body, string path = "/v1/messages?beta=true")
    {
        var request = Requests.Messages(body, path, apiKey: RelayKey);
        request.Headers.TryAddWithoutValidation("anthropic-beta", "interleaved-thinking-2025-05-14");
        return relay.Client.SendAsync(request);
    }

    /// <summary>The SSE events of a body: (event name, data).</summary>
    private static List<(string Name, JsonElement Data)> Events(string text) =>
        [.. text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e =>
        {
            var lines = e.Split('\n');
            var name = lines.Single(l => l.StartsWith("event: ", StringComparison.Ordinal))["event: ".Length..];
            var data = lines.Single(l => l.StartsWith("data: ", StringComparison.Ordinal))["data: ".Length..];
            return (name, JsonDocument.Parse(data).RootElement);
        })];

    private const string StreamingBody =
        """{"model":"claude-sonnet-4-6","max_tokens":64,"stream":true,"system":[{"type":"text","text":"be brief","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"}]}""";

    [Fact]
    public async Task Streaming_TextArrivesAsAnthropicEvents_TheRequestIsChatCompletions()
    {
        // Arrange
        A.Handler = FakeOpenAi.Strict((context, _) => FakeOpenAi.StreamAsync(
            context,
            FakeOpenAi.Chunk("""{"role":"assistant","content":""}"""),
            FakeOpenAi.Chunk("""{"content":"Hello"}"""),
            FakeOpenAi.Chunk("""{"content":" world"}"""),
            FakeOpenAi.Chunk("{}", "stop"),
            FakeOpenAi.Usage(),
            "[DONE]"));
        await using var relay = await RelayAsync([OpenAi()]);

        // Act
        using var response = await SendAsync(relay, StreamingBody);
        var text = await response.Content.ReadAsStringAsync();

        // Assert: Anthropic SSE, in order, with the upstream's usage in Anthropic's meaning
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        var events = Events(text);
        Assert.Equal(
            ["message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop", "message_delta", "message_stop"],
            events.Select(e => e.Name));
        // the model the client asked for, not the server's "fake-model": Claude Code drops the thinking of an answer
        // naming another model from its next request (tests/E2E openai-chat)
        Assert.Equal("claude-sonnet-4-6", events[0].Data.GetProperty("message").GetProperty("model").GetString());
        Assert.True(events[0].Data.GetProperty("message").GetProperty("usage").GetProperty("input_tokens").GetInt32() > 0);
        Assert.Equal("Hello world", string.Concat(events.Where(e => e.Name == "content_block_delta").Select(e => e.Data.GetProperty("delta").GetProperty("text").GetString())));
        var usage = events[5].Data.GetProperty("usage");
        Assert.Equal(40, usage.GetProperty("input_tokens").GetInt32());
        Assert.Equal(60, usage.GetProperty("cache_read_input_tokens").GetInt32());
        Assert.Equal(20, usage.GetProperty("output_tokens").GetInt32());
        Assert.Equal("end_turn", events[5].Data.GetProperty("delta").GetProperty("stop_reason").GetString());
        Assert.Equal("cache_control", response.Headers.GetValues("x-cc-relay-dropped").Single());

        // the upstream got Chat Completions with the provider's key only, and no Anthropic headers
        var sent = A.Requests.Single();
        Assert.Equal("Bearer sk-openai", sent.Header("authorization"));
        Assert.Null(sent.Header("x-api-key"));
        Assert.Null(sent.Header("anthropic-beta"));
        Assert.Null(sent.Header("anthropic-version"));
        var body = FakeOpenAi.Body(sent);
        Assert.Equal("deepseek-chat", body.GetProperty("model").GetString());
        Assert.True(body.GetProperty("stream_options").GetProperty("include_usage").GetBoolean());
        Assert.Equal("be brief", body.GetProperty("messages")[0].GetProperty("content").GetString());
    }

    [Fact]
    public async Task NotStreaming_TheJsonAnswerIsAnAnthropicMessage_AndCountTokensIsAnsweredLocally()
    {
        // Arrange
        A.Handler = FakeOpenAi.Strict((context, _) => Fake.WriteJsonAsync(context, 200, FakeOpenAi.Completion(
            """{"role":"assistant","content":"Let me check.","tool_calls":[{"id":"call_9","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]}""",
            "tool_calls")));
        await using var relay = await RelayAsync([OpenAi()]);

        // Act
        using var response = await SendAsync(relay, Requests.PlainBody);
        using var count = await SendAsync(relay, Requests.PlainBody, "/v1/messages/count_tokens?beta=true");

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var message = json.RootElement;
        Assert.Equal("message", message.GetProperty("type").GetString());
        Assert.Equal("tool_use", message.GetProperty("stop_reason").GetString());
        var content = message.GetProperty("content");
        Assert.Equal("Let me check.", content[0].GetProperty("text").GetString());
        Assert.Equal("call_9", content[1].GetProperty("id").GetString());
        Assert.Equal("Paris", content[1].GetProperty("input").GetProperty("city").GetString());
        Assert.Equal(12, message.GetProperty("usage").GetProperty("input_tokens").GetInt32());

        Assert.Equal(HttpStatusCode.OK, count.StatusCode);
        using var tokens = JsonDocument.Parse(await count.Content.ReadAsStringAsync());
        Assert.InRange(tokens.RootElement.GetProperty("input_tokens").GetInt32(), 1, 200);
        Assert.Single(A.Requests); // the count called no upstream
    }

    [Fact]
    public async Task ThinkingAndParallelToolCalls_StreamAsBlocks_AndTheReasoningIsEchoedOnTheNextTurn()
    {
        // Arrange: a DeepSeek-style server that thinks, calls two tools interleaved, and refuses a tool turn
        // whose reasoning_content is not passed back
        A.Handler = FakeOpenAi.Strict(
            (context, body) => body.GetProperty("messages").GetArrayLength() > 1
                ? FakeOpenAi.StreamAsync(context, FakeOpenAi.Chunk("""{"content":"Both done."}"""), FakeOpenAi.Chunk("{}", "stop"), FakeOpenAi.Usage(), "[DONE]")
                : FakeOpenAi.StreamAsync(
                    context,
                    FakeOpenAi.Chunk("""{"role":"assistant","reasoning_content":"Two files"}"""),
                    FakeOpenAi.Chunk("""{"reasoning_content":" to read."}"""),
                    FakeOpenAi.Chunk("""{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"Read","arguments":"{\"path\":"}}]}"""),
                    FakeOpenAi.Chunk("""{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"Read","arguments":"{\"path\":\"b\"}"}}]}"""),
                    FakeOpenAi.Chunk("""{"tool_calls":[{"index":0,"function":{"arguments":"\"a\"}"}}]}"""),
                    FakeOpenAi.Chunk("{}", "tool_calls"),
                    FakeOpenAi.Usage(),
                    "[DONE]"),
            deepSeek: true);
        await using var relay = await RelayAsync([OpenAi()]);
        const string Tools = """ "tools":[{"name":"Read","description":"read a file","input_schema":{"type":"object","properties":{"path":{"type":"string"}}}}] """;

        // Act: the first turn
        using var first = await SendAsync(relay, """{"model":"claude-sonnet-4-6","max_tokens":64,"stream":true,"thinking":{"type":"adaptive"},""" + Tools + ""","messages":[{"role":"user","content":"read a and b"}]}""");
        var events = Events(await first.Content.ReadAsStringAsync());

        // Assert: thinking, then one tool block at a time, each whole
        var starts = events.Where(e => e.Name == "content_block_start").Select(e => e.Data.GetProperty("content_block")).ToList();
        Assert.Equal(["thinking", "tool_use", "tool_use"], starts.Select(b => b.GetProperty("type").GetString()));
        Assert.Equal([0, 1, 2], events.Where(e => e.Name == "content_block_start").Select(e => e.Data.GetProperty("index").GetInt32()));
        string Joined(int index, string kind, string field) => string.Concat(events
            .Where(e => e.Name == "content_block_delta" && e.Data.GetProperty("index").GetInt32() == index && e.Data.GetProperty("delta").GetProperty("type").GetString() == kind)
            .Select(e => e.Data.GetProperty("delta").GetProperty(field).GetString()));
        var thinking = Joined(0, "thinking_delta", "thinking");
        var signature = Joined(0, "signature_delta", "signature");
        Assert.Equal("Two files to read.", thinking);
        Assert.Equal("""{"path":"a"}""", Joined(1, "input_json_delta", "partial_json"));
        Assert.Equal("""{"path":"b"}""", Joined(2, "input_json_delta", "partial_json"));
        Assert.Equal("tool_use", events.Single(e => e.Name == "message_delta").Data.GetProperty("delta").GetProperty("stop_reason").GetString());

        // Act: the second turn replays the assistant turn as Claude Code does, with both results
        var assistant = $$"""{"role":"assistant","content":[{"type":"thinking","thinking":{{JsonSerializer.Serialize(thinking)}},"signature":{{JsonSerializer.Serialize(signature)}}},"""
            + """{"type":"tool_use","id":"call_a","name":"Read","input":{"path":"a"}},{"type":"tool_use","id":"call_b","name":"Read","input":{"path":"b"}}]}""";
        var results = """{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_a","content":"A"},{"type":"tool_result","tool_use_id":"call_b","content":"B","is_error":true}]}""";
        using var second = await SendAsync(relay, """{"model":"claude-sonnet-4-6","max_tokens":64,"stream":true,"thinking":{"type":"adaptive"},""" + Tools
            + ""","messages":[{"role":"user","content":"read a and b"},""" + assistant + "," + results + "]}");
        var text = await second.Content.ReadAsStringAsync();

        // Assert: the strict server accepted it, and saw its own reasoning
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Contains("Both done.", text);
        var replayed = FakeOpenAi.Body(A.Requests[1]).GetProperty("messages");
        Assert.Equal("Two files to read.", replayed[1].GetProperty("reasoning_content").GetString());
        Assert.Equal("Error: B", replayed[3].GetProperty("content").GetString());
    }

    [Fact]
    public async Task StreamEndsWithoutFinishReason_TheClientGetsAnErrorEvent_NeverMessageStop()
    {
        // Arrange
        A.Handler = FakeOpenAi.Strict((context, _) => FakeOpenAi.StreamAsync(context, FakeOpenAi.Chunk("""{"content":"half an ans"}""")));
        await using var relay = await RelayAsync([OpenAi()]);

        // Act
        using var response = await SendAsync(relay, StreamingBody);
        var events = Events(await response.Content.ReadAsStringAsync());

        // Assert
        Assert.Equal("error", events[^1].Name);
        Assert.Equal("api_error", events[^1].Data.GetProperty("error").GetProperty("type").GetString());
        Assert.DoesNotContain(events, e => e.Name == "message_stop");
    }

    [Fact]
    public async Task RateLimited_TheKeyCoolsAndTheOtherKeyServes()
    {
        // Arrange: the first request's key gets OpenAI's 429 with retry-after
        var first = 0;
        A.Handler = FakeOpenAi.Strict(
            (context, _) =>
            {
                if (Interlocked.Exchange(ref first, 1) == 0)
                {
                    context.Response.Headers.RetryAfter = "30";
                    return FakeOpenAi.ErrorAsync(context, 429, "Rate limit reached for requests", "requests", "rate_limit_exceeded");
                }

                return Fake.WriteJsonAsync(context, 200, FakeOpenAi.Completion("""{"role":"assistant","content":"from-openai"}"""));
            },
            key: null);
        await using var relay = await RelayAsync([OpenAi(keys: ["sk-one", "sk-two"])]);

        // Act
        using var response = await SendAsync(relay, Requests.PlainBody);
        using var next = await SendAsync(relay, Requests.PlainBody);

        // Assert: the other key answered, and the cooled key is not used for the next request either
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("from-openai", await response.Content.ReadAsStringAsync());
        var keys = A.Requests.Select(r => r.Header("authorization")).ToArray();
        Assert.Equal(3, keys.Length);
        Assert.NotEqual(keys[0], keys[1]);
        Assert.Equal(keys[1], keys[2]);
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
    }

    [Fact]
    public async Task ServerErrors_FailOverToAnthropic_AndOpenTheBreaker()
    {
        // Arrange: the openai provider answers 500; its breaker opens after one failure
        A.Handler = FakeOpenAi.Strict((context, _) => FakeOpenAi.ErrorAsync(context, 500, "The server had an error while processing your request.", "server_error", null));
        await using var relay = await RelayAsync(
            [OpenAi(priority: 2), TestConfig.Provider("b", B.BaseUrl, priority: 1)],
            TestConfig.Health(failureThreshold: 1, openDurationMs: 60_000));

        // Act
        using var response = await SendAsync(relay, Requests.PlainBody);
        using var skipped = await SendAsync(relay, Requests.PlainBody);

        // Assert: B answered both; A was tried once and is now open
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("from-b", await response.Content.ReadAsStringAsync());
        Assert.Equal("b", response.Headers.GetValues("x-cc-relay-provider").Single());
        Assert.Single(A.Requests);
        Assert.Contains("a=open", skipped.Headers.GetValues("x-cc-relay-health").Single());
    }

    [Fact]
    public async Task AnthropicOverloaded_FailsOverToOpenAi_StreamTranslated()
    {
        // Arrange: B (Anthropic-shaped) is first and overloaded; the openai provider serves
        B.Handler = context => Fake.WriteJsonAsync(context, 529, """{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}""");
        A.Handler = FakeOpenAi.Strict((context, _) => FakeOpenAi.StreamAsync(
            context, FakeOpenAi.Chunk("""{"content":"from-openai"}"""), FakeOpenAi.Chunk("{}", "stop"), FakeOpenAi.Usage(), "[DONE]"));
        await using var relay = await RelayAsync([TestConfig.Provider("b", B.BaseUrl, priority: 2), OpenAi(priority: 1)]);

        // Act
        using var response = await SendAsync(relay, StreamingBody);
        var events = Events(await response.Content.ReadAsStringAsync());

        // Assert
        Assert.Equal("a", response.Headers.GetValues("x-cc-relay-provider").Single());
        Assert.Equal("message_stop", events[^1].Name);
        Assert.Contains(events, e => e.Name == "content_block_delta" && e.Data.GetProperty("delta").GetProperty("text").GetString() == "from-openai");
    }

    [Fact]
    public async Task ContextOverflow_IsWordedTheWayClaudeCodeCompactsOn()
    {
        // Arrange
        A.Handler = FakeOpenAi.Strict((context, _) => FakeOpenAi.ErrorAsync(
            context,
            400,
            "This model's maximum context length is 65536 tokens. However, you requested 70000 tokens. Please reduce the length of the messages.",
            "invalid_request_error",
            "context_length_exceeded"));
        await using var relay = await RelayAsync([OpenAi()]);

        // Act
        using var response = await SendAsync(relay, StreamingBody);

        // Assert
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("invalid_request_error", json.RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal("prompt is too long: 70000 tokens > 65536 maximum", json.RootElement.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task StrictServerRefusal_ReachesTheClientAsAnAnthropicError()
    {
        // Arrange: an OpenAI-itself provider (no reasoning field) behind a server that refuses any request
        A.Handler = FakeOpenAi.Strict((context, _) => FakeOpenAi.ErrorAsync(context, 400, "Invalid 'messages[0].content': string too long.", "invalid_request_error", null));
        await using var relay = await RelayAsync([OpenAi(settings: new OpenAiSettings(ReasoningField.NoField, MaxTokensField.MaxCompletionTokens, true, ThinkingControl.ReasoningEffort, OpenAiApi.Chat, DroppedPolicy.Report, MidSystem.InPlace))]);

        // Act
        using var response = await SendAsync(relay, Requests.PlainBody);

        // Assert: the error passes in Anthropic's envelope, word for word, and the request used max_completion_tokens
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("Invalid 'messages[0].content': string too long.", json.RootElement.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal(64, FakeOpenAi.Body(A.Requests.Single()).GetProperty("max_completion_tokens").GetInt32());
    }
}
