using System.Net;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Tests.Edge;

/// <summary>Towards the upstreams: redirects are never followed (by either client), a CA bundle adds trust.</summary>
public sealed class EdgeUpstreamTests : IAsyncLifetime
{
    private readonly EdgeCertificates _files = new();
    private FakeUpstream _elsewhere = null!;

    public async Task InitializeAsync()
    {
        _elsewhere = await FakeUpstream.StartAsync();
        _elsewhere.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from elsewhere"));
    }

    public async Task DisposeAsync()
    {
        await _elsewhere.DisposeAsync();
        _files.Dispose();
    }

    private static RelayConfig Config(Uri upstream, string? caFile = null, TlsVersion? minTls = null) =>
        TestConfig.Relay([TestConfig.Provider("a", upstream)], routing: TestConfig.Routing(maxAttempts: 1), health: TestConfig.Health(failureThreshold: 100))
            .With(edge: EdgeConfigs.Edge(security: EdgeConfigs.Security(caFile: caFile, minTls: minTls)));

    private Func<Microsoft.AspNetCore.Http.HttpContext, Task> RedirectElsewhere => context =>
    {
        context.Response.StatusCode = Microsoft.AspNetCore.Http.StatusCodes.Status302Found;
        context.Response.Headers.Location = new Uri(_elsewhere.BaseUrl, "/v1/messages?token=sekrit").ToString();
        return Task.CompletedTask;
    };

    private static async Task<(HttpStatusCode Status, string Body)> SendAsync(RelayHost relay)
    {
        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody));
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Edge_Upstream_ARedirectFromAPlainHttpUpstream_IsNotFollowed_ButAnsweredAsAnError()
    {
        // the relay's own HTTP/1.1 client serves plain-http upstreams
        await using var upstream = await FakeUpstream.StartAsync();
        upstream.Handler = RedirectElsewhere;
        await using var relay = await RelayHost.StartAsync(Config(upstream.BaseUrl));

        var (status, body) = await SendAsync(relay);

        Assert.Equal(HttpStatusCode.BadGateway, status);
        Assert.Contains("\"api_error\"", body, StringComparison.Ordinal);
        Assert.Contains("the relay never follows redirects", body, StringComparison.Ordinal);
        Assert.DoesNotContain("sekrit", body, StringComparison.Ordinal);
        Assert.Single(upstream.Requests);
        Assert.Empty(_elsewhere.Requests);
    }

    [Fact]
    public async Task Edge_Upstream_ARedirectFromAnHttpsUpstream_IsNotFollowed_AndItsCaIsTrustedThroughTheBundle()
    {
        // Arrange: an https upstream whose certificate only the bundle's CA vouches for (SocketsHttpHandler's path)
        var ca = EdgeCertificates.CreateCa("edge-test-ca");
        await using var upstream = await FakeUpstream.StartAsync(EdgeCertificates.CreateLeaf("upstream", ca));
        var bundle = _files.WriteBundle("ca.pem", ca);
        upstream.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("over tls"));

        // Act
        (HttpStatusCode Status, string Body) untrusted, trusted, redirected;
        await using (var relay = await RelayHost.StartAsync(Config(upstream.BaseUrl)))
        {
            untrusted = await SendAsync(relay);
        }

        await using (var relay = await RelayHost.StartAsync(Config(upstream.BaseUrl, caFile: bundle)))
        {
            trusted = await SendAsync(relay);
            upstream.Handler = RedirectElsewhere;
            redirected = await SendAsync(relay);
        }

        // Assert: without the bundle the TLS handshake fails; with it the answer passes; a redirect is refused
        Assert.Equal(HttpStatusCode.BadGateway, untrusted.Status);
        Assert.Equal(HttpStatusCode.OK, trusted.Status);
        Assert.Contains("over tls", trusted.Body, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadGateway, redirected.Status);
        Assert.Contains("a redirect to host 127.0.0.1", redirected.Body, StringComparison.Ordinal);
        Assert.Empty(_elsewhere.Requests);
    }

    [Fact]
    public async Task Edge_Upstream_MinimumTlsVersion_RefusesAnUpstreamBelowIt()
    {
        // Arrange: an https upstream that speaks TLS 1.2 only, its CA in the bundle
        var ca = EdgeCertificates.CreateCa("edge-test-ca-3");
        var leaf = EdgeCertificates.CreateLeaf("tls12-upstream", ca);
        var bundle = _files.WriteBundle("ca3.pem", ca);
        var builder = Microsoft.AspNetCore.Builder.WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, listen => listen.UseHttps(new Microsoft.AspNetCore.Server.Kestrel.Https.HttpsConnectionAdapterOptions
        {
            ServerCertificate = leaf,
            SslProtocols = System.Security.Authentication.SslProtocols.Tls12,
        })));
        await using var app = builder.Build();
        Microsoft.AspNetCore.Builder.RunExtensions.Run(app, context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("tls 1.2")));
        await app.StartAsync();
        var url = new Uri(app.Urls.First());

        // Act
        (HttpStatusCode Status, string Body) atTls12, atTls13;
        await using (var relay = await RelayHost.StartAsync(Config(url, caFile: bundle)))
        {
            atTls12 = await SendAsync(relay);
        }

        await using (var relay = await RelayHost.StartAsync(Config(url, caFile: bundle, minTls: TlsVersion.Tls13)))
        {
            atTls13 = await SendAsync(relay);
        }

        // Assert
        Assert.Equal(HttpStatusCode.OK, atTls12.Status);
        Assert.Equal(HttpStatusCode.BadGateway, atTls13.Status);
        await app.StopAsync();
    }

    [Fact]
    public async Task Edge_Upstream_TheBundleDoesNotForgiveAWrongHostName()
    {
        // a certificate from the bundle's CA, but for another name: still refused
        var ca = EdgeCertificates.CreateCa("edge-test-ca-2");
        await using var upstream = await FakeUpstream.StartAsync(EdgeCertificates.CreateLeaf("upstream", ca, loopback: false));
        var bundle = _files.WriteBundle("ca2.pem", ca);
        upstream.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson());

        await using var relay = await RelayHost.StartAsync(Config(upstream.BaseUrl, caFile: bundle));
        var (status, _) = await SendAsync(relay);

        Assert.Equal(HttpStatusCode.BadGateway, status);
    }
}
