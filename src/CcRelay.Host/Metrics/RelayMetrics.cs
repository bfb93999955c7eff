using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using CcRelay.Core;

namespace CcRelay.Host.Metrics;

/// <summary>
/// The relay's instruments (meter <c>CcRelay</c>, <c>System.Diagnostics.Metrics</c>) and the calls that record
/// them. OpenTelemetry's SDK aggregates them for both the Prometheus scrape and OTLP export; every metric and label
/// is listed in <c>docs/observability.md</c>.
/// <code>
///   request start ──► RequestStarted()                                      ccrelay_inflight_requests
///   headers in    ──► RecordTimeToFirstByte(provider, model, ttfb)          ccrelay_ttfb_seconds
///   each attempt  ──► RecordAttempt(provider, outcome)                      ccrelay_upstream_attempts_total
///   request end   ──► RequestFinished()  (after queuing the record: RequestAccounting)
///   accounted     ──► RecordUsage(provider, model, usage, prices)           ccrelay_tokens_total, ccrelay_cost_usd_total, ccrelay_unpriced_answers_total
///                     RecordRequest(provider, model, status, stream, took)  ccrelay_requests_total, ccrelay_request_duration_seconds
///   translated    ──► RecordDropped(provider, capabilities)                 ccrelay_dropped_capabilities_total
///   local answer  ──► RecordLocalAnswer(provider, reason)                   ccrelay_local_answers_total
///   reload        ──► RecordConfigReload(succeeded)                         ccrelay_config_reloads_total
///   scrape        ──► the ObserveProviders source                           ccrelay_provider_up, ccrelay_circuit_state, ccrelay_key_capacity_ratio
/// </code>
/// Label values are bounded: providers and key ids come from the config, status classes and outcomes are fixed
/// sets, and models beyond <see cref="MaxModelLabels"/> distinct ids are counted as <see cref="OtherModel"/>.
/// With nothing listening (<c>metrics.enabled: false</c>, OTLP export off) every instrument is disabled and a
/// record call returns after one check.
/// </summary>
public sealed class RelayMetrics
{
    /// <summary>The meter name.</summary>
    public const string MeterName = "CcRelay";

    /// <summary>The model label of models past the <see cref="MaxModelLabels"/> limit (and of absurdly long ids).</summary>
    public const string OtherModel = "other";

    /// <summary>The model label when the model is not known (an empty id).</summary>
    public const string UnknownModel = "unknown";

    /// <summary>Model ids longer than this are never labels of their own.</summary>
    private const int MaxModelLength = 200;

    // the provider gauges, one bit each (which of them had the current reading of provider state)
    private const int UpGauge = 1;
    private const int CircuitGauge = 2;
    private const int KeysGauge = 4;

    /// <summary>The oldest a reading of provider state may be when a gauge reuses it.</summary>
    private static readonly TimeSpan ReadingMaxAge = TimeSpan.FromSeconds(1);

