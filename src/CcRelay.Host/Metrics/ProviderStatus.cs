using CcRelay.Core;

namespace CcRelay.Host.Metrics;

/// <summary>
/// What the relay knows about one provider at a scrape: the source of <c>ccrelay_provider_up</c>,
/// <c>ccrelay_circuit_state</c> and <c>ccrelay_key_capacity_ratio</c> (see <see cref="RelayMetrics.ObserveProviders"/>).
/// </summary>
/// <param name="Provider">The provider's configured name.</param>
/// <param name="Up">Whether it may receive requests now (enabled, and its breaker would admit a request).</param>
/// <param name="CircuitState">One of <see cref="RelayMetrics.CircuitStates"/>: <c>closed</c>, <c>open</c>, <c>half_open</c>, <c>isolated</c>.</param>
/// <param name="Keys">Each key's remaining capacity; empty when the provider has no keys.</param>
public readonly record struct ProviderStatus(string Provider, bool Up, string CircuitState, IReadOnlyList<KeyCapacity> Keys)
{
    /// <summary>The live state of every configured provider (Core <c>RelayHealth.gauges</c> over one runtime).</summary>
    public static IReadOnlyList<ProviderStatus> Of(RelayRuntime runtime, TimeSpan now) =>
        [.. RelayHealth.gauges(runtime, now).Select(p => new ProviderStatus(
            p.Name,
            p.Up,
            p.Circuit,
            Array.ConvertAll(p.Keys, k => new KeyCapacity(k.KeyId, k.Ratio))))];
}
