using System.Globalization;

namespace CcRelay.Cli.Tui;

/// <summary>Numbers as the dashboard prints them: short, fixed-width friendly, invariant culture.</summary>
internal static class TuiFormat
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>A rate per second: <c>0</c>, <c>0.4</c>, <c>12.3</c>, <c>123</c>, <c>1.2k</c>.</summary>
    public static string Rate(double perSecond) =>
        perSecond <= 0 || double.IsNaN(perSecond) ? "0"
        : perSecond < 0.05 ? "<0.1"
        : perSecond < 100 ? perSecond.ToString("0.0", Invariant)
        : perSecond < 1000 ? perSecond.ToString("0", Invariant)
        : Count((long)Math.Round(perSecond));

    /// <summary>
    /// A duration in milliseconds: <c>850ms</c>, <c>1.2s</c>, <c>45s</c>, <c>2m05s</c>, <c>1h02m</c>; <c>-</c> when
    /// negative (not measured).
    /// </summary>
    public static string Millis(double ms)
    {
        if (ms < 0 || double.IsNaN(ms))
        {
            return "-";
        }

        if (ms < 999.5)
        {
            return ms.ToString("0", Invariant) + "ms";
        }

        var seconds = ms / 1000;
        if (seconds < 9.95)
        {
            return seconds.ToString("0.0", Invariant) + "s";
        }

        return Duration(TimeSpan.FromMilliseconds(ms));
    }

    /// <summary>A whole duration: <c>45s</c>, <c>2m05s</c>, <c>1h02m</c>, <c>3d04h</c>.</summary>
    public static string Duration(TimeSpan span)
    {
        if (span < TimeSpan.Zero)
        {
            span = TimeSpan.Zero;
        }

        var total = (long)Math.Round(span.TotalSeconds);
        return total switch
        {
            < 60 => $"{total}s",
            < 3600 => $"{total / 60}m{total % 60:00}s",
            < 86400 => $"{total / 3600}h{total / 60 % 60:00}m",
            _ => $"{total / 86400}d{total / 3600 % 24:00}h",
        };
    }

    /// <summary>A count: <c>999</c>, <c>1.2k</c>, <c>34k</c>, <c>1.2M</c>, <c>3.4G</c>; <c>-</c> when negative (unknown).</summary>
    public static string Count(long value)
    {
        if (value < 0)
        {
            return "-";
        }

        if (value < 1000)
        {
            return value.ToString(Invariant);
        }

        string[] units = ["k", "M", "G", "T"];
        var scaled = (double)value;
        var unit = -1;
        while (scaled >= 999.5 && unit < units.Length - 1)
        {
            scaled /= 1000;
            unit++;
        }

        return (scaled < 9.95 ? scaled.ToString("0.0", Invariant) : scaled.ToString("0", Invariant)) + units[unit];
    }

    /// <summary>A cost in USD: <c>$0</c>, <c>$0.004</c>, <c>$0.12</c>, <c>$12.34</c>, <c>$1.2k</c>; <c>-</c> when unknown (negative).</summary>
    public static string Cost(double usd) =>
        usd < 0 || double.IsNaN(usd) ? "-"
        : usd == 0 ? "$0"
        : usd < 0.001 ? "<$0.001"
        : usd < 0.1 ? "$" + usd.ToString("0.000", Invariant)
        : usd < 1000 ? "$" + usd.ToString("0.00", Invariant)
        : "$" + Count((long)Math.Round(usd));

    /// <summary>A ratio 0–1 as a percentage: <c>0%</c>, <c>0.4%</c>, <c>12%</c>, <c>100%</c>.</summary>
    public static string Percent(double ratio)
    {
        var percent = Math.Clamp(double.IsNaN(ratio) ? 0 : ratio, 0, 1) * 100;
        return percent == 0 ? "0%"
            : percent < 9.95 ? percent.ToString("0.0", Invariant) + "%"
            : percent.ToString("0", Invariant) + "%";
    }

    /// <summary>
    /// A bar of <paramref name="width"/> cells filled to <paramref name="ratio"/> (0–1), in eighths:
    /// <c>███▌░░░░</c>. Any capacity above zero shows at least one eighth, so a nearly spent key is not drawn empty.
    /// </summary>
    public static string Bar(double ratio, int width)
    {
        if (width <= 0)
        {
            return "";
        }

        const string Eighths = " ▏▎▍▌▋▊▉";
        var clamped = Math.Clamp(double.IsNaN(ratio) ? 0 : ratio, 0, 1);
        var units = (int)Math.Round(clamped * width * 8);
        if (units == 0 && clamped > 0)
        {
            units = 1;
        }

        var full = units / 8;
        var part = units % 8;
        var bar = new string('█', full);
        if (full < width)
        {
            bar += part > 0 ? Eighths[part] : '░';
        }

        return bar.PadRight(width, '░');
    }

    /// <summary>A local clock time <c>HH:mm:ss</c> for a Unix time in milliseconds.</summary>
    public static string Clock(long unixMs, TimeZoneInfo zone) =>
        TimeZoneInfo.ConvertTime(DateTimeOffset.FromUnixTimeMilliseconds(unixMs), zone).ToString("HH:mm:ss", Invariant);
}
