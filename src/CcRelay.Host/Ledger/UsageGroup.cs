namespace CcRelay.Host.Ledger;

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
