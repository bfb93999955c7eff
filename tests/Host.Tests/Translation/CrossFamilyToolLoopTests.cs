using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Tests.Translation;

/// <summary>
/// A tool loop with thinking on that crosses provider families in its middle (docs/routing.md#thinking-signatures):
/// the earlier assistant turn came from a translated target (its reasoning carries the relay's signature, which
/// Anthropic cannot verify) and the next request fails over to a strict Anthropic upstream, or the reverse.
/// </summary>
public sealed class CrossFamilyToolLoopTests : TwoUpstreamTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    /// <summary>The signature the strict Anthropic fake mints and accepts (any other is another family's).</summary>
    private const string Signed = "EqQBCkYIBxgCKkBsig+/==";

    /// <summary>
    /// What Anthropic refuses in a replayed conversation, in its words; null when it accepts it: a thinking block it did
    /// not sign; an assistant message whose thinking does not come first; with thinking on, a final assistant turn
    /// (from the last user message without a tool result) that does not start with thinking; with thinking off, a
    /// <c>clear_thinking</c> context edit.
    /// </summary>
    private static string? AnthropicRefusal(JsonElement body)
    {
        var messages = body.GetProperty("messages").EnumerateArray().ToArray();
        static JsonElement[] Blocks(JsonElement m) =>
            m.GetProperty("content").ValueKind == JsonValueKind.Array ? m.GetProperty("content").EnumerateArray().ToArray() : [];
        static string Type(JsonElement b) => b.GetProperty("type").GetString()!;
        static bool IsThinking(JsonElement b) => Type(b) is "thinking" or "redacted_thinking";

        for (var i = 0; i < messages.Length; i++)
        {
            var blocks = Blocks(messages[i]);
            for (var j = 0; j < blocks.Length; j++)
            {
                var proof = Type(blocks[j]) switch
                {
                    "thinking" => blocks[j].TryGetProperty("signature", out var s) ? s.GetString() ?? "" : "",
                    "redacted_thinking" => blocks[j].TryGetProperty("data", out var d) ? d.GetString() ?? "" : "",
                    _ => null,
                };
                if (proof is not null && !proof.StartsWith("EqQB", StringComparison.Ordinal))
                {
                    return $"messages.{i}.content.{j}: Invalid `signature` in `thinking` block";
                }
            }

            if (blocks.Any(IsThinking) && !IsThinking(blocks[0]))
            {
                return $"messages.{i}.content.0: If an assistant message contains any thinking blocks, the first block must be thinking or redacted_thinking. Found {Type(blocks[0])}.";
            }
        }

        var thinkingOn = body.TryGetProperty("thinking", out var thinking) && thinking.GetProperty("type").GetString() is "enabled" or "adaptive";
        var newTurn = Array.FindLastIndex(messages, m => m.GetProperty("role").GetString() == "user" && !Blocks(m).Any(b => Type(b) == "tool_result"));
        var first = Array.FindIndex(messages, newTurn + 1, m => m.GetProperty("role").GetString() == "assistant");
        if (thinkingOn && first >= 0 && Blocks(messages[first]) is var content && (content.Length == 0 || !IsThinking(content[0])))
        {
            return $"messages.{first}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{(content.Length == 0 ? "text" : Type(content[0]))}`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking";
        }

        if (!thinkingOn && body.TryGetProperty("context_management", out var management)
            && management.GetProperty("edits").EnumerateArray().Any(e => Type(e).StartsWith("clear_thinking", StringComparison.Ordinal)))
        {
            return "context_management.edits.0: clear_thinking_20251015 strategy requires `thinking` to be enabled or adaptive";
        }

        return null;
    }

    /// <summary>
    /// A strict Anthropic upstream: refuses as <see cref="AnthropicRefusal"/> says; else answers with its own signed
    /// thinking and a tool call when <paramref name="toolCall"/>, or text <c>from-b</c>.
    /// </summary>
    private static Func<HttpContext, Task> StrictAnthropic(Func<bool> toolCall) => context =>
    {
        var body = JsonDocument.Parse(FakeUpstream.Current(context).Body).RootElement;
        if (AnthropicRefusal(body) is { } refusal)
        {
            return Fake.WriteJsonAsync(context, 400, new JsonObject { ["type"] = "error", ["error"] = new JsonObject { ["type"] = "invalid_request_error", ["message"] = refusal } }.ToJsonString());
        }

        return toolCall()
            ? Fake.WriteJsonAsync(context, 200, SignedToolCall)
            : Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-b"));
    };

    /// <summary>B's answer: its signed thinking, then a tool call.</summary>
    private static readonly string SignedToolCall = new JsonObject
    {
        ["id"] = "msg_b1",
        ["type"] = "message",
        ["role"] = "assistant",
        ["model"] = "claude-sonnet-4-6",
        ["content"] = new JsonArray(
            new JsonObject { ["type"] = "thinking", ["thinking"] = "Look at it.", ["signature"] = Signed },
            new JsonObject { ["type"] = "tool_use", ["id"] = "toolu_b1", ["name"] = "Bash", ["input"] = new JsonObject { ["command"] = "cat a.txt" } }),
        ["stop_reason"] = "tool_use",
        ["stop_sequence"] = null,
        ["usage"] = new JsonObject { ["input_tokens"] = 20, ["output_tokens"] = 9 },
    }.ToJsonString();

    private static HttpRequestMessage Turn(JsonArray messages) =>
        Requests.Messages(new JsonObject
        {
            ["model"] = "claude-sonnet-4-6",
            ["max_tokens"] = 2048,
            ["thinking"] = new JsonObject { ["type"] = "adaptive" },
            ["context_management"] = JsonNode.Parse("""{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]}"""),
            ["messages"] = messages.DeepClone(),
        }.ToJsonString());

    private static JsonObject ToolResult(string id, string text) => new()
    {
        ["role"] = "user",
        ["content"] = new JsonArray(new JsonObject { ["type"] = "tool_result", ["tool_use_id"] = id, ["content"] = text }),
    };

    private static ProviderConfig DeepSeek(Uri baseUrl, int priority) => TestConfig.Provider(
        "a",
        baseUrl,
        type: ProviderType.OpenAi,
        keys: ["sk-openai"],
        priority: priority,
        modelMapping: new Dictionary<string, string> { ["claude-sonnet-4-6"] = "deepseek-reasoner" },
        cloud: CloudSettings.NewOpenAi(new OpenAiSettings(ReasoningField.ReasoningContent, MaxTokensField.MaxTokens, true, ThinkingControl.ThinkingField, OpenAiApi.Chat, DroppedPolicy.Report, MidSystem.InPlace)));

    [Fact]
    public async Task ToolLoopFromATranslatedTarget_FailsOverToAStrictAnthropic_WithThinkingOffForThatTurnOnly()
    {
        // Arrange: a DeepSeek-style target (A) reasons and calls a tool, then is down. B is a strict Anthropic upstream.
        var turn = 0;
        A.Handler = FakeOpenAi.Strict(
            (context, _) => Interlocked.Increment(ref turn) > 1
                ? FakeOpenAi.ErrorAsync(context, 503, "The server is overloaded.", "server_error", null)
                : Fake.WriteJsonAsync(context, 200, FakeOpenAi.Completion(
                    """{"role":"assistant","content":null,"reasoning_content":"List them.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"Bash","arguments":"{\"command\":\"ls\"}"}}]}""",
                    "tool_calls")),
            deepSeek: true);
        B.Handler = StrictAnthropic(() => B.Requests.Count == 1);
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay([DeepSeek(A.BaseUrl, 2), TestConfig.Provider("b", B.BaseUrl, keys: ["b-key"], priority: 1)]));
        using var timeout = new CancellationTokenSource(Bound);
        var messages = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "list the files" });

        // Act: turn 1 through A; the tool result (Claude Code's replay of turn 1) fails over to B, which calls another
        // tool; that tool's result goes to B again; then the user's next message
        using var first = await relay.Client.SendAsync(Turn(messages), timeout.Token);
        var fromA = JsonNode.Parse(await first.Content.ReadAsStringAsync())!["content"]!;
        messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = fromA.DeepClone() });
        messages.Add(ToolResult("call_1", "a.txt"));
        using var second = await relay.Client.SendAsync(Turn(messages), timeout.Token);
        var secondBody = await second.Content.ReadAsStringAsync();
        messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = JsonNode.Parse(secondBody)!["content"]!.DeepClone() });
        messages.Add(ToolResult("toolu_b1", "hello"));
        using var third = await relay.Client.SendAsync(Turn(messages), timeout.Token);
        var thirdBody = await third.Content.ReadAsStringAsync();
        messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = JsonNode.Parse(thirdBody)!["content"]!.DeepClone() });
        messages.Add(new JsonObject { ["role"] = "user", ["content"] = "thanks" });
        using var fourth = await relay.Client.SendAsync(Turn(messages), timeout.Token);

        // Assert: turn 1 carried A's reasoning under the relay's signature
        Assert.Equal(["thinking", "tool_use"], fromA.AsArray().Select(b => (string?)b!["type"]));
        Assert.Equal(AnthropicOut.ReasoningSignature, (string?)fromA[0]!["signature"]);

        // the tool result reached B at its first attempt with thinking off for that request (and the clear_thinking
        // edit, which needs it, left out), A's reasoning left out, the tool call and its result as they were; reported
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal(2, A.Requests.Count);
        var toB = FakeOpenAi.Body(B.Requests[0]);
        Assert.Equal("disabled", toB.GetProperty("thinking").GetProperty("type").GetString());
        Assert.False(toB.TryGetProperty("context_management", out _));
        Assert.Equal(["tool_use"], toB.GetProperty("messages")[1].GetProperty("content").EnumerateArray().Select(b => b.GetProperty("type").GetString()));
        Assert.Contains("\"input\":{\"command\":\"ls\"}", Encoding.UTF8.GetString(B.Requests[0].Body));
        Assert.Equal("thinking,context_management", second.Headers.GetValues("x-cc-relay-dropped").Single());

        // the loop goes on at B (pinned to B now): it is still the turn A started, so thinking stays off until the
        // user's next message (Anthropic wants the turn's first assistant message to start with its thinking), and
        // the relay's block is never sent
        Assert.Equal(HttpStatusCode.OK, third.StatusCode);
        Assert.Equal("disabled", FakeOpenAi.Body(B.Requests[1]).GetProperty("thinking").GetProperty("type").GetString());
        Assert.DoesNotContain(AnthropicOut.ReasoningSignature, Encoding.UTF8.GetString(B.Requests[1].Body));
        Assert.Equal("thinking,context_management", third.Headers.GetValues("x-cc-relay-dropped").Single());

        // the user's next message starts a new turn: thinking on, B's signed thinking byte for byte, A's reasoning left
        // out (reported), each request accepted at its first attempt
        Assert.Equal(HttpStatusCode.OK, fourth.StatusCode);
        Assert.Equal("adaptive", FakeOpenAi.Body(B.Requests[2]).GetProperty("thinking").GetProperty("type").GetString());
        var fourthSent = Encoding.UTF8.GetString(B.Requests[2].Body);
        Assert.Contains("\"signature\":\"" + Signed.Replace("+", "\\u002B", StringComparison.Ordinal) + "\"", fourthSent);
        Assert.DoesNotContain(AnthropicOut.ReasoningSignature, fourthSent);
        Assert.Equal("thinking_blocks", fourth.Headers.GetValues("x-cc-relay-dropped").Single());
        Assert.Equal(3, B.Requests.Count);
    }

    [Fact]
    public async Task ToolLoopFromAnthropic_FailsOverToAStrictDeepSeek_ThatRequiresReasoningOnEveryToolTurn()
    {
        // Arrange: B (Anthropic, preferred) signs its thinking and calls a tool, then is overloaded; A is a strict
        // DeepSeek-style target that refuses a tool turn without reasoning_content.
        B.Handler = context => B.Requests.Count > 1
            ? Fake.WriteJsonAsync(context, 529, """{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}""")
            : StrictAnthropic(() => true)(context);
        A.Handler = FakeOpenAi.Strict(
            (context, _) => Fake.WriteJsonAsync(context, 200, FakeOpenAi.Completion("""{"role":"assistant","content":"It says hello.","reasoning_content":"Read it."}""")),
            deepSeek: true);
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay([DeepSeek(A.BaseUrl, 1), TestConfig.Provider("b", B.BaseUrl, keys: ["b-key"], priority: 2)]));
        using var timeout = new CancellationTokenSource(Bound);
        var messages = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "read a.txt" });

        // Act
        using var first = await relay.Client.SendAsync(Turn(messages), timeout.Token);
        messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = JsonNode.Parse(await first.Content.ReadAsStringAsync())!["content"]!.DeepClone() });
        messages.Add(ToolResult("toolu_b1", "hello"));
        using var second = await relay.Client.SendAsync(Turn(messages), timeout.Token);

        // Assert: A took the tool result with an (empty) reasoning_content on the tool turn, B's signature not sent
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Contains("It says hello.", await second.Content.ReadAsStringAsync());
        var toA = Assert.Single(A.Requests);
        Assert.DoesNotContain("EqQB", Encoding.UTF8.GetString(toA.Body));
        Assert.Contains("thinking_blocks", second.Headers.GetValues("x-cc-relay-dropped").Single().Split(','));
        var assistant = FakeOpenAi.Body(toA).GetProperty("messages").EnumerateArray().Single(m => m.GetProperty("role").GetString() == "assistant");
        Assert.Equal("", assistant.GetProperty("reasoning_content").GetString());
    }
}
