namespace CcRelay.Host.Shared;

/// <summary>
/// This relay process's id in the shared store: host, process and a random part (a restarted relay is a new one). One
/// per process, registered once: the ledger's rows, the spend flushes, the heartbeat, pins and the config agreement
/// all carry the same id (docs/scale-out.md).
/// </summary>
public sealed record RelayIdentity(string Id)
{
    /// <summary>A new id for this process.</summary>
    public static RelayIdentity New() => new($"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}");
}
