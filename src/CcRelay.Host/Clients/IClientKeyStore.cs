using CcRelay.Core;

namespace CcRelay.Host.Clients;

/// <summary>
/// Where the runtime client-key changes (<c>cc-relay clients add|revoke|rotate</c>, the management API's
/// <c>AddClient</c>, <c>RevokeClient</c>, <c>RotateClient</c>) are kept, so that they survive a restart and a config
/// reload. The local implementation is <see cref="SqliteClientKeyStore"/> (a table in the ledger's SQLite file); a
/// shared one (PostgreSQL) lets several relays hold the same keys and spread a revocation at once.
/// </summary>
/// <remarks>
/// The contract, which every implementation keeps:
/// <list type="bullet">
/// <item><see cref="LoadAsync"/> answers every change ever appended, oldest first, in the order they were appended
/// (the relay replays the whole log over the config's <c>clients[]</c>: <see cref="ClientKeyChanges.overlay"/>). A
/// change is never edited or deleted. A change of a kind the implementation does not know is skipped.</item>
/// <item><see cref="AppendAsync"/> stores its changes durably and atomically (all or none) before it returns, and
/// throws when it cannot: the caller then applies nothing and reports the failure. The changes hold only key
/// digests (SHA-256), never a key.</item>
/// <item><see cref="Changed"/> is raised after the stored log may have grown: by this relay's append, or by another
/// relay's (a shared store learns of those, e.g., by LISTEN/NOTIFY). It may be raised on any thread, more than once,
/// or spuriously; handlers return at once. The relay answers it by calling <see cref="LoadAsync"/> and applying
/// the log (<see cref="ClientKeyRegistry"/>), so a revocation made on one relay takes effect on the others as soon
/// as their store raises it.</item>
/// </list>
/// Register another implementation as the <see cref="IClientKeyStore"/> singleton before <c>AddCcRelay</c>; the
/// relay uses it instead of the SQLite one.
/// </remarks>
public interface IClientKeyStore
{
    /// <summary>Every change, oldest first.</summary>
    Task<IReadOnlyList<ClientKeyChange>> LoadAsync(CancellationToken cancellationToken = default);

    /// <summary>Stores <paramref name="changes"/> (all or none), then raises <see cref="Changed"/>; throws when it cannot.</summary>
    Task AppendAsync(IReadOnlyList<ClientKeyChange> changes, CancellationToken cancellationToken = default);

    /// <summary>Raised after the stored log may have grown (here or on another relay).</summary>
    event EventHandler? Changed;
}
