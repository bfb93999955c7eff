namespace CcRelay.Host.Metrics;

/// <summary>
/// A running sum (counters, up-down counters). Integer and fractional measurements are kept apart, so a
/// counter fed integers stays exact at any size and is rendered as an integer.
/// </summary>
internal sealed class SumSeries(string labels) : MetricSeries(labels)
{
    private long _integral;
    private double _fractional;

    public override void Add(long value) => Interlocked.Add(ref _integral, value);

    public override void Add(double value)
    {
        var current = Volatile.Read(ref _fractional);
        while (true)
        {
            var seen = Interlocked.CompareExchange(ref _fractional, current + value, current);
            if (seen.Equals(current))
            {
                return;
            }

            current = seen;
        }
    }

    /// <summary>The value as sample text.</summary>
    public string Render()
    {
        var fractional = Volatile.Read(ref _fractional);
        var integral = Interlocked.Read(ref _integral);
        return fractional == 0d ? PrometheusText.FormatLong(integral) : PrometheusText.FormatDouble(integral + fractional);
    }
}
