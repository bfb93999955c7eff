using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Shared;
using CcRelay.Host.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.FSharp.Core;

namespace CcRelay.Host.Tests.Teams;

/// <summary>
/// Publishing shared events on one real PostgreSQL (<see cref="PostgresFactAttribute"/>): an event whose
/// transaction did not commit (the database went away between the statements and the commit) is published again
/// once the relay reconnects, never dropped.
/// </summary>
[Trait("Category", "Postgres")]
public sealed class SharedPublishTests : IAsyncLifetime
{
    private FakeUpstream _upstream = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, ClientKeyTests.PricedAnswer());
    }

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    private RelayConfig Config(string connectionString) => TestConfig.Relay(
            [TestConfig.Provider("anthropic", _upstream.BaseUrl, ProviderType.Anthropic, keys: [ClientKeyTests.UpstreamKey])])
        .With(state: new StateConfig(FSharpOption<string>.Some(connectionString), 50));

    [PostgresFact]
    public async Task ACircuitWhoseCommitFailed_IsPublishedAgainAfterTheReconnect_AndReachesTheOtherRelay()
    {
        // Arrange: two relays on one database; the first commit that writes a circuit is refused (a deferred
        // constraint trigger raises at COMMIT, as a database lost between the statements and the commit would: the
        // statements ran, the commit failed). The sequence counts commits tried, outside any transaction.
        await using var database = await Postgres.CreateAsync();
        await using var first = await RelayHost.StartAsync(Config(database.ConnectionString));
        await using var second = await RelayHost.StartAsync(Config(database.ConnectionString));
        await first.Logs.WaitForAsync(l => l.EventId == 700);
        await second.Logs.WaitForAsync(l => l.EventId == 700);
        await database.ColumnAsync("""
            CREATE SEQUENCE test_circuit_commits;
            CREATE FUNCTION test_refuse_first_commit() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF nextval('test_circuit_commits') = 1 THEN RAISE EXCEPTION 'commit refused (test)'; END IF;
              RETURN NULL;
            END $$;
            CREATE CONSTRAINT TRIGGER test_refuse_first_commit AFTER INSERT OR UPDATE ON ccrelay_circuits
              DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_refuse_first_commit();
            """);

        // Act: the first relay's circuit opens
        first.Services.GetRequiredService<SharedStateService>()
            .Publish(SharedEvent.NewCircuitOpened("anthropic", TimeProvider.System.GetUtcNow().AddMinutes(5)));

        // Assert: the refused commit cost the first relay its link (reported), and the event was not lost with it:
        // published again after the reconnect, the second relay applies it (NOTIFY) and shows the circuit open
        await first.Logs.WaitForAsync(l => l.EventId == 701);
        var applied = await second.Logs.WaitForAsync(l => l.EventId == 703 && ((string?)l.Fields["event"])!.StartsWith("circuit of anthropic", StringComparison.Ordinal));
        Assert.Single(applied);
        using var response = await second.Client.GetAsync("/health"); // 503: its one provider is open
        using var health = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("open", health.RootElement.GetProperty("providers")[0].GetProperty("circuit").GetString());
        Assert.Equal(["1"], await database.ColumnAsync("SELECT count(*) FROM ccrelay_circuits WHERE provider = 'anthropic'"));
        Assert.Equal(["2"], await database.ColumnAsync("SELECT last_value FROM test_circuit_commits"));
    }
}
