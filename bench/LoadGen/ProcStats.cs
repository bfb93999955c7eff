using System.Globalization;

namespace CcRelay.Bench.LoadGen;

/// <summary>
/// CPU time and RSS of a process tree from /proc: a listed pid plus all its descendants (nginx master → workers).
/// CPU = utime + stime (fields 14 and 15 of /proc/&lt;pid&gt;/stat, in USER_HZ ticks, 100 per second on Linux).
/// </summary>
internal static class ProcStats
{
    private const double UserHz = 100.0;

    public static double CpuSeconds(IReadOnlyList<int> roots) => Tree(roots).Sum(pid => CpuTicks(pid)) / UserHz;

    public static double RssMb(IReadOnlyList<int> roots) => Tree(roots).Sum(RssKb) / 1024.0;

    /// <summary>OS threads across the process tree (field 20 of /proc/&lt;pid&gt;/stat).</summary>
    public static int Threads(IReadOnlyList<int> roots) =>
        Tree(roots).Sum(pid => TryStatFields(pid, out var f) ? int.Parse(f[17], CultureInfo.InvariantCulture) : 0);

    public static IReadOnlyList<int> Tree(IReadOnlyList<int> roots)
    {
        if (roots.Count == 0)
        {
            return [];
        }

        var parents = new Dictionary<int, int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), out var pid) && TryStatFields(pid, out var fields))
            {
                parents[pid] = int.Parse(fields[1], CultureInfo.InvariantCulture); // field 4 = ppid
            }
        }

        var result = new List<int>();
        var queue = new Queue<int>(roots.Where(parents.ContainsKey));
        while (queue.Count > 0)
        {
            var pid = queue.Dequeue();
            result.Add(pid);
            foreach (var (child, parent) in parents)
            {
                if (parent == pid)
                {
                    queue.Enqueue(child);
                }
            }
        }

        return result;
    }

    private static long CpuTicks(int pid) =>
        TryStatFields(pid, out var f)
            ? long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture)
            : 0;

    private static long RssKb(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    return long.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return 0;
    }

    /// <summary>Fields after "(comm)": index 0 = state (field 3), 1 = ppid (4), 11 = utime (14), 12 = stime (15).</summary>
    private static bool TryStatFields(int pid, out string[] fields)
    {
        try
        {
            var text = File.ReadAllText($"/proc/{pid}/stat");
            var close = text.LastIndexOf(')');
            fields = text[(close + 2)..].Split(' ');
            return fields.Length > 13;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            fields = [];
            return false;
        }
    }
}
