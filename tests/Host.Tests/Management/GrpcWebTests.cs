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
/// grpc-web on the management API (always on): a grpc-web client (Grpc.Net.Client.Web) calls unary methods and a
/// server stream, in binary and text mode, with the same token check — over HTTP/1.1 on <c>grpc.web_listen</c> (as a
/// browser would) and over HTTP/2 on <c>grpc.listen</c>, where native gRPC keeps working.
/// </summary>
public sealed class GrpcWebTests : TwoUpstreamTests
{
    private const string Token = "mgmt-token-0123456789";

    private static RelayConfig Config(FakeUpstream a) =>
        TestConfig.Relay([TestConfig.Provider("a", a.BaseUrl, keys: ["sk-secret-key-of-a-0001"])])
            .With(grpc: new GrpcConfig(true, new ListenAddress("127.0.0.1", 0), FSharpOption<string>.Some(Token), FSharpOption<ListenAddress>.Some(new ListenAddress("127.0.0.1", 0))));

    /// <summary>grpc-web over HTTP/1.1 to grpc.web_listen (Addresses[^2]), or over HTTP/2 to grpc.listen (Addresses[^1]).</summary>
    private static GrpcChannel WebChannel(RelayHost relay, GrpcWebMode mode, bool http2 = false) =>
        GrpcChannel.ForAddress(relay.Addresses[http2 ? ^1 : ^2], new GrpcChannelOptions
        {
            HttpHandler = new GrpcWebHandler(mode, new HttpClientHandler()),
            HttpVersion = http2 ? HttpVersion.Version20 : HttpVersion.Version11,
            HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact,
            DisposeHttpClient = true,
        });

    private static Metadata Auth(string token = Token) => new() { { "authorization", "Bearer " + token } };

    [Theory]
    [InlineData(GrpcWebMode.GrpcWeb, false)]
    [InlineData(GrpcWebMode.GrpcWebText, false)]
    [InlineData(GrpcWebMode.GrpcWeb, true)]
    public async Task AGrpcWebClient_CallsTheApi_AndItsStream_WithTheTokenChecked(GrpcWebMode mode, bool http2)
    {
        // Arrange
        A.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-a"));
        await using var relay = await RelayHost.StartAsync(Config(A));
        using var channel = WebChannel(relay, mode, http2);
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
    public async Task NativeGrpc_StillWorks_AndTheWebListenerServesOnlyTheApi()
    {
        await using var relay = await RelayHost.StartAsync(Config(A));
        using var native = GrpcChannel.ForAddress(relay.Addresses[^1]);
        var client = new RelayManagement.RelayManagementClient(native);
        using var http = new HttpClient { BaseAddress = relay.Addresses[^2] };

        var providers = await client.ListProvidersAsync(new ListProvidersRequest(), Auth());
        using var relayRoute = await http.PostAsync("/v1/messages", new StringContent(Requests.PlainBody));

        Assert.Equal(["a"], providers.Providers.Select(p => p.Name));
        Assert.Equal(HttpStatusCode.NotFound, relayRoute.StatusCode);
    }
}
