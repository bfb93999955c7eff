using System.Net;
using System.Text;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Ledger;
using CcRelay.Host.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace CcRelay.Host.Tests.Teams;

/// <summary>The usage ledger on the real relay: rows, restarts, budgets rebuilt, a lost file, no secrets.</summary>
public sealed class LedgerTests : IAsyncLifetime
{
    private FakeUpstream _upstream = null!;
    private string _directory = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, ClientKeyTests.PricedAnswer());
        _directory = Path.Combine(Path.GetTempPath(), "cc-relay-ledger-" + Guid.NewGuid().ToString("N"));
    }

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        if (File.Exists(Path.Combine(_directory, "state")))
        {
            File.Delete(Path.Combine(_directory, "state"));
        }

        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private string LedgerPath => Path.Combine(_directory, "state", "ledger.db");

    private RelayConfig Config(params ClientConfig[] clients) => TestConfig.Relay(
        [TestConfig.Provider("anthropic", _upstream.BaseUrl, ProviderType.Anthropic, keys: [ClientKeyTests.UpstreamKey])],
        clients: clients,
        ledger: TestConfig.Ledger(LedgerPath));

    private static HttpRequestMessage Message(string? key) =>
        Requests.Messages("""{"model":"claude-sonnet-4-6","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}""", apiKey: key);

    /// <summary>Waits for the request lines of <paramref name="requests"/> requests (the accounting queues each one's row before its line), then flushes the ledger.</summary>
    private static async Task FlushAsync(RelayHost relay, int requests)
    {
        await relay.Logs.RequestLinesAsync(requests);
        await relay.Services.GetRequiredService<IUsageLedger>().FlushAsync();
    }

    private List<Dictionary<string, object?>> Rows()
    {
        using var connection = LedgerFile.OpenForReading(LedgerPath);
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT * FROM requests ORDER BY id";
        using var reader = command.ExecuteReader();
        var rows = new List<Dictionary<string, object?>>();
        while (reader.Read())
        {
            var row = new Dictionary<string, object?>();
            for (var i = 0; i < reader.FieldCount; i++)
            {
                row[reader.GetName(i)] = reader.IsDBNull(i) ? null : reader.GetValue(i);
            }

            rows.Add(row);
        }

        return rows;
    }

    [Fact]
    public async Task EveryCompletedRequest_IsARow_WithItsClient_Provider_Model_Keys_Tokens_Cost_Status_Latency()
    {
        // Arrange
        var alice = ClientKeyTests.Client("alice", ClientKeyTests.AliceKey);
        await using var relay = await RelayHost.StartAsync(Config(alice));

        // Act
        using var ok = await relay.Client.SendAsync(Message(ClientKeyTests.AliceKey));
        using var refused = await relay.Client.SendAsync(Message("wrong-key"));
        await FlushAsync(relay, 2);

        // Assert
        var rows = Rows().OrderBy(r => (long)r["status"]!).ToList();
        Assert.Equal(2, rows.Count);
        var row = rows[0];
        Assert.Equal("alice", row["client"]);
        Assert.Equal(alice.KeyId, row["client_key_id"]);
        Assert.Equal("anthropic", row["provider"]);
        Assert.Equal(KeyId.ofSecret(ClientKeyTests.UpstreamKey), row["key_id"]);
        Assert.Equal("claude-sonnet-4-6", row["model"]);
        Assert.Equal("claude-sonnet-4-6", row["response_model"]);
        Assert.Equal("default", row["stage"]);
        Assert.Equal(200L, row["status"]);
        Assert.Equal("ok", row["result"]);
        Assert.Equal(1000L, row["input_tokens"]);
        Assert.Equal(1000L, row["output_tokens"]);
        Assert.Equal(0L, row["cache_read_tokens"]);
        Assert.Equal(18_000_000L, row["cost_nanousd"]); // USD 0.018
        Assert.True((double)row["latency_ms"]! > 0);
        Assert.Equal("-", rows[1]["client"]);
        Assert.Equal(401L, rows[1]["status"]);
        Assert.Null(rows[1]["input_tokens"]);

        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(LedgerPath));
        }
    }

    [Fact]
    public async Task Rows_SurviveARestart_AndBudgetsAreRebuiltFromThem()
    {
        var alice = ClientKeyTests.Client("alice", ClientKeyTests.AliceKey, budgets: [ClientKeyTests.Daily(0.01m)]);
        await using (var first = await RelayHost.StartAsync(Config(alice)))
        {
            using var spent = await first.Client.SendAsync(Message(ClientKeyTests.AliceKey));
            Assert.Equal(HttpStatusCode.OK, spent.StatusCode);
        }

        // a new relay on the same file: the day's 1.8 cents are over the 1-cent budget
        await using var second = await RelayHost.StartAsync(Config(alice));
        using var refused = await second.Client.SendAsync(Message(ClientKeyTests.AliceKey));

        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Single(_upstream.Requests);
        Assert.Single(Rows(), r => (long)r["status"]! == 200);
    }

    [Fact]
    public async Task ALedgerThatCannotBeWritten_NeverFailsARequest_AndIsReported()
    {
        // Arrange
        await using var relay = await RelayHost.StartAsync(Config(ClientKeyTests.Client("alice", ClientKeyTests.AliceKey)));
        using (var before = await relay.Client.SendAsync(Message(ClientKeyTests.AliceKey)))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        await FlushAsync(relay, 1);

        // Act: the ledger's directory goes away and a file takes its place, so nothing can be created there
        // (a chmod would not stop root, who runs CI)
        var directory = Path.GetDirectoryName(LedgerPath)!;
        Directory.Delete(directory, recursive: true);
        await File.WriteAllTextAsync(directory, "not a directory");
        using var during = await relay.Client.SendAsync(Message(ClientKeyTests.AliceKey));
        await FlushAsync(relay, 2);

        // Assert
        Assert.Equal(HttpStatusCode.OK, during.StatusCode);
        var status = relay.Services.GetRequiredService<IUsageLedger>().Status;
        Assert.False(status.Healthy);
        Assert.Equal(1, status.Dropped);
        Assert.NotNull(status.Problem);
        using var health = JsonDocument.Parse(await relay.Client.GetStringAsync("/health"));
        var ledger = health.RootElement.GetProperty("ledger");
        Assert.Equal("failing", ledger.GetProperty("status").GetString());
        Assert.Equal(1, ledger.GetProperty("rows_dropped").GetInt64());
        Assert.Contains(relay.Logs.Lines, l => l.EventId == 301);
        var scrape = await relay.ScrapeAsync();
        Assert.Contains("ccrelay_ledger_healthy", scrape);
        Assert.Matches(@"ccrelay_ledger_healthy(_ratio)?(\{[^}]*\})? 0", scrape);
        Assert.Contains("ccrelay_ledger_rows_total{outcome=\"dropped\"} 1", scrape);

        // and it recovers by itself once the path is usable again
        File.Delete(directory);
        using var after = await relay.Client.SendAsync(Message(ClientKeyTests.AliceKey));
        await FlushAsync(relay, 3);
        Assert.True(relay.Services.GetRequiredService<IUsageLedger>().Status.Healthy);
        Assert.Single(Rows());
    }

    [Fact]
    public async Task TheLedgerFile_HoldsNoSecret()
    {
        // Arrange: a client key, the operator's key, an upstream key; passthrough of a caller's own token too
        var config = TestConfig.Relay(
            [TestConfig.Provider("anthropic", _upstream.BaseUrl, ProviderType.Anthropic, keys: [ClientKeyTests.UpstreamKey])],
            apiKey: "operator-relay-secret-value",
            clients: [ClientKeyTests.Client("alice", ClientKeyTests.AliceKey)],
            ledger: TestConfig.Ledger(LedgerPath));
        await using var relay = await RelayHost.StartAsync(config);

        // Act
        using var a = await relay.Client.SendAsync(Message(ClientKeyTests.AliceKey));
        using var b = await relay.Client.SendAsync(Message("operator-relay-secret-value"));
        using var c = await relay.Client.SendAsync(Message("sk-ant-a-wrong-guess-of-a-key"));
        await FlushAsync(relay, 3);

        // Assert: every byte of the database and its WAL
        var bytes = Directory.GetFiles(Path.GetDirectoryName(LedgerPath)!)
            .Select(f =>
            {
                using var stream = new FileStream(f, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                using var memory = new MemoryStream();
                stream.CopyTo(memory);
                return Encoding.Latin1.GetString(memory.ToArray());
            })
            .ToList();
        Assert.Equal(3, Rows().Count);
        foreach (var secret in new[] { ClientKeyTests.AliceKey, "operator-relay-secret-value", ClientKeyTests.UpstreamKey, "sk-ant-a-wrong-guess-of-a-key" })
        {
            Assert.DoesNotContain(bytes, content => content.Contains(secret, StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task UsageQueries_GroupByClientAndDay()
    {
        await using var relay = await RelayHost.StartAsync(Config(
            ClientKeyTests.Client("alice", ClientKeyTests.AliceKey),
            ClientKeyTests.Client("bob", ClientKeyTests.BobKey)));
        using (await relay.Client.SendAsync(Message(ClientKeyTests.AliceKey)))
        using (await relay.Client.SendAsync(Message(ClientKeyTests.AliceKey)))
        using (await relay.Client.SendAsync(Message(ClientKeyTests.BobKey)))
        {
        }

        await FlushAsync(relay, 3);
        var ledger = relay.Services.GetRequiredService<IUsageLedger>();

        var byClient = ledger.Query(new UsageQuery(UsageGrouping.Client, DateTimeOffset.UnixEpoch, TimeZoneInfo.Utc));
        var byDay = ledger.Query(new UsageQuery(UsageGrouping.Day, DateTimeOffset.UnixEpoch, TimeZoneInfo.Utc));

        Assert.Equal(["alice", "bob"], byClient.Select(g => g.Key));
        Assert.Equal(2, byClient[0].Requests);
        Assert.Equal(0.036m, byClient[0].CostUsd);
        Assert.Equal(2000, byClient[0].OutputTokens);
        var day = Assert.Single(byDay);
        Assert.Equal(3, day.Requests);
        Assert.Equal(0.054m, day.CostUsd);
    }
}
