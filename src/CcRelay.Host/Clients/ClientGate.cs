using System.Collections.Concurrent;
using CcRelay.Core;
using CcRelay.Host.Ledger;
using Microsoft.FSharp.Core;

namespace CcRelay.Host.Clients;

/// <summary>
/// The live limits and spend of each client (<c>clients[]</c>): Core decides (<see cref="ClientLimits.admit"/>,
/// <see cref="ClientLimits.settle"/>), this class holds each client's state and swaps it under a per-client lock
/// (the transition is pure and short). State is keyed by client name and survives reloads
/// (<see cref="ClientLimits.relimit"/>); at start-up, budgets are rebuilt from the ledger.
/// With <c>state.postgres</c> (docs/scale-out.md), <see cref="OnAdmitted"/> and <see cref="OnSettled"/> hand each
/// admission and settlement to the shared store, which publishes them as additive deltas and merges the other relays'
/// into these cells (<see cref="Merge"/>); Core's transitions stay as they are.
/// </summary>
public sealed class ClientGate
{
    private readonly ConcurrentDictionary<string, Cell> _cells = new(StringComparer.Ordinal);
    private readonly TimeProvider _timeProvider;
    private readonly TimeZoneInfo _zone;
    private readonly long _start;

    /// <summary>
    /// A gate for <paramref name="config"/>'s clients, in the time zone of its <c>ledger</c> (fixed until restart), with
    /// its budgets rebuilt from <paramref name="ledger"/>; <paramref name="clients"/>: the effective clients (with the
    /// runtime client-key changes), the config's when null.
    /// </summary>
    public ClientGate(RelayConfig config, IUsageLedger ledger, TimeProvider timeProvider, IEnumerable<ClientConfig>? clients = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(ledger);
        _timeProvider = timeProvider;
        _zone = config.Ledger.TimeZone;
        _start = timeProvider.GetTimestamp();
        Rebuild(clients ?? config.Clients, ledger);
    }

    private TimeSpan Now => _timeProvider.GetElapsedTime(_start);

    /// <summary>Called after a request was admitted, outside its cell's lock: the shared store's pending spend.</summary>
    public Action<ClientConfig, ClientTicket>? OnAdmitted { get; set; }

    /// <summary>Called after a request was settled with its cost (null: the estimate stands), outside the cell's lock.</summary>
    public Action<ClientConfig, ClientTicket, decimal?>? OnSettled { get; set; }

    /// <summary>Adds what other relays spent and reserved (<see cref="SharedSpend.apply"/>) to a client's cell.</summary>
    public void Merge(ClientConfig client, IEnumerable<SpendEntry> spent, IEnumerable<ReservedLevel> reserved)
    {
        var cell = CellOf(client);
        lock (cell)
        {
            cell.State = SharedSpend.apply(_zone, cell.Config, _timeProvider.GetUtcNow(), spent, reserved, cell.State);
        }
    }

    /// <summary>Admits a request of <paramref name="client"/> or says why not; an admitted one must be settled once.</summary>
    public FSharpResult<ClientTicket, ClientRefusal> Admit(ClientConfig client, ClientDemand demand)
    {
        var cell = CellOf(client);
        FSharpResult<ClientTicket, ClientRefusal> result;
        lock (cell)
        {
            (result, var next) = ClientLimits.admit(_zone, cell.Config, Now, _timeProvider.GetUtcNow(), demand, cell.State);
            cell.State = next;
        }

        if (result.IsOk && OnAdmitted is { } admitted)
        {
            // NOTE: outside the cell's lock: every request of the client takes that lock, so it is held for Core's
            // transition only
            admitted(client, result.ResultValue);
        }

        return result;
    }

    /// <summary>
    /// Settles an admitted request with what it really used and cost (null: unknown, the estimate stands). It settles
    /// under the client's config now (a reload may have come since its admission): the ticket names its budgets by
    /// identity, and <paramref name="client"/> (the config it was admitted under) only finds the client's cell.
    /// </summary>
    public void Settle(ClientConfig client, ClientTicket ticket, Usage? usage, decimal? costUsd)
    {
        ArgumentNullException.ThrowIfNull(client);
        var cell = _cells.TryGetValue(client.Name, out var existing) ? existing : CellOf(client);
        lock (cell)
        {
            cell.State = cell.State.Settle(_zone, cell.Config, Now, _timeProvider.GetUtcNow(), ticket, usage, costUsd);
        }

        OnSettled?.Invoke(client, ticket, costUsd);
    }

    /// <summary>A client's spend per budget now (tests, reports).</summary>
    public IReadOnlyList<Spend> SpendOf(ClientConfig client)
    {
        var cell = CellOf(client);
        lock (cell)
        {
            cell.State = ClientLimits.rollAll(_zone, cell.Config, _timeProvider.GetUtcNow(), cell.State);
            return cell.State.Spend;
        }
    }

    /// <summary>The cell of a client, made fresh or carried over to a reloaded config of the same name.</summary>
    private Cell CellOf(ClientConfig client)
    {
        var cell = _cells.GetOrAdd(client.Name, static (_, s) => new Cell(s.client, ClientLimits.fresh(s.zone, s.client, s.now, s.wall)),
            (client, zone: _zone, now: Now, wall: _timeProvider.GetUtcNow()));
        if (!ReferenceEquals(cell.Config, client))
        {
            lock (cell)
            {
                if (!ReferenceEquals(cell.Config, client))
                {
                    // a new key alone (a rotation, a grace-period key of the same client) changes nothing here
                    if (!ClientLimits.sameLimits(cell.Config, client))
                    {
                        cell.State = ClientLimits.relimit(_zone, cell.Config, client, Now, _timeProvider.GetUtcNow(), cell.State);
                    }

                    cell.Config = client;
                }
            }
        }

        return cell;
    }

    /// <summary>Adds the spend of the budgets' current periods recorded in the ledger.</summary>
    private void Rebuild(IEnumerable<ClientConfig> clients, IUsageLedger ledger)
    {
        var wall = _timeProvider.GetUtcNow();
        var budgeted = clients.Where(c => !c.Budgets.IsEmpty).DistinctBy(c => c.Name, StringComparer.Ordinal).ToList();
        if (budgeted.Count == 0)
        {
            return;
        }

        var since = budgeted
            .SelectMany(c => c.Budgets)
            .Select(b => BudgetPeriods.startOf(_zone, b.Period, wall))
            .Min();
        var byName = budgeted.ToDictionary(c => c.Name, StringComparer.Ordinal);
        foreach (var bucket in ledger.SpendSince(since))
        {
            if (byName.TryGetValue(bucket.Client, out var client))
            {
                var cell = CellOf(client);
                lock (cell)
                {
                    cell.State = ClientLimits.restore(_zone, client, wall, bucket.Model, bucket.Start, bucket.CostUsd, cell.State);
                }
            }
        }
    }

    /// <summary>One client's config and state; locked while a transition runs.</summary>
    private sealed class Cell(ClientConfig config, ClientState state)
    {
        public ClientConfig Config { get; set; } = config;

        public ClientState State { get; set; } = state;
    }
}
