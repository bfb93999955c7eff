using System.Net;
using System.Net.Sockets;

namespace CcRelay.Bench.LoadGen;

/// <summary>
/// Load generator and measurement tool for bench/run.sh. Sub-commands:
/// <list type="bullet">
/// <item><c>ports N</c> — print N free loopback ports.</item>
/// <item><c>wait-port --port P [--timeout-s S]</c> — wait until something accepts on 127.0.0.1:P.</item>
/// <item><c>throughput</c> — wrk closed loop (<see cref="ThroughputTest"/>).</item>
/// <item><c>rate</c> — open-loop fixed-rate latency (<see cref="RateTest"/>).</item>
/// <item><c>sse</c> — streaming per-event delay / coalescing (<see cref="StreamTest"/>).</item>
/// <item><c>ttfb</c> — time to first event and per-event delay of several targets, interleaved (<see cref="TtfbTest"/>).</item>
/// <item><c>hold</c> — RSS idle and per open stream (<see cref="HoldTest"/>).</item>
/// <item><c>rss --pids P --label L</c> — record the RSS of a process tree.</item>
/// <item><c>report --in results.jsonl --meta meta.txt --out results/run.md</c>.</item>
/// </list>
/// </summary>
internal static class Program
{
    private static async Task<int> Main(string[] args)
    {
        if (args.Length == 0)
        {
            await Console.Error.WriteLineAsync("usage: loadgen <ports|wait-port|throughput|rate|sse|ttfb|hold|rss|report> [--option value ...]");
            return 2;
        }

        if (!Clock.IsMonotonicNs)
        {
            await Console.Error.WriteLineAsync("warning: Stopwatch is not CLOCK_MONOTONIC ns; SSE delays are not comparable across processes");
        }

        try
        {
            if (args[0] == "ports")
            {
                return Ports(int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture));
            }

            var o = new Options(args[1..]);
            return args[0] switch
            {
                "wait-port" => await WaitPortAsync(o),
                "throughput" => ThroughputTest.Run(o),
                "rate" => RateTest.Run(o),
                "sse" => await StreamTest.RunAsync(o),
                "ttfb" => await TtfbTest.RunAsync(o),
                "hold" => await HoldTest.RunAsync(o),
                "rss" => Rss(o),
                "report" => Report.Run(o),
                _ => throw new ArgumentException($"unknown sub-command '{args[0]}'"),
            };
        }
        catch (ArgumentException e)
        {
            await Console.Error.WriteLineAsync("loadgen: " + e.Message);
            return 2;
        }
    }

    private static int Ports(int count)
    {
        var sockets = Enumerable.Range(0, count).Select(_ =>
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            return s;
        }).ToList();
        Console.WriteLine(string.Join(' ', sockets.Select(s => ((IPEndPoint)s.LocalEndPoint!).Port)));
        sockets.ForEach(s => s.Dispose());
        return 0;
    }

    private static async Task<int> WaitPortAsync(Options o)
    {
        var deadline = DateTime.UtcNow.AddSeconds(o.Int("timeout-s", 30));
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await s.ConnectAsync(new IPEndPoint(IPAddress.Loopback, o.Int("port")));
                return 0;
            }
            catch (SocketException)
            {
                await Task.Delay(100);
            }
        }

        await Console.Error.WriteLineAsync($"nothing listening on 127.0.0.1:{o.Int("port")}");
        return 1;
    }

    private static int Rss(Options o)
    {
        ResultWriter.Append(o, o.Str("test", "rss_after_load"), new Dictionary<string, object?>
        {
            ["rss_mb"] = ResultWriter.R(ProcStats.RssMb(o.Pids("pids")), 1),
        });
        return 0;
    }
}
