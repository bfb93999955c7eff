namespace CcRelay.Host.Metrics;

/// <summary>
/// Counts per explicit bucket, plus sum. Recording and snapshotting share a lock, so a scrape always sees
/// <c>+Inf</c> bucket = <c>_count</c> and a sum of the same observations.
/// </summary>
internal sealed class HistogramSeries(string labels, double[] bounds) : MetricSeries(labels)
{
    private readonly Lock _lock = new();
    private readonly long[] _counts = new long[bounds.Length + 1];
    private double _sum;

    /// <summary>The upper bounds, ascending, without <c>+Inf</c>.</summary>
    public double[] Bounds { get; } = bounds;

    public override void Add(long value) => Add((double)value);

    public override void Add(double value)
    {
        if (double.IsNaN(value))
        {
            return;
        }

        // bounds are few (about a dozen): a linear scan beats a binary search here
        var bucket = 0;
        while (bucket < Bounds.Length && value > Bounds[bucket])
        {
            bucket++;
        }

        lock (_lock)
        {
            _counts[bucket]++;
            _sum += value;
        }
    }

    /// <summary>Cumulative counts per bound (the last one is <c>+Inf</c>, the total count) and the sum.</summary>
    public (long[] Cumulative, double Sum) Snapshot()
    {
        var cumulative = new long[_counts.Length];
        double sum;
        lock (_lock)
        {
            long running = 0;
            for (var i = 0; i < _counts.Length; i++)
            {
                running += _counts[i];
                cumulative[i] = running;
            }

            sum = _sum;
        }

        return (cumulative, sum);
    }
}
