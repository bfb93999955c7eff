using CcRelay.Core;

namespace CcRelay.Host.Reload;

/// <summary>The result of one reload: the outcome, the changes applied (or the errors), and what triggered it.</summary>
public sealed record ReloadResult(
    ReloadOutcome Outcome,
    string Trigger,
    IReadOnlyList<ConfigChange> Changes,
    IReadOnlyList<ConfigIssue> Errors,
    IReadOnlyList<ConfigIssue> Warnings);
