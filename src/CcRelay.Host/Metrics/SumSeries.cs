namespace CcRelay.Host.Metrics;

/// <summary>
/// A running sum (counters, up-down counters), one cell per processor (<see cref="Stripes"/>). Integer and
/// fractional measurements are kept apart, so a counter fed integers stays exact at any size and is rendered
/// as an integer.
/// </summary>
internal sealed class SumSeries(string labels) : MetricSeries(labels)
{
    // per cell: [integral, fractional as double bits]
    private static readonly int CellLength = Stripes.CellLength(2);
    private readonly long[] _cells = Stripes.Allocate(2);

    public override void Add(long value) => Interlocked.Add(ref _cells[Stripes.Mine(CellLength)], value);

    public override void Add(double value) => Stripes.AddDouble(ref _cells[Stripes.Mine(CellLength) + 1], value);

    /// <summary>The value as sample text.</summary>
    public string Render()
    {
        var integral = Stripes.Sum(_cells, CellLength, 0);
        var fractional = Stripes.SumDouble(_cells, CellLength, 1);
        return fractional == 0d ? PrometheusText.FormatLong(integral) : PrometheusText.FormatDouble(integral + fractional);
    }
}
