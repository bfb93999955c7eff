using System.Net.Sockets;

namespace CcRelay.Bench.LoadGen;

/// <summary>
/// Open-loop fixed-rate latency test. Request i is <i>due</i> at t0 + i/rate; latency = response end − due time,
/// so a stall in the target is charged to every request it delays (coordinated omission corrected, wrk2-style).
/// Workers are dedicated threads with blocking keep-alive sockets (no thread-pool hops in the timed path);
/// a worker claims the next due slot as soon as it is free, so a slow response never delays the schedule.
/// Bounded by --count requests per target and by a hard deadline of 2 × (count / rate) + 10 s.
/// <para>
/// Several targets (<c>--url A,B,…</c> with <c>--label a,b,…</c> and <c>--pids pa/pb/…</c>) are measured
/// interleaved: request i goes to target i mod n, each at <c>--rate</c> (the schedule runs at n × rate), so every
/// target meets the same moments of the machine — its wake-ups, its other load, its drift. Comparing two relays
/// this way pairs each request of one with a neighbour of the other; run one after the other, the machine's
/// minute-to-minute drift (±20 % in p50 between runs on a shared 2-core machine) decided the comparison.
/// One record per target.
/// </para>
/// <para>
/// When the upstream says how long it waited before its answer (FakeUpstream's <c>bench-head-wait-us</c>, the
/// realistic upstream's drawn delay), every request's latency less that wait is recorded too (<c>net_*</c>): what the
/// path added to the upstream's own wait, request by request, so targets can be compared without the draw's spread.
/// </para>
/// </summary>
internal static class RateTest
{
    public static int Run(Options o)
    {
        var urls = o.Str("url").Split(',', StringSplitOptions.RemoveEmptyEntries);
        var labels = o.Str("label").Split(',', StringSplitOptions.RemoveEmptyEntries);
        var n = urls.Length;
        // one group of comma-separated pids per target, groups separated by '/'; none at all: no CPU figures
        var pidList = o.Str("pids", "");
        var pidGroups = pidList.Length == 0 ? Enumerable.Repeat("", n).ToArray() : pidList.Split('/');
        if (labels.Length != n)
        {
            throw new ArgumentException($"--url names {n} target(s) but --label {labels.Length}; give one label per url");
        }

        if (pidGroups.Length != n)
        {
            throw new ArgumentException($"--pids has {pidGroups.Length} group(s) for {n} targets; separate each target's pids with '/'");
        }

        var targets = urls.Select(Target.Parse).ToArray();
        var rate = o.Double("rate");
        var count = o.Int("count");
        var total = count * n;
        var workers = o.Int("workers", 16);
        var warmup = o.Int("warmup", 500);
        var body = Target.RenderBody(o.Str("body"), stream: false, 0, 0);
        var headers = Target.ReadHeaders(o.Str("headers"));
        var requests = targets.Select(t => t.BuildRequest(body, headers)).ToArray();
        var pids = pidGroups.Select(Options.ParsePids).ToArray();

        for (var k = 0; k < n; k++)
        {
            Warmup(targets[k], requests[k], warmup);
        }

        var latency = new long[total];
        var service = new long[total];
        var lag = new long[total];
        var status = new int[total];
        var wait = new long[total];
        var next = -1;
        var period = Clock.MsToTicks(1000.0 / (rate * n));
        var cpu0 = pids.Select(ProcStats.CpuSeconds).ToArray();
        var t0 = Clock.Now + Clock.MsToTicks(20);
        var hardStop = t0 + Clock.MsToTicks((2000.0 * count / rate) + 10_000);

        var threads = Enumerable.Range(0, workers).Select(_ => new Thread(() =>
        {
            Clock.PreciseTimers();
            var buffer = new byte[64 * 1024];
            var parser = new ResponseParser();
            var sockets = new Socket?[n];
            try
            {
                while (true)
                {
                    var i = Interlocked.Increment(ref next);
                    if (i >= total)
                    {
                        return;
                    }

                    var k = i % n;
                    var due = t0 + (i * period);
                    Clock.SleepUntil(due);
                    if (Clock.Now > hardStop)
                    {
                        status[i] = -2;
                        continue;
                    }

                    var sent = Clock.Now;
                    try
                    {
                        sockets[k] ??= targets[k].Connect();
                        status[i] = Exchange(sockets[k]!, requests[k], buffer, parser);
                        wait[i] = parser.UpstreamWaitTicks;
                        if (!parser.KeepAlive)
                        {
                            sockets[k]!.Dispose();
                            sockets[k] = null;
                        }
                    }
                    catch (Exception e) when (e is SocketException or IOException or InvalidDataException)
                    {
                        status[i] = -1;
                        sockets[k]?.Dispose();
                        sockets[k] = null;
                    }

                    var done = Clock.Now;
                    latency[i] = done - due;
                    service[i] = done - sent;
                    lag[i] = sent - due;
                }
            }
            finally
            {
                foreach (var socket in sockets)
                {
                    socket?.Dispose();
                }
            }
        })
        { IsBackground = true, Name = "rate-worker" }).ToList();

        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        var cpu1 = pids.Select(ProcStats.CpuSeconds).ToArray();

        if (o.Str("dump", "").Length > 0)
        {
            // Per-request timeline for post-mortems: due time since t0, target, latency, service time, send lag (ms).
            File.WriteAllLines(o.Str("dump"), Enumerable.Range(0, total).Select(i => string.Create(
                System.Globalization.CultureInfo.InvariantCulture,
                $"{i},{labels[i % n]},{status[i]},{Clock.TicksToMs(i * period):0.000},{Clock.TicksToMs(latency[i]):0.000},{Clock.TicksToMs(service[i]):0.000},{Clock.TicksToMs(lag[i]):0.000}")).Prepend("i,target,status,due_ms,latency_ms,service_ms,lag_ms"));
        }

        for (var k = 0; k < n; k++)
        {
            var mine = Enumerable.Range(0, count).Select(j => (j * n) + k).ToArray();
            var ok = mine.Where(i => status[i] == 200).ToArray();
            var lat = new Percentiles(ok.Select(i => latency[i]));
            var svc = new Percentiles(ok.Select(i => service[i]));
            var lg = new Percentiles(mine.Select(i => lag[i]));
            var waited = ok.Where(i => wait[i] >= 0).ToArray();
            var net = new Percentiles(waited.Select(i => latency[i] - wait[i]));
            var upstreamWait = new Percentiles(waited.Select(i => wait[i]));
            var cpu = cpu1[k] - cpu0[k];

            ResultWriter.Append(o, "rate", labels[k], new Dictionary<string, object?>
            {
                ["rate"] = rate,
                ["count"] = count,
                ["interleaved"] = n,
                ["ok"] = ok.Length,
                ["errors"] = count - ok.Length,
                ["non200"] = mine.Count(i => status[i] > 0 && status[i] != 200),
                ["io_errors"] = mine.Count(i => status[i] == -1),
                ["not_sent"] = mine.Count(i => status[i] == -2),
                ["p50_ms"] = ResultWriter.R(lat.Ms(50), 4),
                ["p90_ms"] = ResultWriter.R(lat.Ms(90), 4),
                ["p99_ms"] = ResultWriter.R(lat.Ms(99), 4),
                ["p999_ms"] = ResultWriter.R(lat.Ms(99.9), 4),
                ["max_ms"] = ResultWriter.R(lat.MaxMs, 4),
                ["mean_ms"] = ResultWriter.R(lat.MeanMs, 4),
                ["svc_p50_ms"] = ResultWriter.R(svc.Ms(50), 4),
                ["svc_p99_ms"] = ResultWriter.R(svc.Ms(99), 4),
                ["send_lag_p50_ms"] = ResultWriter.R(lg.Ms(50), 4),
                ["send_lag_p99_ms"] = ResultWriter.R(lg.Ms(99), 4),
                ["cpu_s"] = pids[k].Count > 0 ? ResultWriter.R(cpu) : null,
                ["cpu_s_per_10k"] = pids[k].Count > 0 ? ResultWriter.R(cpu * 10_000 / Math.Max(1, ok.Length)) : null,
                ["duration_s"] = ResultWriter.R(count / rate, 1),
                ["net_count"] = waited.Length,
                ["net_p50_ms"] = waited.Length > 0 ? ResultWriter.R(net.Ms(50), 4) : null,
                ["net_p90_ms"] = waited.Length > 0 ? ResultWriter.R(net.Ms(90), 4) : null,
                ["net_p99_ms"] = waited.Length > 0 ? ResultWriter.R(net.Ms(99), 4) : null,
                ["net_mean_ms"] = waited.Length > 0 ? ResultWriter.R(net.MeanMs, 4) : null,
                ["upstream_wait_p50_ms"] = waited.Length > 0 ? ResultWriter.R(upstreamWait.Ms(50), 4) : null,
            });
        }

        return 0;
    }

