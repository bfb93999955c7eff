using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
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
/// </summary>
public sealed class ClientMetrics
{
    /// <summary>The most distinct client labels.</summary>
    public const int MaxClientLabels = 100;

    private readonly Counter<long> _requests;
    private readonly Counter<double> _cost;
    private readonly Counter<long> _tokens;
    private readonly Counter<long> _refusals;
    private readonly Counter<long> _ledgerRows;
    private readonly ConcurrentDictionary<string, string> _labels = new(StringComparer.Ordinal);
    private Func<LedgerStatus>? _ledger;

    /// <summary>Creates the instruments on <paramref name="metrics"/>'s meter.</summary>
    public ClientMetrics(RelayMetrics metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        var meter = metrics.Meter;
        _requests = meter.CreateCounter<long>("ccrelay_client_requests", "{request}", "Requests by client (clients[].name; none: through server.auth) and result.");
        _cost = meter.CreateCounter<double>("ccrelay_client_cost_usd", "{USD}", "Estimated cost of answers by client, in US dollars.");
        _tokens = meter.CreateCounter<long>("ccrelay_client_tokens", "{token}", "Tokens by client and kind: input, output, cache_read, cache_write.");
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
        _requests.Add(1, new("client", label), new("result", result));
        if (costUsd is { } cost)
        {
            _cost.Add((double)cost, new KeyValuePair<string, object?>("client", label));
        }

        if (usage is not null && _tokens.Enabled)
        {
            _tokens.Add(usage.InputTokens, new("client", label), new("kind", "input"));
            _tokens.Add(usage.OutputTokens, new("client", label), new("kind", "output"));
            _tokens.Add(usage.CacheReadTokens, new("client", label), new("kind", "cache_read"));
            _tokens.Add(usage.CacheWriteTokens, new("client", label), new("kind", "cache_write"));
        }
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
}
