using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace CcRelay.Bench.FakeUpstream;

/// <summary>
/// The wait before a response head, drawn per request, uniform in [<c>head_min_us</c>, <c>head_max_us</c>] (the
/// request's knobs), from a seeded sequence (<c>--seed</c>): the upstream that answers after a realistic delay.
/// Every <i>lane</i> (the request's <c>lane=</c> query parameter, which a relay and nginx forward unchanged; none:
/// the empty lane) has its own counter, so the n-th request of every lane waits the same time: targets measured side
/// by side (<c>?lane=nginx</c>, <c>?lane=relay</c>) meet the same delays, request for request, and their latency
/// percentiles differ by what the proxies add, not by the draw.
/// </summary>
internal sealed class HeadDelays(ulong seed)
{
    private readonly ConcurrentDictionary<string, StrongBox<long>> _counters = new(StringComparer.Ordinal);

    /// <summary>The wait before the head of the lane's next request (zero when the knobs ask for none).</summary>
    public TimeSpan Next(string lane, RequestKnobs knobs)
    {
        if (knobs.HeadMaxMicros <= 0)
        {
            return TimeSpan.Zero;
        }

        var n = Interlocked.Increment(ref _counters.GetOrAdd(lane, static _ => new StrongBox<long>(-1)).Value);
        var min = Math.Min(knobs.HeadMinMicros, knobs.HeadMaxMicros);
        var uniform = (SplitMix64(seed + ((ulong)n * 0x9E3779B97F4A7C15UL)) >> 11) * (1.0 / (1UL << 53));
        return TimeSpan.FromMicroseconds(min + ((knobs.HeadMaxMicros - min) * uniform));
    }

    /// <summary>The lane of a request target: the value of its <c>lane=</c> query parameter, else empty.</summary>
    public static string Lane(string target)
    {
        var query = target.IndexOf('?', StringComparison.Ordinal);
        if (query < 0)
        {
            return "";
        }

        foreach (var pair in target[(query + 1)..].Split('&'))
        {
            if (pair.StartsWith("lane=", StringComparison.Ordinal))
            {
                return pair[5..];
            }
        }

        return "";
    }

    private static ulong SplitMix64(ulong x)
    {
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }
}
