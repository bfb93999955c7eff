using CcRelay.Core;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host;

/// <summary>How <see cref="CcRelayServer"/> builds a standalone relay.</summary>
public sealed class CcRelayServerOptions
{
    /// <summary>How the configuration was found, for logs; null for the embedded default.</summary>
    public string? ConfigSource { get; init; }

    /// <summary>The config file to reload from (on change and on SIGHUP); null when there is none.</summary>
    public string? ConfigPath { get; init; }

    /// <summary>Command-line overrides, applied again to every reloaded config.</summary>
    public ConfigOverrides Overrides { get; init; } = ConfigOverrides.None;

    /// <summary>
    /// Run Kestrel's I/O continuations inline instead of queueing them to the thread pool (fewer thread hops
    /// per request). Safe for the standalone relay because none of its handlers block; default true.
    /// </summary>
    public bool InlineScheduling { get; init; } = true;

    /// <summary>
    /// Return the garbage of a burst to the system once the relay goes quiet (<see cref="IdleMemoryReturner"/>):
    /// one full collection after at least 8 MB allocated, when a whole second passed with no request in flight.
    /// <c>cc-relay serve</c> sets it; default false, so an application that builds a relay here keeps its GC to itself.
    /// </summary>
    public bool ReturnIdleMemory { get; init; }

    /// <summary>
    /// The clock every decision is made on (breakers, key pools, timings); null for <see cref="TimeProvider.System"/>.
    /// </summary>
    public TimeProvider? TimeProvider { get; init; }

    /// <summary>Reads an environment variable (null when unset); null: the process's environment (<see cref="CcRelayOptions.Environment"/>).</summary>
    public Func<string, string?>? Environment { get; init; }

    /// <summary>Extra logging setup, e.g. a test's capturing provider. Runs after the relay's own.</summary>
    public Action<ILoggingBuilder>? ConfigureLogging { get; init; }

    /// <summary>See <see cref="CcRelayOptions.WatchConfig"/> (tests: a reload only when asked for).</summary>
    internal bool WatchConfig { get; init; } = true;

    /// <summary>See <see cref="CcRelayOptions.AccountingInterval"/> (tests).</summary>
    internal TimeSpan? AccountingInterval { get; init; }

    /// <summary>See <see cref="CcRelayOptions.PingInterval"/> (tests).</summary>
    internal TimeSpan? PingInterval { get; init; }
}
