using CcRelay.Core;

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

/// <summary>The result of one reload: the outcome, the changes applied (or the errors), and what triggered it.</summary>
public sealed record ReloadResult(
    ReloadOutcome Outcome,
    string Trigger,
    IReadOnlyList<ConfigChange> Changes,
    IReadOnlyList<ConfigIssue> Errors,
    IReadOnlyList<ConfigIssue> Warnings);
