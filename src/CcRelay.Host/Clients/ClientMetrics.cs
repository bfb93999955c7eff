using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Runtime.InteropServices;
using CcRelay.Core;
using CcRelay.Host.Ledger;
using CcRelay.Host.Metrics;

namespace CcRelay.Host.Clients;

/// <summary>
/// The client and ledger instruments, on the relay's meter (docs/teams.md, docs/observability.md):
/// <c>ccrelay_client_requests_total{client,result}</c>, <c>ccrelay_client_cost_usd_total{client}</c>,
/// <c>ccrelay_client_tokens_total{client,kind}</c>, <c>ccrelay_client_refusals_total{client,reason}</c>,
/// <c>ccrelay_ledger_rows_total{outcome}</c> and <c>ccrelay_ledger_healthy</c>.
/// NOTE: bounded cardinality: client metrics are recorded only when clients are configured; the client label is a
/// configured name (requests through <c>server.auth</c> are <c>none</c>), at most <see cref="MaxClientLabels"/>
/// distinct ones, further ones counted as <c>other</c>.
/// NOTE: what every finished request adds (requests, cost, four token kinds) is summed in the client's own cell and
/// read by observable counters when metrics are collected: six counter updates with tags cost about 10,000
/// instructions per request (each looks its tag set up in every listener's aggregator), the cell a few hundred
/// (bench/RESULTS.md, client keys). Refusals, rare, stay plain counters.
/// </summary>
public sealed class ClientMetrics
{
    /// <summary>The most distinct client labels.</summary>
    public const int MaxClientLabels = 100;

    private static readonly string[] TokenKinds = ["input", "output", "cache_read", "cache_write"];

    private readonly Counter<long> _refusals;
    private readonly Counter<long> _ledgerRows;
    private readonly ConcurrentDictionary<string, string> _labels = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Totals> _totals = new(StringComparer.Ordinal);
    private Func<LedgerStatus>? _ledger;

    /// <summary>Creates the instruments on <paramref name="metrics"/>'s meter.</summary>
    public ClientMetrics(RelayMetrics metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        var meter = metrics.Meter;
        meter.CreateObservableCounter("ccrelay_client_requests", ObserveRequests, "{request}", "Requests by client (clients[].name; none: through server.auth) and result.");
        meter.CreateObservableCounter("ccrelay_client_cost_usd", ObserveCost, "{USD}", "Estimated cost of answers by client, in US dollars.");
        meter.CreateObservableCounter("ccrelay_client_tokens", ObserveTokens, "{token}", "Tokens by client and kind: input, output, cache_read, cache_write.");
        _refusals = meter.CreateCounter<long>(
            "ccrelay_client_refusals", "{request}", "Requests refused by a client limit: rpm, itpm, otpm, max_concurrent, too_large, budget, model, provider, expired.");
        _ledgerRows = meter.CreateCounter<long>("ccrelay_ledger_rows", "{row}", "Usage ledger rows by outcome: written, dropped.");
        meter.CreateObservableGauge(
            "ccrelay_ledger_healthy", () => _ledger?.Invoke() is { Enabled: true } s ? [new Measurement<int>(s.Healthy ? 1 : 0)] : Array.Empty<Measurement<int>>(),
            "1", "1 while the usage ledger is written, 0 while writes fail (absent when the ledger is off).");
    }

    /// <summary>Reports the ledger's rows and health.</summary>
    public void Watch(IBatchedLedger ledger)
    {
        ArgumentNullException.ThrowIfNull(ledger);
        _ledger = () => ledger.Status;
        ledger.OnBatch = (written, dropped) =>
        {
            if (written > 0)
            {
                _ledgerRows.Add(written, new KeyValuePair<string, object?>("outcome", "written"));
            }

            if (dropped > 0)
            {
                _ledgerRows.Add(dropped, new KeyValuePair<string, object?>("outcome", "dropped"));
            }
        };
    }

    /// <summary>A refusal of a client's request (<paramref name="reason"/>: a fixed set).</summary>
    public void Refused(string client, string reason) =>
        _refusals.Add(1, new("client", Label(client)), new("reason", reason));

    /// <summary>A finished request of <paramref name="client"/> (<c>-</c>: none), with its usage and cost when known.</summary>
    public void Finished(string client, string result, Usage? usage, decimal? costUsd)
    {
        var label = Label(client);
        var totals = _totals.TryGetValue(label, out var found) ? found : _totals.GetOrAdd(label, static _ => new Totals());
        lock (totals.Gate)
        {
            CollectionsMarshal.GetValueRefOrAddDefault(totals.Requests, result, out _)++;
            if (costUsd is { } cost)
            {
                totals.CostUsd += cost;
                totals.Costed = true;
            }

            if (usage is not null)
            {
                totals.Tokens[0] += usage.InputTokens;
                totals.Tokens[1] += usage.OutputTokens;
                totals.Tokens[2] += usage.CacheReadTokens;
                totals.Tokens[3] += usage.CacheWriteTokens;
                totals.Counted = true;
            }
        }
    }

    private List<Measurement<long>> ObserveRequests()
    {
        var measurements = new List<Measurement<long>>();
        foreach (var (label, totals) in _totals)
        {
            lock (totals.Gate)
            {
                foreach (var (result, count) in totals.Requests)
                {
                    measurements.Add(new(count, new KeyValuePair<string, object?>("client", label), new KeyValuePair<string, object?>("result", result)));
                }
            }
        }

        return measurements;
    }

    private List<Measurement<double>> ObserveCost()
    {
        var measurements = new List<Measurement<double>>();
        foreach (var (label, totals) in _totals)
        {
            lock (totals.Gate)
            {
                if (totals.Costed)
                {
                    measurements.Add(new((double)totals.CostUsd, new KeyValuePair<string, object?>("client", label)));
                }
            }
        }

        return measurements;
    }

    private List<Measurement<long>> ObserveTokens()
    {
        var measurements = new List<Measurement<long>>();
        foreach (var (label, totals) in _totals)
        {
            lock (totals.Gate)
            {
                if (totals.Counted)
                {
                    for (var i = 0; i < TokenKinds.Length; i++)
                    {
                        measurements.Add(new(totals.Tokens[i], new KeyValuePair<string, object?>("client", label), new KeyValuePair<string, object?>("kind", TokenKinds[i])));
                    }
                }
            }
        }

        return measurements;
    }

    private string Label(string client)
    {
        if (client == "-")
        {
            return "none";
        }

        if (_labels.TryGetValue(client, out var label))
        {
            return label;
        }

        return _labels.Count >= MaxClientLabels ? "other" : _labels.GetOrAdd(client, client);
    }

    /// <summary>What one client label's finished requests added up to; locked (<see cref="Gate"/>) while it is added to or read.</summary>
    private sealed class Totals
    {
        /// <summary>Held while the totals are added to or read.</summary>
        public Lock Gate { get; } = new();

        /// <summary>Requests by result (a fixed set).</summary>
        public Dictionary<string, long> Requests { get; } = new(StringComparer.Ordinal);

        /// <summary>Input, output, cache-read and cache-write tokens (<see cref="TokenKinds"/>).</summary>
        public long[] Tokens { get; } = new long[4];

        public decimal CostUsd { get; set; }

        /// <summary>Whether a cost was ever added (no series before).</summary>
        public bool Costed { get; set; }

        /// <summary>Whether usage was ever added (no series before).</summary>
        public bool Counted { get; set; }
    }
}
