using CcRelay.Host.Observability;

namespace CcRelay.Host.Tests.Observability;

/// <summary>
/// The accounting thread's wake-up: one Set ends one Wait, a Set with nobody waiting is kept for the next Wait, repeated
/// Sets count once, and a Wait without a Set ends at its timeout.
/// </summary>
public sealed class WakeSignalTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    [Fact]
    public void A_wait_without_a_set_ends_at_its_timeout_unwoken()
    {
        var signal = new WakeSignal();

        Assert.False(signal.Wait(TimeSpan.FromMilliseconds(20)));
    }

    [Fact]
    public void A_set_before_the_wait_is_kept_for_it_and_consumed_by_it()
    {
        var signal = new WakeSignal();
        signal.Set();

        Assert.True(signal.Wait(Bound));
        Assert.False(signal.Wait(TimeSpan.Zero));
    }

    [Fact]
    public void Repeated_sets_wake_one_wait()
    {
        var signal = new WakeSignal();
        signal.Set();
        signal.Set();

        Assert.True(signal.Wait(Bound));
        Assert.False(signal.Wait(TimeSpan.FromMilliseconds(20)));
    }

    [Fact]
    public async Task A_set_wakes_a_thread_that_waits_without_a_timeout()
    {
        var signal = new WakeSignal();
        var waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var woken = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            waiting.SetResult();
            woken.SetResult(signal.Wait(Timeout.InfiniteTimeSpan));
        })
        { IsBackground = true };
        thread.Start();
        await waiting.Task.WaitAsync(Bound);

        signal.Set();

        Assert.True(await woken.Task.WaitAsync(Bound));
    }
}
