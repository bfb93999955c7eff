using System.Buffers.Text;

namespace CcRelay.Bench.FakeUpstream;

/// <summary>
/// What the benchmark client asks of one request. The knobs travel inside the request body
/// (<c>"metadata":{"user_id":"cc-bench:deltas=40,interval_us=20000,first_us=0"}</c>) because a relay forwards the
/// body unchanged (the clouds' reshape keeps every member but <c>model</c>/<c>stream</c>) but may drop unknown headers.
/// <c>first_us</c> (optional) is the gap between message_start and content_block_start: 0 sends both in one write,
/// N sends content_block_start N µs after message_start and the deltas <c>interval_us</c> apart after it; absent,
/// every event is <c>interval_us</c> after the one before.
/// <c>head_min_us</c> / <c>head_max_us</c> (optional): the response head (JSON or stream) waits a time drawn uniformly
/// between them (<see cref="HeadDelays"/>); only <c>head_min_us</c>: exactly that long; absent: no wait.
/// </summary>
internal readonly record struct RequestKnobs(bool Stream, int Deltas, long IntervalMicros, long FirstMicros = -1, long HeadMinMicros = 0, long HeadMaxMicros = 0)
{
    public static RequestKnobs Parse(ReadOnlySpan<byte> body)
    {
        var stream = IsStream(body);
        var deltas = 20;
        long interval = 20_000;
        long first = -1;
        long headMin = 0;
        long headMax = 0;
        var at = body.IndexOf("cc-bench:"u8);
        if (at >= 0)
        {
            var rest = body[at..];
            deltas = (int)Number(rest, "deltas="u8, deltas);
            interval = Number(rest, "interval_us="u8, interval);
            first = Number(rest, "first_us="u8, first);
            headMin = Number(rest, "head_min_us="u8, headMin);
            headMax = Number(rest, "head_max_us="u8, headMin);
        }

        return new RequestKnobs(stream, Math.Clamp(deltas, 0, 100_000), Math.Max(0, interval), Math.Max(-1, first), Math.Max(0, headMin), Math.Max(0, headMax));
    }

    private static bool IsStream(ReadOnlySpan<byte> body)
    {
        var at = body.IndexOf("\"stream\""u8);
        if (at < 0)
        {
            return false;
        }

        var rest = body[(at + 8)..].TrimStart(" \t\r\n:"u8);
        return rest.StartsWith("true"u8);
    }

    private static long Number(ReadOnlySpan<byte> text, ReadOnlySpan<byte> key, long fallback)
    {
        var at = text.IndexOf(key);
        if (at < 0 || at > 200)
        {
            return fallback;
        }

        return Utf8Parser.TryParse(text[(at + key.Length)..], out long value, out _) ? value : fallback;
    }
}
