using System.Globalization;

namespace CcRelay.Bench.LoadGen;

/// <summary><c>--name value</c> pairs after the sub-command; every option is required unless a default is given.</summary>
internal sealed class Options
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    public Options(IReadOnlyList<string> args)
    {
        for (var i = 0; i < args.Count; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal))
            {
                throw new ArgumentException($"unexpected argument '{args[i]}'");
            }

            var name = args[i][2..];
            if (i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
            {
                _values[name] = args[++i];
            }
            else
            {
                _values[name] = "true";
            }
        }
    }

    public string Str(string name, string? fallback = null) =>
        _values.TryGetValue(name, out var v) ? v : fallback ?? throw new ArgumentException($"missing --{name}");

    public int Int(string name, int? fallback = null) =>
        _values.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture)
        : fallback ?? throw new ArgumentException($"missing --{name}");

    public double Double(string name, double? fallback = null) =>
        _values.TryGetValue(name, out var v) ? double.Parse(v, CultureInfo.InvariantCulture)
        : fallback ?? throw new ArgumentException($"missing --{name}");

    public bool Flag(string name) => _values.TryGetValue(name, out var v) && v == "true";

    public IReadOnlyList<int> Pids(string name) => ParsePids(_values.TryGetValue(name, out var v) ? v : "");

    /// <summary>A comma-separated list of process ids (empty: none).</summary>
    public static IReadOnlyList<int> ParsePids(string list) =>
        list.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToArray();
}
