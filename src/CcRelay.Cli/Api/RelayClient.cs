using System.Net.Sockets;
using CcRelay.Management.V1;
using Grpc.Core;
using Grpc.Net.Client;
using Status = CcRelay.Management.V1.Status;

namespace CcRelay.Cli.Api;

/// <summary>
/// The CLI's one client of a running relay's management API (<c>ccrelay.v1.RelayManagement</c>, docs/management.md):
/// one channel (a 3 s connect timeout, HTTP/2 keep-alive pings, so a dead relay is noticed), the token on every call,
/// a deadline on every unary call, and failures said for a person (<see cref="Describe(Exception?)"/>). The commands
/// use it, and so does the dashboard (<see cref="Tui.DashboardFeed"/>: <see cref="Api"/> and <see cref="CallOptions"/>
/// for the streams). Where it connects and with which token: <see cref="RelayTarget"/>.
/// </summary>
internal sealed class RelayClient : IDisposable
{
    private readonly GrpcChannel _channel;
    private readonly Metadata _headers = [];
    private readonly TimeSpan _timeout;
    private readonly TimeProvider _time;

    /// <summary>A client of the API at <paramref name="address"/> (http://host:port), sending <paramref name="token"/> when set.</summary>
    public RelayClient(Uri address, string? token, TimeSpan? timeout = null, TimeProvider? timeProvider = null)
    {
        Address = address;
        _time = timeProvider ?? TimeProvider.System;
        _timeout = timeout ?? TimeSpan.FromSeconds(10);
        _channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions
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
        if (!string.IsNullOrEmpty(token))
        {
            _headers.Add("authorization", "Bearer " + token);
        }

        Api = new RelayManagement.RelayManagementClient(_channel);
    }

    /// <summary>The API's address.</summary>
    public Uri Address { get; }

    /// <summary>The generated client, for calls this class does not wrap (the streams).</summary>
    public RelayManagement.RelayManagementClient Api { get; }

    /// <summary>The token; a deadline unless <paramref name="stream"/> (streams run until cancelled).</summary>
    public CallOptions CallOptions(CancellationToken cancellationToken, bool stream = false) =>
        new(_headers, stream ? null : _time.GetUtcNow().UtcDateTime + _timeout, cancellationToken);

    public async Task<Status> GetStatusAsync(CancellationToken cancellationToken = default) =>
        await Api.GetStatusAsync(new GetStatusRequest(), CallOptions(cancellationToken));

    public async Task<IReadOnlyList<Provider>> ListProvidersAsync(CancellationToken cancellationToken = default) =>
        (await Api.ListProvidersAsync(new ListProvidersRequest(), CallOptions(cancellationToken))).Providers;

    public async Task<SetProviderEnabledResponse> SetProviderEnabledAsync(string name, bool enabled, CancellationToken cancellationToken = default) =>
        await Api.SetProviderEnabledAsync(new SetProviderEnabledRequest { Name = name, Enabled = enabled }, CallOptions(cancellationToken));

    public async Task<IReadOnlyList<Key>> ListKeysAsync(string provider = "", CancellationToken cancellationToken = default) =>
        (await Api.ListKeysAsync(new ListKeysRequest { Provider = provider }, CallOptions(cancellationToken))).Keys;

    public async Task<AddKeyResponse> AddKeyAsync(AddKeyRequest request, CancellationToken cancellationToken = default) =>
        await Api.AddKeyAsync(request, CallOptions(cancellationToken));

    public async Task<RemoveKeyResponse> RemoveKeyAsync(string provider, string keyId, CancellationToken cancellationToken = default) =>
        await Api.RemoveKeyAsync(new RemoveKeyRequest { Provider = provider, KeyId = keyId }, CallOptions(cancellationToken));

    public async Task<ReloadConfigResponse> ReloadConfigAsync(CancellationToken cancellationToken = default) =>
        await Api.ReloadConfigAsync(new ReloadConfigRequest(), CallOptions(cancellationToken));

    public async Task<GetConfigResponse> GetConfigAsync(CancellationToken cancellationToken = default) =>
        await Api.GetConfigAsync(new GetConfigRequest(), CallOptions(cancellationToken));

    public async Task<ListModelsResponse> ListModelsAsync(CancellationToken cancellationToken = default) =>
        await Api.ListModelsAsync(new ListModelsRequest(), CallOptions(cancellationToken));

    public async Task<ListPluginsResponse> ListPluginsAsync(CancellationToken cancellationToken = default) =>
        await Api.ListPluginsAsync(new ListPluginsRequest(), CallOptions(cancellationToken));

    /// <summary>Whether a failed call means that no relay's API answered at all (as opposed to a refusal).</summary>
    public static bool IsUnreachable(RpcException e) =>
        e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded
        || (e.StatusCode == StatusCode.Internal && e.Status.DebugException is HttpRequestException or IOException);

    /// <summary>A failed call, said for a person: where, what, and what to try (never the token).</summary>
    public string Describe(RpcException e) => e.StatusCode switch
    {
        _ when IsUnreachable(e) => $"no relay answers at {Address} ({Describe((Exception)e)}); is it running, with a grpc: section in its config? (--relay, $CC_RELAY_GRPC_ADDRESS or grpc.listen name another address)",
        StatusCode.Unauthenticated => $"the relay at {Address} refused the management token; pass --token, set $CC_RELAY_GRPC_TOKEN, or set grpc.auth_token in the config",
        _ => e.Status.Detail,
    };

    /// <summary>Why a call or a stream failed, in a few words (the dashboard's line; never the token).</summary>
    public static string Describe(Exception? failure) => failure switch
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
