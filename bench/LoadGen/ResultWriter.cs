using System.Text.Json;

namespace CcRelay.Bench.LoadGen;

/// <summary>Appends one JSON object per measurement to a .jsonl file (and echoes it to stdout).</summary>
internal static class ResultWriter
{
    public static void Append(Options o, string test, IReadOnlyDictionary<string, object?> metrics) =>
        Append(o, test, o.Str("label"), metrics);

    public static void Append(Options o, string test, string label, IReadOnlyDictionary<string, object?> metrics)
    {
        var record = new Dictionary<string, object?>
        {
            ["run"] = o.Int("run", 1),
            ["test"] = test,
            ["target"] = label,
        };
        foreach (var (k, v) in metrics)
        {
            record[k] = v is double d && (double.IsNaN(d) || double.IsInfinity(d)) ? null : v;
        }

        var line = JsonSerializer.Serialize(record);
        Console.WriteLine(line);
        var path = o.Str("out", "");
        if (path.Length > 0)
        {
            File.AppendAllText(path, line + "\n");
        }
    }

    public static double R(double v, int digits = 3) => double.IsNaN(v) ? double.NaN : Math.Round(v, digits);
}
