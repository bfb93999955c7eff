using System.Diagnostics;
using System.Globalization;

namespace CcRelay.Bench.LoadGen;

/// <summary>
/// Optional kernel counters for a diagnostic pass: <c>perf stat -e raw_syscalls:sys_enter,context-switches -p pids</c>
/// for the length of one wrk run. Counting tracepoints costs a little per syscall, so diagnostic passes are kept
/// out of the throughput medians.
/// </summary>
internal sealed class PerfStat
{
    private readonly Process _process;
    private readonly string _output;

    private PerfStat(Process process, string output)
    {
        _process = process;
        _output = output;
    }

    public static PerfStat? Start(IReadOnlyList<int> pids, int seconds)
    {
        if (pids.Count == 0)
        {
            return null;
        }

        var output = Path.GetTempFileName();
        var psi = new ProcessStartInfo("perf") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "stat", "-x", ",", "-o", output, "-e", "raw_syscalls:sys_enter,context-switches", "-p", string.Join(',', pids), "--", "sleep", seconds.ToString(CultureInfo.InvariantCulture) })
        {
            psi.ArgumentList.Add(a);
        }

        try
        {
            var p = Process.Start(psi);
            return p is null ? null : new PerfStat(p, output);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // perf not installed
        }
    }

    /// <summary>Waits for perf and returns counter name → count (syscalls, context_switches).</summary>
    public Dictionary<string, double> Finish()
    {
        var result = new Dictionary<string, double>();
        if (!_process.WaitForExit(TimeSpan.FromSeconds(30)))
        {
            _process.Kill();
            return result;
        }

        foreach (var line in File.ReadAllLines(_output))
        {
            var f = line.Split(',');
            if (f.Length > 2 && double.TryParse(f[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var v))
            {
                var name = f[2].Contains("sys_enter", StringComparison.Ordinal) ? "syscalls" : f[2].Replace('-', '_');
                result[name] = v;
            }
        }

        File.Delete(_output);
        _process.Dispose();
        return result;
    }
}
