using System.Net;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Configuration;
using CcRelay.Host.Reload;
using CcRelay.Host.Tests.Infrastructure;
using CcRelay.Management.V1;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.FSharp.Core;

namespace CcRelay.Host.Tests.Edge;

/// <summary>
/// <c>security.status_token</c> in front of <c>/metrics</c> and the detailed <c>/health</c>, and the audit log:
/// authentication failures (rate-limited), refused status reads, config reloads, operator calls — and no secret.
/// </summary>
public sealed class EdgeAuditTests : IAsyncLifetime
{
    private const string RelayKey = "relay-key-edge-0001";
    private const string StatusSecret = "status-token-edge-0002";
    private const string GrpcToken = "grpc-token-edge-0003";
    private const string ProviderKey = "sk-provider-key-edge-0004";
    private const string WrongKey = "wrong-guess-edge-0005";
    private readonly EdgeCertificates _files = new();
    private FakeUpstream _upstream = null!;

    private string AuditPath => Path.Combine(_files.Directory, "audit.jsonl");

    private string ConfigPath => Path.Combine(_files.Directory, "cc-relay.yaml");

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

    private RelayConfig Config(string? statusToken = StatusSecret, bool grpc = false) =>
        TestConfig.Relay([TestConfig.Provider("a", _upstream.BaseUrl, keys: [ProviderKey])], apiKey: RelayKey)
            .With(
                grpc: grpc ? new GrpcConfig(true, new ListenAddress("127.0.0.1", 0), FSharpOption<string>.Some(GrpcToken), FSharpOption<ListenAddress>.None) : null,
                edge: EdgeConfigs.Edge(security: EdgeConfigs.Security(statusToken: statusToken, auditPath: AuditPath, authFailuresPerMinute: 2)));

    private List<JsonElement> AuditLines() =>
        [.. File.ReadAllLines(AuditPath).Select(line => JsonDocument.Parse(line).RootElement.Clone())];

