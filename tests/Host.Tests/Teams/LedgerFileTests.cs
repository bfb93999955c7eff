using CcRelay.Host.Ledger;
using Microsoft.Data.Sqlite;

namespace CcRelay.Host.Tests.Teams;

/// <summary>The ledger's SQLite file and its writer: what a batch stores, column by column, its indexes, a batch refused whole.</summary>
public sealed class LedgerFileTests : IDisposable
{
    private static readonly DateTimeOffset Ended = new(2026, 12, 7, 20, 15, 30, 123, TimeSpan.Zero);

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "cc-relay-ledgerfile-" + Guid.NewGuid().ToString("N"));

    private string FilePath => Path.Combine(_directory, "ledger.db");

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public void Insert_StoresEveryColumnAsGiven_TextNullsAndNumbers()
    {
        var full = new LedgerRow
        {
            EndedAt = Ended,
            RequestId = "req_01",
            Client = "équipe-Ω",
            ClientKeyId = "ck_1",
            Provider = "anthropic",
            KeyId = "k_2",
            Model = "claude-sonnet-4-6",
            ResponseModel = "claude-sonnet-4-6-20250101",
            Stage = "plan",
            Status = 200,
            Result = "ok",
            InputTokens = 1_234,
            OutputTokens = 5_678_901_234,
            CacheReadTokens = 0,
            CacheWriteTokens = 7,
            CostUsd = 0.0123456785m,
            LatencyMs = 12.34,
        };
        var sparse = new LedgerRow { EndedAt = Ended.AddSeconds(1), RequestId = "", Status = 0, Result = "client_aborted", LatencyMs = 0.5 };

        using (var writer = new LedgerWriter(FilePath))
        {
            writer.Insert([full, sparse]);
        }

        var rows = Rows("SELECT * FROM requests ORDER BY id");
        Assert.Equal(2, rows.Count);
        Assert.Equal(
            new Dictionary<string, object?>
            {
                ["id"] = 1L,
                ["ended_at_ms"] = Ended.ToUnixTimeMilliseconds(),
                ["request_id"] = "req_01",
                ["client"] = "équipe-Ω",
                ["client_key_id"] = "ck_1",
                ["provider"] = "anthropic",
                ["key_id"] = "k_2",
                ["model"] = "claude-sonnet-4-6",
                ["response_model"] = "claude-sonnet-4-6-20250101",
                ["stage"] = "plan",
                ["status"] = 200L,
                ["result"] = "ok",
                ["input_tokens"] = 1_234L,
                ["output_tokens"] = 5_678_901_234L,
                ["cache_read_tokens"] = 0L,
                ["cache_write_tokens"] = 7L,
                ["cost_nanousd"] = 12_345_679L,
                ["latency_ms"] = 12.34,
            },
            rows[0]);
        Assert.Equal(
            new Dictionary<string, object?>
            {
                ["id"] = 2L,
                ["ended_at_ms"] = Ended.ToUnixTimeMilliseconds() + 1_000,
                ["request_id"] = "",
                ["client"] = "-",
                ["client_key_id"] = "-",
                ["provider"] = "-",
                ["key_id"] = "-",
                ["model"] = "-",
                ["response_model"] = null,
                ["stage"] = null,
                ["status"] = 0L,
                ["result"] = "client_aborted",
                ["input_tokens"] = null,
                ["output_tokens"] = null,
                ["cache_read_tokens"] = null,
                ["cache_write_tokens"] = null,
                ["cost_nanousd"] = null,
                ["latency_ms"] = 0.5,
            },
            rows[1]);

        // a text column holds text (not a blob), as the queries' comparisons and GROUP BY expect
        Assert.Equal("text", Rows("SELECT typeof(request_id) AS t FROM requests WHERE id = 2")[0]["t"]);
    }

    [Fact]
    public void ABatchWithARowTheFileRefuses_IsRefusedWhole_AndTheNextBatchIsWritten()
    {
        using var writer = new LedgerWriter(FilePath);
        var good = new LedgerRow { EndedAt = Ended, RequestId = "a" };
        var refused = new LedgerRow { EndedAt = Ended, RequestId = null! }; // request_id is NOT NULL

        var e = Assert.Throws<SqliteException>(() => writer.Insert([good, refused]));
        Assert.Equal(19, e.SqliteErrorCode); // SQLITE_CONSTRAINT
        Assert.Empty(Rows("SELECT * FROM requests"));

        // the same writer: the refused batch's transaction was rolled back, its statements are ready again
        writer.Insert([good, good]);
        Assert.Equal(2, Rows("SELECT * FROM requests").Count);
    }

    [Fact]
    public void OpeningForWriting_LeavesTheTimeIndexOnly_DroppingTheClientIndexOfAnOlderFile()
    {
        // a file as relays before 2026-12-07 created it: the same schema version, with a (client, ended_at_ms) index
        Directory.CreateDirectory(_directory);
        using (var old = new SqliteConnection($"Data Source={FilePath};Pooling=False"))
        {
            old.Open();
            using var command = old.CreateCommand();
            command.CommandText = """
                CREATE TABLE requests (id INTEGER PRIMARY KEY, ended_at_ms INTEGER NOT NULL, request_id TEXT NOT NULL,
                    client TEXT NOT NULL, client_key_id TEXT NOT NULL, provider TEXT NOT NULL, key_id TEXT NOT NULL,
                    model TEXT NOT NULL, response_model TEXT, stage TEXT, status INTEGER NOT NULL, result TEXT NOT NULL,
                    input_tokens INTEGER, output_tokens INTEGER, cache_read_tokens INTEGER, cache_write_tokens INTEGER,
                    cost_nanousd INTEGER, latency_ms REAL NOT NULL);
                CREATE INDEX requests_ended_at ON requests (ended_at_ms);
                CREATE INDEX requests_client_ended_at ON requests (client, ended_at_ms);
                INSERT INTO requests (ended_at_ms, request_id, client, client_key_id, provider, key_id, model, status, result, latency_ms)
                    VALUES (1, 'old', 'c', '-', 'p', '-', 'm', 200, 'ok', 1.0);
                PRAGMA user_version=1;
                """;
            command.ExecuteNonQuery();
        }

        using (new LedgerWriter(FilePath))
        {
        }

        Assert.Equal(
            ["requests_ended_at"],
            Rows("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'requests' ORDER BY name").Select(r => r["name"]));
        Assert.Equal("old", Rows("SELECT request_id FROM requests")[0]["request_id"]);

        // the grouped queries find their time range through it (SQLite chose the dropped index as a whole-index scan)
        var plan = string.Join(
            "\n",
            Rows("EXPLAIN QUERY PLAN SELECT client, COUNT(*) FROM requests WHERE ended_at_ms >= 5 GROUP BY client").Select(r => r["detail"]));
        Assert.Contains("SEARCH requests USING INDEX requests_ended_at (ended_at_ms>?)", plan, StringComparison.Ordinal);
    }

    private List<Dictionary<string, object?>> Rows(string sql)
    {
        using var connection = LedgerFile.OpenForReading(FilePath);
        using var command = connection.CreateCommand();
        command.CommandText = sql;
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
}
