using System.Net;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.FSharp.Core;

namespace CcRelay.Host.Tests.Translation;

/// <summary>
/// The relay's own keep-alive thinking block (empty, unsigned: <c>KeepAlive</c>) comes back with Claude Code's next
/// turn. That turn must still be accepted when it reaches a strict Anthropic upstream after a failover: from a
/// translated target (another family: all thinking is left out) and from Bedrock to Anthropic in one family (the
/// signed thinking must stay, and only the relay's block go).
/// </summary>
public sealed class KeepAliveEchoTests : TwoUpstreamTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    /// <summary>The signature the strict Anthropic fake mints and accepts (another prefix is another family's).</summary>
    private const string Signed = "EqQBCkYIBxgCKkBsig+/==";

    /// <summary>
    /// What Anthropic refuses in a replayed conversation, in its words: a thinking block it did not sign (no signature,
    /// an empty one, another family's) and, with thinking on, a final assistant turn with tool calls that does not start
    /// with its thinking; null when it accepts the body.
    /// </summary>
    private static string? AnthropicRefusal(JsonElement body)
    {
        var messages = body.GetProperty("messages");
        var lastAssistant = -1;
        for (var i = 0; i < messages.GetArrayLength(); i++)
        {
            var message = messages[i];
            if (message.GetProperty("role").GetString() != "assistant" || message.GetProperty("content").ValueKind != JsonValueKind.Array)
            {
                continue;
            }

            lastAssistant = i;
            var j = 0;
            foreach (var block in message.GetProperty("content").EnumerateArray())
            {
                var signature = block.TryGetProperty("signature", out var s) ? s.GetString() ?? "" : "";
                if (block.GetProperty("type").GetString() == "thinking" && !signature.StartsWith("EqQB", StringComparison.Ordinal))
                {
                    return $"messages.{i}.content.{j}: Invalid `signature` in `thinking` block";
                }

                j++;
            }
        }

        var thinkingOn = body.TryGetProperty("thinking", out var thinking) && thinking.GetProperty("type").GetString() is "enabled" or "adaptive";
        if (thinkingOn && lastAssistant >= 0)
        {
            var content = messages[lastAssistant].GetProperty("content");
            var toolLoop = content.EnumerateArray().Any(b => b.GetProperty("type").GetString() == "tool_use");
            var first = content.GetArrayLength() > 0 ? content[0].GetProperty("type").GetString() : null;
            if (toolLoop && first is not ("thinking" or "redacted_thinking"))
            {
                return $"messages.{lastAssistant}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{first}`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking";
            }
        }

        return null;
    }

    /// <summary>A strict Anthropic upstream: refuses as <see cref="AnthropicRefusal"/> says, else answers <c>from-b</c>.</summary>
    private static Task StrictAnthropicAsync(HttpContext context)
    {
        var body = JsonDocument.Parse(FakeUpstream.Current(context).Body).RootElement;
        return AnthropicRefusal(body) is { } refusal
            ? Fake.WriteJsonAsync(context, 400, new JsonObject { ["type"] = "error", ["error"] = new JsonObject { ["type"] = "invalid_request_error", ["message"] = refusal } }.ToJsonString())
            : Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-b"));
    }

    /// <summary>
    /// Reads a stream as Claude Code does and gives back the assistant message it would replay: every content block in
    /// index order, thinking with its text and signature (empty when none came), text, and tool_use with its parsed input.
    /// Sets <paramref name="keepAliveSeen"/> once the relay's own thinking block has had a keep-alive delta.
    /// </summary>
    private static async Task<JsonArray> AssistantTurnAsync(HttpResponseMessage response, TaskCompletionSource keepAliveSeen, CancellationToken token)
    {
        var reader = new SseClientReader(await response.Content.ReadAsStreamAsync(token));
        var blocks = new SortedDictionary<int, JsonObject>();
        var inputs = new Dictionary<int, StringBuilder>();
        while (await reader.NextAsync(token) is { } next)
        {
            var data = JsonNode.Parse(next.Split('\n')[1]["data: ".Length..])!.AsObject();
            switch ((string?)data["type"])
            {
                case "content_block_start":
                    var index = (int)data["index"]!;
                    var block = data["content_block"]!.DeepClone().AsObject();
                    if ((string?)block["type"] == "tool_use")
                    {
                        block.Remove("input");
                        inputs[index] = new StringBuilder();
                    }

                    blocks[index] = block;
                    break;
                case "content_block_delta":
                    var at = (int)data["index"]!;
                    var delta = data["delta"]!;
                    switch ((string?)delta["type"])
                    {
                        case "thinking_delta":
                            blocks[at]["thinking"] = (string?)blocks[at]["thinking"] + (string?)delta["thinking"];
                            if ((string?)delta["thinking"] == "" && (string?)blocks[at]["signature"] == "")
                            {
                                keepAliveSeen.TrySetResult();
                            }

                            break;
                        case "signature_delta":
                            blocks[at]["signature"] = (string?)delta["signature"];
                            break;
                        case "text_delta":
                            blocks[at]["text"] = (string?)blocks[at]["text"] + (string?)delta["text"];
                            break;
                        case "input_json_delta":
                            inputs[at].Append((string?)delta["partial_json"]);
                            break;
                    }

                    break;
                case "content_block_stop":
                    var stopped = (int)data["index"]!;
                    if (inputs.TryGetValue(stopped, out var input))
                    {
                        blocks[stopped]["input"] = JsonNode.Parse(input.Length == 0 ? "{}" : input.ToString());
                    }

                    break;
            }
        }

        return new JsonArray(blocks.Values.Select(b => (JsonNode)b).ToArray());
    }

    /// <summary>JSON as Claude Code writes it (<c>JSON.stringify</c>: <c>+</c> and non-ASCII as they are).</summary>
    private static readonly JsonSerializerOptions AsClaudeCode = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static HttpRequestMessage Turn(JsonArray messages, bool stream) =>
        Requests.Messages(new JsonObject
        {
            ["model"] = "claude-sonnet-4-6",
            ["max_tokens"] = 2048,
            ["stream"] = stream,
            ["thinking"] = new JsonObject { ["type"] = "enabled", ["budget_tokens"] = 1024 },
            ["messages"] = messages.DeepClone(),
        }.ToJsonString(AsClaudeCode));

    private static ProviderConfig WithFamily(ProviderConfig p, string family) =>
        new(p.Name, p.Type, p.Enabled, p.BaseUrl, p.AuthStyle, p.Keys, p.ModelMapping, p.Models, p.Pricing, p.Priority, p.Weight, family, p.KeyStrategy, p.Cloud);

    [Fact]
    public async Task TranslatedTargetsKeepAliveBlock_NextTurnFailsOverToAStrictAnthropic_AndIsAccepted()
    {
        // Arrange: an OpenAI-compatible target first, silent until the client has had a keep-alive (the relay opens
        // its own empty thinking block), then it reasons and answers; it is down for the next turn. B is a strict
        // Anthropic upstream.
        var keepAliveSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var turn = 0;
        A.Handler = FakeOpenAi.Strict(
            async (context, _) =>
            {
                if (Interlocked.Increment(ref turn) > 1)
                {
                    await FakeOpenAi.ErrorAsync(context, 503, "The server is overloaded.", "server_error", null);
                    return;
                }

                await FakeOpenAi.StreamAsync(context, FakeOpenAi.Chunk("""{"role":"assistant","content":""}"""));
                await keepAliveSeen.Task.WaitAsync(Bound);
                foreach (var chunk in new[]
                {
                    FakeOpenAi.Chunk("""{"reasoning_content":"Plan the answer."}"""),
                    FakeOpenAi.Chunk("""{"content":"Done."}"""),
                    FakeOpenAi.Chunk("{}", "stop"),
                    FakeOpenAi.Usage(),
                    "[DONE]",
                })
                {
                    await Fake.WriteAsync(context, "data: " + chunk + "\n\n");
                }
            },
            deepSeek: true);
        B.Handler = StrictAnthropicAsync;
        var openAi = TestConfig.Provider(
            "a",
            A.BaseUrl,
            type: ProviderType.OpenAi,
            keys: ["sk-openai"],
            priority: 2,
            modelMapping: new Dictionary<string, string> { ["claude-sonnet-4-6"] = "deepseek-reasoner" },
            cloud: CloudSettings.NewOpenAi(new OpenAiSettings(ReasoningField.ReasoningContent, MaxTokensField.MaxTokens, true, ThinkingControl.ThinkingField, OpenAiApi.Chat, DroppedPolicy.Report, MidSystem.InPlace)));
        await using var relay = await RelayHost.StartAsync(
            TestConfig.Relay([openAi, TestConfig.Provider("b", B.BaseUrl, keys: ["b-key"], priority: 1)]),
            pingInterval: TimeSpan.FromMilliseconds(100));
        using var timeout = new CancellationTokenSource(Bound);
        var messages = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" });

        // Act: turn 1 through the translated target; turn 2 (Claude Code's replay of it) fails over to B
        using var first = await relay.Client.SendAsync(Turn(messages, stream: true), HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        var assistant = await AssistantTurnAsync(first, keepAliveSeen, timeout.Token);
        messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = assistant });
        messages.Add(new JsonObject { ["role"] = "user", ["content"] = "next" });
        using var second = await relay.Client.SendAsync(Turn(messages, stream: false), timeout.Token);

        // Assert: turn 1 carried the relay's block (empty, unsigned) before the target's reasoning and text
        Assert.Equal(
            ["thinking::", "thinking:Plan the answer.:" + AnthropicOut.ReasoningSignature, "text:Done."],
            assistant.Select(b => (string?)b!["type"] == "text" ? "text:" + (string?)b["text"] : "thinking:" + (string?)b["thinking"] + ":" + (string?)b["signature"]));

        // turn 2 answered by B at its first attempt, with no thinking block of another family (nor the relay's)
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Contains("from-b", await second.Content.ReadAsStringAsync());
        var sent = Assert.Single(B.Requests);
        var replayed = FakeOpenAi.Body(sent).GetProperty("messages")[1].GetProperty("content");
        Assert.Equal(["text"], replayed.EnumerateArray().Select(b => b.GetProperty("type").GetString()));
        Assert.Equal(2, A.Requests.Count);
    }

    [Fact]
    public async Task BedrockKeepAliveBlock_NextTurnFailsOverToAnthropicInTheSameFamily_KeepsTheSignedThinking()
    {
        // Arrange: Bedrock (A) says message_start, then nothing until the client has had a keep-alive (the relay opens
        // its own empty thinking block), then signed thinking, text and a tool call; it throttles the next turn. B is
        // a strict Anthropic upstream in the same family, so the signed thinking must reach it as it was.
        var keepAliveSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var turn = 0;
        string[] events =
        [
            """{"type":"message_start","message":{"id":"msg_bdrk_1","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}""",
            """{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}""",
            """{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Run it."}}""",
            """{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":""" + Fake.Quote(Signed) + "}}",
            """{"type":"content_block_stop","index":0}""",
            """{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01","name":"Bash","input":{}}}""",
            """{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"command\":"}}""",
            """{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"ls\"}"}}""",
            """{"type":"content_block_stop","index":1}""",
            """{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":9}}""",
            """{"type":"message_stop"}""",
        ];
        A.Handler = async context =>
        {
            if (Interlocked.Increment(ref turn) > 1)
            {
                context.Response.Headers["x-amzn-ErrorType"] = "ThrottlingException";
                await Fake.WriteJsonAsync(context, 429, """{"message":"Too many requests, please wait before trying again."}""");
                return;
            }

            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/vnd.amazon.eventstream";
            await context.Response.StartAsync();
            await context.Response.Body.WriteAsync(EventStream.encode(BedrockAnswer.chunkOfEvent(Encoding.UTF8.GetBytes(events[0]))));
            await context.Response.Body.FlushAsync();
            await keepAliveSeen.Task.WaitAsync(Bound);
            foreach (var json in events.Skip(1))
            {
                await context.Response.Body.WriteAsync(EventStream.encode(BedrockAnswer.chunkOfEvent(Encoding.UTF8.GetBytes(json))));
            }
        };
        B.Handler = StrictAnthropicAsync;
        var bedrock = TestConfig.Provider(
            "bedrock",
            A.BaseUrl,
            ProviderType.Bedrock,
            priority: 2,
            cloud: CloudSettings.NewBedrock(new BedrockSettings(
                "us-east-1",
                AwsCredentialSource.NewStatic("AKIDRELAYTEST", "bedrock-test-secret", FSharpOption<string>.None),
                BedrockApi.Invoke,
                CcRelay.Core.Bedrock.defaultBetas)));
        var anthropic = TestConfig.Provider("anthropic", B.BaseUrl, keys: ["b-key"], priority: 1);
        await using var relay = await RelayHost.StartAsync(
            TestConfig.Relay([WithFamily(bedrock, "claude"), WithFamily(anthropic, "claude")]),
            pingInterval: TimeSpan.FromMilliseconds(100));
        using var timeout = new CancellationTokenSource(Bound);
        var messages = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "list the files" });

        // Act: turn 1 through Bedrock; turn 2 (the tool result, with Claude Code's replay of turn 1) fails over to B
        using var first = await relay.Client.SendAsync(Turn(messages, stream: true), HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        var assistant = await AssistantTurnAsync(first, keepAliveSeen, timeout.Token);
        messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = assistant });
        messages.Add(new JsonObject
        {
            ["role"] = "user",
            ["content"] = new JsonArray(new JsonObject { ["type"] = "tool_result", ["tool_use_id"] = "toolu_01", ["content"] = "a.txt" }),
        });
        using var second = await relay.Client.SendAsync(Turn(messages, stream: false), timeout.Token);

        // Assert: turn 1 carried the relay's block before Bedrock's signed thinking and the tool call
        Assert.Equal(["thinking", "thinking", "tool_use"], assistant.Select(b => (string?)b!["type"]));
        Assert.Equal("", (string?)assistant[0]!["signature"]);
        Assert.Equal(Signed, (string?)assistant[1]!["signature"]);

        // turn 2 accepted by B at its first attempt: the signed thinking first, byte for byte; the relay's block gone
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Contains("from-b", await second.Content.ReadAsStringAsync());
        var sent = Assert.Single(B.Requests);
        var raw = Encoding.UTF8.GetString(sent.Body);
        Assert.Contains("\"signature\":\"" + Signed + "\"", raw);
        Assert.DoesNotContain("\"signature\":\"\"", raw);
        var replayed = FakeOpenAi.Body(sent).GetProperty("messages")[1].GetProperty("content");
        Assert.Equal(["thinking", "tool_use"], replayed.EnumerateArray().Select(b => b.GetProperty("type").GetString()));
    }
}
