using Microsoft.Extensions.Logging;

namespace CcRelay.Host;

/// <summary>How <see cref="CcRelayServer"/> builds a standalone relay.</summary>
public sealed class CcRelayServerOptions
{
    /// <summary>Where the configuration came from, for logs and <c>/health</c>; null for the embedded default.</summary>
    public string? ConfigSource { get; init; }

    /// <summary>
    /// Run Kestrel's I/O continuations inline instead of queueing them to the thread pool (fewer thread hops
    /// per request). Safe for the standalone relay because none of its handlers block; default true.
    /// </summary>
    public bool InlineScheduling { get; init; } = true;

    /// <summary>Extra logging setup, e.g. a test's capturing provider. Runs after the relay's own.</summary>
    public Action<ILoggingBuilder>? ConfigureLogging { get; init; }
}
