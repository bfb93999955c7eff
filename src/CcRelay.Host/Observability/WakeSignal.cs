namespace CcRelay.Host.Observability;

/// <summary>
/// A wake-up for a thread of the relay's own that sleeps between batches (<see cref="RequestAccounting"/>): one
/// <see cref="Set"/> ends one <see cref="Wait"/> (a Set with no waiter is kept for the next Wait, repeated Sets count
/// once), and waiting never spins.
/// NOTE: why not <see cref="SemaphoreSlim"/>: its <c>Wait</c> spins before it blocks — up to 140 rounds of
/// <c>SpinWait</c>, most of them <c>sched_yield</c> — every time the accounting thread goes back to waiting, which is
/// right after a request ended, so the spin ran while the client's next request was being relayed (traced with
/// <c>perf</c>: 8.5 context switches of the accounting thread inside each request's time to first event, and ~10 % of
/// the relay's CPU in <c>SemaphoreSlim.WaitCore</c> at one stream at a time; bench/RESULTS.md, "Time to first event").
/// <see cref="Monitor.Wait(object, TimeSpan)"/> blocks at once.
/// </summary>
internal sealed class WakeSignal
{
    private readonly object _gate = new();
    private bool _set;

    /// <summary>Wakes the waiter, or the next one when none waits.</summary>
    public void Set()
    {
        lock (_gate)
        {
            _set = true;
            Monitor.Pulse(_gate);
        }
    }

    /// <summary>
    /// Waits until <see cref="Set"/> (true) or until <paramref name="timeout"/> passes (false); <see cref="Timeout.InfiniteTimeSpan"/>
    /// waits for a Set only. The Set is consumed.
    /// </summary>
    public bool Wait(TimeSpan timeout)
    {
        lock (_gate)
        {
            if (!_set)
            {
                _ = Monitor.Wait(_gate, timeout);
            }

            var woken = _set;
            _set = false;
            return woken;
        }
    }
}
