namespace CcRelay.Host.Metrics;

/// <summary>One key's remaining capacity, for <c>ccrelay_key_capacity_ratio</c>.</summary>
/// <param name="KeyId">The key's short hash id (never the key itself).</param>
/// <param name="Ratio">Remaining capacity from 0 (exhausted or cooling down) to 1 (unused), the tightest of its limits.</param>
public readonly record struct KeyCapacity(string KeyId, double Ratio);
