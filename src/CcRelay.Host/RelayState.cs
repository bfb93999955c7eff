using CcRelay.Core;

namespace CcRelay.Host;

/// <summary>Holds the current <see cref="RelaySnapshot"/>; swapping it is atomic.</summary>
public sealed class RelayState
{
    private RelaySnapshot _current;

    /// <summary>Starts with the given configuration.</summary>
    public RelayState(RelayConfig config) => _current = new RelaySnapshot(config);

    /// <summary>The snapshot new requests use.</summary>
    public RelaySnapshot Current => Volatile.Read(ref _current);

    /// <summary>Replaces the configuration for new requests; requests in flight keep theirs.</summary>
    public RelaySnapshot Swap(RelayConfig config)
    {
        var next = new RelaySnapshot(config);
        Volatile.Write(ref _current, next);
        return next;
    }
}
