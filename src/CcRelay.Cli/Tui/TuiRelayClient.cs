using System.Net.Sockets;
using CcRelay.Management.V1;
using Grpc.Core;
using Grpc.Net.Client;

namespace CcRelay.Cli.Tui;

/// <summary>
/// The dashboard's connection to a relay's management API: the two streams (<c>WatchStats</c> once a second,
/// <c>WatchRequests</c>) feed a <see cref="DashboardStore"/>; when either fails, or no statistics came for
/// <see cref="StaleAfter"/>, both are dropped and opened again after a <see cref="Backoff"/> wait. The dashboard
/// polls nothing: one statistics message a second is all it asks of the relay.
/// </summary>
internal sealed class TuiRelayClient : IDisposable
{
    /// <summary>Without a statistics message for this long (it comes every second) the relay counts as gone.</summary>
    public static readonly TimeSpan StaleAfter = TimeSpan.FromSeconds(5);

    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(10);

    private readonly GrpcChannel _channel;
    private readonly RelayManagement.RelayManagementClient _client;
    private readonly Metadata _headers = [];
    private readonly TimeProvider _time;

    public TuiRelayClient(TuiTarget target, TimeProvider time)
    {
        _time = time;
        _channel = GrpcChannel.ForAddress(target.Address, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                ConnectTimeout = TimeSpan.FromSeconds(3),
                KeepAlivePingDelay = TimeSpan.FromSeconds(10),
                KeepAlivePingTimeout = TimeSpan.FromSeconds(5),
                EnableMultipleHttp2Connections = true,
            },
            DisposeHttpClient = true,
        });
        _client = new RelayManagement.RelayManagementClient(_channel);
        if (target.Token is { } token)
        {
            _headers.Add("authorization", "Bearer " + token);
        }
    }

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
            store.Update(s => s.Disconnected(reason, _time.GetUtcNow() + delay, attempt));
            try
            {
                await Task.Delay(delay, _time, cancellationToken);
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
        using var stale = new CancellationTokenSource(StaleAfter, _time);
        using var both = CancellationTokenSource.CreateLinkedTokenSource(session.Token, stale.Token);
        var stats = StatsAsync(store, connected, stale, both.Token);
        var requests = RequestsAsync(store, both.Token);
        var first = await Task.WhenAny(stats, requests);
        var reason = stale.IsCancellationRequested && !cancellationToken.IsCancellationRequested
            ? $"no statistics for {StaleAfter.TotalSeconds:0} s"
            : Describe(first.Exception?.InnerException);
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
        using var call = _client.WatchStats(new WatchStatsRequest { IntervalMs = 1000 }, _headers, cancellationToken: cancellationToken);
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
        using var call = _client.WatchRequests(new WatchRequestsRequest(), _headers, cancellationToken: cancellationToken);
        await foreach (var request in call.ResponseStream.ReadAllAsync(cancellationToken))
        {
            store.Update(s => s.WithRequest(request));
        }

        throw new RpcException(new Grpc.Core.Status(StatusCode.Unavailable, "the relay ended the requests stream"));
    }

    public async Task<SetProviderEnabledResponse> SetEnabledAsync(string provider, bool enabled, CancellationToken cancellationToken) =>
        await _client.SetProviderEnabledAsync(new SetProviderEnabledRequest { Name = provider, Enabled = enabled }, _headers, Deadline(), cancellationToken);

    public async Task<ReloadConfigResponse> ReloadAsync(CancellationToken cancellationToken) =>
        await _client.ReloadConfigAsync(new ReloadConfigRequest(), _headers, Deadline(), cancellationToken);

    private DateTime Deadline() => _time.GetUtcNow().UtcDateTime + CallTimeout;

    /// <summary>Why a call failed, in words for the dashboard; never the token.</summary>
    internal static string Describe(Exception? failure) => failure switch
    {
        null => "the stream ended",
        RpcException { StatusCode: StatusCode.Unauthenticated } => "refused: wrong or missing token (--token, $CC_RELAY_GRPC_TOKEN)",
        RpcException { StatusCode: StatusCode.Unimplemented } => "not a cc-relay management API at this address",
        RpcException { StatusCode: StatusCode.Unavailable } e => Innermost(e) is SocketException socket ? Socket(socket) : e.Status.Detail,
        RpcException e => $"{e.StatusCode}: {e.Status.Detail}",
        _ => Innermost(failure) is SocketException socket ? Socket(socket) : failure.Message,
    };

    private static string Socket(SocketException socket) => socket.SocketErrorCode switch
    {
        SocketError.ConnectionRefused => "connection refused (is the relay running, with a grpc section?)",
        SocketError.TimedOut => "connection timed out",
        SocketError.HostNotFound or SocketError.NoData => "host not found",
        _ => socket.Message,
    };

    private static Exception Innermost(Exception e)
    {
        var inner = e is RpcException rpc && rpc.Status.DebugException is { } debug ? debug : e;
        while (inner.InnerException is not null && inner is not SocketException)
        {
            inner = inner.InnerException;
        }

        return inner;
    }

    public void Dispose() => _channel.Dispose();
}
