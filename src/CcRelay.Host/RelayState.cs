using CcRelay.Core;

namespace CcRelay.Host;

/// <summary>
/// Holds the current <see cref="RelaySnapshot"/>; swapping it is atomic. The snapshot's effective clients are the
/// config's <c>clients[]</c> with the runtime client-key changes laid over them (<see cref="RuntimeClientKeys.Overlay"/>):
/// a reload keeps the changes, a change keeps the config.
/// </summary>
public sealed class RelayState
{
    private readonly Lock _gate = new();
    private RelaySnapshot _current;
    private IReadOnlyList<ClientKeyChange> _clientKeyChanges = [];

    /// <summary>Starts with the given configuration.</summary>
    public RelayState(RelayConfig config) => _current = new RelaySnapshot(config);

    /// <summary>The snapshot new requests use.</summary>
    public RelaySnapshot Current => Volatile.Read(ref _current);

    /// <summary>The runtime client-key changes in effect (oldest first).</summary>
    public IReadOnlyList<ClientKeyChange> ClientKeyChanges => Volatile.Read(ref _clientKeyChanges);

    /// <summary>Replaces the configuration for new requests; requests in flight keep theirs.</summary>
    public RelaySnapshot Swap(RelayConfig config)
    {
        lock (_gate)
        {
            var next = new RelaySnapshot(config, RuntimeClientKeys.Overlay(config.Clients, _clientKeyChanges));
            Volatile.Write(ref _current, next);
            return next;
        }
    }

    /// <summary>
    /// Replaces the runtime client-key changes (the store's whole log) for new requests; requests in flight keep
    /// the client they were admitted as.
    /// </summary>
    public RelaySnapshot SetClientKeyChanges(IReadOnlyList<ClientKeyChange> changes)
    {
        ArgumentNullException.ThrowIfNull(changes);
        lock (_gate)
        {
            var config = Current.Config;
            var next = new RelaySnapshot(config, RuntimeClientKeys.Overlay(config.Clients, changes));
            Volatile.Write(ref _clientKeyChanges, changes);
            Volatile.Write(ref _current, next);
            return next;
        }
    }
}
