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

/// <summary>What a usage report groups by.</summary>
public enum UsageGrouping
{
    /// <summary>By client name (<c>-</c>: through <c>server.auth</c>).</summary>
    Client,

    /// <summary>By the provider that answered.</summary>
    Provider,

    /// <summary>By the requested model.</summary>
    Model,

    /// <summary>By upstream key: <c>provider/key_id</c>.</summary>
    Key,

    /// <summary>By calendar day in the ledger's time zone.</summary>
    Day,
}

/// <summary>A usage report: rows that ended at or after <see cref="Since"/>, grouped by <see cref="By"/>.</summary>
public sealed record UsageQuery(UsageGrouping By, DateTimeOffset Since, TimeZoneInfo TimeZone);

/// <summary>One group of a usage report. <see cref="CostUsd"/> sums the known costs; <see cref="Unpriced"/> counts rows whose cost is unknown.</summary>
public sealed record UsageGroup(
    string Key,
    long Requests,
    long Errors,
    long InputTokens,
    long OutputTokens,
    long CacheReadTokens,
    long CacheWriteTokens,
    decimal CostUsd,
    long Unpriced);

/// <summary>The cost a client spent on a model in the 15 minutes from <see cref="Start"/>.</summary>
public sealed record SpendBucket(string Client, string Model, DateTimeOffset Start, decimal CostUsd);

/// <summary>The ledger's state: whether it writes, what it wrote and dropped, its last problem (no secret in it).</summary>
public sealed record LedgerStatus(bool Enabled, bool Healthy, string? Path, long Written, long Dropped, string? Problem);
