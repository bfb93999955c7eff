using CcRelay.Cli.Api;
using CcRelay.Management.V1;
using Grpc.Core;

namespace CcRelay.Cli.Tui;

/// <summary>
/// What feeds the dashboard from a relay's management API, over the CLI's one <see cref="RelayClient"/>: the two
/// streams (<c>WatchStats</c> once a second, <c>WatchRequests</c>) update a <see cref="DashboardStore"/>; when
/// either fails, or no statistics came for <see cref="StaleAfter"/>, both are dropped and opened again after a
/// <see cref="Backoff"/> wait. The dashboard polls nothing: one statistics message a second is all it asks of the relay.
/// </summary>
internal sealed class DashboardFeed(RelayClient client, TimeProvider time)
{
    /// <summary>Without a statistics message for this long (it comes every second) the relay counts as gone.</summary>
    public static readonly TimeSpan StaleAfter = TimeSpan.FromSeconds(5);

    /// <summary>Watches the relay until <paramref name="cancellationToken"/> fires, reconnecting by itself.</summary>
    public async Task WatchAsync(DashboardStore store, CancellationToken cancellationToken)
    {
        var attempt = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            var reason = await SessionAsync(store, () => attempt = 0, cancellationToken);
            if (cancellationToken.IsCancellationRequested)
            {
                return;
            }

            attempt++;
            var delay = Backoff.Delay(attempt);
            store.Update(s => s.Disconnected(reason, time.GetUtcNow() + delay, attempt));
            try
            {
                await Task.Delay(delay, time, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Both streams until one fails; returns why, as the dashboard shows it.</summary>
    private async Task<string> SessionAsync(DashboardStore store, Action connected, CancellationToken cancellationToken)
    {
        using var session = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var stale = new CancellationTokenSource(StaleAfter, time);
        using var both = CancellationTokenSource.CreateLinkedTokenSource(session.Token, stale.Token);
        var stats = StatsAsync(store, connected, stale, both.Token);
        var requests = RequestsAsync(store, both.Token);
        var first = await Task.WhenAny(stats, requests);
        var reason = stale.IsCancellationRequested && !cancellationToken.IsCancellationRequested
            ? $"no statistics for {StaleAfter.TotalSeconds:0} s"
            : RelayClient.Describe(first.Exception?.InnerException);
        await session.CancelAsync();
        try
        {
            await Task.WhenAll(stats, requests);
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException or IOException or HttpRequestException)
        {
            // the other stream, ended by the cancellation above
        }

        return reason;
    }

    private async Task StatsAsync(DashboardStore store, Action connected, CancellationTokenSource stale, CancellationToken cancellationToken)
    {
        using var call = client.Api.WatchStats(new WatchStatsRequest { IntervalMs = 1000 }, client.CallOptions(cancellationToken, stream: true));
        await foreach (var stats in call.ResponseStream.ReadAllAsync(cancellationToken))
        {
            stale.CancelAfter(StaleAfter);
            connected();
            store.Update(s => s.WithStats(stats));
        }

        throw new RpcException(new Grpc.Core.Status(StatusCode.Unavailable, "the relay ended the statistics stream"));
    }

    private async Task RequestsAsync(DashboardStore store, CancellationToken cancellationToken)
    {
        using var call = client.Api.WatchRequests(new WatchRequestsRequest(), client.CallOptions(cancellationToken, stream: true));
        await foreach (var request in call.ResponseStream.ReadAllAsync(cancellationToken))
        {
            store.Update(s => s.WithRequest(request));
        }

        throw new RpcException(new Grpc.Core.Status(StatusCode.Unavailable, "the relay ended the requests stream"));
    }
}

/// <summary>How long to wait before the next reconnection: 0.5 s doubling to at most 5 s, back to the start once connected.</summary>
internal static class Backoff
{
    public static readonly TimeSpan First = TimeSpan.FromMilliseconds(500);
    public static readonly TimeSpan Max = TimeSpan.FromSeconds(5);

    /// <summary>The wait before try <paramref name="attempt"/> (1 = the first retry).</summary>
    public static TimeSpan Delay(int attempt) =>
        attempt <= 1 ? First : TimeSpan.FromMilliseconds(Math.Min(Max.TotalMilliseconds, First.TotalMilliseconds * Math.Pow(2, Math.Min(attempt - 1, 16))));
}
