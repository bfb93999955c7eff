using System.Buffers.Text;

namespace CcRelay.Bench.FakeUpstream;

/// <summary>
/// What the benchmark client asks of one request. The knobs travel inside the request body
/// (<c>"metadata":{"user_id":"cc-bench:deltas=40,interval_us=20000"}</c>) because a relay forwards the body
/// unchanged but may drop unknown headers.
/// </summary>
internal readonly record struct RequestKnobs(bool Stream, int Deltas, long IntervalMicros)
{
    public static RequestKnobs Parse(ReadOnlySpan<byte> body)
    {
        var stream = IsStream(body);
        var deltas = 20;
        long interval = 20_000;
        var at = body.IndexOf("cc-bench:"u8);
        if (at >= 0)
        {
            var rest = body[at..];
            deltas = (int)Number(rest, "deltas="u8, deltas);
            interval = Number(rest, "interval_us="u8, interval);
        }

        return new RequestKnobs(stream, Math.Clamp(deltas, 0, 100_000), Math.Max(0, interval));
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
