using System.Buffers.Text;
using System.Text;

namespace CcRelay.Bench.FakeUpstream;

/// <summary>
/// The Anthropic event sequence of one streamed text answer, written as HTTP/1.1 chunks (one event per chunk).
/// Event <c>k</c> is sent at <c>t0 + k * interval</c>; every event's data carries <c>"bench_seq"</c> (k) and
/// <c>"bench_ts"</c> (Stopwatch ticks taken just before the socket write). Order: message_start,
/// content_block_start, <c>deltas</c> × content_block_delta, content_block_stop, message_delta, message_stop.
/// </summary>
internal static class SseScript
{
    private static readonly string[] Words =
    [
        "I ", "will ", "read ", "the ", "routing ", "module ", "first, ", "then ", "run ", "the ", "failing ", "test. ",
        "The ", "planner ", "drops ", "providers ", "whose ", "key ", "pool ", "is ", "empty ", "instead ", "of ", "skipping ",
    ];

    private static readonly byte[][] DeltaSuffixes = Words
        .Select(w => Encoding.UTF8.GetBytes($",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{w}\"}}}}\n\n"))
        .ToArray();

    private static readonly byte[] StartSuffix = Encoding.UTF8.GetBytes(
        ",\"message\":{\"id\":\"msg_01BenchFakeStream0000000001\",\"type\":\"message\",\"role\":\"assistant\"," +
        "\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null," +
        "\"usage\":{\"input_tokens\":2417,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":18880," +
        "\"output_tokens\":1,\"service_tier\":\"standard\"}}}\n\n");

    private static readonly byte[] BlockStartSuffix = Encoding.UTF8.GetBytes(
        ",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");

    private static readonly byte[] BlockStopSuffix = Encoding.UTF8.GetBytes(",\"index\":0}\n\n");

    private static readonly byte[] StopSuffix = Encoding.UTF8.GetBytes("}\n\n");

    public static int EventCount(int deltas) => deltas + 5;

    /// <summary>Writes event <paramref name="seq"/> as one complete HTTP chunk into <paramref name="buffer"/>; returns its length.</summary>
    public static int WriteChunk(Span<byte> buffer, int seq, int deltas, long timestamp)
    {
        // Payload goes after a fixed 10-byte gap, the hex chunk size is right-aligned into the gap afterwards.
        const int Gap = 10;
        var payload = buffer[Gap..];
        var name = seq switch
        {
            0 => "message_start",
            1 => "content_block_start",
            _ when seq == deltas + 2 => "content_block_stop",
            _ when seq == deltas + 3 => "message_delta",
            _ when seq == deltas + 4 => "message_stop",
            _ => "content_block_delta",
        };

        var n = Encoding.ASCII.GetBytes($"event: {name}\ndata: {{\"type\":\"{name}\",\"bench_seq\":", payload);
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
                $",\"delta\":{{\"stop_reason\":\"end_turn\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":{deltas + 1}}}}}\n\n"),
            "message_stop" => StopSuffix,
            _ => DeltaSuffixes[(seq - 2) % DeltaSuffixes.Length],
        };
        suffix.CopyTo(payload[n..]);
        n += suffix.Length;
        "\r\n"u8.CopyTo(payload[n..]);

        Span<byte> hex = stackalloc byte[8];
        Utf8Formatter.TryFormat(n, hex, out var hexLen, new System.Buffers.StandardFormat('x'));
        var start = Gap - hexLen - 2;
        hex[..hexLen].CopyTo(buffer[start..]);
        "\r\n"u8.CopyTo(buffer[(start + hexLen)..]);
        buffer[start..(Gap + n + 2)].CopyTo(buffer);
        return Gap + n + 2 - start;
    }
}