    /// <summary>Closed-loop warm-up on two connections (JIT, connection pools) — not recorded.</summary>
    private static void Warmup(Target target, byte[] request, int count)
    {
        var deadline = Clock.Now + Clock.MsToTicks(15_000);
        Parallel.For(0, 2, _ =>
        {
            var buffer = new byte[64 * 1024];
            var parser = new ResponseParser();
            Socket? socket = null;
            for (var i = 0; i < count / 2 && Clock.Now < deadline; i++)
            {
                try
                {
                    socket ??= target.Connect();
                    Exchange(socket, request, buffer, parser);
                    if (!parser.KeepAlive)
                    {
                        socket.Dispose();
                        socket = null;
                    }
                }
                catch (Exception e) when (e is SocketException or IOException or InvalidDataException)
                {
                    socket?.Dispose();
                    socket = null;
                }
            }

            socket?.Dispose();
        });
    }

    /// <summary>One request/response on a blocking socket; returns the status code.</summary>
    public static int Exchange(Socket socket, byte[] request, byte[] buffer, ResponseParser parser)
    {
        socket.Send(request);
        parser.Reset();
        while (!parser.Done)
        {
            var n = socket.Receive(buffer);
            if (n == 0)
            {
                if (parser.OnEof())
                {
                    break;
                }

                throw new IOException("connection closed mid-response");
            }

            parser.Feed(buffer.AsSpan(0, n), null);
        }

        return parser.Status;
    }
}
