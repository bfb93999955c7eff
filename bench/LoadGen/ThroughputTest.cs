using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace CcRelay.Bench.LoadGen;

/// <summary>
/// Closed-loop throughput with wrk (C, far cheaper per request than anything we could write here).
/// The wrk Lua script POSTs the Claude-Code-like body and stops each thread after --max-requests / threads
/// responses; wrk's -d bounds the time and the process is killed if it overruns by 15 s.
/// CPU of the target process tree (utime + stime) is read before and after. The URL may be https (wrk speaks TLS):
/// the only test here that can load a TLS upstream directly.
/// </summary>
internal static partial class ThroughputTest
{
    public static int Run(Options o)
    {
        var url = o.Str("url");
        Target.CheckWrkUrl(url);
        var conns = o.Int("conns");
        var threads = o.Int("threads", 2);
        var seconds = o.Int("duration", 8);
        var maxRequests = o.Int("max-requests", 2_000_000);
        var pids = o.Pids("pids");
        var work = Directory.CreateTempSubdirectory("ccbench-wrk-");
        try
        {
            var bodyPath = Path.Combine(work.FullName, "body.json");
            File.WriteAllText(bodyPath, Target.RenderBody(o.Str("body"), stream: false, 0, 0));
            var script = Path.Combine(work.FullName, "post.lua");
            File.WriteAllText(script, Lua(bodyPath, Target.ReadHeaders(o.Str("headers")), Math.Max(1, maxRequests / threads)));

            if (o.Int("warmup-s", 0) > 0)
            {
                Wrk(threads, conns, o.Int("warmup-s"), script, url);
            }

            var perf = o.Flag("perf") ? PerfStat.Start(ProcStats.Tree(pids), seconds) : null;
            var cpu0 = ProcStats.CpuSeconds(pids);
            var output = Wrk(threads, conns, seconds, script, url);
            var cpu1 = ProcStats.CpuSeconds(pids);
            var counters = perf?.Finish() ?? new Dictionary<string, double>();
            var threadCount = ProcStats.Threads(pids);

            var requests = Long(RequestsRegex(), output);
            var elapsed = Double(ElapsedRegex(), output);
            var non2xx = Long(Non2xxRegex(), output);
            var sock = SocketErrorsRegex().Match(output);
            var socketErrors = sock.Success ? Enumerable.Range(1, 4).Sum(g => long.Parse(sock.Groups[g].Value, CultureInfo.InvariantCulture)) : 0;

            var metrics = new Dictionary<string, object?>
            {
                ["conns"] = conns,
                ["threads"] = threads,
                ["requests"] = requests,
                ["elapsed_s"] = ResultWriter.R(elapsed, 2),
                ["rps"] = ResultWriter.R(elapsed > 0 ? requests / elapsed : double.NaN, 0),
                ["errors"] = non2xx + socketErrors,
                ["non2xx"] = non2xx,
                ["socket_errors"] = socketErrors,
                ["p50_ms"] = ResultWriter.R(Latency(output, "50%"), 3),
                ["p99_ms"] = ResultWriter.R(Latency(output, "99%"), 3),
                ["cpu_s"] = pids.Count > 0 ? ResultWriter.R(cpu1 - cpu0) : null,
                ["cpu_s_per_10k"] = pids.Count > 0 && requests > 0 ? ResultWriter.R((cpu1 - cpu0) * 10_000 / requests) : null,
                ["cpu_us_per_req"] = pids.Count > 0 && requests > 0 ? ResultWriter.R((cpu1 - cpu0) * 1e6 / requests, 1) : null,
                ["os_threads"] = pids.Count > 0 ? threadCount : null,
            };
            foreach (var (name, value) in counters)
            {
                metrics[name + "_per_req"] = requests > 0 ? ResultWriter.R(value / requests, 2) : null;
            }

            ResultWriter.Append(o, o.Flag("perf") ? "diag" : "throughput", metrics);
            return 0;
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    private static string Lua(string bodyPath, IReadOnlyList<string> headers, int perThreadCap)
    {
        var sb = new StringBuilder();
        sb.AppendLine("wrk.method = \"POST\"");
        sb.AppendLine(CultureInfo.InvariantCulture, $"local f = io.open(\"{bodyPath}\", \"rb\"); wrk.body = f:read(\"*a\"); f:close()");
        foreach (var h in headers)
        {
            var colon = h.IndexOf(':', StringComparison.Ordinal);
            var name = h[..colon].Trim();
            var value = h[(colon + 1)..].Trim().Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal);
            sb.AppendLine(CultureInfo.InvariantCulture, $"wrk.headers[\"{name}\"] = \"{value}\"");
        }

        // Request cap: each wrk thread stops itself after perThreadCap responses.
        sb.AppendLine(CultureInfo.InvariantCulture, $"local cap = {perThreadCap}; local n = 0");
        sb.AppendLine("function response(status, headers, body) n = n + 1; if n >= cap then wrk.thread:stop() end end");
        return sb.ToString();
    }

    private static string Wrk(int threads, int conns, int seconds, string script, string url)
    {
        var psi = new ProcessStartInfo("wrk")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "-t", $"{threads}", "-c", $"{conns}", "-d", $"{seconds}s", "--timeout", "10s", "--latency", "-s", script, url })
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start wrk");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(seconds + 15)))
        {
            p.Kill();
            throw new TimeoutException("wrk overran its time bound");
        }

        var text = stdout.Result + stderr.Result;
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"wrk exited {p.ExitCode}: {text}");
        }

        return text;
    }

    private static long Long(Regex r, string text)
    {
        var m = r.Match(text);
        return m.Success ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
    }

    private static double Double(Regex r, string text)
    {
        var m = r.Match(text);
        return m.Success ? double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : double.NaN;
    }

    /// <summary>wrk --latency lines look like "     50%  512.00us" / "99%    3.21ms" / "1.02s".</summary>
    private static double Latency(string text, string pct)
    {
        var m = Regex.Match(text, $@"^\s*{Regex.Escape(pct)}\s+([\d.]+)(us|ms|s)\s*$", RegexOptions.Multiline);
        if (!m.Success)
        {
            return double.NaN;
        }

        var v = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        return m.Groups[2].Value switch { "us" => v / 1000, "ms" => v, _ => v * 1000 };
    }

    [GeneratedRegex(@"(\d+) requests in ")]
    private static partial Regex RequestsRegex();

    [GeneratedRegex(@"requests in ([\d.]+)s")]
    private static partial Regex ElapsedRegex();

    [GeneratedRegex(@"Non-2xx or 3xx responses: (\d+)")]
    private static partial Regex Non2xxRegex();

    [GeneratedRegex(@"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")]
    private static partial Regex SocketErrorsRegex();
}
