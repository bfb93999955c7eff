using System.Diagnostics.Metrics;

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
        meter.CreateObservableCounter(
            "ccrelay_shared_state_published", () => shared.Counts.Published, "{message}", "Events and spend flushes this relay wrote to the shared store.");
        meter.CreateObservableCounter(
            "ccrelay_shared_state_merged", () => shared.Counts.Merged, "{flush}", "Spend flushes of other relays merged into this relay's budgets.");
        meter.CreateObservableCounter(
            "ccrelay_shared_state_dropped", () => shared.Counts.Dropped, "{event}", "Events dropped because the queue was full while PostgreSQL was away.");
    }
}
