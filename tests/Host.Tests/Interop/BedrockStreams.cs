using System.Text;
using System.Text.Json.Nodes;

namespace CcRelay.Host.Tests.Interop;

/// <summary>Bedrock-like InvokeModelWithResponseStream answers, as smithy messages, and the SSE they mean.</summary>
internal static class BedrockStreams
{
    /// <summary>A streamed answer's Anthropic events, in order (compact JSON as Bedrock sends it).</summary>
    public static readonly string[] Events =
    [
        """{"type":"message_start","message":{"id":"msg_bdrk_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}""",
        """{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}""",
        """{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello, caf\u00e9 – “world” 🌍"}}""",
        """{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\n\nline \"two\""}}""",
        """{"type":"content_block_stop","index":0}""",
        """{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":9}}""",
        """{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":12,"outputTokenCount":9,"invocationLatency":812,"firstByteLatency":301}}""",
    ];

    /// <summary>A chunk frame as Bedrock sends it: the event base64 in <c>bytes</c>, random padding in <c>p</c>.</summary>
    public static SmithyMessage Chunk(string eventJson, string padding = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0")
    {
        var payload = new JsonObject
        {
            ["bytes"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(eventJson)),
            ["p"] = padding,
        };
        return new SmithyMessage(
            [
                SmithyHeader.String(":event-type", "chunk"),
                SmithyHeader.String(":content-type", "application/json"),
                SmithyHeader.String(":message-type", "event"),
            ],
            Encoding.UTF8.GetBytes(payload.ToJsonString()));
    }

    /// <summary>An exception frame as Bedrock sends it mid-stream.</summary>
    public static SmithyMessage Exception(string name, string message) =>
        new(
            [
                SmithyHeader.String(":exception-type", name),
                SmithyHeader.String(":content-type", "application/json"),
                SmithyHeader.String(":message-type", "exception"),
            ],
            Encoding.UTF8.GetBytes(new JsonObject { ["message"] = message }.ToJsonString()));

    /// <summary>The whole answer: every event, with a keep-alive chunk (no <c>type</c>) in the middle.</summary>
    public static SmithyMessage[] Answer() =>
        [.. Events.Take(3).Select(e => Chunk(e)), Chunk("{}", "p"), .. Events.Skip(3).Select(e => Chunk(e, ""))];

    /// <summary>The SSE an Anthropic client must see for <paramref name="events"/>.</summary>
    public static string Sse(IEnumerable<string> events) =>
        string.Concat(events.Select(e => $"event: {JsonNode.Parse(e)!["type"]!.GetValue<string>()}\ndata: {e}\n\n"));
}
