using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Routing;
using CcRelay.Host.Shared;
using CcRelay.Host.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.FSharp.Core;

namespace CcRelay.Host.Tests.Teams;

/// <summary>
/// Relays on one real PostgreSQL (<see cref="PostgresFactAttribute"/>): a relay joining late learns the pins made
/// before it joined; a relay whose providers, clients or ledger.time_zone differ is reported by every relay.
/// </summary>
[Trait("Category", "Postgres")]
public sealed class SharedAgreementTests : IAsyncLifetime
{
    private FakeUpstream _upstream = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, ClientKeyTests.PricedAnswer());
    }

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    private RelayConfig Config(string connectionString, params ClientConfig[] clients) => TestConfig.Relay(
            [TestConfig.Provider("anthropic", _upstream.BaseUrl, ProviderType.Anthropic, keys: [ClientKeyTests.UpstreamKey])],
            clients: clients)
        .With(state: new StateConfig(FSharpOption<string>.Some(connectionString), 50));

    /// <summary>Polls <paramref name="condition"/> (the agreement check runs at connection and every 5 s) for at most 15 s.</summary>
    private static async Task<bool> EventuallyAsync(Func<Task<bool>> condition)
    {
        var deadline = TimeProvider.System.GetUtcNow().AddSeconds(15);
        while (TimeProvider.System.GetUtcNow() < deadline)
        {
            if (await condition())
            {
                return true;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), TimeProvider.System);
        }

        return false;
    }

    [PostgresFact]
    public async Task ARelayJoiningLate_LearnsThePinsMadeBefore()
    {
        // Arrange: one relay pins two conversations (published as another relay's pins would be)
        await using var database = await Postgres.CreateAsync();
        await using var first = await RelayHost.StartAsync(Config(database.ConnectionString));
        var shared = first.Services.GetRequiredService<SharedStateService>();
        shared.Publish(SharedEvent.NewConversationPinned(4711UL, "anthropic"));
        shared.Publish(SharedEvent.NewConversationPinned(ulong.MaxValue - 1, "openai"));
        Assert.True(await EventuallyAsync(async () => (await database.ColumnAsync("SELECT count(*) FROM ccrelay_pins"))[0] == "2"));

        // Act: a relay that was not listening then starts
        await using var late = await RelayHost.StartAsync(Config(database.ConnectionString));

        // Assert: it has both pins (no NOTIFY reached it: it read the table)
        var runtime = late.Services.GetRequiredService<RuntimeCell>();
        Assert.Equal("anthropic", SharedPins.familyOf(runtime.Now, 4711UL, runtime.Current));
        Assert.Equal("openai", SharedPins.familyOf(runtime.Now, ulong.MaxValue - 1, runtime.Current));
    }

    [PostgresFact]
    public async Task GetStatus_CarriesTheSharedStateLink_AsHealthDoes()
    {
        // Arrange: a relay on the shared store, with its management API
        await using var database = await Postgres.CreateAsync();
        var config = Config(database.ConnectionString)
            .With(grpc: new GrpcConfig(true, new ListenAddress("127.0.0.1", 0), FSharpOption<string>.None, FSharpOption<ListenAddress>.None));
        await using var relay = await RelayHost.StartAsync(config);
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(relay.Addresses[^1]);
        var client = new CcRelay.Management.V1.RelayManagement.RelayManagementClient(channel);

        // Act / Assert: once connected, GetStatus says so, with /health's words and never the connection string
        CcRelay.Management.V1.SharedStateLink? link = null;
        Assert.True(await EventuallyAsync(async () =>
        {
            link = (await client.GetStatusAsync(new CcRelay.Management.V1.GetStatusRequest())).SharedState;
            return link.Status == "ok";
        }));
        using var health = JsonDocument.Parse(await relay.Client.GetStringAsync("/health"));
        Assert.Equal(health.RootElement.GetProperty("shared_state").GetProperty("detail").GetString(), link!.Detail);
        Assert.Equal(0, link.SinceUnixMs);
        Assert.DoesNotContain("Host=", link.Detail, StringComparison.Ordinal);
    }

    [PostgresFact]
    public async Task ARelayWithOtherClients_IsReportedByEveryRelay_InHealthAndTheMetric()
    {
        // Arrange: two relays with the same clients, a third with one more
        await using var database = await Postgres.CreateAsync();
        var alice = ClientKeyTests.Client("alice", ClientKeyTests.AliceKey);
        await using var first = await RelayHost.StartAsync(Config(database.ConnectionString, alice));
        await using var second = await RelayHost.StartAsync(Config(database.ConnectionString, alice));
        Assert.True(await EventuallyAsync(async () => await ConfigOf(first) == "agrees" && await ConfigOf(second) == "agrees"));

        // Act
        await using var odd = await RelayHost.StartAsync(Config(database.ConnectionString, alice, ClientKeyTests.Client("bob", "bob-relay-key-0123456789abcdef")));

        // Assert: the odd one knows it is; the others name it
        Assert.True(await EventuallyAsync(async () => await ConfigOf(odd) == "differs" && await ConfigOf(first) == "differs"));
        using (var health = JsonDocument.Parse(await odd.Client.GetStringAsync("/health")))
        {
            var agreement = health.RootElement.GetProperty("shared_agreement");
            Assert.True(agreement.GetProperty("odd_one_out").GetBoolean());
            Assert.Equal(2, agreement.GetProperty("differing_relays").GetArrayLength());
            Assert.Equal("ok", agreement.GetProperty("clock").GetString());
        }

        var oddId = odd.Services.GetRequiredService<SharedStateService>().RelayId;
        using (var health = JsonDocument.Parse(await first.Client.GetStringAsync("/health")))
        {
            var agreement = health.RootElement.GetProperty("shared_agreement");
            Assert.False(agreement.GetProperty("odd_one_out").GetBoolean());
            Assert.Equal(oddId, Assert.Single(agreement.GetProperty("differing_relays").EnumerateArray()).GetString());
        }

        Assert.Matches(@"ccrelay_shared_state_config_agrees(_ratio)?(\{[^}]*\})? 0", await first.ScrapeAsync());
        Assert.Matches(@"ccrelay_shared_state_config_agrees(_ratio)?(\{[^}]*\})? 0", await odd.ScrapeAsync());
        Assert.Contains(odd.Logs.Lines, l => l.EventId == 708);
        Assert.DoesNotContain(ClientKeyTests.AliceKey, await odd.Client.GetStringAsync("/health"));
    }

    private static async Task<string?> ConfigOf(RelayHost relay)
    {
        using var health = JsonDocument.Parse(await relay.Client.GetStringAsync("/health"));
        return health.RootElement.TryGetProperty("shared_agreement", out var agreement) ? agreement.GetProperty("config").GetString() : null;
    }
}
