using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Translation;

/// <summary>
/// <c>type: gemini</c> end to end: the relay on a real Kestrel, a strict fake Gemini (A) and an Anthropic-shaped fake
/// (B) for failover.
/// </summary>
public sealed class GeminiTests : TwoUpstreamTests
{
    private const string RelayKey = "relay-secret";

    private static readonly GeminiSettings Studio = new(GeminiEndpoint.AiStudio, GeminiThinking.Auto, DroppedPolicy.Report);

    private const string Tools =
        """ "tools":[{"name":"Read","description":"read a file","input_schema":{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","additionalProperties":false,"properties":{"path":{"type":"string","format":"uri"},"limit":{"type":["integer","null"],"exclusiveMinimum":0},"mode":{"const":"fast"}},"required":["path"]}}] """;

    private ProviderConfig Gemini(string name = "a", int priority = 2, IEnumerable<string>? keys = null) =>
        TestConfig.Provider(
            name,
            A.BaseUrl,
            type: ProviderType.Gemini,
            keys: keys ?? ["AIza-gemini"],
            modelMapping: new Dictionary<string, string> { ["claude-sonnet-4-6"] = "gemini-3-pro-preview" },
            priority: priority,
            cloud: CloudSettings.NewGemini(Studio));

    private static Task<RelayHost> RelayAsync(IEnumerable<ProviderConfig> providers, HealthConfig? health = null) =>
        RelayHost.StartAsync(TestConfig.Relay(providers, apiKey: RelayKey, routing: TestConfig.Routing(), health: health ?? TestConfig.Health()));

    private static Task<HttpResponseMessage> SendAsync(RelayHost relay, string body, string path = "/v1/messages?beta=true")
    {
        var request = Requests.Messages(body, path, apiKey: RelayKey);
        request.Headers.TryAddWithoutValidation("anthropic-beta", "interleaved-thinking-2025-05-14");
        return relay.Client.SendAsync(request);
    }

