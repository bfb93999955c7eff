namespace CcRelay.Host.Metrics;

/// <summary>The tags of one measurement, in the order they were recorded: the series lookup key.</summary>
internal sealed class LabelKey(KeyValuePair<string, object?>[] tags, int hashCode)
{
    private MetricSeries? _series;

    public KeyValuePair<string, object?>[] Tags { get; } = tags;

    public int HashCode { get; } = hashCode;

    /// <summary>The series the key leads to, once it is in a store (set once, then never changed).</summary>
    public MetricSeries? Series
    {
        get => Volatile.Read(ref _series);
        set => Interlocked.CompareExchange(ref _series, value, null);
    }

    /// <summary>Whether <paramref name="tags"/> are these very objects (names and values), in this order.</summary>
    public bool SameObjects(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var mine = Tags;
        if (mine.Length != tags.Length)
        {
            return false;
        }

        for (var i = 0; i < mine.Length; i++)
        {
            if (!ReferenceEquals(mine[i].Key, tags[i].Key) || !ReferenceEquals(mine[i].Value, tags[i].Value))
            {
                return false;
            }
        }

        return true;
    }
}