    private static HttpRequestMessage Get(string path, string? token)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (token is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + token);
        }

        return request;
    }

    [Fact]
    public async Task Edge_StatusToken_MetricsNeedIt_HealthWithoutItShowsOnlyTheStatus()
    {
        await using var relay = await RelayHost.StartAsync(Config());

        using var metricsDenied = await relay.Client.SendAsync(Get("/metrics", null));
        using var metricsWrong = await relay.Client.SendAsync(Get("/metrics", "not-the-token"));
        using var metrics = await relay.Client.SendAsync(Get("/metrics", StatusSecret));
        using var healthShort = await relay.Client.SendAsync(Get("/health", null));
        using var healthFull = await relay.Client.SendAsync(Get("/health", StatusSecret));

        Assert.Equal(HttpStatusCode.Unauthorized, metricsDenied.StatusCode);
        Assert.Contains("\"authentication_error\"", await metricsDenied.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Unauthorized, metricsWrong.StatusCode);
        Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
        Assert.Contains("ccrelay_", await metrics.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, healthShort.StatusCode);
        Assert.Equal("""{"status":"ok"}""", await healthShort.Content.ReadAsStringAsync());
        Assert.Contains("\"providers\"", await healthFull.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Edge_StatusToken_Unset_LeavesMetricsAndHealthOpen()
    {
        await using var relay = await RelayHost.StartAsync(Config(statusToken: null));

        using var metrics = await relay.Client.SendAsync(Get("/metrics", null));
        using var health = await relay.Client.SendAsync(Get("/health", null));

        Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
        Assert.Contains("\"providers\"", await health.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Edge_Audit_AuthFailuresAreRateLimited_FileIs0600_AndHoldsNoSecret()
    {
        // Arrange
        await using var relay = await RelayHost.StartAsync(Config());

        // Act: four wrong keys from one address (2 are written), a good request, a refused metrics read
        for (var i = 0; i < 4; i++)
        {
            using var denied = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody, apiKey: WrongKey + i));
            Assert.Equal(HttpStatusCode.Unauthorized, denied.StatusCode);
        }

        using (var ok = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody, apiKey: RelayKey)))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        using (await relay.Client.SendAsync(Get("/metrics", "wrong-status-token")))
        {
        }

        // Assert
        var lines = AuditLines();
        var failures = lines.Where(l => l.GetProperty("event").GetString() == "auth.failed").ToList();
        Assert.Equal(2, failures.Count);
        Assert.All(failures, f =>
        {
            Assert.Equal("127.0.0.1", f.GetProperty("source").GetString());
            Assert.Equal("denied", f.GetProperty("outcome").GetString());
            Assert.Equal("/v1/messages", f.GetProperty("path").GetString());
            Assert.Equal(KeyId.ofSecret(WrongKey + failures.IndexOf(f)), f.GetProperty("actor").GetString());
        });
        Assert.Contains(lines, l => l.GetProperty("event").GetString() == "status.denied");
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(AuditPath));
        }

        var text = await File.ReadAllTextAsync(AuditPath);
        foreach (var secret in new[] { RelayKey, StatusSecret, ProviderKey, WrongKey, "wrong-status-token" })
        {
            Assert.DoesNotContain(secret, text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Edge_Audit_ReloadsAreWritten_ARefusedOneKeepsTheRunningConfig()
    {
        // Arrange: a config file whose provider sits inside the allowlist
        string Yaml(string host) => $"""
            server:
              api_key: "{RelayKey}"
            security:
              upstream_hosts: ["127.0.0.1"]
              audit_log: "{AuditPath}"
              status_token: "{StatusSecret}"
            providers:
              - name: a
                type: anthropic
                base_url: "http://{host}:{_upstream.BaseUrl.Port}"
                keys:
                  - key: "{ProviderKey}"
            """;
        await File.WriteAllTextAsync(ConfigPath, Yaml("127.0.0.1"));
        var load = Assert.IsType<ConfigLoad.Loaded>(ConfigFile.Load(ConfigPath, _ => null));
        await using var relay = await RelayHost.StartAsync(load.Config, ConfigPath, watchConfig: false);

        // Act: a provider outside the list, then one inside with another model mapping
        await File.WriteAllTextAsync(ConfigPath, Yaml("localhost"));
        var refused = relay.Reloader.Reload("api");
        await File.WriteAllTextAsync(ConfigPath, Yaml("127.0.0.1").Replace("    keys:", "    models: [claude-x]\n    keys:", StringComparison.Ordinal));
        var applied = relay.Reloader.Reload("api");

        // Assert
        Assert.Equal(ReloadOutcome.Rejected, refused.Outcome);
        var error = Assert.Single(refused.Errors);
        Assert.Equal("providers[0].base_url", error.Path);
        Assert.Equal(ReloadOutcome.Applied, applied.Outcome);
        var reloads = AuditLines().Where(l => l.GetProperty("event").GetString() == "config.reload").ToList();
        Assert.Equal(["rejected", "applied"], reloads.Select(l => l.GetProperty("outcome").GetString()));
        Assert.Equal("providers[0].base_url", reloads[0].GetProperty("errors").GetString());
        Assert.Equal("operator", reloads[1].GetProperty("actor").GetString());
        Assert.DoesNotContain(ProviderKey, await File.ReadAllTextAsync(AuditPath), StringComparison.Ordinal);
    }

    [Fact]
    public void Edge_Files_AMissingCaBundleOrAuditDirectory_AreConfigErrorsAtTheirKeys()
    {
        File.WriteAllText(ConfigPath, $"""
            security:
              upstream_ca_file: "{Path.Combine(_files.Directory, "no-such-ca.pem")}"
              audit_log: "{Path.Combine(_files.Directory, "no-such-dir", "audit.jsonl")}"
            """);

        var errors = Assert.IsType<ConfigLoad.Invalid>(ConfigFile.Load(ConfigPath, _ => null)).Errors;

        Assert.Equal(["security.upstream_ca_file", "security.audit_log"], errors.Select(e => e.Path));
        Assert.Equal(2, errors.Head.Position!.Value.Line);
    }

    [Fact]
    public async Task Edge_Audit_OperatorCallsAndRefusedTokens_OfTheManagementApi()
    {
        // Arrange
        await using var relay = await RelayHost.StartAsync(Config(grpc: true));
        using var channel = GrpcChannel.ForAddress(relay.Addresses[^1]);
        var client = new RelayManagement.RelayManagementClient(channel);

        // Act
        await Assert.ThrowsAsync<RpcException>(async () =>
            await client.SetProviderEnabledAsync(new SetProviderEnabledRequest { Name = "a", Enabled = false }, new Metadata { { "authorization", "Bearer nope" } }));
        await client.SetProviderEnabledAsync(new SetProviderEnabledRequest { Name = "a", Enabled = false }, new Metadata { { "authorization", "Bearer " + GrpcToken } });

        // Assert
        var lines = AuditLines();
        var refused = Assert.Single(lines, l => l.GetProperty("event").GetString() == "auth.failed");
        Assert.Equal("management", refused.GetProperty("surface").GetString());
        Assert.Equal("SetProviderEnabled", refused.GetProperty("method").GetString());
        var call = Assert.Single(lines, l => l.GetProperty("event").GetString() == "management.call");
        Assert.Equal("operator", call.GetProperty("actor").GetString());
        Assert.Equal("a", call.GetProperty("provider").GetString());
        Assert.Equal("false", call.GetProperty("enabled").GetString());
        Assert.Equal("true", call.GetProperty("changed").GetString());
        Assert.Equal("ok", call.GetProperty("outcome").GetString());
        Assert.DoesNotContain(GrpcToken, await File.ReadAllTextAsync(AuditPath), StringComparison.Ordinal);
    }
}
