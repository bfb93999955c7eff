using System.Diagnostics.Metrics;
using CcRelay.Core;

namespace CcRelay.Host.Shared;

/// <summary>The shared store's instruments, observed at scrape time (docs/observability.md, docs/scale-out.md).</summary>
internal static class SharedStateMetrics
{
    /// <summary>Registers <c>ccrelay_shared_state_up</c> and the publish, merge and drop counters on <paramref name="meter"/>.</summary>
    public static void Register(Meter meter, SharedStateService shared)
    {
        meter.CreateObservableGauge(
            "ccrelay_shared_state_up",
            () => shared.Link.IsConnected ? 1 : 0,
            "1",
            "1 while the relay shares its state through PostgreSQL (state.postgres), 0 while it runs on local state alone.");
        meter.CreateObservableGauge(
            "ccrelay_shared_state_config_agrees",
            () => shared.Agreement.Config is ConfigAgreement.Differs ? 0 : 1,
            "1",
            "0 while a live relay on the same store has other providers, clients or ledger.time_zone (docs/scale-out.md), else 1.");
        meter.CreateObservableGauge(
            "ccrelay_shared_state_clock_skew_seconds",
            () => shared.Agreement.Clock is { } clock ? [new Measurement<double>(clock.Skew.TotalSeconds)] : Array.Empty<Measurement<double>>(),
            "s",
            "PostgreSQL's clock minus this relay's, read every few seconds (absent before the first reading).");
        meter.CreateObservableCounter(
            "ccrelay_shared_state_published", () => shared.Counts.Published, "{message}", "Events and spend flushes this relay wrote to the shared store.");
        meter.CreateObservableCounter(
            "ccrelay_shared_state_merged", () => shared.Counts.Merged, "{flush}", "Spend flushes of other relays merged into this relay's budgets.");
        meter.CreateObservableCounter(
            "ccrelay_shared_spend_compactions", () => shared.Compactions.Runs, "{run}", "Compaction runs of ccrelay_spend this relay carried out (it held the lock and folded rows).");
        meter.CreateObservableCounter(
            "ccrelay_shared_spend_compacted_rows", () => shared.Compactions.RowsDeleted, "{row}", "Rows of ccrelay_spend this relay's compaction runs folded away.");
        meter.CreateObservableCounter(
            "ccrelay_shared_spend_compaction_failures", () => shared.Compactions.Failures, "{run}", "Compaction runs of ccrelay_spend that failed (nothing changed; tried again every minute).");
        meter.CreateObservableCounter(
            "ccrelay_shared_state_dropped", () => shared.Counts.Dropped, "{event}", "Events dropped because the queue was full while PostgreSQL was away.");
    }
}
