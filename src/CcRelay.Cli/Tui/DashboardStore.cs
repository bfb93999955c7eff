namespace CcRelay.Cli.Tui;

/// <summary>
/// The dashboard's one mutable cell: the current <see cref="DashboardState"/>, replaced by pure transitions from
/// the gRPC streams' tasks and the terminal's thread. <see cref="Version"/> grows with each change, so the terminal
/// redraws only when something changed.
/// </summary>
internal sealed class DashboardStore(DashboardState initial)
{
    private readonly Lock _gate = new();
    private DashboardState _state = initial;
    private long _version;

    public DashboardState Current
    {
        get
        {
            lock (_gate)
            {
                return _state;
            }
        }
    }

    public long Version => Interlocked.Read(ref _version);

    public void Update(Func<DashboardState, DashboardState> transition)
    {
        lock (_gate)
        {
            _state = transition(_state);
        }

        Interlocked.Increment(ref _version);
    }
}
