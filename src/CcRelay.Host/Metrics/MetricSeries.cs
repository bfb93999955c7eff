namespace CcRelay.Host.Metrics;

/// <summary>One time series of an instrument: its labels and its aggregated value.</summary>
internal abstract class MetricSeries(string labels)
{
    /// <summary>The rendered label pairs, sorted by name (<c>a="x",b="y"</c>); empty for no labels.</summary>
    public string Labels { get; } = labels;

    public abstract void Add(long value);

    public abstract void Add(double value);
}
