using CcRelay.Core;

namespace CcRelay.Host.Shared;

/// <summary>The last config-agreement and clock check (shown in <c>/health</c> as <c>shared_agreement</c>, and by the metrics).</summary>
/// <param name="Fingerprint">This relay's fingerprint of <c>providers</c>, <c>clients</c> and <c>ledger.time_zone</c> (empty before the first check).</param>
/// <param name="Config">How the live peers' fingerprints compare.</param>
/// <param name="Clock">This relay's clock against the database's; null before the first check.</param>
public sealed record AgreementReport(string Fingerprint, ConfigAgreement Config, ClockSkew? Clock);
