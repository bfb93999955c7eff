using CcRelay.Core;
using Microsoft.FSharp.Collections;

namespace CcRelay.Host;

/// <summary>
/// One immutable view of the relay's configuration and everything derived from it. A request reads
/// one snapshot at its start and finishes on it, whatever reloads happen meanwhile.
/// </summary>
public sealed class RelaySnapshot
{
    /// <summary>Derives a snapshot from a validated configuration.</summary>
    public RelaySnapshot(RelayConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        Config = config;
        Auth = Core.Auth.compile(config.Server.Auth);
        Candidates = Upstream.candidates(config);
        Catalogue = Models.catalogue(config);
    }

    /// <summary>The validated configuration.</summary>
    public RelayConfig Config { get; }

    /// <summary>The compiled client-auth policy.</summary>
    public AuthPolicy Auth { get; }

    /// <summary>The providers a request may go to, in order.</summary>
    public FSharpList<ProviderConfig> Candidates { get; }

    /// <summary>The <c>/v1/models</c> catalogue.</summary>
    public FSharpList<ModelInfo> Catalogue { get; }
}
