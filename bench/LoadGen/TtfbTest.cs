using System.Globalization;
using System.Text;

namespace CcRelay.Bench.LoadGen;

/// <summary>
/// Time to first event, and per-event delay, of several targets in one interleaved schedule.
/// <c>--url a,b,… --label a,b,…</c> (optionally <c>--pids pa/pb/…</c> for CPU per stream). Every target gets
/// <c>--concurrency</c> keep-alive connections, opened and warmed up before anything is measured. Each of
/// <c>--rounds</c> rounds visits every target in turn (the order rotated by one per round, so every target meets
/// every moment of the machine alike) and starts one stream on each of its connections at once, waiting for all of
/// them to end before the next target. Per stream:
/// <list type="bullet">
/// <item><b>ttfb</b>: from just before the request's socket write to the socket read that completed the first
/// event (message_start) at this client: what the client waits for its first event.</item>
/// <item><b>first-event delay</b>: that read's time − the upstream's send time of message_start (<c>bench_ts</c>).</item>
/// <item><b>per-event delay</b>: arrival − upstream send time of every later event.</item>
/// <item><b>gap</b>: the upstream's own gap between message_start and content_block_start.</item>
/// <item><b>net ttfb</b>: ttfb less the upstream's own wait before the head, when it says (FakeUpstream's
/// <c>bench-head-wait-us</c>): what the path added to it, stream by stream.</item>
/// </list>
/// Added delay = a target's figure − a baseline's (<c>--baseline l1,l2</c>; default: the first label), computed per
/// block of rounds (<c>--blocks</c>, default 10), reported as the median over the blocks with a distribution-free
/// 95 % interval (order statistics), and over all samples pooled. Bounded: rounds × targets streams, and a hard
/// deadline of 10 minutes.
/// </summary>
internal static class TtfbTest
{
    public static async Task<int> RunAsync(Options o)
    {
        var urls = o.Str("url").Split(',', StringSplitOptions.RemoveEmptyEntries);
        var labels = o.Str("label").Split(',', StringSplitOptions.RemoveEmptyEntries);
        var n = urls.Length;
        if (labels.Length != n)
        {
            throw new ArgumentException($"--url names {n} target(s) but --label {labels.Length}");
        }

        var pidList = o.Str("pids", "");
        var pids = (pidList.Length == 0 ? Enumerable.Repeat("", n).ToArray() : pidList.Split('/')).Select(Options.ParsePids).ToArray();
        if (pids.Length != n)
        {
            throw new ArgumentException($"--pids has {pids.Length} group(s) for {n} targets; separate each target's pids with '/'");
        }

        var baselines = o.Str("baseline", labels[0]).Split(',', StringSplitOptions.RemoveEmptyEntries);
        if (baselines.Any(b => !labels.Contains(b)))
        {
            throw new ArgumentException($"--baseline {string.Join(',', baselines)} is not among the labels");
        }

        var concurrency = o.Int("concurrency", 1);
        var rounds = o.Int("rounds", 200);
        var blocks = Math.Min(o.Int("blocks", 10), rounds);
        var deltas = o.Int("deltas", 3);
        var intervalMs = o.Double("interval-ms", 5);
        var firstUs = (long)o.Int("first-us", 0);
        var warmupRounds = o.Int("warmup-rounds", 10);
        var tag = o.Str("tag", "ttfb");
        var headers = Target.ReadHeaders(o.Str("headers"));
        var body = Target.RenderBody(o.Str("body"), stream: true, deltas, (long)(intervalMs * 1000), firstUs);
        var targets = urls.Select(Target.Parse).ToArray();
        var clients = targets.Select(t =>
        {
            var request = t.BuildRequest(body, headers);
            return Enumerable.Range(0, concurrency).Select(_ => new StreamClient(t, request, deltas + 5, intervalMs)).ToArray();
        }).ToArray();

        using var bound = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        var samples = Enumerable.Range(0, n).Select(_ => new List<Sample>(rounds * concurrency)).ToArray();
        var failures = new int[n];
        var firstFailure = new string?[n];

        async Task RoundAsync(int k, int round, bool record)
        {
            var results = await Task.WhenAll(clients[k].Select(c => c.RunOnceAsync(bound.Token)));
            for (var i = 0; i < results.Length; i++)
            {
                var c = clients[k][i];
                if (!results[i] || c.FirstEventAt == 0 || c.Splitter.Delays.Count < 2)
                {
                    if (record)
                    {
                        failures[k]++;
                        firstFailure[k] ??= c.Failure ?? "no first event";
                    }

                    continue;
                }

                if (record)
                {
                    var d = c.Splitter.Delays;
                    var t = c.Splitter.SendTimes;
                    var ttfb = c.FirstEventAt - c.SentAt;
                    samples[k].Add(new Sample(round, ttfb, d[0], t[1] - t[0], d.Skip(1).ToArray(), c.UpstreamWaitTicks >= 0 ? ttfb - c.UpstreamWaitTicks : -1));
                }
            }
        }

        // warm-up: every connection opened, JIT and pools warm, the relays' upstream connections made
        for (var r = 0; r < warmupRounds && !bound.IsCancellationRequested; r++)
        {
            for (var k = 0; k < n; k++)
            {
                await RoundAsync(k, -1, record: false);
            }
        }

        var cpu0 = pids.Select(p => p.Count > 0 ? ProcStats.CpuSeconds(p) : 0).ToArray();
        var started = DateTime.UtcNow;
        for (var r = 0; r < rounds && !bound.IsCancellationRequested; r++)
        {
            for (var j = 0; j < n; j++)
            {
                await RoundAsync((j + r) % n, r, record: true);
            }
        }

        var cpu = pids.Select((p, k) => p.Count > 0 ? ProcStats.CpuSeconds(p) - cpu0[k] : double.NaN).ToArray();
        var seconds = (DateTime.UtcNow - started).TotalSeconds;
        foreach (var client in clients.SelectMany(c => c))
        {
            client.Dispose();
        }

        // ---- per target, pooled ----
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture,
            $"{tag}: {n} targets, {rounds} rounds of {concurrency} stream(s) at once per target ({seconds:0} s), {deltas} deltas {intervalMs} ms apart, content_block_start {firstUs} us after message_start{(firstUs == 0 ? " (one write)" : "")}");
        text.AppendLine("target | streams | failed | ttfb p50 | ttfb p90 | ttfb p99 | first-event delay p50 | p99 | later events' delay p50 | p99 | upstream gap ms_start→cb_start p50 | CPU ms/stream");
        text.AppendLine("---|---|---|---|---|---|---|---|---|---|---|---");
        for (var k = 0; k < n; k++)
        {
            var s = samples[k];
            var ttfb = new Percentiles(s.Select(x => x.Ttfb));
            var first = new Percentiles(s.Select(x => x.FirstDelay));
            var later = new Percentiles(s.SelectMany(x => x.Later));
            var gap = new Percentiles(s.Select(x => x.Gap));
            var net = new Percentiles(s.Where(x => x.NetTtfb >= 0).Select(x => x.NetTtfb));
            var cpuMs = cpu[k] * 1000 / Math.Max(1, s.Count);
            text.AppendLine(CultureInfo.InvariantCulture,
                $"{labels[k]} | {s.Count} | {failures[k]} | {ttfb.Ms(50):0.000} | {ttfb.Ms(90):0.000} | {ttfb.Ms(99):0.000} | {first.Ms(50):0.000} | {first.Ms(99):0.000} | {later.Ms(50):0.000} | {later.Ms(99):0.000} | {gap.Ms(50):0.000} | {(double.IsNaN(cpuMs) ? "-" : cpuMs.ToString("0.000", CultureInfo.InvariantCulture))}");
            ResultWriter.Append(o, tag, labels[k], new Dictionary<string, object?>
            {
                ["concurrency"] = concurrency,
                ["rounds"] = rounds,
                ["deltas"] = deltas,
                ["interval_ms"] = intervalMs,
                ["first_us"] = firstUs,
                ["streams"] = s.Count,
                ["failed_streams"] = failures[k],
                ["first_failure"] = firstFailure[k],
                ["ttfb_p50_ms"] = ResultWriter.R(ttfb.Ms(50), 4),
                ["ttfb_p90_ms"] = ResultWriter.R(ttfb.Ms(90), 4),
                ["ttfb_p99_ms"] = ResultWriter.R(ttfb.Ms(99), 4),
                ["first_event_delay_p50_ms"] = ResultWriter.R(first.Ms(50), 4),
                ["first_event_delay_p99_ms"] = ResultWriter.R(first.Ms(99), 4),
                ["later_event_delay_p50_ms"] = ResultWriter.R(later.Ms(50), 4),
                ["later_event_delay_p99_ms"] = ResultWriter.R(later.Ms(99), 4),
                ["upstream_gap_p50_ms"] = ResultWriter.R(gap.Ms(50), 4),
                ["cpu_ms_per_stream"] = double.IsNaN(cpuMs) ? null : ResultWriter.R(cpuMs, 4),
                ["ttfb_net_p50_ms"] = net.Count > 0 ? ResultWriter.R(net.Ms(50), 4) : null,
                ["ttfb_net_p99_ms"] = net.Count > 0 ? ResultWriter.R(net.Ms(99), 4) : null,
            });
        }

