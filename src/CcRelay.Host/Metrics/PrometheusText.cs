using System.Globalization;
using System.Text;

namespace CcRelay.Host.Metrics;

/// <summary>
/// The lexical rules of the Prometheus text exposition format 0.0.4: metric and label names, escaping,
/// and number spelling (https://prometheus.io/docs/instrumenting/exposition_formats/).
/// </summary>
internal static class PrometheusText
{
    /// <summary>The media type of the format.</summary>
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>A valid metric name: <c>[a-zA-Z_:][a-zA-Z0-9_:]*</c>; any other character becomes <c>_</c>.</summary>
    public static string MetricName(string name) => Sanitize(name, allowColon: true);

    /// <summary>A valid label name: <c>[a-zA-Z_][a-zA-Z0-9_]*</c>; any other character becomes <c>_</c>.</summary>
    public static string LabelName(string name) => Sanitize(name, allowColon: false);

    private static string Sanitize(string name, bool allowColon)
    {
        if (name.Length == 0)
        {
            return "_";
        }

        var builder = new StringBuilder(name.Length + 1);
        if (char.IsAsciiDigit(name[0]))
        {
            builder.Append('_');
        }

        foreach (var c in name)
        {
            builder.Append(char.IsAsciiLetterOrDigit(c) || c == '_' || (allowColon && c == ':') ? c : '_');
        }

        return builder.ToString();
    }

    /// <summary>A label value inside double quotes: backslash, double quote and line feed are escaped.</summary>
    public static string EscapeLabelValue(string value)
    {
        if (value.AsSpan().IndexOfAny('\\', '"', '\n') < 0)
        {
            return value;
        }

        return value.Replace("\\", "\\\\", StringComparison.Ordinal)
            .Replace("\"", "\\\"", StringComparison.Ordinal)
            .Replace("\n", "\\n", StringComparison.Ordinal);
    }

    /// <summary>HELP text: backslash and line feed are escaped (double quotes are not).</summary>
    public static string EscapeHelp(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    /// <summary>A sample value or <c>le</c> bound: shortest round-trip form, <c>+Inf</c>, <c>-Inf</c>, <c>NaN</c>.</summary>
    public static string FormatDouble(double value) =>
        double.IsPositiveInfinity(value) ? "+Inf"
        : double.IsNegativeInfinity(value) ? "-Inf"
        : double.IsNaN(value) ? "NaN"
        : value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>An integer sample value.</summary>
    public static string FormatLong(long value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>A tag value as label text: strings as they are, numbers in invariant culture, null as empty.</summary>
    public static string LabelValue(object? value) => value switch
    {
        null => "",
        string s => s,
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}
