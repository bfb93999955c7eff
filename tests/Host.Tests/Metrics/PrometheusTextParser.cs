using System.Globalization;
using System.Text;

namespace CcRelay.Host.Tests.Metrics;

/// <summary>One sample line: name, labels (unescaped) and value.</summary>
public sealed record PrometheusSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value, string RawValue);

/// <summary>
/// A strict reader of the Prometheus text format 0.0.4, written independently of the exposition: it unescapes
/// label values and HELP text, and rejects what a scraper would (a sample before its TYPE, a second TYPE for a
/// family, a duplicate series, a sample outside its family, a malformed line).
/// </summary>
public sealed class PrometheusTextParser
{
    private readonly Dictionary<string, string> _help = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _types = new(StringComparer.Ordinal);
    private readonly List<PrometheusSample> _samples = [];

    private PrometheusTextParser()
    {
    }

    public IReadOnlyDictionary<string, string> Help => _help;

    public IReadOnlyDictionary<string, string> Types => _types;

    public IReadOnlyList<PrometheusSample> Samples => _samples;

    /// <summary>Family names in the order their TYPE lines appear.</summary>
    public List<string> FamilyOrder { get; } = [];

    public static PrometheusTextParser Parse(string text)
    {
        var parser = new PrometheusTextParser();
        Assert.True(text.Length == 0 || text.EndsWith('\n'), "the exposition ends with a line feed");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        string? currentFamily = null;

        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0)
            {
                continue;
            }

            if (line.StartsWith("# HELP ", StringComparison.Ordinal))
            {
                var rest = line["# HELP ".Length..];
                var space = rest.IndexOf(' ', StringComparison.Ordinal);
                var name = space < 0 ? rest : rest[..space];
                Assert.False(parser._help.ContainsKey(name), $"a second HELP for {name}");
                parser._help[name] = space < 0 ? "" : UnescapeHelp(rest[(space + 1)..]);
                continue;
            }

            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                var parts = line["# TYPE ".Length..].Split(' ');
                Assert.Equal(2, parts.Length);
                Assert.False(parser._types.ContainsKey(parts[0]), $"a second TYPE for {parts[0]}");
                Assert.Contains(parts[1], new[] { "counter", "gauge", "histogram", "summary", "untyped" });
                parser._types[parts[0]] = parts[1];
                parser.FamilyOrder.Add(parts[0]);
                currentFamily = parts[0];
                continue;
            }

            if (line.StartsWith('#'))
            {
                continue;
            }

            var sample = ParseSample(line);
            Assert.True(currentFamily is not null, $"a sample before any TYPE: {line}");
            Assert.True(BelongsTo(sample.Name, currentFamily!, parser._types[currentFamily!]), $"{sample.Name} is outside family {currentFamily}");
            var identity = sample.Name + "{" + string.Join(",", sample.Labels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => l.Key + "=" + l.Value)) + "}";
            Assert.True(seen.Add(identity), $"duplicate series {identity}");
            parser._samples.Add(sample);
        }

        return parser;
    }

    /// <summary>The value of the one sample with exactly these labels.</summary>
    public double Value(string name, params (string Name, string Value)[] labels)
    {
        var matches = _samples.Where(s => s.Name == name && SameLabels(s.Labels, labels)).ToList();
        Assert.True(matches.Count == 1, $"expected one sample {name}{{{string.Join(",", labels.Select(l => $"{l.Name}={l.Value}"))}}}, found {matches.Count}");
        return matches[0].Value;
    }

    /// <summary>Whether a sample with exactly these labels exists.</summary>
    public bool Has(string name, params (string Name, string Value)[] labels) =>
        _samples.Any(s => s.Name == name && SameLabels(s.Labels, labels));

    /// <summary>The samples of one name.</summary>
    public IEnumerable<PrometheusSample> Named(string name) => _samples.Where(s => s.Name == name);

    private static bool SameLabels(IReadOnlyDictionary<string, string> actual, (string Name, string Value)[] expected) =>
        actual.Count == expected.Length && expected.All(l => actual.TryGetValue(l.Name, out var v) && v == l.Value);

    private static bool BelongsTo(string sample, string family, string type) =>
        sample == family
        || (type == "histogram" && (sample == family + "_bucket" || sample == family + "_sum" || sample == family + "_count"));

    private static PrometheusSample ParseSample(string line)
    {
        var i = 0;
        while (i < line.Length && (char.IsAsciiLetterOrDigit(line[i]) || line[i] is '_' or ':'))
        {
            i++;
        }

        var name = line[..i];
        Assert.True(name.Length > 0 && !char.IsAsciiDigit(name[0]), $"bad metric name in: {line}");
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);

        if (i < line.Length && line[i] == '{')
        {
            i++;
            while (line[i] != '}')
            {
                var start = i;
                while (char.IsAsciiLetterOrDigit(line[i]) || line[i] == '_')
                {
                    i++;
                }

                var labelName = line[start..i];
                Assert.True(labelName.Length > 0 && !char.IsAsciiDigit(labelName[0]), $"bad label name in: {line}");
                Assert.Equal('=', line[i++]);
                Assert.Equal('"', line[i++]);
                var value = new StringBuilder();
                while (line[i] != '"')
                {
                    if (line[i] == '\\')
                    {
                        i++;
                        value.Append(line[i] switch
                        {
                            '\\' => '\\',
                            '"' => '"',
                            'n' => '\n',
                            _ => throw new FormatException($"bad escape \\{line[i]} in: {line}"),
                        });
                    }
                    else
                    {
                        value.Append(line[i]);
                    }

                    i++;
                }

                i++;
                Assert.True(labels.TryAdd(labelName, value.ToString()), $"label {labelName} twice in: {line}");
                if (line[i] == ',')
                {
                    i++;
                }
            }

            i++;
        }

        Assert.Equal(' ', line[i]);
        var rest = line[(i + 1)..].Split(' ');
        Assert.True(rest.Length is 1 or 2, $"expected a value and an optional timestamp in: {line}");
        var raw = rest[0];
        var parsed = raw switch
        {
            "+Inf" => double.PositiveInfinity,
            "-Inf" => double.NegativeInfinity,
            "NaN" => double.NaN,
            _ => double.Parse(raw, NumberStyles.Float, CultureInfo.InvariantCulture),
        };

        return new PrometheusSample(name, labels, parsed, raw);
    }

    private static string UnescapeHelp(string text)
    {
        var builder = new StringBuilder(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] == '\\' && i + 1 < text.Length && text[i + 1] is '\\' or 'n')
            {
                builder.Append(text[i + 1] == 'n' ? '\n' : '\\');
                i++;
            }
            else
            {
                builder.Append(text[i]);
            }
        }

        return builder.ToString();
    }
}
