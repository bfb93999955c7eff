using System.Buffers.Text;
using System.Text;

namespace CcRelay.Bench.FakeUpstream;

/// <summary>
/// The Anthropic event sequence of one streamed text answer. Order: message_start, content_block_start,
/// <c>deltas</c> × content_block_delta, content_block_stop, message_delta, message_stop. Every event's data carries
/// <c>"bench_seq"</c> (k) and <c>"bench_ts"</c> (Stopwatch ticks taken just before the socket write). Written as
/// HTTP/1.1 chunks, one event per chunk: as SSE (<see cref="WriteChunk"/>, Anthropic and Vertex) or as one AWS
/// event-stream <c>chunk</c> frame carrying the event's JSON in base64 (<see cref="WriteBedrockChunk"/>, Bedrock's
/// InvokeModelWithResponseStream), framed by the relay's own <c>EventStream.encode</c>.
/// </summary>
internal static class SseScript
{
    private static readonly string[] Words =
    [
        "I ", "will ", "read ", "the ", "routing ", "module ", "first, ", "then ", "run ", "the ", "failing ", "test. ",
        "The ", "planner ", "drops ", "providers ", "whose ", "key ", "pool ", "is ", "empty ", "instead ", "of ", "skipping ",
    ];

    private static readonly byte[][] DeltaSuffixes = Words
        .Select(w => Encoding.UTF8.GetBytes($",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{w}\"}}}}"))
        .ToArray();

    private static readonly byte[] StartSuffix = Encoding.UTF8.GetBytes(
        ",\"message\":{\"id\":\"msg_01BenchFakeStream0000000001\",\"type\":\"message\",\"role\":\"assistant\"," +
        "\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null," +
        "\"usage\":{\"input_tokens\":2417,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":18880," +
        "\"output_tokens\":1,\"service_tier\":\"standard\"}}}");

    private static readonly byte[] BlockStartSuffix = Encoding.UTF8.GetBytes(
        ",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}");

    private static readonly byte[] BlockStopSuffix = Encoding.UTF8.GetBytes(",\"index\":0}");

    private static readonly byte[] StopSuffix = Encoding.UTF8.GetBytes("}");

    public static int EventCount(int deltas) => deltas + 5;

    /// <summary>Writes event <paramref name="seq"/> as one complete SSE HTTP chunk into <paramref name="buffer"/>; returns its length.</summary>
    public static int WriteChunk(Span<byte> buffer, int seq, int deltas, long timestamp)
    {
        // Payload goes after a fixed 10-byte gap, the hex chunk size is right-aligned into the gap afterwards.
        const int Gap = 10;
        var payload = buffer[Gap..];
        var name = Name(seq, deltas);
        var n = Encoding.ASCII.GetBytes($"event: {name}\ndata: ", payload);
        n += WriteJson(payload[n..], name, seq, deltas, timestamp);
        "\n\n\r\n"u8.CopyTo(payload[n..]);
        n += 2;
        return Frame(buffer, Gap, n);
    }

    /// <summary>
    /// Writes event <paramref name="seq"/> as one HTTP chunk holding one event-stream message (<c>:event-type chunk</c>,
    /// payload <c>{"bytes":"&lt;base64 of the event JSON&gt;"}</c>, CRCs included); returns its length.
    /// </summary>
    public static int WriteBedrockChunk(Span<byte> buffer, int seq, int deltas, long timestamp)
    {
        const int Gap = 10;
        Span<byte> json = stackalloc byte[1024];
        var n = WriteJson(json, Name(seq, deltas), seq, deltas, timestamp);
        // fully qualified: dotnet format cannot load the F# project and would call a using of it unnecessary (IDE0005)
        var frame = global::CcRelay.Core.EventStream.encode(global::CcRelay.Core.BedrockAnswer.chunkOfEvent(json[..n]));
        frame.CopyTo(buffer[Gap..]);
        "\r\n"u8.CopyTo(buffer[(Gap + frame.Length)..]);
        return Frame(buffer, Gap, frame.Length);
    }

    private static string Name(int seq, int deltas) => seq switch
    {
        0 => "message_start",
        1 => "content_block_start",
        _ when seq == deltas + 2 => "content_block_stop",
        _ when seq == deltas + 3 => "message_delta",
        _ when seq == deltas + 4 => "message_stop",
        _ => "content_block_delta",
    };

    /// <summary>The event's JSON (the SSE <c>data</c>); returns its length.</summary>
    private static int WriteJson(Span<byte> payload, string name, int seq, int deltas, long timestamp)
    {
        var n = Encoding.ASCII.GetBytes($"{{\"type\":\"{name}\",\"bench_seq\":", payload);
        Utf8Formatter.TryFormat(seq, payload[n..], out var w);
        n += w;
        n += Encoding.ASCII.GetBytes(",\"bench_ts\":", payload[n..]);
        Utf8Formatter.TryFormat(timestamp, payload[n..], out w);
        n += w;

        ReadOnlySpan<byte> suffix = name switch
        {
            "message_start" => StartSuffix,
            "content_block_start" => BlockStartSuffix,
            "content_block_stop" => BlockStopSuffix,
            "message_delta" => Encoding.ASCII.GetBytes(
                $",\"delta\":{{\"stop_reason\":\"end_turn\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":{deltas + 1}}}}}"),
            "message_stop" => StopSuffix,
            _ => DeltaSuffixes[(seq - 2) % DeltaSuffixes.Length],
        };
        suffix.CopyTo(payload[n..]);
        return n + suffix.Length;
    }

    /// <summary>
    /// The chunk whose <paramref name="length"/> payload bytes (followed by CRLF) start at <paramref name="gap"/>:
    /// the hex size line is right-aligned into the gap, then the chunk is moved to the start of the buffer.
    /// </summary>
    private static int Frame(Span<byte> buffer, int gap, int length)
    {
        Span<byte> hex = stackalloc byte[8];
        Utf8Formatter.TryFormat(length, hex, out var hexLen, new System.Buffers.StandardFormat('x'));
        var start = gap - hexLen - 2;
        hex[..hexLen].CopyTo(buffer[start..]);
        "\r\n"u8.CopyTo(buffer[(start + hexLen)..]);
        buffer[start..(gap + length + 2)].CopyTo(buffer);
        return gap + length + 2 - start;
    }
}
