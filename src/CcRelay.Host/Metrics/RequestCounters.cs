using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using CcRelay.Core;

namespace CcRelay.Host.Metrics;

/// <summary>
/// The counters every request adds to, kept where the request finds them in one step: per route (provider and
/// model label) its requests by status class and streaming, its tokens by kind, its cost and its unpriced answers;
/// per provider its attempts by outcome; and the requests in flight. <see cref="RelayMetrics"/> reports them through
/// observable instruments, read at each collection.
/// <code>
///   RecordRequest(provider, model, …) ──recent slot──► RouteCounters ──► per-processor cells
///                                     (miss: dictionary by value, then the slot)
///   scrape ──► Routes / Providers ──► sums of the cells ──► Measurement per series
/// </code>
/// NOTE: why not one measurement per counter: a synchronous instrument hands every measurement to every listener,
/// which finds its series by the tags; a request made nine of them (requests, attempts, four token kinds, cost,
/// in-flight up and down). Here a request finds its route once and adds to cells, and the listener pays at
/// collection instead, per series, not per request. The histograms stay synchronous: an observable instrument
/// cannot report a distribution.
/// </summary>
internal sealed class RequestCounters
{
    /// <summary>How many recently used routes and providers are found by reference (a power of two).</summary>
    private const int RecentSlots = 32;

    private readonly ConcurrentDictionary<(string Provider, string Model), RouteCounters> _routes = new();
    private readonly ConcurrentDictionary<string, AttemptCounters> _providers = new(StringComparer.Ordinal);
    private readonly RouteCounters?[] _recentRoutes = new RouteCounters?[RecentSlots];
    private readonly AttemptCounters?[] _recentProviders = new AttemptCounters?[RecentSlots];
    private readonly long[] _inflight = Stripes.Allocate(1);
    private readonly int _inflightCellLength = Stripes.CellLength(1);

    /// <summary>The routes counted so far (a snapshot in no particular order).</summary>
    public ICollection<RouteCounters> Routes => _routes.Values;

    /// <summary>The providers whose attempts were counted so far.</summary>
    public ICollection<AttemptCounters> Providers => _providers.Values;

    /// <summary>Requests in flight: started and not yet finished.</summary>
    public long Inflight => Stripes.Sum(_inflight, _inflightCellLength, 0);

    public void RequestStarted() => Interlocked.Increment(ref _inflight[Stripes.Mine(_inflightCellLength)]);

    public void RequestFinished() => Interlocked.Decrement(ref _inflight[Stripes.Mine(_inflightCellLength)]);

    /// <summary>
    /// The counters of <paramref name="provider"/> and <paramref name="model"/> (a model label, already bounded).
    /// The relay asks with the same string objects every time (the config's provider names, the model labels'
    /// own strings): their identities pick a recent slot, whose counters match at the cost of a reference
    /// compare (equal strings that are other objects, after a reload, compare by value). Nothing is allocated
    /// but a route's first counters.
    /// </summary>
    public RouteCounters Route(string provider, string model)
    {
        var slot = ((RuntimeHelpers.GetHashCode(provider) * 31) + RuntimeHelpers.GetHashCode(model)) & (RecentSlots - 1);
        if (Volatile.Read(ref _recentRoutes[slot]) is { } recent
            && string.Equals(recent.Provider, provider, StringComparison.Ordinal)
            && string.Equals(recent.Model, model, StringComparison.Ordinal))
        {
            return recent;
        }

        var counters = _routes.GetOrAdd((provider, model), static key => new RouteCounters(key.Provider, key.Model));
        Volatile.Write(ref _recentRoutes[slot], counters);
        return counters;
    }

    /// <summary>The attempt counters of <paramref name="provider"/>.</summary>
    public AttemptCounters Attempts(string provider)
    {
        var slot = RuntimeHelpers.GetHashCode(provider) & (RecentSlots - 1);
        if (Volatile.Read(ref _recentProviders[slot]) is { } recent && string.Equals(recent.Provider, provider, StringComparison.Ordinal))
        {
            return recent;
        }

        var counters = _providers.GetOrAdd(provider, static name => new AttemptCounters(name));
        Volatile.Write(ref _recentProviders[slot], counters);
        return counters;
    }
}

