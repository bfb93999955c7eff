using System.Net;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;
using CcRelay.Management.V1;
using Grpc.Core;
using Grpc.Net.Client;
using Grpc.Net.Client.Web;
using Microsoft.FSharp.Core;

namespace CcRelay.Host.Tests.Management;

/// <summary>
/// grpc-web on the management listener (always on): a grpc-web client (Grpc.Net.Client.Web, over HTTP/1.1 as a
/// browser would) calls unary methods and a server stream, in binary and text mode, with the same token check;
/// native gRPC keeps working on the same listener.
/// </summary>
public sealed class GrpcWebTests : TwoUpstreamTests
{
    private const string Token = "mgmt-token-0123456789";

    private static RelayConfig Config(FakeUpstream a) =>
        TestConfig.Relay([TestConfig.Provider("a", a.BaseUrl, keys: ["sk-secret-key-of-a-0001"])])
            .With(grpc: new GrpcConfig(true, new ListenAddress("127.0.0.1", 0), FSharpOption<string>.Some(Token)));

    private static GrpcChannel WebChannel(RelayHost relay, GrpcWebMode mode) =>
        GrpcChannel.ForAddress(relay.Addresses[^1], new GrpcChannelOptions
        {
            HttpHandler = new GrpcWebHandler(mode, new HttpClientHandler()) { HttpVersion = HttpVersion.Version11 },
            DisposeHttpClient = true,
        });

    private static Metadata Auth(string token = Token) => new() { { "authorization", "Bearer " + token } };

    [Theory]
    [InlineData(GrpcWebMode.GrpcWeb)]
    [InlineData(GrpcWebMode.GrpcWebText)]
    public async Task AGrpcWebClient_OverHttp11_CallsTheApi_AndItsStream_WithTheTokenChecked(GrpcWebMode mode)
    {
        // Arrange
        A.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-a"));
        await using var relay = await RelayHost.StartAsync(Config(A));
        using var channel = WebChannel(relay, mode);
        var client = new RelayManagement.RelayManagementClient(channel);
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        // Act: a unary call, a server stream that sees one request complete, and a call without the token
        var status = await client.GetStatusAsync(new GetStatusRequest(), Auth(), cancellationToken: cancel.Token);
        using var watch = client.WatchRequests(new WatchRequestsRequest(), Auth(), cancellationToken: cancel.Token);
        await watch.ResponseHeadersAsync; // subscribed
        using (var response = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody)))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.True(await watch.ResponseStream.MoveNext(cancel.Token));
        var completed = watch.ResponseStream.Current;
        var refused = await Assert.ThrowsAsync<RpcException>(() => client.ListProvidersAsync(new ListProvidersRequest(), Auth("wrong")).ResponseAsync);

        // Assert
        Assert.Equal(RelayInfo.Version, status.Version);
        Assert.Equal(1, status.ProvidersTotal);
        Assert.Equal("a", completed.Provider);
        Assert.Equal(200, completed.Status);
        Assert.Equal(StatusCode.Unauthenticated, refused.StatusCode);
    }

    [Fact]
    public async Task TheListener_StillServesNativeGrpc_AndAPlainHttp11RequestForARelayRoute_IsNotFound()
    {
        await using var relay = await RelayHost.StartAsync(Config(A));
        using var native = GrpcChannel.ForAddress(relay.Addresses[^1]);
        var client = new RelayManagement.RelayManagementClient(native);
        using var http = new HttpClient { BaseAddress = relay.Addresses[^1] };

        var providers = await client.ListProvidersAsync(new ListProvidersRequest(), Auth());
        using var relayRoute = await http.PostAsync("/v1/messages", new StringContent(Requests.PlainBody));

        Assert.Equal(["a"], providers.Providers.Select(p => p.Name));
        Assert.Equal(HttpStatusCode.NotFound, relayRoute.StatusCode);
    }
}
