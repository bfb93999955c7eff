using Microsoft.Extensions.Logging;

namespace CcRelay.Host;

/// <summary>How <see cref="CcRelayServer"/> builds a standalone relay.</summary>
public sealed class CcRelayServerOptions
{
    /// <summary>Where the configuration came from, for logs and <c>/health</c>; null for the embedded default.</summary>
    public string? ConfigSource { get; init; }

    /// <summary>Extra logging setup, e.g. a test's capturing provider. Runs after the relay's own.</summary>
    public Action<ILoggingBuilder>? ConfigureLogging { get; init; }
}
