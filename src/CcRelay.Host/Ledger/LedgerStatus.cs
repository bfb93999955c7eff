namespace CcRelay.Host.Ledger;

/// <summary>The ledger's state: whether it writes, what it wrote and dropped, its last problem (no secret in it).</summary>
public sealed record LedgerStatus(bool Enabled, bool Healthy, string? Path, long Written, long Dropped, string? Problem);
