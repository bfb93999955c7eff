using CcRelay.Core;

namespace CcRelay.Host;

/// <summary>What <c>AddCcRelay</c> needs: the configuration to start with.</summary>
public sealed class CcRelayOptions
{
    /// <summary>The validated configuration. Defaults to the embedded Anthropic passthrough.</summary>
    public RelayConfig Config { get; set; } = CcRelay.Core.Config.defaults;

    /// <summary>Where the configuration was read from, if from a file (shown by <c>/health</c> and logs).</summary>
    public string? ConfigPath { get; set; }
}
