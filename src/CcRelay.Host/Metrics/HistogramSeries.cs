namespace CcRelay.Host.Metrics;

/// <summary>
/// Counts per explicit bucket, plus sum, one cell per processor (<see cref="Stripes"/>). Each cell has a
/// spin lock of its own, which only the processor's own threads take (and a scrape, in turn): recording and
/// snapshotting a cell are one step, so a scrape always sees <c>+Inf</c> bucket = <c>_count</c> and a sum of
/// the same observations.
/// </summary>
internal sealed class HistogramSeries : MetricSeries
{
    // per cell: [lock, sum as double bits, count per bucket (the last is +Inf)]
    private const int LockAt = 0;
    private const int SumAt = 1;
    private const int CountsAt = 2;

    private readonly int _cellLength;
    private readonly long[] _cells;

    public HistogramSeries(string labels, double[] bounds)
        : base(labels)
    {
        Bounds = bounds;
        _cellLength = Stripes.CellLength(CountsAt + bounds.Length + 1);
        _cells = Stripes.Allocate(CountsAt + bounds.Length + 1);
    }

    /// <summary>The upper bounds, ascending, without <c>+Inf</c>.</summary>
    public double[] Bounds { get; }

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

        var cell = Stripes.Mine(_cellLength);
        Enter(cell);
        _cells[cell + CountsAt + bucket]++;
        _cells[cell + SumAt] = BitConverter.DoubleToInt64Bits(BitConverter.Int64BitsToDouble(_cells[cell + SumAt]) + value);
        Volatile.Write(ref _cells[cell + LockAt], 0);
    }

    /// <summary>Cumulative counts per bound (the last one is <c>+Inf</c>, the total count) and the sum.</summary>
    public (long[] Cumulative, double Sum) Snapshot()
    {
        var counts = new long[Bounds.Length + 1];
        var sum = 0d;
        for (var i = 0; i < Stripes.Count; i++)
        {
            var cell = Stripes.Cell(i, _cellLength);
            Enter(cell);
            for (var bucket = 0; bucket < counts.Length; bucket++)
            {
                counts[bucket] += _cells[cell + CountsAt + bucket];
            }

            sum += BitConverter.Int64BitsToDouble(_cells[cell + SumAt]);
            Volatile.Write(ref _cells[cell + LockAt], 0);
        }

        long running = 0;
        for (var bucket = 0; bucket < counts.Length; bucket++)
        {
            running += counts[bucket];
            counts[bucket] = running;
        }

        return (counts, sum);
    }

    /// <summary>Takes a cell's lock: held for a few stores, by the processor's threads and now and then a scrape.</summary>
    private void Enter(int cell)
    {
        if (Interlocked.CompareExchange(ref _cells[cell + LockAt], 1, 0) == 0)
        {
            return;
        }

        // contended only when the holder was preempted on this processor (or moved off it): spin, then yield to
        // it, never sleep a whole millisecond
        var spin = default(SpinWait);
        do
        {
            spin.SpinOnce(sleep1Threshold: -1);
        }
        while (Interlocked.CompareExchange(ref _cells[cell + LockAt], 1, 0) != 0);
    }
}
