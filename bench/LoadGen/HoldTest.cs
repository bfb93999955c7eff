using System.Collections.Concurrent;

namespace CcRelay.Bench.LoadGen;

/// <summary>
/// Memory under many open streams. Warm the target up (JSON requests + short streams), let it settle, read its
/// idle RSS (process tree of --pids), then open --streams slow streams (one event every --interval-ms) and sample
/// RSS while every stream is open. Per-stream cost = the slope from half the streams open to all of them: (peak RSS
/// while holding − RSS when half were established) / the streams opened in between. It is not measured from the idle
/// reading: a target that returns its idle memory to the system (the relay does, after a quiet second) grows its heap
/// back for the first streams, which is not a cost of each stream. The old figure stays as kb_per_stream_from_idle.
/// --smaps-out FILE (optional): copies of the first pid's /proc/PID/smaps_rollup (FILE) and smaps (FILE.full) taken
/// at the idle reading.
/// --first-us N (optional): as for <c>sse</c>, the gap between message_start and content_block_start (0: one write).
/// Bounded by the stream count and a deadline of 2 × the scripted stream length + 60 s.
/// </summary>
internal static class HoldTest
{
    public static async Task<int> RunAsync(Options o)
    {
        var target = Target.Parse(o.Str("url"));
        var streams = o.Int("streams", 1000);
        var deltas = o.Int("deltas", 20);
        var intervalMs = o.Double("interval-ms", 1000);
        var settleMs = o.Int("settle-ms", 3000);
        var pids = o.Pids("pids");
        var headers = Target.ReadHeaders(o.Str("headers"));
        var request = target.BuildRequest(Target.RenderBody(o.Str("body"), stream: true, deltas, (long)(intervalMs * 1000), o.Int("first-us", -1)), headers);
        var expected = deltas + 5;

        // Warm-up: JSON + SSE paths, then let GC / pools settle before the idle reading.
        var json = target.BuildRequest(Target.RenderBody(o.Str("body"), stream: false, 0, 0), headers);
        using (var s = target.Connect())
        {
            var buffer = new byte[64 * 1024];
            var parser = new ResponseParser();
            for (var i = 0; i < o.Int("warmup-json", 2000); i++)
            {
                RateTest.Exchange(s, json, buffer, parser);
            }
        }

        await StreamTest.WarmupAsync(o, target);
        await Task.Delay(settleMs);
        var rssIdle = ProcStats.RssMb(pids);
        if (o.Str("smaps-out", "") is { Length: > 0 } smapsOut && pids.Count > 0)
        {
            // where the idle memory is (bench/idle-rss.sh): the first pid's /proc/PID/smaps_rollup at the idle reading
            File.Copy($"/proc/{pids[0]}/smaps_rollup", smapsOut, overwrite: true);
            File.Copy($"/proc/{pids[0]}/smaps", smapsOut + ".full", overwrite: true);
        }

        var scripted = TimeSpan.FromMilliseconds((expected - 1) * intervalMs);
        using var bound = new CancellationTokenSource((scripted * 2) + TimeSpan.FromSeconds(60));
        var established = 0;
        var finished = 0;
        var ok = 0;
        var failures = new ConcurrentQueue<string>();
        var delays = new ConcurrentQueue<long[]>();
        long coalesced = 0;
        using var connectGate = new SemaphoreSlim(64);
        var t0 = Clock.Now;

        var tasks = Enumerable.Range(0, streams).Select(async _ =>
        {
            using var client = new StreamClient(target, request, expected, intervalMs);
            client.OnFirstEvent = () =>
            {
                Interlocked.Increment(ref established);
                connectGate.Release();
            };
            await connectGate.WaitAsync(bound.Token).ConfigureAwait(false);
            var success = await client.RunOnceAsync(bound.Token).ConfigureAwait(false);
            if (client.Splitter.Events == 0)
            {
                connectGate.Release();
            }

            Interlocked.Increment(ref finished);
            delays.Enqueue([.. client.Splitter.Delays]);
            Interlocked.Add(ref coalesced, client.Coalesced);
            if (success)
            {
                Interlocked.Increment(ref ok);
            }
            else
            {
                failures.Enqueue(client.Failure ?? "?");
            }
        }).ToArray();

        // Sample RSS while streams are open; the "hold" window is when all are established and none has finished.
        var samples = new List<double>();
        var peakAny = 0.0;
        double rampSeconds = double.NaN;
        var rssHalf = double.NaN;
        var establishedAtHalf = 0;
        var all = Task.WhenAll(tasks);
        while (!all.IsCompleted)
        {
            // every 20 ms while streams open (the half-open reading must not be missed), then every 250 ms
            await Task.WhenAny(all, Task.Delay(Volatile.Read(ref established) < streams ? 20 : 250));
            var rss = ProcStats.RssMb(pids);
            peakAny = Math.Max(peakAny, rss);
            var open = Volatile.Read(ref established);
            if (double.IsNaN(rssHalf) && open >= streams / 2 && open < streams && Volatile.Read(ref finished) == 0)
            {
                rssHalf = rss;
                establishedAtHalf = open;
            }

            if (Volatile.Read(ref established) == streams && Volatile.Read(ref finished) == 0)
            {
                if (double.IsNaN(rampSeconds))
                {
                    rampSeconds = Clock.TicksToMs(Clock.Now - t0) / 1000.0;
                }

                samples.Add(rss);
            }
        }

        try
        {
            await all;
        }
        catch (OperationCanceledException)
        {
        }

        var rssHold = samples.Count > 0 ? samples.Max() : peakAny;
        var d = new Percentiles(delays.SelectMany(x => x));
        ResultWriter.Append(o, "hold", new Dictionary<string, object?>
        {
            ["streams"] = streams,
            ["deltas"] = deltas,
            ["interval_ms"] = intervalMs,
            ["established"] = established,
            ["failed_streams"] = streams - ok,
            ["first_failure"] = failures.FirstOrDefault(),
            ["ramp_s"] = ResultWriter.R(rampSeconds, 2),
            ["hold_samples"] = samples.Count,
            ["rss_idle_mb"] = ResultWriter.R(rssIdle, 1),
            ["rss_hold_mb"] = ResultWriter.R(rssHold, 1),
            ["kb_per_stream"] = ResultWriter.R(double.IsNaN(rssHalf) || establishedAtHalf >= streams
                ? double.NaN
                : (rssHold - rssHalf) * 1024 / (streams - establishedAtHalf), 1),
            ["rss_half_mb"] = ResultWriter.R(rssHalf, 1),
            ["established_at_half"] = establishedAtHalf,
            ["kb_per_stream_from_idle"] = ResultWriter.R((rssHold - rssIdle) * 1024 / streams, 1),
            ["p50_ms"] = ResultWriter.R(d.Ms(50), 4),
            ["p99_ms"] = ResultWriter.R(d.Ms(99), 4),
            ["coalesced_pct"] = ResultWriter.R(d.Count == 0 ? double.NaN : 100.0 * coalesced / d.Count, 4),
        });
        return 0;
    }
}
