using System.Collections.Concurrent;

namespace CcRelay.Bench.LoadGen;

/// <summary>
/// SSE delivery test. --streams concurrent connections each run --rounds streams back to back; the fake upstream
/// sends --deltas text deltas (plus the 5 framing events) every --interval-ms. Per event: delay = arrival at this
/// client (timestamp right after the socket read) − upstream send time (<c>bench_ts</c>). An event is
/// <i>coalesced</i> when it completed in the same read as the next event although the upstream sent that one at least
/// interval/4 later (it was held back on the way), <i>late</i> when delay &gt; --late-ms.
/// --first-us N (optional): the upstream sends content_block_start N µs after message_start (0: both in one write,
/// as Anthropic's API does); absent, every event is --interval-ms after the one before.
/// Bounded by streams × rounds and a hard deadline of 2 × the scripted duration + 20 s.
/// </summary>
internal static class StreamTest
{
    public static async Task<int> RunAsync(Options o)
    {
        var target = Target.Parse(o.Str("url"));
        var streams = o.Int("streams");
        var rounds = o.Int("rounds", 1);
        var deltas = o.Int("deltas", 40);
        var intervalMs = o.Double("interval-ms", 20);
        var lateMs = o.Double("late-ms", 5);
        var request = target.BuildRequest(
            Target.RenderBody(o.Str("body"), stream: true, deltas, (long)(intervalMs * 1000), o.Int("first-us", -1)),
            Target.ReadHeaders(o.Str("headers")));
        var expected = deltas + 5;

        await WarmupAsync(o, target);

        var scripted = TimeSpan.FromMilliseconds(rounds * (expected - 1) * intervalMs);
        using var bound = new CancellationTokenSource((scripted * 2) + TimeSpan.FromSeconds(20));
        var delays = new ConcurrentQueue<long[]>();
        var failures = new ConcurrentQueue<string>();
        long coalesced = 0;
        long bursts = 0;
        long foreign = 0;
        var ok = 0;

        var tasks = Enumerable.Range(0, streams).Select(async j =>
        {
            // Stagger so the upstream's sends are spread over one interval, not a synchronized burst.
            await Task.Delay(TimeSpan.FromMilliseconds(j * intervalMs / streams), bound.Token).ConfigureAwait(false);
            using var client = new StreamClient(target, request, expected, intervalMs);
            for (var r = 0; r < rounds && !bound.IsCancellationRequested; r++)
            {
                var success = await client.RunOnceAsync(bound.Token).ConfigureAwait(false);
                delays.Enqueue([.. client.Splitter.Delays]);
                Interlocked.Add(ref coalesced, client.Coalesced);
                Interlocked.Add(ref bursts, client.UpstreamBursts);
                Interlocked.Add(ref foreign, client.Splitter.ForeignEvents);
                if (success)
                {
                    Interlocked.Increment(ref ok);
                }
                else
                {
                    failures.Enqueue(client.Failure ?? "?");
                }
            }
        }).ToArray();

        try
        {
            await Task.WhenAll(tasks);
        }
        catch (OperationCanceledException)
        {
            // Counted below as streams that never completed.
        }

        var all = new Percentiles(delays.SelectMany(d => d));
        var total = streams * rounds;
        ResultWriter.Append(o, "sse", new Dictionary<string, object?>
        {
            ["streams"] = streams,
            ["rounds"] = rounds,
            ["deltas"] = deltas,
            ["interval_ms"] = intervalMs,
            ["events"] = all.Count,
            ["expected_events"] = total * expected,
            ["failed_streams"] = total - ok,
            ["first_failure"] = failures.FirstOrDefault(),
            ["foreign_events"] = foreign,
            ["p50_ms"] = ResultWriter.R(all.Ms(50), 4),
            ["p90_ms"] = ResultWriter.R(all.Ms(90), 4),
            ["p99_ms"] = ResultWriter.R(all.Ms(99), 4),
            ["p999_ms"] = ResultWriter.R(all.Ms(99.9), 4),
            ["max_ms"] = ResultWriter.R(all.MaxMs, 4),
            ["coalesced_pct"] = ResultWriter.R(all.Count == 0 ? double.NaN : 100.0 * coalesced / all.Count, 4),
            ["upstream_burst_pairs"] = bursts,
            ["late_ms"] = lateMs,
            ["late_pct"] = ResultWriter.R(all.PercentAbove(lateMs), 4),
        });
        return 0;
    }

    /// <summary>A few quick streams so JIT and connection pools are warm; not recorded.</summary>
    internal static async Task WarmupAsync(Options o, Target target)
    {
        var count = o.Int("warmup", 20);
        var request = target.BuildRequest(Target.RenderBody(o.Str("body"), stream: true, 10, 500), Target.ReadHeaders(o.Str("headers")));
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await Task.WhenAll(Enumerable.Range(0, 4).Select(async _ =>
        {
            using var client = new StreamClient(target, request, 15, 0.5);
            for (var i = 0; i < count / 4 && !bound.IsCancellationRequested; i++)
            {
                await client.RunOnceAsync(bound.Token).ConfigureAwait(false);
            }
        }));
    }
}
