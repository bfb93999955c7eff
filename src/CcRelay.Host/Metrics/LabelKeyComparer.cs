namespace CcRelay.Host.Metrics;

/// <summary>
/// Compares recorded tag spans with stored <see cref="LabelKey"/>s, so that finding an existing series
/// allocates nothing (a <c>ConcurrentDictionary</c> alternate lookup keyed by the span itself).
/// </summary>
internal sealed class LabelKeyComparer :
    IEqualityComparer<LabelKey>,
    IAlternateEqualityComparer<ReadOnlySpan<KeyValuePair<string, object?>>, LabelKey>
{
    public static readonly LabelKeyComparer Instance = new();

    public bool Equals(LabelKey? x, LabelKey? y) =>
        ReferenceEquals(x, y) || (x is not null && y is not null && x.HashCode == y.HashCode && Equals(new ReadOnlySpan<KeyValuePair<string, object?>>(x.Tags), y));

    public int GetHashCode(LabelKey obj) => obj.HashCode;

    public bool Equals(ReadOnlySpan<KeyValuePair<string, object?>> alternate, LabelKey other)
    {
        var tags = other.Tags;
        if (alternate.Length != tags.Length)
        {
            return false;
        }

        for (var i = 0; i < tags.Length; i++)
        {
            if (!string.Equals(alternate[i].Key, tags[i].Key, StringComparison.Ordinal) || !object.Equals(alternate[i].Value, tags[i].Value))
            {
                return false;
            }
        }

        return true;
    }

    public int GetHashCode(ReadOnlySpan<KeyValuePair<string, object?>> alternate)
    {
        var hash = default(HashCode);
        foreach (var tag in alternate)
        {
            hash.Add(tag.Key);
            hash.Add(tag.Value);
        }

        return hash.ToHashCode();
    }

    public LabelKey Create(ReadOnlySpan<KeyValuePair<string, object?>> alternate) =>
        new(alternate.ToArray(), GetHashCode(alternate));
}
