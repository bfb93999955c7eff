using CcRelay.Management.V1;

namespace CcRelay.Cli.Tui;

/// <summary>A provider's health as the dashboard shows it: a symbol and a word (readable without colour) and a tone.</summary>
internal sealed record Health(string Symbol, string Word, Tone Tone, int Rank)
{
    /// <summary>The circuit admits and little fails.</summary>
    public static readonly Health Ok = new("●", "ok", Tone.Good, 0);

    /// <summary>The circuit admits, but requests fail (<see cref="ProviderHealth.DegradedErrorRatio"/>) or the last probe failed.</summary>
    public static readonly Health Degraded = new("▲", "warn", Tone.Warn, 1);

    /// <summary>Half open: one probe request decides.</summary>
    public static readonly Health Probing = new("◐", "half", Tone.Warn, 2);

    /// <summary>The circuit is open: nothing is sent.</summary>
    public static readonly Health Down = new("✖", "down", Tone.Bad, 3);

    /// <summary>Disabled by the operator (or by the config): never planned, never probed.</summary>
    public static readonly Health Off = new("○", "off", Tone.Dim, 4);

    /// <summary>The symbol and the word, as the table prints them.</summary>
    public string Label => $"{Symbol} {Word}";
}

/// <summary>Classifies a provider's statistics into a <see cref="Health"/>; orders and formats the table's cells.</summary>
internal static class ProviderHealth
{
    /// <summary>An error ratio over the window from which a closed circuit's provider shows as degraded (5 %).</summary>
    public const double DegradedErrorRatio = 0.05;

    /// <summary>
    /// The provider's health. Its failed attempts caught by a failover count against it (the relay counts them,
    /// <see cref="ProviderStats.FailedAttempts"/>); <paramref name="failedOver"/>: those seen among the recent
    /// requests kept, for a relay that does not count them yet.
    /// </summary>
    public static Health Of(ProviderStats provider, int failedOver = 0) =>
        provider.OperatorDisabled || provider.Circuit is "disabled" or "config_disabled" ? Health.Off
        : provider.Circuit == "open" ? Health.Down
        : provider.Circuit == "half_open" ? Health.Probing
        : ErrorRatio(provider) >= DegradedErrorRatio || failedOver > 0 || provider.FailedAttempts > 0 || provider.Probe == "failed" || KeysSpent(provider) ? Health.Degraded
        : Health.Ok;

    /// <summary>
    /// Errors ÷ attempts over the window (its failed attempts caught by a failover included); 0 without any.
    /// (A relay that does not count attempts yet: errors ÷ requests.)
    /// </summary>
    public static double ErrorRatio(ProviderStats provider)
    {
        var attempts = Math.Max(provider.Attempts, provider.Requests);
        return attempts == 0 ? 0 : Math.Min(1, (double)provider.Errors / attempts);
    }

    /// <summary>Every key of the pool has no capacity left (spent, cooling down or revoked); false without keys.</summary>
    public static bool KeysSpent(ProviderStats provider) =>
        provider.Keys.Count > 0 && provider.Keys.All(k => k.Capacity <= 0);

    /// <summary>The pool's mean capacity (0–1); null for a provider without keys (the client's credentials pass through).</summary>
    public static double? Capacity(ProviderStats provider) =>
        provider.Keys.Count == 0 ? null : provider.Keys.Average(k => Math.Clamp(k.Capacity, 0, 1));

    /// <summary>
    /// The circuit cell: <c>closed</c>, <c>open 12s</c> (when the break ends), <c>half</c>, <c>off</c> (the
    /// operator's switch) or <c>cfg off</c> (the config disables it).
    /// </summary>
    public static string Circuit(ProviderStats provider) => provider.Circuit switch
    {
        "open" when provider.CircuitChangesInMs > 0 => "open " + TuiFormat.Duration(TimeSpan.FromMilliseconds(provider.CircuitChangesInMs)),
        "half_open" => "half",
        "disabled" => "off",
        "config_disabled" => "cfg off",
        var other => other,
    };

    /// <summary>The enabled cell: <c>on</c>, or <c>off</c> when the operator or the config disabled it.</summary>
    public static string Enabled(ProviderStats provider) =>
        provider.OperatorDisabled || provider.Circuit == "config_disabled" ? "off" : "on";

    /// <summary>The providers in <paramref name="order"/>; ties (and <see cref="SortOrder.Config"/>) keep the config's order.</summary>
    public static IReadOnlyList<ProviderStats> Sort(IEnumerable<ProviderStats> providers, SortOrder order)
    {
        var indexed = providers.Select((p, i) => (Provider: p, Index: i));
        var sorted = order switch
        {
            SortOrder.Traffic => indexed.OrderByDescending(x => x.Provider.RequestsPerSecond).ThenBy(x => x.Index),
            SortOrder.Errors => indexed.OrderByDescending(x => ErrorRatio(x.Provider)).ThenByDescending(x => x.Provider.Errors).ThenBy(x => x.Index),
            SortOrder.Latency => indexed.OrderByDescending(x => x.Provider.LatencyMs?.P99 ?? 0).ThenBy(x => x.Index),
            SortOrder.Health => indexed.OrderByDescending(x => Of(x.Provider).Rank).ThenBy(x => x.Index),
            _ => indexed.OrderBy(x => x.Index),
        };
        return [.. sorted.Select(x => x.Provider)];
    }
}

/// <summary>How the provider table is ordered; <c>s</c> cycles through them.</summary>
internal enum SortOrder
{
    Config,
    Health,
    Traffic,
    Errors,
    Latency,
}
