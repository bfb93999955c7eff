namespace CcRelay.Host.Ledger;

/// <summary>The ledger when <c>ledger.enabled: false</c>: nothing is recorded, usage reports are empty.</summary>
public sealed class NullLedger : IUsageLedger
{
    /// <summary>The one instance.</summary>
    public static NullLedger Instance { get; } = new();

    /// <inheritdoc/>
    public LedgerStatus Status { get; } = new(false, true, null, 0, 0, null);

    /// <inheritdoc/>
    public bool Append(LedgerRow row) => false;

    /// <inheritdoc/>
    public Task FlushAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

    /// <inheritdoc/>
    public IReadOnlyList<UsageGroup> Query(UsageQuery query) => [];

    /// <inheritdoc/>
    public IReadOnlyList<SpendBucket> SpendSince(DateTimeOffset since) => [];

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