    private static List<(string Name, JsonElement Data)> Events(string text) =>
        [.. text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e =>
        {
            var lines = e.Split('\n');
            var name = lines.Single(l => l.StartsWith("event: ", StringComparison.Ordinal))["event: ".Length..];
            var data = lines.Single(l => l.StartsWith("data: ", StringComparison.Ordinal))["data: ".Length..];
            return (name, JsonDocument.Parse(data).RootElement.Clone());
        })];

    /// <summary>The assistant content Claude Code keeps from a streamed answer (what it replays on the next turn).</summary>
    private static JsonArray Replay(List<(string Name, JsonElement Data)> events)
    {
        var content = new JsonArray();
        var json = new Dictionary<int, string>();
        foreach (var (name, data) in events)
        {
            switch (name)
            {
                case "content_block_start":
                    content.Add(JsonNode.Parse(data.GetProperty("content_block").GetRawText()));
                    break;
                case "content_block_delta":
                    var index = data.GetProperty("index").GetInt32();
                    var block = content[index]!.AsObject();
                    var delta = data.GetProperty("delta");
                    switch (delta.GetProperty("type").GetString())
                    {
                        case "text_delta":
                            block["text"] = block["text"]!.GetValue<string>() + delta.GetProperty("text").GetString();
                            break;
                        case "thinking_delta":
                            block["thinking"] = block["thinking"]!.GetValue<string>() + delta.GetProperty("thinking").GetString();
                            break;
                        case "signature_delta":
                            block["signature"] = delta.GetProperty("signature").GetString();
                            break;
                        case "input_json_delta":
                            json[index] = json.GetValueOrDefault(index, "") + delta.GetProperty("partial_json").GetString();
                            break;
                    }

                    break;
                case "content_block_stop":
                    var stopped = data.GetProperty("index").GetInt32();
                    if (json.TryGetValue(stopped, out var input))
                    {
                        content[stopped]!["input"] = JsonNode.Parse(input);
                    }

                    break;
            }
        }

        return content;
    }

    private const string StreamingBody =
        """{"model":"claude-sonnet-4-6","max_tokens":64,"stream":true,"system":[{"type":"text","text":"be brief","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"}]}""";

    [Fact]
    public async Task Streaming_ThoughtsAndTextArriveAsAnthropicEvents_TheRequestIsGenerateContent()
    {
        // Arrange
        A.Handler = FakeGemini.Strict((context, _, _, _) => FakeGemini.StreamAsync(
            context,
            FakeGemini.Chunk("""[{"text":"Thinking it over","thought":true}]"""),
            FakeGemini.Chunk("""[{"text":"Hello"}]"""),
            FakeGemini.Chunk("""[{"text":" world"}]"""),
            FakeGemini.Chunk("""[{"text":""}]""", "STOP", usage: true)));
        await using var relay = await RelayAsync([Gemini()]);

        // Act
        using var response = await SendAsync(relay, StreamingBody);
        var events = Events(await response.Content.ReadAsStringAsync());

        // Assert: Anthropic SSE in order, Gemini's usage in Anthropic's meaning
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(
            ["message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
             "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop", "message_delta", "message_stop"],
            events.Select(e => e.Name));
        Assert.True(events[0].Data.GetProperty("message").GetProperty("usage").GetProperty("input_tokens").GetInt32() > 0);
        var content = Replay(events);
        Assert.Equal("Thinking it over", content[0]!["thinking"]!.GetValue<string>());
        Assert.Equal("Hello world", content[1]!["text"]!.GetValue<string>());
        var end = events[^2].Data;
        Assert.Equal("end_turn", end.GetProperty("delta").GetProperty("stop_reason").GetString());
        Assert.Equal(40, end.GetProperty("usage").GetProperty("input_tokens").GetInt32());
        Assert.Equal(60, end.GetProperty("usage").GetProperty("cache_read_input_tokens").GetInt32());
        Assert.Equal(25, end.GetProperty("usage").GetProperty("output_tokens").GetInt32());
        Assert.Equal("cache_control", response.Headers.GetValues("x-cc-relay-dropped").Single());

        // the upstream got generateContent with the provider's key only, and no Anthropic headers
        var sent = A.Requests.Single();
        Assert.Equal("/v1beta/models/gemini-3-pro-preview:streamGenerateContent?alt=sse", sent.PathAndQuery);
        Assert.Equal("AIza-gemini", sent.Header("x-goog-api-key"));
        Assert.Null(sent.Header("x-api-key"));
        Assert.Null(sent.Header("authorization"));
        Assert.Null(sent.Header("anthropic-beta"));
        Assert.Equal("be brief", FakeGemini.Body(sent).GetProperty("systemInstruction").GetProperty("parts")[0].GetProperty("text").GetString());
    }

    [Fact]
    public async Task ToolLoop_TheThoughtSignatureGoesBackOnTheFunctionCall_AndTheStrictServerAcceptsIt()
    {
        // Arrange: a Gemini-3-style server that thinks, calls two functions (the first signed), and refuses a replay
        // of the current turn's call without the signature it minted
        var signatures = new FakeGemini.Signatures();
        A.Handler = FakeGemini.Strict(
            (context, _, _, body) => body.GetProperty("contents").GetArrayLength() > 1
                ? FakeGemini.StreamAsync(context, FakeGemini.Chunk("""[{"text":"Both done."}]""", "STOP", usage: true))
                : FakeGemini.StreamAsync(
                    context,
                    FakeGemini.Chunk("""[{"text":"Two files to read.","thought":true}]"""),
                    FakeGemini.Chunk("""[{"functionCall":{"name":"Read","args":{"path":"a"}},"thoughtSignature":""" + "\"" + signatures.Mint() + "\"" + """},{"functionCall":{"name":"Read","args":{"path":"b"}}}]"""),
                    FakeGemini.Chunk("""[{"text":""}]""", "STOP", usage: true)),
            signatures);
        await using var relay = await RelayAsync([Gemini()]);
        const string Ask = """{"role":"user","content":"read a and b"}""";

        // Act: the first turn
        using var first = await SendAsync(relay, """{"model":"claude-sonnet-4-6","max_tokens":64,"stream":true,"thinking":{"type":"adaptive"},""" + Tools + ""","messages":[""" + Ask + "]}");
        var events = Events(await first.Content.ReadAsStringAsync());

        // Assert: thinking, the signature's carrier, two tool_use blocks with ids naming the function, stop tool_use
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        var content = Replay(events);
        Assert.Equal(["thinking", "thinking", "tool_use", "tool_use"], content.Select(b => b!["type"]!.GetValue<string>()));
        Assert.Equal("tool_use", events.Single(e => e.Name == "message_delta").Data.GetProperty("delta").GetProperty("stop_reason").GetString());
        Assert.Equal("a", content[2]!["input"]!["path"]!.GetValue<string>());
        Assert.Equal("b", content[3]!["input"]!["path"]!.GetValue<string>());
        var ids = content.Skip(2).Select(b => b!["id"]!.GetValue<string>()).ToList();
        Assert.NotEqual(ids[0], ids[1]);

        // the request the strict server accepted: the cleaned schema, thinking as thinkingLevel with thoughts
        var firstBody = FakeGemini.Body(A.Requests[0]);
        Assert.Equal("high", firstBody.GetProperty("generationConfig").GetProperty("thinkingConfig").GetProperty("thinkingLevel").GetString());

        // Act: the second turn replays the assistant turn as Claude Code does, with both results
        var assistant = new JsonObject { ["role"] = "assistant", ["content"] = content };
        var results = $$"""{"role":"user","content":[{"type":"tool_result","tool_use_id":"{{ids[0]}}","content":"A"},{"type":"tool_result","tool_use_id":"{{ids[1]}}","content":"denied","is_error":true}]}""";
        using var second = await SendAsync(relay, """{"model":"claude-sonnet-4-6","max_tokens":64,"stream":true,"thinking":{"type":"adaptive"},""" + Tools
            + ""","messages":[""" + Ask + "," + assistant.ToJsonString() + "," + results + "]}");
        var text = await second.Content.ReadAsStringAsync();

        // Assert: the strict server accepted the replay; it saw its signature on the first call, and one response per result
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Contains("Both done.", text);
        var replayed = FakeGemini.Body(A.Requests[1]).GetProperty("contents");
        var model = replayed[1].GetProperty("parts");
        Assert.Equal(2, model.GetArrayLength()); // the thoughts are not replayed, their signature is
        Assert.True(signatures.Minted(model[0].GetProperty("thoughtSignature").GetString()!));
        Assert.Equal("Read", model[0].GetProperty("functionCall").GetProperty("name").GetString());
        Assert.False(model[1].TryGetProperty("thoughtSignature", out _));
        var answers = replayed[2].GetProperty("parts");
        Assert.Equal("A", answers[0].GetProperty("functionResponse").GetProperty("response").GetProperty("output").GetString());
        Assert.Equal("denied", answers[1].GetProperty("functionResponse").GetProperty("response").GetProperty("error").GetString());

        // Act: the same replay with the thinking blocks gone (as after Claude Code strips them): the strict server refuses
        var stripped = new JsonObject { ["role"] = "assistant", ["content"] = new JsonArray([.. content.Skip(2).Select(b => b!.DeepClone())]) };
        using var third = await SendAsync(relay, """{"model":"claude-sonnet-4-6","max_tokens":64,"stream":true,""" + Tools
            + ""","messages":[""" + Ask + "," + stripped.ToJsonString() + "," + results + "]}");

        // Assert: its refusal reaches the client as an Anthropic invalid_request_error, word for word
        Assert.Equal(HttpStatusCode.BadRequest, third.StatusCode);
        using var refusal = JsonDocument.Parse(await third.Content.ReadAsStringAsync());
        Assert.Equal("invalid_request_error", refusal.RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.StartsWith("Function call is missing a thought_signature", refusal.RootElement.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task NotStreaming_TheJsonAnswerIsAnAnthropicMessage_AndCountTokensAsksGemini()
    {
        // Arrange
        A.Handler = FakeGemini.Strict((context, _, method, _) => method == "countTokens"
            ? Fake.WriteJsonAsync(context, 200, """{"totalTokens":31,"promptTokensDetails":[{"modality":"TEXT","tokenCount":31}]}""")
            : Fake.WriteJsonAsync(context, 200, FakeGemini.Chunk("""[{"text":"Let me check."},{"functionCall":{"name":"Read","args":{"path":"p"}}}]""", "STOP", usage: true)));
        await using var relay = await RelayAsync([Gemini()]);
        var body = """{"model":"claude-sonnet-4-6","max_tokens":64,""" + Tools + ""","messages":[{"role":"user","content":"hi"}]}""";

        // Act
        using var response = await SendAsync(relay, body);
        using var count = await SendAsync(relay, body, "/v1/messages/count_tokens?beta=true");

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var message = json.RootElement;
        Assert.Equal("tool_use", message.GetProperty("stop_reason").GetString());
        Assert.Equal("Let me check.", message.GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal("p", message.GetProperty("content")[1].GetProperty("input").GetProperty("path").GetString());
        Assert.Equal(40, message.GetProperty("usage").GetProperty("input_tokens").GetInt32());
        Assert.Equal("/v1beta/models/gemini-3-pro-preview:generateContent", A.Requests[0].PathAndQuery);

        Assert.Equal(HttpStatusCode.OK, count.StatusCode);
        Assert.Equal("""{"input_tokens":31}""", await count.Content.ReadAsStringAsync());
        Assert.Equal("/v1beta/models/gemini-3-pro-preview:countTokens", A.Requests[1].PathAndQuery);
    }

    [Fact]
    public async Task StreamEndsWithoutFinishReason_TheClientGetsAnErrorEvent_NeverMessageStop()
    {
        // Arrange
        A.Handler = FakeGemini.Strict((context, _, _, _) => FakeGemini.StreamAsync(context, FakeGemini.Chunk("""[{"text":"half an ans"}]""")));
        await using var relay = await RelayAsync([Gemini()]);

        // Act
        using var response = await SendAsync(relay, StreamingBody);
        var events = Events(await response.Content.ReadAsStringAsync());

        // Assert
        Assert.Equal("error", events[^1].Name);
        Assert.Equal("api_error", events[^1].Data.GetProperty("error").GetProperty("type").GetString());
        Assert.DoesNotContain(events, e => e.Name == "message_stop");
    }

    [Fact]
    public async Task ResourceExhausted_WithRetryInfo_CoolsTheKeyAndTheOtherKeyServes()
    {
        // Arrange: the first request's key gets Gemini's 429 with a RetryInfo delay (no retry-after header)
        var first = 0;
        A.Handler = FakeGemini.Strict(
            (context, _, _, _) => Interlocked.Exchange(ref first, 1) == 0
                ? FakeGemini.ErrorAsync(context, 429, "Resource has been exhausted (e.g. check quota).", "RESOURCE_EXHAUSTED", "30s")
                : Fake.WriteJsonAsync(context, 200, FakeGemini.Chunk("""[{"text":"from-gemini"}]""", "STOP", usage: true)),
            key: null);
        await using var relay = await RelayAsync([Gemini(keys: ["AIza-one", "AIza-two"])]);

        // Act
        using var response = await SendAsync(relay, Requests.PlainBody);
        using var next = await SendAsync(relay, Requests.PlainBody);

        // Assert: the other key answered, and the cooled key is not used for the next request either
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("from-gemini", await response.Content.ReadAsStringAsync());
        var keys = A.Requests.Select(r => r.Header("x-goog-api-key")).ToArray();
        Assert.Equal(3, keys.Length);
        Assert.NotEqual(keys[0], keys[1]);
        Assert.Equal(keys[1], keys[2]);
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
    }

    [Fact]
    public async Task Unavailable_FailsOverToAnthropic_BeforeTheFirstByte()
    {
        // Arrange: Gemini is overloaded (503 UNAVAILABLE); the Anthropic-shaped provider serves
        A.Handler = FakeGemini.Strict((context, _, _, _) => FakeGemini.ErrorAsync(context, 503, "The model is overloaded. Please try again later.", "UNAVAILABLE"));
        await using var relay = await RelayAsync([Gemini(priority: 2), TestConfig.Provider("b", B.BaseUrl, priority: 1)]);

        // Act
        using var response = await SendAsync(relay, Requests.PlainBody);

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("from-b", await response.Content.ReadAsStringAsync());
        Assert.Equal("b", response.Headers.GetValues("x-cc-relay-provider").Single());
        Assert.Single(A.Requests);
    }

    [Fact]
    public async Task AnthropicOverloaded_FailsOverToGemini_StreamTranslated()
    {
        // Arrange: B (Anthropic-shaped) is first and overloaded; Gemini serves
        B.Handler = context => Fake.WriteJsonAsync(context, 529, """{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}""");
        A.Handler = FakeGemini.Strict((context, _, _, _) => FakeGemini.StreamAsync(context, FakeGemini.Chunk("""[{"text":"from-gemini"}]""", "STOP", usage: true)));
        await using var relay = await RelayAsync([TestConfig.Provider("b", B.BaseUrl, priority: 2), Gemini(priority: 1)]);

        // Act
        using var response = await SendAsync(relay, StreamingBody);
        var events = Events(await response.Content.ReadAsStringAsync());

        // Assert
        Assert.Equal("a", response.Headers.GetValues("x-cc-relay-provider").Single());
        Assert.Equal("message_stop", events[^1].Name);
        Assert.Contains(events, e => e.Name == "content_block_delta" && e.Data.GetProperty("delta").GetProperty("text").GetString() == "from-gemini");
    }

    [Fact]
    public async Task ConversationCrossesToAnthropic_GeminisSignaturesAreNeverSentThere()
    {
        // Arrange: Gemini answers the first turn with a signed call, then goes down; B (Anthropic-shaped) takes over
        var down = 0;
        A.Handler = FakeGemini.Strict((context, _, _, _) => Volatile.Read(ref down) == 1
            ? FakeGemini.ErrorAsync(context, 503, "The model is overloaded.", "UNAVAILABLE")
            : FakeGemini.StreamAsync(
                context,
                FakeGemini.Chunk("""[{"text":"Plan.","thought":true}]"""),
                FakeGemini.Chunk("""[{"functionCall":{"name":"Read","args":{"path":"a"}},"thoughtSignature":"R2VtaW5p"}]""", "STOP", usage: true)));
        await using var relay = await RelayAsync([Gemini(priority: 2), TestConfig.Provider("b", B.BaseUrl, priority: 1)]);
        const string Ask = """{"role":"user","content":"read a"}""";
        using var first = await SendAsync(relay, """{"model":"claude-sonnet-4-6","max_tokens":64,"stream":true,"thinking":{"type":"adaptive"},""" + Tools + ""","messages":[""" + Ask + "]}");
        var content = Replay(Events(await first.Content.ReadAsStringAsync()));
        var id = content.Last()!["id"]!.GetValue<string>();
        Interlocked.Exchange(ref down, 1);

        // Act: the next turn replays Gemini's thinking blocks
        var assistant = new JsonObject { ["role"] = "assistant", ["content"] = content };
        using var second = await SendAsync(relay, """{"model":"claude-sonnet-4-6","max_tokens":64,"thinking":{"type":"adaptive"},""" + Tools
            + ""","messages":[""" + Ask + "," + assistant.ToJsonString() + ""","""
            + $$"""{"role":"user","content":[{"type":"tool_result","tool_use_id":"{{id}}","content":"A"}]}]}""");

        // Assert: B served, and received no thinking block (the signatures stay with Gemini's family)
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal("b", second.Headers.GetValues("x-cc-relay-provider").Single());
        var sent = System.Text.Encoding.UTF8.GetString(B.Requests.Single().Body);
        Assert.DoesNotContain("cc-relay:gemini", sent);
        Assert.DoesNotContain("\"thinking\"", sent.Replace("\"thinking\":{", "", StringComparison.Ordinal));
        Assert.Contains(id, sent);
    }
}
