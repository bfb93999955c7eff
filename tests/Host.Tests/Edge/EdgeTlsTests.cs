using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using CcRelay.Core;
using CcRelay.Host.Configuration;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Edge;

/// <summary><c>server.tls</c>: https on the relay's listener, the certificate re-read when its files change, TLS 1.2 at least.</summary>
public sealed class EdgeTlsTests : IAsyncLifetime
{
    private readonly EdgeCertificates _files = new();
    private FakeUpstream _upstream = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson());
    }

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        _files.Dispose();
    }

    private Task<RelayHost> StartAsync(TlsVersion? minimum = null) =>
        RelayHost.StartAsync(TestConfig.Relay([TestConfig.Provider("a", _upstream.BaseUrl)])
            .With(edge: EdgeConfigs.Edge(tls: EdgeConfigs.Tls(_files, minimum))));

    /// <summary>One https GET on a fresh connection; returns the status and the certificate the relay showed.</summary>
    private static async Task<(HttpStatusCode Status, X509Certificate2 Certificate)> GetAsync(Uri baseUrl, SslProtocols protocols = SslProtocols.None)
    {
        X509Certificate2? seen = null;
        using var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            SslOptions = new SslClientAuthenticationOptions
            {
                EnabledSslProtocols = protocols,
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                {
                    seen = new X509Certificate2(certificate!);
                    return true;
                },
            },
        };
        using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(20) };
        using var response = await client.GetAsync(new Uri(baseUrl, "/v1/models"));
        return (response.StatusCode, seen!);
    }

    [Fact]
    public async Task Edge_Tls_ServesHttps_AndANewConnectionSeesAReplacedCertificate()
    {
        // Arrange
        _files.WritePair(EdgeCertificates.CreateLeaf("first"));
        await using var relay = await StartAsync();
        Assert.Equal("https", relay.BaseUrl.Scheme);

        // Act
        var (status, first) = await GetAsync(relay.BaseUrl);
        _files.WritePair(EdgeCertificates.CreateLeaf("second"));
        var (statusAfter, second) = await GetAsync(relay.BaseUrl);

        // Assert
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("CN=first", first.Subject);
        Assert.Equal(HttpStatusCode.OK, statusAfter);
        Assert.Equal("CN=second", second.Subject);
    }

    [Fact]
    public async Task Edge_Tls_ASecondListener_ServesHttpsBesideThePlainOne()
    {
        _files.WritePair(EdgeCertificates.CreateLeaf("second-listener"));
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay([TestConfig.Provider("a", _upstream.BaseUrl)])
            .With(edge: EdgeConfigs.Edge(tls: EdgeConfigs.Tls(_files, listen: new ListenAddress("127.0.0.1", 0)))));

        using var plain = await relay.Client.GetAsync("/v1/models");
        var (status, seen) = await GetAsync(relay.Addresses[1]);

        Assert.Equal("http", relay.BaseUrl.Scheme);
        Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        Assert.Equal("https", relay.Addresses[1].Scheme);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("CN=second-listener", seen.Subject);
    }

    [Fact]
    public async Task Edge_Tls_ABrokenReplacement_KeepsTheCertificateInUse()
    {
        _files.WritePair(EdgeCertificates.CreateLeaf("kept"));
        await using var relay = await StartAsync();
        await File.WriteAllTextAsync(_files.KeyPath, "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n");

        var (status, seen) = await GetAsync(relay.BaseUrl);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("CN=kept", seen.Subject);
    }

    [Fact]
    public async Task Edge_Tls_PlainHttpOnTheTlsListener_GetsNoAnswer()
    {
        _files.WritePair(EdgeCertificates.CreateLeaf("only-tls"));
        await using var relay = await StartAsync();
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };

        await Assert.ThrowsAnyAsync<HttpRequestException>(() => client.GetAsync(new UriBuilder(relay.BaseUrl) { Scheme = "http" }.Uri));
    }

    [Fact]
    public async Task Edge_Tls_MinimumVersionIsEnforced()
    {
        _files.WritePair(EdgeCertificates.CreateLeaf("tls13"));
        await using var relay = await StartAsync(TlsVersion.Tls13);

        // a client that speaks at most TLS 1.2 is refused by a relay that wants 1.3; 1.3 passes
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => GetAsync(relay.BaseUrl, SslProtocols.Tls12));
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(relay.BaseUrl, SslProtocols.Tls13)).Status);
    }

    [Fact]
    public async Task Edge_Tls_Tls11IsRefused_Tls12Accepted()
    {
        _files.WritePair(EdgeCertificates.CreateLeaf("tls12"));
        await using var relay = await StartAsync();

#pragma warning disable SYSLIB0039 // TLS 1.1 on purpose: it must be refused
        await Assert.ThrowsAnyAsync<Exception>(() => GetAsync(relay.BaseUrl, SslProtocols.Tls11));
#pragma warning restore SYSLIB0039
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(relay.BaseUrl, SslProtocols.Tls12)).Status);
    }

    [Fact]
    public void Edge_Tls_MissingOrMismatchedFiles_AreConfigErrorsAtTheirKeys()
    {
        // Arrange: a key file that does not exist, then a pair that does not match
        var config = Path.Combine(_files.Directory, "cc-relay.yaml");
        File.WriteAllText(config, $"""
            server:
              tls:
                cert_file: "{_files.CertPath}"
                key_file: "{Path.Combine(_files.Directory, "missing.key")}"
            """);
        _files.WritePair(EdgeCertificates.CreateLeaf("a"));

        // Act
        var missing = ConfigFile.Load(config, _ => null);
        File.WriteAllText(Path.Combine(_files.Directory, "other.key"), EdgeCertificates.CreateLeaf("b").GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(config, File.ReadAllText(config).Replace("missing.key", "other.key", StringComparison.Ordinal));
        var mismatched = ConfigFile.Load(config, _ => null);

        // Assert
        var error = Assert.Single(Assert.IsType<ConfigLoad.Invalid>(missing).Errors);
        Assert.Equal("server.tls.key_file", error.Path);
        Assert.Equal(4, error.Position!.Value.Line);
        Assert.Contains("cannot read", error.Message, StringComparison.Ordinal);
        var pair = Assert.Single(Assert.IsType<ConfigLoad.Invalid>(mismatched).Errors);
        Assert.Equal("server.tls.cert_file", pair.Path);
        Assert.Contains("do not load as a pair", pair.Message, StringComparison.Ordinal);
    }
}
