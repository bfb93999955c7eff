using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Shared;
using CcRelay.Host.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.FSharp.Core;

namespace CcRelay.Host.Tests.Teams;

/// <summary>
/// <c>state.postgres</c> on the real relay without a database (Host.Tests never needs PostgreSQL; three relays on a real
/// one are tests/SharedState/run.sh): a database that cannot be reached fails no request, and says so without a secret.
/// </summary>
public sealed class SharedStateTests : IAsyncLifetime
{
    private const string Password = "pg-password-never-shown-4711";
    private FakeUpstream _upstream = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, ClientKeyTests.PricedAnswer());
    }

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    /// <summary>A loopback port nothing listens on (bound, then released).</summary>
    private static int ClosedPort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    [Fact]
    public async Task AnUnreachableDatabase_FailsNoRequest_AndHealthAndTheMetricSayDegraded_WithoutTheConnectionString()
    {
        // Arrange: a client with a budget, its state meant to be shared through a database that refuses connections
        var alice = ClientKeyTests.Client("alice", ClientKeyTests.AliceKey, budgets: [ClientKeyTests.Daily(10m)]);
        var connection = $"Host=127.0.0.1;Port={ClosedPort()};Database=ccrelay;Username=relay;Password={Password}";
        var config = TestConfig.Relay(
                [TestConfig.Provider("anthropic", _upstream.BaseUrl, ProviderType.Anthropic, keys: [ClientKeyTests.UpstreamKey])],
                clients: [alice])
            .With(state: new StateConfig(FSharpOption<string>.Some(connection), 50));
        await using var relay = await RelayHost.StartAsync(config);

        // Act
        var answers = new List<HttpStatusCode>();
        for (var i = 0; i < 5; i++)
        {
            using var response = await relay.Client.SendAsync(Requests.Messages(
                """{"model":"claude-sonnet-4-6","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}""", apiKey: ClientKeyTests.AliceKey));
            answers.Add(response.StatusCode);
        }

        await relay.Logs.WaitForAsync(l => l.EventId == 701);
        var body = await relay.Client.GetStringAsync("/health");
        var scrape = await relay.ScrapeAsync();

        // Assert: every request answered, the budget enforced locally, the link degraded everywhere it is shown
        Assert.All(answers, status => Assert.Equal(HttpStatusCode.OK, status));
        Assert.Equal(5, _upstream.Requests.Count);
        Assert.True(relay.Services.GetRequiredService<CcRelay.Host.Clients.ClientGate>().SpendOf(alice)[0].Spent > 0m);
        using var health = JsonDocument.Parse(body);
        var shared = health.RootElement.GetProperty("shared_state");
        Assert.Equal("degraded", shared.GetProperty("status").GetString());
        Assert.Contains("PostgreSQL unreachable", shared.GetProperty("detail").GetString());
        Assert.Equal("ok", health.RootElement.GetProperty("status").GetString());
        Assert.IsType<SharedLink.Degraded>(relay.Services.GetRequiredService<SharedStateService>().Link);
        Assert.Matches(@"ccrelay_shared_state_up(_ratio)?(\{[^}]*\})? 0", scrape);
        Assert.DoesNotContain(Password, body);
        Assert.DoesNotContain(Password, scrape);
        Assert.DoesNotContain(relay.Logs.Lines, l => l.Message.Contains(Password, StringComparison.Ordinal));
    }

    [Fact]
    public async Task TheLedger_WritesTheRelayIdTheSharedStatePublishes()
    {
        // Arrange / Act: a relay on state.postgres (its ledger is the shared table; nothing needs to answer)
        var connection = $"Host=127.0.0.1;Port={ClosedPort()};Database=ccrelay;Username=relay;Password={Password}";
        var directory = Path.Combine(Path.GetTempPath(), "cc-relay-relayid-" + Guid.NewGuid().ToString("N"));
        var config = TestConfig.Relay(
                [TestConfig.Provider("anthropic", _upstream.BaseUrl, ProviderType.Anthropic)],
                ledger: TestConfig.Ledger(Path.Combine(directory, "ledger.db"), flushIntervalMs: 50))
            .With(state: new StateConfig(FSharpOption<string>.Some(connection), 50));
        using var cleanup = new DirectoryCleanup(directory);
        await using var relay = await RelayHost.StartAsync(config);

        // Assert: one id per relay process: the ledger's rows carry the id of its spend, heartbeat, pins and agreement
        var ledger = Assert.IsType<CcRelay.Host.Ledger.PostgresLedger>(relay.Services.GetRequiredService<CcRelay.Host.Ledger.IUsageLedger>());
        var shared = relay.Services.GetRequiredService<SharedStateService>();
        Assert.Equal(shared.RelayId, ledger.Relay);
        Assert.Equal(relay.Services.GetRequiredService<RelayIdentity>().Id, shared.RelayId);
    }

    [Fact]
    public async Task WithoutStatePostgres_NothingIsShared_AndHealthHasNoLink()
    {
        var config = TestConfig.Relay([TestConfig.Provider("anthropic", _upstream.BaseUrl, ProviderType.Anthropic, keys: [ClientKeyTests.UpstreamKey])]);
        await using var relay = await RelayHost.StartAsync(config);

        using var health = JsonDocument.Parse(await relay.Client.GetStringAsync("/health"));

        Assert.False(health.RootElement.TryGetProperty("shared_state", out _));
        Assert.Null(relay.Services.GetService<SharedStateService>());
        Assert.DoesNotContain("ccrelay_shared_state_up", await relay.ScrapeAsync());
    }
}

/// <summary>Deletes a test's directory on dispose.</summary>
internal sealed class DirectoryCleanup(string path) : IDisposable
{
    public void Dispose()
    {
        if (Directory.Exists(path))
        {
            Directory.Delete(path, recursive: true);
        }
    }
}
