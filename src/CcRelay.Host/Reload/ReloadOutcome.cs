namespace CcRelay.Host.Reload;

/// <summary>What a reload did.</summary>
public enum ReloadOutcome
{
    /// <summary>The new config was valid and is now in force for new requests.</summary>
    Applied,

    /// <summary>The new config was valid and identical to the running one.</summary>
    Unchanged,

    /// <summary>The new config was invalid; the running one stays, and every error was logged.</summary>
    Rejected,

    /// <summary>
    /// The new config was valid but differs only in settings a restart applies (a <c>grpc:</c> section, TLS files,
    /// listeners): nothing was applied, the running config stays, and the changes say what needs a restart.
    /// </summary>
    RestartRequired,
}