/// <summary>
/// One route's counters, one cell per processor (<see cref="Stripes"/>): requests per status class (1xx to 5xx,
/// then other) and streaming, tokens per kind, unpriced answers, and the cost as double bits.
/// </summary>
internal sealed class RouteCounters(string provider, string model)
{
    /// <summary>Status classes counted: 1xx to 5xx, then <c>other</c> (<see cref="RelayMetrics.StatusClassIndex"/>).</summary>
    public const int StatusClasses = 6;

    /// <summary>Token kinds, in the order <see cref="Tokens"/> takes them: input, output, cache read, cache write.</summary>
    public const int TokenKinds = 4;

    private const int RequestsAt = 0;
    private const int TokensAt = RequestsAt + (StatusClasses * 2);
    private const int UnpricedAt = TokensAt + TokenKinds;
    private const int CostAt = UnpricedAt + 1;
    private const int Longs = CostAt + 1;
    private const int UsageSeen = 1;
    private const int CostSeen = 2;

    private static readonly int CellLength = Stripes.CellLength(Longs);
    private readonly long[] _cells = Stripes.Allocate(Longs);
    private int _seen;

    public string Provider { get; } = provider;

    /// <summary>The model label (already bounded by <see cref="RelayMetrics.ModelLabel"/>).</summary>
    public string Model { get; } = model;

    /// <summary>Whether any usage was added: from then on every token kind is reported, zeros included.</summary>
    public bool HasUsage => (Volatile.Read(ref _seen) & UsageSeen) != 0;

    /// <summary>Whether any priced answer was added (a cost of zero included).</summary>
    public bool HasCost => (Volatile.Read(ref _seen) & CostSeen) != 0;

    public void AddRequest(int statusClass, bool stream) =>
        Interlocked.Increment(ref _cells[Stripes.Mine(CellLength) + RequestsAt + (statusClass * 2) + (stream ? 1 : 0)]);

    /// <summary>An answer's usage, with its cost when known (null: unpriced).</summary>
    public void AddUsage(Usage usage, decimal? costUsd)
    {
        var cell = Stripes.Mine(CellLength);
        Interlocked.Add(ref _cells[cell + TokensAt], usage.InputTokens);
        Interlocked.Add(ref _cells[cell + TokensAt + 1], usage.OutputTokens);
        Interlocked.Add(ref _cells[cell + TokensAt + 2], usage.CacheReadTokens);
        Interlocked.Add(ref _cells[cell + TokensAt + 3], usage.CacheWriteTokens);
        if (costUsd is { } cost)
        {
            Stripes.AddDouble(ref _cells[cell + CostAt], (double)cost);
            See(CostSeen);
        }
        else
        {
            Interlocked.Increment(ref _cells[cell + UnpricedAt]);
        }

        See(UsageSeen);
    }

    public long Requests(int statusClass, bool stream) => Stripes.Sum(_cells, CellLength, RequestsAt + (statusClass * 2) + (stream ? 1 : 0));

    /// <summary>Tokens of kind <paramref name="kind"/> (0 input, 1 output, 2 cache read, 3 cache write).</summary>
    public long Tokens(int kind) => Stripes.Sum(_cells, CellLength, TokensAt + kind);

    public long Unpriced => Stripes.Sum(_cells, CellLength, UnpricedAt);

    public double CostUsd => Stripes.SumDouble(_cells, CellLength, CostAt);

    private void See(int flag)
    {
        if ((Volatile.Read(ref _seen) & flag) == 0)
        {
            Interlocked.Or(ref _seen, flag);
        }
    }
}

/// <summary>One provider's upstream attempts by outcome, one cell per processor (<see cref="Stripes"/>).</summary>
internal sealed class AttemptCounters(string provider)
{
    /// <summary>Outcomes counted, in <see cref="RelayMetrics.AttemptOutcomes"/>' order.</summary>
    public const int Outcomes = 4;

    private static readonly int CellLength = Stripes.CellLength(Outcomes);
    private readonly long[] _cells = Stripes.Allocate(Outcomes);

    public string Provider { get; } = provider;

    public void Add(int outcome) => Interlocked.Increment(ref _cells[Stripes.Mine(CellLength) + outcome]);

    public long Count(int outcome) => Stripes.Sum(_cells, CellLength, outcome);
}
