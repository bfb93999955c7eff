namespace CcRelay.Host.Metrics;

/// <summary>
/// The last measurement wins: gauges, and observable instruments (which report their current total).
/// Kept as a double: exact for integers up to 2^53, far beyond any gauge here.
/// </summary>
internal sealed class LastValueSeries(string labels) : MetricSeries(labels)
{
    private double _value;

    public override void Add(long value) => Add((double)value);

    public override void Add(double value) => Interlocked.Exchange(ref _value, value);

    /// <summary>The value as sample text.</summary>
    public string Render() => PrometheusText.FormatDouble(Volatile.Read(ref _value));
}
