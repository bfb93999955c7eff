using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using System.Text;

namespace CcRelay.Host.Metrics;

/// <summary>
/// One instrument as the exposition sees it: its Prometheus family (name, help, type) and its series.
/// <code>
///   measurement(value, tags span) ──alternate lookup──► series ──Add──► aggregate
///                                   (miss: canonical labels, once per label set)
/// </code>
/// NOTE: the hot path is the lookup of an existing series by the recorded span: no allocation, no lock
/// (histograms take a short per-processor lock), and for tags that are the same objects as a recent
/// measurement's (the relay's label strings are), no string hashing either. A miss builds the sorted, escaped label text once; tag order
/// does not matter, because series are shared by their canonical labels.
/// </summary>
internal sealed class InstrumentState
{
    /// <summary>Prometheus' default buckets, for histograms that give none.</summary>
    private static readonly double[] DefaultBounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private readonly Func<string, MetricSeries> _newSeries;
    private SeriesStore _store = new();

    public InstrumentState(Instrument instrument)
    {
        Instrument = instrument;
        var definition = instrument.GetType().IsGenericType ? instrument.GetType().GetGenericTypeDefinition() : null;

        Type = definition == typeof(Counter<>) || definition == typeof(ObservableCounter<>) ? MetricType.Counter
            : definition == typeof(Histogram<>) ? MetricType.Histogram
            : MetricType.Gauge;

        var name = PrometheusText.MetricName(instrument.Name);
        FamilyName = Type == MetricType.Counter && !name.EndsWith("_total", StringComparison.Ordinal) ? name + "_total" : name;
        Help = string.IsNullOrEmpty(instrument.Description) ? instrument.Name : instrument.Description;

        // Observable instruments report their current value (an observable counter its running total);
        // synchronous counters and up-down counters report increments.
        var sums = !instrument.IsObservable && (definition == typeof(Counter<>) || definition == typeof(UpDownCounter<>));
        if (Type == MetricType.Histogram)
        {
            var bounds = BoundsOf(instrument);
            _newSeries = labels => new HistogramSeries(labels, bounds);
        }
        else if (sums)
        {
            _newSeries = labels => new SumSeries(labels);
        }
        else
        {
            _newSeries = labels => new LastValueSeries(labels);
        }
    }

    public Instrument Instrument { get; }

    /// <summary>The sample name (counters end in <c>_total</c>); histogram samples add <c>_bucket</c> etc.</summary>
    public string FamilyName { get; }

    public string Help { get; }

    public MetricType Type { get; }

    /// <summary>Records one measurement.</summary>
    public void Record(long value, ReadOnlySpan<KeyValuePair<string, object?>> tags) => SeriesFor(tags).Add(value);

    /// <inheritdoc cref="Record(long, ReadOnlySpan{KeyValuePair{string, object}})"/>
    public void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags) => SeriesFor(tags).Add(value);

    /// <summary>
    /// Before an observable instrument is observed: forget its series, so that a label set it no longer
    /// reports (a provider removed by a reload) disappears from the exposition.
    /// </summary>
    public void BeginObservation() => Volatile.Write(ref _store, new SeriesStore());

    /// <summary>The current series, sorted by their labels.</summary>
    public MetricSeries[] Series()
    {
        var series = Volatile.Read(ref _store).ByLabels.Values.ToArray();
        Array.Sort(series, static (a, b) => string.CompareOrdinal(a.Labels, b.Labels));
        return series;
    }

    private MetricSeries SeriesFor(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        // the same tag objects as a recent measurement (the relay records with the same label strings every
        // time): its series, by reference compares, without hashing a string
        var store = Volatile.Read(ref _store);
        var slot = Slot(tags);
        if (Volatile.Read(ref store.Recent[slot]) is { Series: { } recent } key && key.SameObjects(tags))
        {
            return recent;
        }

        if (!store.Lookup.TryGetValue(tags, out key, out var series))
        {
            var added = store.ByLabels.GetOrAdd(CanonicalLabels(tags), _newSeries);
            store.Lookup.TryAdd(tags, added);
            if (!store.Lookup.TryGetValue(tags, out key, out series))
            {
                return added; // not reached: a store's keys are never removed
            }
        }

        // the key's series never changes once it is in the store; a key holding other (equal) objects than
        // these never matches by reference, and is left out of the recent ones
        key.Series ??= series;
        if (key.SameObjects(tags))
        {
            Volatile.Write(ref store.Recent[slot], key);
        }

        return series;
    }

    /// <summary>The recent-keys slot of a tag set: from the identities of its objects, so it costs no string hashing.</summary>
    private static int Slot(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var hash = tags.Length;
        foreach (var (name, value) in tags)
        {
            hash = (hash * 31) + RuntimeHelpers.GetHashCode(name) + (RuntimeHelpers.GetHashCode(value) * 7);
        }

        return hash & (SeriesStore.RecentSlots - 1);
    }

    /// <summary><c>a="x",b="y"</c>: names sanitized and sorted, values escaped.</summary>
    private static string CanonicalLabels(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (tags.IsEmpty)
        {
            return "";
        }

        var pairs = new (string Name, string Value)[tags.Length];
        for (var i = 0; i < tags.Length; i++)
        {
            pairs[i] = (PrometheusText.LabelName(tags[i].Key), PrometheusText.LabelValue(tags[i].Value));
        }

        Array.Sort(pairs, static (a, b) => string.CompareOrdinal(a.Name, b.Name));
        var builder = new StringBuilder();
        foreach (var (name, value) in pairs)
        {
            if (builder.Length > 0)
            {
                builder.Append(',');
            }

            builder.Append(name).Append("=\"").Append(PrometheusText.EscapeLabelValue(value)).Append('"');
        }

        return builder.ToString();
    }

    private static double[] BoundsOf(Instrument instrument)
    {
        IEnumerable<double>? advised = instrument switch
        {
            Histogram<double> h => h.Advice?.HistogramBucketBoundaries,
            Histogram<float> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b),
            Histogram<long> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b),
            Histogram<int> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b),
            _ => null,
        };

        var bounds = (advised ?? DefaultBounds).Where(b => !double.IsNaN(b) && !double.IsPositiveInfinity(b)).Distinct().Order().ToArray();
        return bounds;
    }

    /// <summary>The series of one collection period: by canonical labels, and by recorded tags for lookup.</summary>
    private sealed class SeriesStore
    {
        /// <summary>How many recently used keys are kept (a power of two).</summary>
        public const int RecentSlots = 32;

        /// <summary>Recently used keys, by <see cref="Slot"/>: a measurement with the same tag objects finds its series here.</summary>
        public readonly LabelKey?[] Recent = new LabelKey?[RecentSlots];

        public SeriesStore()
        {
            ByTags = new ConcurrentDictionary<LabelKey, MetricSeries>(LabelKeyComparer.Instance);
            Lookup = ByTags.GetAlternateLookup<ReadOnlySpan<KeyValuePair<string, object?>>>();
        }

        public ConcurrentDictionary<string, MetricSeries> ByLabels { get; } = new(StringComparer.Ordinal);

        public ConcurrentDictionary<LabelKey, MetricSeries> ByTags { get; }

        public ConcurrentDictionary<LabelKey, MetricSeries>.AlternateLookup<ReadOnlySpan<KeyValuePair<string, object?>>> Lookup { get; }
    }
}
