namespace CcRelay.Host.Ledger;

/// <summary>A usage report: rows that ended at or after <see cref="Since"/>, grouped by <see cref="By"/>.</summary>
public sealed record UsageQuery(UsageGrouping By, DateTimeOffset Since, TimeZoneInfo TimeZone);
