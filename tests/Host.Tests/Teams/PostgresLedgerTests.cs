using System.Net;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Ledger;
using CcRelay.Host.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.FSharp.Core;

namespace CcRelay.Host.Tests.Teams;

/// <summary>
/// The usage ledger on PostgreSQL (<c>state.postgres</c> with <c>ledger.enabled</c>, docs/scale-out.md), against a real
/// server (<see cref="PostgresFactAttribute"/>: tests/SharedState/run.sh provides one): every relay's rows in one table,
/// each relay answering for all; a database briefly away loses no row and fails no request, and it is reported.
/// </summary>
[Trait("Category", "Postgres")]
public sealed class PostgresLedgerTests : IAsyncLifetime
{
    private const string Password = "pg-password-never-shown-4711";
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "cc-relay-pgledger-" + Guid.NewGuid().ToString("N"));
    private FakeUpstream _upstream = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, ClientKeyTests.PricedAnswer());
    }

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    /// <summary>The SQLite file ledger.path names: with state.postgres it holds the runtime client keys only, no request.</summary>
    private string FilePath => Path.Combine(_directory, "ledger.db");

    private RelayConfig Config(string connectionString) => TestConfig.Relay(
            [TestConfig.Provider("anthropic", _upstream.BaseUrl, ProviderType.Anthropic, keys: [ClientKeyTests.UpstreamKey])],
            clients: [ClientKeyTests.Client("alice", ClientKeyTests.AliceKey)],
            ledger: TestConfig.Ledger(FilePath, flushIntervalMs: 50))
        .With(state: new StateConfig(FSharpOption<string>.Some(connectionString), 50));

    private static HttpRequestMessage Message() =>
        Requests.Messages("""{"model":"claude-sonnet-4-6","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}""", apiKey: ClientKeyTests.AliceKey);

    private static async Task SendAsync(RelayHost relay, int count, int linesBefore = 0)
    {
        for (var i = 0; i < count; i++)
        {
            using var response = await relay.Client.SendAsync(Message());
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // the accounting queues each request's row before its request line
        await relay.Logs.RequestLinesAsync(linesBefore + count);
    }

    private long RowsInFile()
    {
        if (!File.Exists(FilePath))
        {
            return 0;
        }

        using var connection = LedgerFile.OpenForReading(FilePath);
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT count(*) FROM requests";
        return (long)command.ExecuteScalar()!;
    }

    [PostgresFact]
    public async Task TwoRelays_WriteTheirRowsToOneTable_AndEachAnswersUsageForBoth_WithoutASecret()
    {
        // Arrange
        await using var database = await Postgres.CreateAsync();
        await using var first = await RelayHost.StartAsync(Config(database.ConnectionString));
        await using var second = await RelayHost.StartAsync(Config(database.ConnectionString));

        // Act: three requests through one relay, two through the other
        await SendAsync(first, 3);
        await SendAsync(second, 2);
        await first.Services.GetRequiredService<IUsageLedger>().FlushAsync();
        await second.Services.GetRequiredService<IUsageLedger>().FlushAsync();

        // Assert: one table, two writers; either relay's usage report counts all five
        var relays = await database.ColumnAsync("SELECT relay FROM ccrelay_requests GROUP BY relay ORDER BY count(*) DESC");
        Assert.Equal(2, relays.Count);
        Assert.Equal(["3"], await database.ColumnAsync($"SELECT count(*) FROM ccrelay_requests WHERE relay = '{relays[0]}'"));
        foreach (var relay in new[] { first, second })
        {
            var ledger = relay.Services.GetRequiredService<IUsageLedger>();
            var byClient = ledger.Query(new UsageQuery(UsageGrouping.Client, TimeProvider.System.GetUtcNow().AddHours(-1), TimeZoneInfo.Utc));
            var alice = Assert.Single(byClient);
            Assert.Equal("alice", alice.Key);
            Assert.Equal(5, alice.Requests);
            Assert.Equal(0, alice.Errors);
            Assert.True(alice.CostUsd > 0m);
            Assert.Equal(alice.CostUsd, ledger.SpendSince(DateTimeOffset.MinValue).Sum(b => b.CostUsd));
            var byDay = ledger.Query(new UsageQuery(UsageGrouping.Day, TimeProvider.System.GetUtcNow().AddHours(-1), TimeZoneInfo.Utc));
            Assert.Equal(5, byDay.Sum(g => g.Requests));
            Assert.True(ledger.Status.Healthy);
            Assert.Equal(relay == first ? 3 : 2, ledger.Status.Written);
        }

        // the same columns as the SQLite file's, no secret in any of them
        var everything = string.Join("\n", await database.ColumnAsync("SELECT row_to_json(r)::text FROM ccrelay_requests r"));
        Assert.Contains("\"client\":\"alice\"", everything);
        Assert.Contains("\"provider\":\"anthropic\"", everything);
        Assert.DoesNotContain(ClientKeyTests.AliceKey, everything);
        Assert.DoesNotContain(ClientKeyTests.UpstreamKey, everything);
        Assert.Equal(0L, RowsInFile());
    }

    [PostgresFact]
    public async Task TheDatabaseBrieflyAway_FailsNoRequest_IsReported_AndLosesNoRow()
    {
        // Arrange: the relay reaches the database through a proxy the test can cut
        await using var database = await Postgres.CreateAsync();
        var (host, port) = database.Endpoint;
        await using var proxy = TcpProxy.Start(host, port);
        var through = database.Through(proxy) + $";Password={Password}";
        await using var relay = await RelayHost.StartAsync(Config(through));
        var ledger = relay.Services.GetRequiredService<IUsageLedger>();
        await SendAsync(relay, 2);
        await ledger.FlushAsync();
        Assert.Equal(["2"], await database.ColumnAsync("SELECT count(*) FROM ccrelay_requests"));

        // Act: the database goes away; requests go on
        proxy.Cut();
        await SendAsync(relay, 5, linesBefore: 2);
        await ledger.FlushAsync();

        // Assert: answered, reported (status, /health, metric, log), nothing dropped, nothing written yet
        var during = ledger.Status;
        Assert.False(during.Healthy);
        Assert.Equal(0, during.Dropped);
        Assert.Contains("5 rows waiting", during.Problem);
        using (var health = JsonDocument.Parse(await relay.Client.GetStringAsync("/health")))
        {
            var line = health.RootElement.GetProperty("ledger");
            Assert.Equal("failing", line.GetProperty("status").GetString());
            Assert.Equal("ok", health.RootElement.GetProperty("status").GetString());
        }

        var scrape = await relay.ScrapeAsync();
        Assert.Matches(@"ccrelay_ledger_healthy(_ratio)?(\{[^}]*\})? 0", scrape);
        Assert.Contains(relay.Logs.Lines, l => l.EventId == 301);
        Assert.Equal(["2"], await database.ColumnAsync("SELECT count(*) FROM ccrelay_requests"));

        // and once it is back, the waiting rows are written (each flush retries; a pooled connection the cut broke
        // fails one attempt at most)
        proxy.Restore();
        for (var attempt = 0; attempt < 20 && !ledger.Status.Healthy; attempt++)
        {
            await ledger.FlushAsync();
        }

        Assert.True(ledger.Status.Healthy);
        Assert.Equal(["7"], await database.ColumnAsync("SELECT count(*) FROM ccrelay_requests"));
        Assert.Equal(7, ledger.Status.Written);
        Assert.Equal(0, ledger.Status.Dropped);
        Assert.Contains(relay.Logs.Lines, l => l.EventId == 302);
        Assert.DoesNotContain(relay.Logs.Lines, l => l.Message.Contains(Password, StringComparison.Ordinal));
        Assert.DoesNotContain(Password, scrape);
    }
}
