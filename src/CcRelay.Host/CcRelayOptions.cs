using CcRelay.Core;

namespace CcRelay.Host;

/// <summary>What <c>AddCcRelay</c> needs: the configuration to start with.</summary>
public sealed class CcRelayOptions
{
    /// <summary>The validated configuration. Defaults to the embedded Anthropic passthrough.</summary>
    public RelayConfig Config { get; set; } = CcRelay.Core.Config.defaults;

    /// <summary>
    /// The config file the relay was loaded from. When set, the relay reloads it when it changes (see
    /// <see cref="WatchConfig"/>) and on <see cref="Reload.ConfigReloader.Reload"/>.
    /// </summary>
    public string? ConfigPath { get; set; }

    /// <summary>How the configuration was found, for logs.</summary>
    public string? ConfigSource { get; set; }

    /// <summary>Watch <see cref="ConfigPath"/>'s directory and reload on change (default true).</summary>
    public bool WatchConfig { get; set; } = true;

    /// <summary>Reload on SIGHUP (default false for an embedded relay; the standalone server turns it on).</summary>
    public bool ReloadOnSighup { get; set; }

    /// <summary>How long file events must be quiet before a reload (editors write in several steps).</summary>
    public TimeSpan ReloadDebounce { get; set; } = TimeSpan.FromMilliseconds(150);

    /// <summary>Command-line overrides, applied again to every reloaded config (so a reload never drops them).</summary>
    public ConfigOverrides Overrides { get; set; } = ConfigOverrides.None;

    /// <summary>
    /// How long finished requests wait to be accounted for (metrics, request line) in one batch, off their
    /// threads (<see cref="Http.RequestAccounting"/>); <see cref="Timeout.InfiniteTimeSpan"/>: only when
    /// scraped or stopped (tests).
    /// </summary>
    internal TimeSpan AccountingInterval { get; set; } = Http.RequestAccounting.DefaultInterval;

    /// <summary>How long a converted stream (translated, or Bedrock's event stream) may be silent before the relay sends a keep-alive (tests shorten it); null: <c>server.stream_keepalive_ms</c>.</summary>
    internal TimeSpan? PingInterval { get; set; }

    /// <summary>Reads environment variables for <c>${VAR}</c> expansion on reload.</summary>
    public Func<string, string?> Environment { get; set; } = System.Environment.GetEnvironmentVariable;
}
