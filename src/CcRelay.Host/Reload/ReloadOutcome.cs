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
}
