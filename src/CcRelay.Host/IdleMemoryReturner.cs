using CcRelay.Core;
using CcRelay.Host.Metrics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host;

/// <summary>
/// The standalone relay hands the garbage of a burst back to the system once it goes quiet (Core's
/// <c>IdleMemory</c> decides when; docs/relay.md#idle-memory). Once a tick it reads the GC's running allocation total
/// and the requests in flight; when Core says so it runs one full, compacting collection that decommits what it
/// frees (<see cref="GCCollectionMode.Aggressive"/>). Only <c>cc-relay serve</c> runs it
/// (<see cref="CcRelayServerOptions.ReturnIdleMemory"/>): an application that embeds the relay owns its own GC.
/// </summary>
internal sealed partial class IdleMemoryReturner(RelayMetrics metrics, TimeProvider timeProvider, ILogger<IdleMemoryReturner> logger) : BackgroundService
{
    /// <summary>How often the relay is looked at: "quiet" means a whole tick without a request or an allocation burst.</summary>
    internal static readonly TimeSpan Tick = TimeSpan.FromSeconds(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Tick, timeProvider);
        var state = IdleMemoryState.Start;
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                (state, var returnNow) = state.Look(GC.GetTotalAllocatedBytes(precise: false), metrics.InFlight);
                if (returnNow)
                {
                    Return();
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // the host is stopping
        }
    }

    private void Return()
    {
        // the resident set, not the GC's own figures: those describe the last collection, not what the burst left since
        var before = Environment.WorkingSet;
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        Log.Returned(logger, before >> 10, Environment.WorkingSet >> 10);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 50, Level = Microsoft.Extensions.Logging.LogLevel.Debug, Message = "idle: returned memory to the system (resident {before_kb} KB -> {after_kb} KB)")]
        public static partial void Returned(ILogger logger, long before_kb, long after_kb);
    }
}