        // ---- added, per block ----
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"added (target − baseline), ms: median over {blocks} blocks of rounds [95 % interval] / pooled over all samples");
        var anyNet = samples.Any(s => s.Any(x => x.NetTtfb >= 0));
        text.AppendLine("target − baseline | ttfb p50 | ttfb p99 | first-event delay p50 | later events' delay p50 | later events' delay p99" + (anyNet ? " | net ttfb p50 | net ttfb p99" : ""));
        text.AppendLine("---|---|---|---|---|---" + (anyNet ? "|---|---" : ""));
        var perRound = Math.Max(1, rounds / blocks);
        foreach (var b in baselines)
        {
            var bi = Array.IndexOf(labels, b);
            for (var k = 0; k < n; k++)
            {
                if (k == bi)
                {
                    continue;
                }

                string Column(Func<Sample, IEnumerable<long>> pick, double p)
                {
                    var diffs = new List<double>();
                    for (var blk = 0; blk < blocks; blk++)
                    {
                        bool In(Sample x) => Math.Min(x.Round / perRound, blocks - 1) == blk;
                        var a = new Percentiles(samples[k].Where(In).SelectMany(pick));
                        var z = new Percentiles(samples[bi].Where(In).SelectMany(pick));
                        if (a.Count > 0 && z.Count > 0)
                        {
                            diffs.Add(a.Ms(p) - z.Ms(p));
                        }
                    }

                    var pooled = new Percentiles(samples[k].SelectMany(pick)).Ms(p) - new Percentiles(samples[bi].SelectMany(pick)).Ms(p);
                    ResultWriter.Append(o, tag + "_added", $"{labels[k]}-{b}", new Dictionary<string, object?>
                    {
                        ["what"] = $"{Name(pick)}_p{p}",
                        ["median_ms"] = ResultWriter.R(Median(diffs), 4),
                        ["lo_ms"] = ResultWriter.R(Interval(diffs).Lo, 4),
                        ["hi_ms"] = ResultWriter.R(Interval(diffs).Hi, 4),
                        ["pooled_ms"] = ResultWriter.R(pooled, 4),
                        ["blocks"] = diffs.Count,
                    });
                    var (lo, hi) = Interval(diffs);
                    return string.Create(CultureInfo.InvariantCulture, $"{Median(diffs):+0.000;-0.000} [{lo:+0.000;-0.000}, {hi:+0.000;-0.000}] / {pooled:+0.000;-0.000}");
                }

                text.AppendLine(CultureInfo.InvariantCulture,
                    $"{labels[k]} − {b} | {Column(Ttfb, 50)} | {Column(Ttfb, 99)} | {Column(First, 50)} | {Column(Later, 50)} | {Column(Later, 99)}{(anyNet ? $" | {Column(Net, 50)} | {Column(Net, 99)}" : "")}");
            }
        }

        var report = o.Str("report", "");
        if (report.Length > 0)
        {
            File.AppendAllText(report, text.ToString() + "\n");
        }

        await Console.Error.WriteAsync(text.ToString());
        return failures.Sum() > 0 ? 1 : 0;
    }

    private static IEnumerable<long> Ttfb(Sample x) => [x.Ttfb];

    private static IEnumerable<long> First(Sample x) => [x.FirstDelay];

    private static IEnumerable<long> Later(Sample x) => x.Later;

    private static IEnumerable<long> Net(Sample x) => x.NetTtfb >= 0 ? [x.NetTtfb] : [];

    private static string Name(Func<Sample, IEnumerable<long>> pick) =>
        pick == Ttfb ? "ttfb" : pick == First ? "first_event_delay" : pick == Net ? "ttfb_net" : "later_event_delay";

    private static double Median(List<double> v)
    {
        if (v.Count == 0)
        {
            return double.NaN;
        }

        var s = v.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[(s.Length / 2) - 1] + s[s.Length / 2]) / 2;
    }

    /// <summary>[v_k, v_(n+1−k)] for the largest k with P(Binomial(n, ½) &lt; k) ≤ 2.5 % (NaN below six values).</summary>
    private static (double Lo, double Hi) Interval(List<double> v)
    {
        var s = v.Order().ToArray();
        var count = s.Length;
        var k = 0;
        var cdf = 0.0;
        var c = 1.0;
        for (var i = 0; i < count; i++)
        {
            cdf += c * Math.Pow(0.5, count);
            if (cdf > 0.025)
            {
                break;
            }

            k = i + 1;
            c = c * (count - i) / (i + 1);
        }

        return k >= 1 ? (s[k - 1], s[count - k]) : (double.NaN, double.NaN);
    }

    private sealed record Sample(int Round, long Ttfb, long FirstDelay, long Gap, long[] Later, long NetTtfb);
}
