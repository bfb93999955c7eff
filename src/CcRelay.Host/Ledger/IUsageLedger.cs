namespace CcRelay.Host.Ledger;

/// <summary>
/// Where completed requests are recorded and usage is read back: an embedded SQLite file (<see cref="SqliteLedger"/>)
/// by default. A shared store (PostgreSQL, issue 21 §4) implements the same interface; the spend the client budgets
/// are rebuilt from at start-up comes through <see cref="SpendSince"/>, so the budgets follow whichever store is used.
/// </summary>
public interface IUsageLedger : IAsyncDisposable
{
    /// <summary>
    /// Queues a row for the next flush; never blocks and never throws. False when the row was dropped (the queue is
    /// full, or the ledger is off); the drop is counted and reported, and the request is not affected.
    /// </summary>
    bool Append(LedgerRow row);

    /// <summary>Writes every row queued before the call (tests, <c>GetUsage</c>, shutdown). Never throws.</summary>
    Task FlushAsync(CancellationToken cancellationToken = default);

    /// <summary>Usage grouped as <paramref name="query"/> asks, from the rows written so far.</summary>
    IReadOnlyList<UsageGroup> Query(UsageQuery query);

    /// <summary>
    /// The cost recorded per client and model in 15-minute buckets that start at or after <paramref name="since"/>
    /// (every budget period starts on a 15-minute boundary in every time zone); what budgets are rebuilt from.
    /// </summary>
    IReadOnlyList<SpendBucket> SpendSince(DateTimeOffset since);

    /// <summary>The ledger's health: what the relay reports in logs, metrics and <c>/health</c>.</summary>
    LedgerStatus Status { get; }
}