    private static readonly double[] DurationBounds = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600];
    private static readonly double[] TtfbBounds = [0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60];
    private static readonly string[] StatusClasses = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

    private readonly Counter<long> _requests;
    private readonly Histogram<double> _requestDuration;
    private readonly Histogram<double> _ttfb;
    private readonly Counter<long> _attempts;
    private readonly Counter<long> _tokens;
    private readonly Counter<double> _cost;
    private readonly Counter<long> _unpriced;
    private readonly Counter<long> _configReloads;
    private readonly Counter<long> _dropped;
    private readonly Counter<long> _stages;
    private readonly Counter<long> _admissionRefused;
    private readonly Counter<long> _localAnswers;
    private readonly ConcurrentDictionary<string, string> _models = new(StringComparer.Ordinal);
    private readonly Lock _newModel = new();
    private readonly Lock _readingLock = new();
    private long _inflight;
    private int _maxModelLabels;

    // guarded by _readingLock: where provider state comes from, its last reading, when it was taken, which gauges had it
    private Func<IReadOnlyList<ProviderGauges>>? _providers;
    private IReadOnlyList<ProviderGauges>? _reading;
    private readonly TimeProvider _timeProvider;
    private long _readAt;
    private int _readBy;

    /// <summary>
    /// Creates the instruments on the <c>CcRelay</c> meter of <paramref name="meterFactory"/>; the gauges' reading
    /// ages on <paramref name="timeProvider"/> (null for <see cref="TimeProvider.System"/>).
    /// </summary>
    public RelayMetrics(IMeterFactory meterFactory, int maxModelLabels = 100, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        _timeProvider = timeProvider ?? TimeProvider.System;
        var meter = meterFactory.Create(new MeterOptions(MeterName));
        Meter = meter;
        MaxModelLabels = maxModelLabels;

        // units in braces are annotations: OTLP carries them, the Prometheus names get no suffix from them
        _requests = meter.CreateCounter<long>(
            "ccrelay_requests", "{request}", "Relayed requests by provider, model, HTTP status class and streaming.");
        _requestDuration = meter.CreateHistogram(
            "ccrelay_request_duration_seconds", "s", "Time from request start to the last byte sent to the client.",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBounds });
        _ttfb = meter.CreateHistogram(
            "ccrelay_ttfb_seconds", "s", "Time from request start to the upstream's response headers.",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = TtfbBounds });
        _attempts = meter.CreateCounter<long>(
            "ccrelay_upstream_attempts", "{attempt}", "Upstream attempts by outcome: success, failure, rejected, abandoned.");
        _tokens = meter.CreateCounter<long>(
            "ccrelay_tokens", "{token}", "Tokens reported by upstream answers, by kind: input, output, cache_read, cache_write.");
        _cost = meter.CreateCounter<double>(
            "ccrelay_cost_usd", "{USD}", "Estimated cost of answers in US dollars (list prices; see pricing).");
        _unpriced = meter.CreateCounter<long>(
            "ccrelay_unpriced_answers", "{answer}", "Answers with usage but no price for their model: their cost is unknown.");
        meter.CreateObservableUpDownCounter(
            "ccrelay_inflight_requests", () => Volatile.Read(ref _inflight), "{request}", "Requests being relayed now.");
        _dropped = meter.CreateCounter<long>(
            "ccrelay_dropped_capabilities", "{request}", "Translated requests sent without something they asked for, by provider and capability (other: a name outside the known set).");
        _stages = meter.CreateCounter<long>(
            "ccrelay_stage_requests", "{request}", "Requests by routing stage, the reason it was chosen, and the provider that answered (or was last tried).");
        _configReloads = meter.CreateCounter<long>(
            "ccrelay_config_reloads", "{reload}", "Configuration reloads by result: success, failure.");
        _admissionRefused = meter.CreateCounter<long>(
            "ccrelay_admission_refused", "{request}", "Requests answered 529 at admission (server.max_concurrent) by reason: queue_full, waited_too_long.");
        _localAnswers = meter.CreateCounter<long>(
            "ccrelay_local_answers", "{request}", "Requests the relay answered itself, calling no upstream, by provider and reason: pipeline_error, dropped_refused, count_tokens.");

        meter.CreateObservableGauge("ccrelay_provider_up", ObserveUp, "1", "1 when the provider may receive requests, else 0.");
        meter.CreateObservableGauge(
            "ccrelay_circuit_state", ObserveCircuits, "1", "1 for the provider's current circuit state (closed, half_open, open, isolated), 0 for the others.");
        meter.CreateObservableGauge(
            "ccrelay_key_capacity_ratio", ObserveKeys, "1", "Remaining capacity of a provider key, 0 (exhausted) to 1 (unused).");
    }

    /// <summary>The outcomes <c>ccrelay_upstream_attempts_total</c> counts.</summary>
    public static IReadOnlyList<string> AttemptOutcomes { get; } = ["success", "failure", "rejected", "abandoned"];

    /// <summary>The circuit states <c>ccrelay_circuit_state</c> always reports, one series each.</summary>
    public static IReadOnlyList<string> CircuitStates { get; } = ["closed", "half_open", "open", "isolated"];

    /// <summary>The meter the instruments live on.</summary>
    public Meter Meter { get; }

    /// <summary>
    /// How many distinct model ids get a label of their own (<c>metrics.max_model_labels</c>). Lowering it on
    /// a reload keeps the labels already given; only new models are affected.
    /// </summary>
    public int MaxModelLabels
    {
        get => Volatile.Read(ref _maxModelLabels);
        set => Volatile.Write(ref _maxModelLabels, Math.Max(0, value));
    }

    /// <summary>
    /// A request entered the relay. Counted whether or not anything listens (one interlocked increment), so a
    /// listener that attaches while requests are in flight reads the true number.
    /// </summary>
    public void RequestStarted() => Interlocked.Increment(ref _inflight);

    /// <summary>A request left the relay (pair with <see cref="RequestStarted"/>, also on failure).</summary>
    public void RequestFinished() => Interlocked.Decrement(ref _inflight);

    /// <summary>Requests being relayed now (<c>ccrelay_inflight_requests</c>).</summary>
    public long InFlight => Volatile.Read(ref _inflight);

    /// <summary>
    /// A request ended: counts it and records its duration. <paramref name="provider"/> is the provider that
    /// answered (or was last tried; <c>none</c> when no provider was chosen); <paramref name="status"/> the
    /// status the client got.
    /// </summary>
    public void RecordRequest(string provider, string? model, int status, bool stream, TimeSpan duration)
    {
        if (!_requests.Enabled && !_requestDuration.Enabled)
        {
            return;
        }

        var modelLabel = ModelLabel(model);
        var tags = new TagList
        {
            { "provider", provider },
            { "model", modelLabel },
            { "status_class", StatusClass(status) },
            { "stream", stream ? "true" : "false" },
        };
        _requests.Add(1, in tags);
        _requestDuration.Record(duration.TotalSeconds, Tag("provider", provider), Tag("model", modelLabel));
    }

    /// <summary>
    /// A request was routed by stage: <paramref name="stage"/> and <paramref name="reason"/> come from Core's fixed
    /// sets (the reason's only number is the configured long-context threshold), so the labels stay bounded.
    /// </summary>
    public void RecordStage(string stage, string reason, string provider)
    {
        if (_stages.Enabled)
        {
            _stages.Add(1, Tag("stage", stage), Tag("reason", reason), Tag("provider", provider));
        }
    }

    /// <summary>The upstream's response headers arrived <paramref name="ttfb"/> after the request started.</summary>
    public void RecordTimeToFirstByte(string provider, string? model, TimeSpan ttfb)
    {
        if (_ttfb.Enabled)
        {
            _ttfb.Record(ttfb.TotalSeconds, Tag("provider", provider), Tag("model", ModelLabel(model)));
        }
    }

    /// <summary>One upstream attempt ended with <paramref name="outcome"/> (Core's classification).</summary>
    public void RecordAttempt(string provider, AttemptOutcome outcome)
    {
        ArgumentNullException.ThrowIfNull(outcome);
        var index = outcome.IsSuccess ? 0
            : outcome.IsFailure ? 1
            : outcome.IsRejected ? 2
            : 3;
        _attempts.Add(1, Tag("provider", provider), Tag("outcome", AttemptOutcomes[index]));
    }

    /// <summary>
    /// An answer's usage, with its cost in USD when known (null: unknown, never zero: a model without a price adds
    /// to <c>ccrelay_unpriced_answers_total</c> instead). Every token kind is added, zeros included, so a
    /// dashboard sees each kind's series from a route's first answer.
    /// </summary>
    public void RecordUsage(string provider, string? model, Usage usage, decimal? costUsd)
    {
        ArgumentNullException.ThrowIfNull(usage);
        if (!_tokens.Enabled && !_cost.Enabled && !_unpriced.Enabled)
        {
            return;
        }

        var p = Tag("provider", provider);
        var m = Tag("model", ModelLabel(model));
        _tokens.Add(usage.InputTokens, p, m, Tag("kind", "input"));
        _tokens.Add(usage.OutputTokens, p, m, Tag("kind", "output"));
        _tokens.Add(usage.CacheReadTokens, p, m, Tag("kind", "cache_read"));
        _tokens.Add(usage.CacheWriteTokens, p, m, Tag("kind", "cache_write"));
        if (costUsd is { } cost)
        {
            _cost.Add((double)cost, p, m);
        }
        else
        {
            _unpriced.Add(1, p, m);
        }
    }

    /// <summary>
    /// A translated request went to <paramref name="provider"/> without <paramref name="capabilities"/> (Core's names):
    /// one count per capability, labelled by <c>Dropped.label</c> so that the label values stay a fixed set.
    /// </summary>
    public void RecordDropped(string provider, IEnumerable<string> capabilities)
    {
        ArgumentNullException.ThrowIfNull(capabilities);
        if (!_dropped.Enabled)
        {
            return;
        }

        foreach (var capability in capabilities)
        {
            _dropped.Add(1, Tag("provider", provider), Tag("capability", Dropped.label(capability)));
        }
    }
    /// <summary>A request was refused at admission (529): <c>queue_full</c> or <c>waited_too_long</c>.</summary>
    public void RecordAdmissionRefused(string reason) => _admissionRefused.Add(1, Tag("reason", reason));

    /// <summary>
    /// The relay answered a request planned for <paramref name="provider"/> itself, calling no upstream:
    /// <paramref name="reason"/> is <c>LocalAnswer.wireName</c> (a fixed set).
    /// </summary>
    public void RecordLocalAnswer(string provider, string reason)
    {
        if (_localAnswers.Enabled)
        {
            _localAnswers.Add(1, Tag("provider", provider), Tag("reason", reason));
        }
    }

    /// <summary>A configuration reload was attempted.</summary>
    public void RecordConfigReload(bool succeeded) => _configReloads.Add(1, Tag("result", succeeded ? "success" : "failure"));

    /// <summary>
    /// Sets where provider state comes from at each scrape (the relay's: Core's <c>RelayHealth.gauges</c> over
    /// the live runtime, its breakers and key pools). Called on the scraping thread; must be quick and never throw.
    /// </summary>
    public void ObserveProviders(Func<IReadOnlyList<ProviderGauges>> source)
    {
        ArgumentNullException.ThrowIfNull(source);
        lock (_readingLock)
        {
            _providers = source;
            _reading = null;
        }
    }

    /// <summary>
    /// The label for a model id: the id itself for the first <see cref="MaxModelLabels"/> distinct ids,
    /// <see cref="OtherModel"/> after that, <see cref="UnknownModel"/> for an empty one.
    /// </summary>
    public string ModelLabel(string? model)
    {
        if (string.IsNullOrEmpty(model))
        {
            return UnknownModel;
        }

        if (_models.TryGetValue(model, out var label))
        {
            return label;
        }

        if (model.Length > MaxModelLength)
        {
            return OtherModel;
        }

        // rare: a model seen for the first time. The lock keeps the count exact.
        lock (_newModel)
        {
            if (_models.TryGetValue(model, out label))
            {
                return label;
            }

            if (_models.Count >= MaxModelLabels)
            {
                return OtherModel;
            }

            _models[model] = model;
            return model;
        }
    }

    /// <summary><c>2xx</c> for 200–299 and so on; <c>other</c> outside 100–599.</summary>
    public static string StatusClass(int status) => StatusClasses[status is >= 100 and < 600 ? (status / 100) - 1 : 5];

    private static KeyValuePair<string, object?> Tag(string name, string value) => new(name, value);

    /// <summary>
    /// The provider state for gauge <paramref name="gauge"/> (<c>UpGauge</c>, <c>CircuitGauge</c> or <c>KeysGauge</c>). The three
    /// provider gauges share one reading per collection, so one scrape never shows a provider up in one gauge and
    /// open in another, and the runtime is read once, not three times: a gauge gets the current reading unless it
    /// already had it (then a new collection has begun and a new reading is taken) or it is older than
    /// <see cref="ReadingMaxAge"/>. The gauges of one collection are observed one after the other, in any order.
    /// </summary>
    private IReadOnlyList<ProviderGauges> Providers(int gauge)
    {
        lock (_readingLock)
        {
            var now = _timeProvider.GetTimestamp();
            if (_reading is null || (_readBy & gauge) != 0 || _timeProvider.GetElapsedTime(_readAt, now) > ReadingMaxAge)
            {
                _reading = _providers?.Invoke() ?? [];
                _readAt = now;
                _readBy = 0;
            }

            _readBy |= gauge;
            return _reading;
        }
    }

    private IEnumerable<Measurement<int>> ObserveUp() =>
        Providers(UpGauge).Select(p => new Measurement<int>(p.Up ? 1 : 0, Tag("provider", p.Name)));

    private IEnumerable<Measurement<int>> ObserveCircuits()
    {
        foreach (var provider in Providers(CircuitGauge))
        {
            var states = CircuitStates.Contains(provider.Circuit, StringComparer.Ordinal) ? CircuitStates : [.. CircuitStates, provider.Circuit];
            foreach (var state in states)
            {
                var current = string.Equals(state, provider.Circuit, StringComparison.Ordinal);
                yield return new Measurement<int>(current ? 1 : 0, Tag("provider", provider.Name), Tag("state", state));
            }
        }
    }

    private IEnumerable<Measurement<double>> ObserveKeys() =>
        Providers(KeysGauge).SelectMany(p => p.Keys.Select(k =>
            new Measurement<double>(Math.Clamp(k.Ratio, 0d, 1d), Tag("provider", p.Name), Tag("key_id", k.KeyId))));
}
