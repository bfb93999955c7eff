namespace CcRelay.Bench.LoadGen;

/// <summary>Exact percentiles of a sample (sorted copy; no HdrHistogram here). Values are Stopwatch ticks (ns).</summary>
internal sealed class Percentiles
{
    private readonly long[] _sorted;

    public Percentiles(IEnumerable<long> values)
    {
        _sorted = values.ToArray();
        Array.Sort(_sorted);
    }

    public int Count => _sorted.Length;

    /// <summary>Nearest-rank percentile in milliseconds (NaN for an empty sample).</summary>
    public double Ms(double p)
    {
        if (_sorted.Length == 0)
        {
            return double.NaN;
        }

        var rank = (int)Math.Ceiling(p / 100.0 * _sorted.Length);
        var i = Math.Clamp(rank - 1, 0, _sorted.Length - 1);
        return Clock.TicksToMs(_sorted[i]);
    }

    public double MaxMs => _sorted.Length == 0 ? double.NaN : Clock.TicksToMs(_sorted[^1]);

    public double MeanMs => _sorted.Length == 0 ? double.NaN : Clock.TicksToMs((long)_sorted.Average(v => (double)v));

    /// <summary>Share of values strictly above <paramref name="thresholdMs"/>, in percent.</summary>
    public double PercentAbove(double thresholdMs)
    {
        if (_sorted.Length == 0)
        {
            return double.NaN;
        }

        var t = Clock.MsToTicks(thresholdMs);
        var idx = Array.BinarySearch(_sorted, t + 1);
        var firstAbove = idx >= 0 ? idx : ~idx;
        while (firstAbove > 0 && _sorted[firstAbove - 1] > t)
        {
            firstAbove--;
        }

        return 100.0 * (_sorted.Length - firstAbove) / _sorted.Length;
    }
}
