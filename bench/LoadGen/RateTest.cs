using System.Net.Sockets;

namespace CcRelay.Bench.LoadGen;

/// <summary>
/// Open-loop fixed-rate latency test. Request i is <i>due</i> at t0 + i/rate; latency = response end − due time,
/// so a stall in the target is charged to every request it delays (coordinated omission corrected, wrk2-style).
/// Workers are dedicated threads with blocking keep-alive sockets (no thread-pool hops in the timed path);
/// a worker claims the next due slot as soon as it is free, so a slow response never delays the schedule.
/// Bounded by --count requests and by a hard deadline of 2 × (count / rate) + 10 s.
/// </summary>
internal static class RateTest
{
    public static int Run(Options o)
    {
        var target = Target.Parse(o.Str("url"));
        var rate = o.Double("rate");
        var count = o.Int("count");
        var workers = o.Int("workers", 16);
        var warmup = o.Int("warmup", 500);
        var body = Target.RenderBody(o.Str("body"), stream: false, 0, 0);
        var request = target.BuildRequest(body, Target.ReadHeaders(o.Str("headers")));
        var pids = o.Pids("pids");

        Warmup(target, request, warmup);

        var latency = new long[count];
        var service = new long[count];
        var lag = new long[count];
        var status = new int[count];
        var next = -1;
        var errors = 0;
        var period = Clock.MsToTicks(1000.0 / rate);
        var cpu0 = ProcStats.CpuSeconds(pids);
        var t0 = Clock.Now + Clock.MsToTicks(20);
        var hardStop = t0 + Clock.MsToTicks((2000.0 * count / rate) + 10_000);

        var threads = Enumerable.Range(0, workers).Select(_ => new Thread(() =>
        {
            Clock.PreciseTimers();
            var buffer = new byte[64 * 1024];
            var parser = new ResponseParser();
            Socket? socket = null;
            try
            {
                while (true)
                {
                    var i = Interlocked.Increment(ref next);
                    if (i >= count)
                    {
                        return;
                    }

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
                        socket ??= target.Connect();
                        status[i] = Exchange(socket, request, buffer, parser);
                        if (!parser.KeepAlive)
                        {
                            socket.Dispose();
                            socket = null;
                        }
                    }
                    catch (Exception e) when (e is SocketException or IOException or InvalidDataException)
                    {
                        status[i] = -1;
                        socket?.Dispose();
                        socket = null;
                    }

                    var done = Clock.Now;
                    latency[i] = done - due;
                    service[i] = done - sent;
                    lag[i] = sent - due;
                }
            }
            finally
            {
                socket?.Dispose();
            }
        })
        { IsBackground = true, Name = "rate-worker" }).ToList();

        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        var cpu1 = ProcStats.CpuSeconds(pids);

        if (o.Str("dump", "").Length > 0)
        {
            // Per-request timeline for post-mortems: due time since t0, latency, service time, send lag (ms).
            File.WriteAllLines(o.Str("dump"), Enumerable.Range(0, count).Select(i => string.Create(
                System.Globalization.CultureInfo.InvariantCulture,
                $"{i},{status[i]},{Clock.TicksToMs(i * period):0.000},{Clock.TicksToMs(latency[i]):0.000},{Clock.TicksToMs(service[i]):0.000},{Clock.TicksToMs(lag[i]):0.000}")).Prepend("i,status,due_ms,latency_ms,service_ms,lag_ms"));
        }

        var ok = Enumerable.Range(0, count).Where(i => status[i] == 200).ToArray();
        errors = count - ok.Length;
        var lat = new Percentiles(ok.Select(i => latency[i]));
        var svc = new Percentiles(ok.Select(i => service[i]));
        var lg = new Percentiles(lag);
        var seconds = count / rate;

        ResultWriter.Append(o, "rate", new Dictionary<string, object?>
        {
            ["rate"] = rate,
            ["count"] = count,
            ["ok"] = ok.Length,
            ["errors"] = errors,
            ["non200"] = status.Count(s => s > 0 && s != 200),
            ["io_errors"] = status.Count(s => s == -1),
            ["not_sent"] = status.Count(s => s == -2),
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
            ["cpu_s"] = pids.Count > 0 ? ResultWriter.R(cpu1 - cpu0) : null,
            ["cpu_s_per_10k"] = pids.Count > 0 ? ResultWriter.R((cpu1 - cpu0) * 10_000 / Math.Max(1, ok.Length)) : null,
            ["duration_s"] = ResultWriter.R(seconds, 1),
        });
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
