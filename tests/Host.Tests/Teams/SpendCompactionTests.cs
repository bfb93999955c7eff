using System.Globalization;
using System.Net;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Shared;
using CcRelay.Host.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.FSharp.Core;
using Xunit.Abstractions;

namespace CcRelay.Host.Tests.Teams;

/// <summary>
/// Compaction of <c>ccrelay_spend</c> on a real PostgreSQL (<see cref="PostgresFactAttribute"/>, docs/scale-out.md):
/// two relays writing while runs fold their rows keep identical budgets, equal to the ledger's sum; a relay starting
/// after compaction sees the same spend; the table shrinks; a failing run changes nothing and is reported. And the
/// relay's one id: the ledger's rows carry the id the shared state publishes.
/// </summary>
[Trait("Category", "Postgres")]
public sealed class SpendCompactionTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "cc-relay-compaction-" + Guid.NewGuid().ToString("N"));
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

    private static ClientConfig Alice() => ClientKeyTests.Client(
        "alice", ClientKeyTests.AliceKey, budgets: [ClientKeyTests.Daily(1000m), new Budget(BudgetPeriod.Total, 1000m, FSharpOption<string>.None)]);

    private RelayConfig Config(string connectionString) => TestConfig.Relay(
            [TestConfig.Provider("anthropic", _upstream.BaseUrl, ProviderType.Anthropic, keys: [ClientKeyTests.UpstreamKey])],
            clients: [Alice()],
            ledger: TestConfig.Ledger(Path.Combine(_directory, "ledger.db"), flushIntervalMs: 50))
        .With(state: new StateConfig(FSharpOption<string>.Some(connectionString), 50));

    private static async Task SendAsync(RelayHost relay)
    {
        using var response = await relay.Client.SendAsync(Requests.Messages(
            """{"model":"claude-sonnet-4-6","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}""", apiKey: ClientKeyTests.AliceKey));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    /// <summary>Alice's spend per budget (day, total) as <paramref name="relay"/> sees it.</summary>
    private static decimal[] SpendOf(RelayHost relay) =>
        [.. relay.Services.GetRequiredService<CcRelay.Host.Clients.ClientGate>().SpendOf(Alice()).Select(s => s.Spent)];

    /// <summary>The ledger's sum of every relay's costs (the truth the budgets must hold), once every row is written.</summary>
    private static async Task<decimal> LedgerSumAsync(Postgres database) =>
        decimal.Parse((await database.ColumnAsync("SELECT coalesce(sum(cost_nanousd), 0) FROM ccrelay_requests"))[0]!, CultureInfo.InvariantCulture) / 1_000_000_000m;

    /// <summary>Polls <paramref name="condition"/> (flushes every 50 ms, ledger batches every second) for at most 20 s.</summary>
    private static async Task<bool> EventuallyAsync(Func<Task<bool>> condition)
    {
        var deadline = TimeProvider.System.GetUtcNow().AddSeconds(20);
        while (TimeProvider.System.GetUtcNow() < deadline)
        {
            if (await condition())
            {
                return true;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50), TimeProvider.System);
        }

        return false;
    }

    private static async Task<long> RowsAsync(Postgres database) =>
        long.Parse((await database.ColumnAsync("SELECT count(*) FROM ccrelay_spend"))[0]!, CultureInfo.InvariantCulture);

    /// <summary>Every relay sees the ledger's sum in both budgets (and the ledger has <paramref name="requests"/> rows).</summary>
    private static async Task<bool> AllSeeAsync(Postgres database, int requests, params RelayHost[] relays)
    {
        if ((await database.ColumnAsync("SELECT count(*) FROM ccrelay_requests"))[0] != requests.ToString(CultureInfo.InvariantCulture))
        {
            return false;
        }

        // the ledger keeps nano-USD: a request's cost may differ from the budgets' decimal by less than one
        var truth = await LedgerSumAsync(database);
        return truth > 0m && relays.All(r => SpendOf(r).All(s => Math.Abs(s - truth) <= requests / 1_000_000_000m));
    }

    /// <summary>Whether every live relay has published a read position at the table's last row (its heartbeat, at least once a second).</summary>
    private static async Task<bool> AllPublishedAsync(Postgres database, int relays) =>
        (await database.ColumnAsync("SELECT count(*) FROM ccrelay_relays WHERE read_seq >= (SELECT max(seq) FROM ccrelay_spend)"))[0]
            == relays.ToString(CultureInfo.InvariantCulture);

    [PostgresFact]
    public async Task TwoRelays_CompactedWhileBothWrite_KeepIdenticalBudgets_AndALateRelaySeesTheSame_AndTheTableShrinks()
    {
        // Arrange: two relays, each with 20 requests flushed in many small flushes (one row each)
        await using var database = await Postgres.CreateAsync();
        await using var first = await RelayHost.StartAsync(Config(database.ConnectionString));
        await using var second = await RelayHost.StartAsync(Config(database.ConnectionString));
        var sent = 0;
        for (var i = 0; i < 20; i++)
        {
            await SendAsync(first);
            await SendAsync(second);
            sent += 2;
            // a flush per request or two: many rows, as a busy relay leaves them
            await Task.Delay(TimeSpan.FromMilliseconds(60), TimeProvider.System);
        }

        Assert.True(await EventuallyAsync(() => AllSeeAsync(database, sent, first, second)));
        Assert.True(await EventuallyAsync(() => AllPublishedAsync(database, 2)));
        var rowsBefore = await RowsAsync(database);
        var bytesBefore = (await database.ColumnAsync("SELECT pg_total_relation_size('ccrelay_spend')"))[0];

        // Act: both relays try a run at once while both keep writing
        using var writing = new CancellationTokenSource();
        var writers = Task.WhenAll(new[] { first, second }.Select(async relay =>
        {
            var n = 0;
            while (!writing.IsCancellationRequested && n < 15)
            {
                await SendAsync(relay);
                Interlocked.Increment(ref sent);
                n++;
            }
        }));
        var runs = await Task.WhenAll(
            first.Services.GetRequiredService<SharedStateService>().CompactAsync(CancellationToken.None),
            second.Services.GetRequiredService<SharedStateService>().CompactAsync(CancellationToken.None));
        await writers;

        // Assert: a run folded (the other found the lock taken, or ran after it); nothing counted twice
        var done = runs.Where(p => p is { IsEmpty: false }).ToList();
        Assert.NotEmpty(done);
        Assert.True(await EventuallyAsync(() => AllSeeAsync(database, sent, first, second)));
        var through = done.Max(p => p!.Through);
        var rowsAfter = await RowsAsync(database);
        var foldedRows = long.Parse((await database.ColumnAsync($"SELECT count(*) FROM ccrelay_spend WHERE seq <= {through}"))[0]!, CultureInfo.InvariantCulture);
        output.WriteLine($"ccrelay_spend: {rowsBefore} rows ({bytesBefore} bytes) before; a run through seq {through} left {foldedRows} rows at or below it; {rowsAfter} rows now (writes went on)");
        Assert.True(foldedRows <= 2, $"{foldedRows} rows at or below the cutoff: one per relay expected");
        Assert.True(rowsAfter < rowsBefore, $"{rowsAfter} rows after, {rowsBefore} before");
        Assert.True(long.Parse((await database.ColumnAsync("SELECT runs FROM ccrelay_spend_compaction"))[0]!, CultureInfo.InvariantCulture) >= done.Count);

        // a relay starting after the compaction reads the folded rows once: the same spend
        await using var late = await RelayHost.StartAsync(Config(database.ConnectionString));
        Assert.True(await EventuallyAsync(() => AllSeeAsync(database, sent, first, second, late)));

        // the log and the metric say it; a healthy run adds nothing to /health
        var compactor = runs[0] is { IsEmpty: false } ? first : second;
        Assert.Contains(compactor.Logs.Lines, l => l.EventId == 711);
        Assert.Matches(@"ccrelay_shared_spend_compactions(_total)?(\{[^}]*\})? [1-9]", await compactor.ScrapeAsync());
        Assert.DoesNotContain("spend_compaction", await compactor.Client.GetStringAsync("/health"));
    }

    [PostgresFact]
    public async Task AFailingRun_ChangesNothing_AndIsReportedInHealthLogAndMetric_UntilARunSucceeds()
    {
        // Arrange: one relay's spend in several rows, all read
        await using var database = await Postgres.CreateAsync();
        await using var relay = await RelayHost.StartAsync(Config(database.ConnectionString));
        await using var other = await RelayHost.StartAsync(Config(database.ConnectionString));
        var sent = 0;
        for (var i = 0; i < 6; i++)
        {
            await SendAsync(other);
            sent++;
            await Task.Delay(TimeSpan.FromMilliseconds(60), TimeProvider.System);
        }

        Assert.True(await EventuallyAsync(() => AllSeeAsync(database, sent, relay, other)));
        Assert.True(await EventuallyAsync(() => AllPublishedAsync(database, 2)));
        var shared = relay.Services.GetRequiredService<SharedStateService>();
        var rows = await database.ColumnAsync("SELECT seq::text || ':' || relay || ':' || body::text FROM ccrelay_spend ORDER BY seq");

        // Act: the run's last statement fails (its bookkeeping table is gone)
        await database.ColumnAsync("ALTER TABLE ccrelay_spend_compaction RENAME TO ccrelay_spend_compaction_away");
        var failed = await shared.CompactAsync(CancellationToken.None);

        // Assert: nothing half-written; reported
        Assert.Null(failed);
        Assert.Equal(rows, await database.ColumnAsync("SELECT seq::text || ':' || relay || ':' || body::text FROM ccrelay_spend ORDER BY seq"));
        Assert.Contains(relay.Logs.Lines, l => l.EventId == 712);
        using (var health = JsonDocument.Parse(await relay.Client.GetStringAsync("/health")))
        {
            var member = health.RootElement.GetProperty("spend_compaction");
            Assert.Equal("failing", member.GetProperty("status").GetString());
            Assert.Contains("ccrelay_spend_compaction", member.GetProperty("detail").GetString());
            Assert.Equal("ok", health.RootElement.GetProperty("shared_state").GetProperty("status").GetString());
        }

        Assert.Matches(@"ccrelay_shared_spend_compaction_failures(_total)?(\{[^}]*\})? 1", await relay.ScrapeAsync());

        // and once the table is back, a run folds and the report is gone
        await database.ColumnAsync("ALTER TABLE ccrelay_spend_compaction_away RENAME TO ccrelay_spend_compaction");
        var plan = await shared.CompactAsync(CancellationToken.None);
        Assert.NotNull(plan);
        Assert.False(plan.IsEmpty);
        Assert.Contains(relay.Logs.Lines, l => l.EventId == 713);
        Assert.DoesNotContain("spend_compaction", await relay.Client.GetStringAsync("/health"));
        Assert.True(await RowsAsync(database) < rows.Count);
        Assert.True(await EventuallyAsync(() => AllSeeAsync(database, sent, relay, other)));
    }

    [PostgresFact]
    public async Task TheLedgerRows_SpendRows_AndHeartbeat_CarryTheOneRelayId()
    {
        // Arrange / Act: two relays, a request through each
        await using var database = await Postgres.CreateAsync();
        await using var first = await RelayHost.StartAsync(Config(database.ConnectionString));
        await using var second = await RelayHost.StartAsync(Config(database.ConnectionString));
        await SendAsync(first);
        await SendAsync(second);
        Assert.True(await EventuallyAsync(() => AllSeeAsync(database, 2, first, second)));

        // Assert: each relay's id is the one its ledger rows, its spend rows and its heartbeat carry
        foreach (var relay in new[] { first, second })
        {
            var id = relay.Services.GetRequiredService<SharedStateService>().RelayId;
            Assert.Equal(["1"], await database.ColumnAsync($"SELECT count(*) FROM ccrelay_requests WHERE relay = '{id}'"));
            Assert.NotEqual(["0"], await database.ColumnAsync($"SELECT count(*) FROM ccrelay_spend WHERE relay = '{id}'"));
            Assert.Equal(["1"], await database.ColumnAsync($"SELECT count(*) FROM ccrelay_relays WHERE relay = '{id}'"));
        }
    }
}
