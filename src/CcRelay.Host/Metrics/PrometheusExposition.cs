using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Text;

namespace CcRelay.Host.Metrics;

/// <summary>
/// Writes the instruments of the given meters in the Prometheus text exposition format 0.0.4.
/// <code>
///   instruments ──MeterListener──► per-instrument series (aggregated as measured)
///   scrape: observe the observable instruments ──► families sorted by name, series by labels ──► text
/// </code>
/// <list type="bullet">
/// <item>Counters (<see cref="Counter{T}"/>, <see cref="ObservableCounter{T}"/>) become <c>counter</c>
/// families named <c>…_total</c>.</item>
/// <item>Up-down counters and gauges, synchronous or observable, become <c>gauge</c> families.</item>
/// <item>Histograms become <c>histogram</c> families with cumulative <c>_bucket{le=…}</c> lines (the
/// instrument's advised bucket boundaries, else Prometheus' defaults), <c>+Inf</c>, <c>_sum</c> and
/// <c>_count</c>.</item>
/// </list>
/// Only instruments of the meters passed in are listened to, so several relays in one process (tests)
/// never see each other's measurements. The output is deterministic: families by name, series by labels.
/// Instrument names are used as they are (sanitized); give them their Prometheus names and units.
/// </summary>
public sealed class PrometheusExposition : IDisposable
{
    /// <summary>The media type of the output: <c>text/plain; version=0.0.4; charset=utf-8</c>.</summary>
    public const string ContentType = PrometheusText.ContentType;

    private readonly HashSet<Meter> _meters;
    private readonly ConcurrentDictionary<Instrument, InstrumentState> _instruments = new();
    private readonly MeterListener _listener;
    private readonly Lock _scrape = new();
    private Action[] _onScrape = [];

    /// <summary>Listens to every instrument, present and future, of <paramref name="meters"/>.</summary>
    public PrometheusExposition(params IEnumerable<Meter> meters)
    {
        ArgumentNullException.ThrowIfNull(meters);
        _meters = new HashSet<Meter>(meters, ReferenceEqualityComparer.Instance);
        _listener = new MeterListener
        {
            InstrumentPublished = (instrument, listener) =>
            {
                if (_meters.Contains(instrument.Meter))
                {
                    var state = _instruments.GetOrAdd(instrument, static i => new InstrumentState(i));
                    listener.EnableMeasurementEvents(instrument, state);
                }
            },
            MeasurementsCompleted = (instrument, _) => _instruments.TryRemove(instrument, out var _),
        };

        _listener.SetMeasurementEventCallback<long>(static (_, value, tags, state) => ((InstrumentState)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<int>(static (_, value, tags, state) => ((InstrumentState)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<short>(static (_, value, tags, state) => ((InstrumentState)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<byte>(static (_, value, tags, state) => ((InstrumentState)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<double>(static (_, value, tags, state) => ((InstrumentState)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<float>(static (_, value, tags, state) => ((InstrumentState)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<decimal>(static (_, value, tags, state) => ((InstrumentState)state!).Record((double)value, tags));
        _listener.Start();
    }

    /// <summary>Observes the observable instruments and writes the whole exposition as UTF-8.</summary>
    public void Write(IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        Encoding.UTF8.GetBytes(Render(), output);
    }

    /// <summary>Observes the observable instruments and writes the whole exposition as UTF-8.</summary>
    public async Task WriteAsync(Stream output, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(output);
        await output.WriteAsync(Encoding.UTF8.GetBytes(Render()), cancellationToken);
    }

    /// <summary>
    /// Runs <paramref name="beforeScrape"/> at the start of every scrape, before any instrument is read: a
    /// producer that records its measurements in batches settles the ones still pending, so a scrape shows
    /// everything that happened before it (the relay's request accounting does).
    /// </summary>
    public void OnScrape(Action beforeScrape)
    {
        ArgumentNullException.ThrowIfNull(beforeScrape);
        lock (_scrape)
        {
            _onScrape = [.. _onScrape, beforeScrape];
        }
    }

    /// <summary>The exposition as text.</summary>
    public string Render()
    {
        // One scrape at a time: observable instruments are reset, observed and read as one step.
        lock (_scrape)
        {
            foreach (var settle in _onScrape)
            {
                settle();
            }

            var states = _instruments.Values.ToArray();
            foreach (var state in states)
            {
                if (state.Instrument.IsObservable)
                {
                    state.BeginObservation();
                }
            }

            _listener.RecordObservableInstruments();

            var families = states
                .Select(state => (State: state, Series: state.Series()))
                .Where(family => family.Series.Length > 0)
                .OrderBy(family => family.State.FamilyName, StringComparer.Ordinal)
                .ToArray();

            var text = new StringBuilder();
            string? lastHeader = null;
            foreach (var (state, series) in families)
            {
                // two instruments with one name share a header (their label sets must then differ)
                if (!string.Equals(lastHeader, state.FamilyName, StringComparison.Ordinal))
                {
                    text.Append("# HELP ").Append(state.FamilyName).Append(' ').Append(PrometheusText.EscapeHelp(state.Help)).Append('\n');
                    text.Append("# TYPE ").Append(state.FamilyName).Append(' ').Append(TypeName(state.Type)).Append('\n');
                    lastHeader = state.FamilyName;
                }

                foreach (var one in series)
                {
                    WriteSeries(text, state.FamilyName, one);
                }
            }

            return text.ToString();
        }
    }

    /// <summary>Stops listening.</summary>
    public void Dispose() => _listener.Dispose();

    private static void WriteSeries(StringBuilder text, string name, MetricSeries series)
    {
        switch (series)
        {
            case SumSeries sum:
                Sample(text, name, series.Labels, sum.Render());
                break;
            case LastValueSeries last:
                Sample(text, name, series.Labels, last.Render());
                break;
            case HistogramSeries histogram:
                var (cumulative, total) = histogram.Snapshot();
                var prefix = series.Labels.Length == 0 ? "le=\"" : series.Labels + ",le=\"";
                for (var i = 0; i < cumulative.Length; i++)
                {
                    var bound = i < histogram.Bounds.Length ? PrometheusText.FormatDouble(histogram.Bounds[i]) : "+Inf";
                    Sample(text, name + "_bucket", prefix + bound + "\"", PrometheusText.FormatLong(cumulative[i]));
                }

                Sample(text, name + "_sum", series.Labels, PrometheusText.FormatDouble(total));
                Sample(text, name + "_count", series.Labels, PrometheusText.FormatLong(cumulative[^1]));
                break;
        }
    }

    private static void Sample(StringBuilder text, string name, string labels, string value)
    {
        text.Append(name);
        if (labels.Length > 0)
        {
            text.Append('{').Append(labels).Append('}');
        }

        text.Append(' ').Append(value).Append('\n');
    }

    private static string TypeName(MetricType type) => type switch
    {
        MetricType.Counter => "counter",
        MetricType.Histogram => "histogram",
        _ => "gauge",
    };
}
