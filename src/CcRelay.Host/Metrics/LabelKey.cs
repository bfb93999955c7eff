namespace CcRelay.Host.Metrics;

/// <summary>The tags of one measurement, in the order they were recorded: the series lookup key.</summary>
internal sealed class LabelKey(KeyValuePair<string, object?>[] tags, int hashCode)
{
    public KeyValuePair<string, object?>[] Tags { get; } = tags;

    public int HashCode { get; } = hashCode;
}
