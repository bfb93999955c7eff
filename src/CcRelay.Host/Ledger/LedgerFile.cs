using System.Globalization;
using CcRelay.Core;
using Microsoft.Data.Sqlite;

namespace CcRelay.Host.Ledger;

/// <summary>
/// The ledger's SQLite file: where it is, how it is created (mode 0600 in a 0700 directory, WAL), its schema, and
/// the queries both the relay and <c>cc-relay usage</c> run on it.
/// </summary>
public static class LedgerFile
{
    /// <summary>The schema version (<c>PRAGMA user_version</c>); a file of a newer version is refused, not altered.</summary>
    public const int SchemaVersion = 1;

    /// <summary>Costs are stored exactly, in billionths of a US dollar.</summary>
    private const decimal NanoUsd = 1_000_000_000m;

    private const string Schema = """
        CREATE TABLE IF NOT EXISTS requests (
            id INTEGER PRIMARY KEY,
            ended_at_ms INTEGER NOT NULL,
            request_id TEXT NOT NULL,
            client TEXT NOT NULL,
            client_key_id TEXT NOT NULL,
            provider TEXT NOT NULL,
            key_id TEXT NOT NULL,
            model TEXT NOT NULL,
            response_model TEXT,
            stage TEXT,
            status INTEGER NOT NULL,
            result TEXT NOT NULL,
            input_tokens INTEGER,
            output_tokens INTEGER,
            cache_read_tokens INTEGER,
            cache_write_tokens INTEGER,
            cost_nanousd INTEGER,
            latency_ms REAL NOT NULL
        );
        CREATE INDEX IF NOT EXISTS requests_ended_at ON requests (ended_at_ms);
        CREATE INDEX IF NOT EXISTS requests_client_ended_at ON requests (client, ended_at_ms);
        """;

    /// <summary>
    /// The file <c>ledger.path</c> names (<c>~</c> expanded), else <c>$XDG_STATE_HOME/cc-relay/ledger.db</c>, else
    /// <c>~/.local/state/cc-relay/ledger.db</c>. <paramref name="environment"/> reads a variable (null when unset).
    /// </summary>
    public static string ResolvePath(LedgerConfig config, Func<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(environment);
        var home = environment("HOME") is { Length: > 0 } h ? h : Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (config.Path?.Value is { } configured)
        {
            return configured == "~" ? home
                : configured.StartsWith("~/", StringComparison.Ordinal) ? Path.Combine(home, configured[2..])
                : Path.GetFullPath(configured);
        }

        var state = environment("XDG_STATE_HOME") is { Length: > 0 } xdg ? xdg : Path.Combine(home, ".local", "state");
        return Path.Combine(state, "cc-relay", "ledger.db");
    }

    /// <summary>
    /// Opens (creating when missing) the ledger for writing: the directory with mode 0700, the file with mode 0600
    /// before SQLite first opens it (SQLite gives its WAL and shared-memory files the same mode), WAL journaling.
    /// </summary>
    public static SqliteConnection OpenForWriting(string path)
    {
        var directory = Path.GetDirectoryName(path);
        if (!string.IsNullOrEmpty(directory) && !Directory.Exists(directory))
        {
            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(directory);
            }
            else
            {
                Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
        }

        if (!OperatingSystem.IsWindows())
        {
            if (!File.Exists(path))
            {
                using var created = new FileStream(path, new FileStreamOptions
                {
                    Mode = FileMode.CreateNew,
                    Access = FileAccess.Write,
                    UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                });
            }
            else
            {
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }
        }

        var connection = new SqliteConnection(ConnectionString(path, SqliteOpenMode.ReadWriteCreate));
        try
        {
            connection.Open();
            Execute(connection, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;");
            var version = Convert.ToInt32(Scalar(connection, "PRAGMA user_version;"), CultureInfo.InvariantCulture);
            if (version > SchemaVersion)
            {
                throw new InvalidOperationException($"the ledger has schema version {version}, newer than this relay's {SchemaVersion}");
            }

            Execute(connection, Schema + $"PRAGMA user_version={SchemaVersion};");
            return connection;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>Opens an existing ledger read-only (<c>cc-relay usage</c>); fails when there is none.</summary>
    public static SqliteConnection OpenForReading(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"no ledger at {path}", path);
        }

        var connection = new SqliteConnection(ConnectionString(path, SqliteOpenMode.ReadOnly));
        connection.Open();
        Execute(connection, "PRAGMA busy_timeout=5000;");
        return connection;
    }

    private static string ConnectionString(string path, SqliteOpenMode mode) =>
        new SqliteConnectionStringBuilder { DataSource = path, Mode = mode, Pooling = false }.ToString();

    /// <summary>Writes rows in one transaction.</summary>
    public static void Insert(SqliteConnection connection, IReadOnlyList<LedgerRow> rows)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(rows);
        using var transaction = connection.BeginTransaction();
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = """
            INSERT INTO requests (ended_at_ms, request_id, client, client_key_id, provider, key_id, model, response_model,
                stage, status, result, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_nanousd, latency_ms)
            VALUES ($ended, $request, $client, $client_key, $provider, $key, $model, $response_model,
                $stage, $status, $result, $input, $output, $cache_read, $cache_write, $cost, $latency);
            """;
        var names = new[]
        {
            "$ended", "$request", "$client", "$client_key", "$provider", "$key", "$model", "$response_model", "$stage",
            "$status", "$result", "$input", "$output", "$cache_read", "$cache_write", "$cost", "$latency",
        };
        var parameters = names.Select(n => command.Parameters.Add(new SqliteParameter { ParameterName = n })).ToArray();
        command.Prepare();
        foreach (var row in rows)
        {
            object?[] values =
            [
                row.EndedAt.ToUnixTimeMilliseconds(), row.RequestId, row.Client, row.ClientKeyId, row.Provider, row.KeyId,
                row.Model, row.ResponseModel, row.Stage, row.Status, row.Result, row.InputTokens, row.OutputTokens,
                row.CacheReadTokens, row.CacheWriteTokens,
                row.CostUsd is { } cost ? (long)Math.Round(cost * NanoUsd, MidpointRounding.AwayFromZero) : null,
                row.LatencyMs,
            ];
            for (var i = 0; i < values.Length; i++)
            {
                parameters[i].Value = values[i] ?? DBNull.Value;
            }

            command.ExecuteNonQuery();
        }

        transaction.Commit();
    }

    /// <summary>Usage grouped by <see cref="UsageQuery.By"/>, dearest first (by day: oldest first).</summary>
    public static IReadOnlyList<UsageGroup> Query(SqliteConnection connection, UsageQuery query)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(query);
        const string Sums = """
            COUNT(*), SUM(CASE WHEN status >= 400 OR status = 0 THEN 1 ELSE 0 END),
            COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),
            COALESCE(SUM(cache_read_tokens), 0), COALESCE(SUM(cache_write_tokens), 0),
            COALESCE(SUM(cost_nanousd), 0), SUM(CASE WHEN cost_nanousd IS NULL AND input_tokens IS NOT NULL THEN 1 ELSE 0 END)
            """;
        using var command = connection.CreateCommand();
        command.Parameters.AddWithValue("$since", query.Since.ToUnixTimeMilliseconds());
        if (query.By == UsageGrouping.Day)
        {
            // the day is local to the budgets' time zone, which SQLite does not know: 15-minute buckets are summed
            // here and named by day in C# (every zone's midnight falls on a 15-minute boundary)
            command.CommandText = $"SELECT ended_at_ms / 900000, {Sums} FROM requests WHERE ended_at_ms >= $since GROUP BY ended_at_ms / 900000";
            var byDay = new SortedDictionary<string, UsageGroup>(StringComparer.Ordinal);
            using (var reader = command.ExecuteReader())
            {
                while (reader.Read())
                {
                    var day = BudgetPeriods.dayOf(query.TimeZone, DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(0) * 900_000));
                    var bucket = ReadGroup(reader, day);
                    byDay[day] = byDay.TryGetValue(day, out var sum) ? Add(sum, bucket) : bucket;
                }
            }

            return [.. byDay.Values];
        }

        var column = query.By switch
        {
            UsageGrouping.Client => "client",
            UsageGrouping.Provider => "provider",
            UsageGrouping.Model => "model",
            UsageGrouping.Key => "provider || '/' || key_id",
            _ => throw new ArgumentOutOfRangeException(nameof(query)),
        };
        command.CommandText = $"SELECT {column} AS grouped, {Sums} FROM requests WHERE ended_at_ms >= $since GROUP BY grouped ORDER BY SUM(cost_nanousd) DESC, grouped";
        return Read(command, r => r.GetString(0));
    }

    /// <summary>The cost per client and model in 15-minute buckets from <paramref name="since"/> (budgets' rebuild).</summary>
    public static IReadOnlyList<SpendBucket> SpendSince(SqliteConnection connection, DateTimeOffset since)
    {
        ArgumentNullException.ThrowIfNull(connection);
        using var command = connection.CreateCommand();
        command.CommandText = """
            SELECT client, model, ended_at_ms / 900000, SUM(cost_nanousd) FROM requests
            WHERE ended_at_ms >= $since AND client <> '-' AND cost_nanousd IS NOT NULL
            GROUP BY client, model, ended_at_ms / 900000
            """;
        command.Parameters.AddWithValue("$since", since == DateTimeOffset.MinValue ? long.MinValue : since.ToUnixTimeMilliseconds());
        using var reader = command.ExecuteReader();
        var buckets = new List<SpendBucket>();
        while (reader.Read())
        {
            buckets.Add(new SpendBucket(
                reader.GetString(0),
                reader.GetString(1),
                DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(2) * 900_000),
                reader.GetInt64(3) / NanoUsd));
        }

        return buckets;
    }

    private static List<UsageGroup> Read(SqliteCommand command, Func<SqliteDataReader, string> key)
    {
        using var reader = command.ExecuteReader();
        var groups = new List<UsageGroup>();
        while (reader.Read())
        {
            groups.Add(ReadGroup(reader, key(reader)));
        }

        return groups;
    }

    private static UsageGroup ReadGroup(SqliteDataReader reader, string key) => new(
        key,
        reader.GetInt64(1),
        reader.GetInt64(2),
        reader.GetInt64(3),
        reader.GetInt64(4),
        reader.GetInt64(5),
        reader.GetInt64(6),
        reader.GetInt64(7) / NanoUsd,
        reader.GetInt64(8));

    private static UsageGroup Add(UsageGroup a, UsageGroup b) => a with
    {
        Requests = a.Requests + b.Requests,
        Errors = a.Errors + b.Errors,
        InputTokens = a.InputTokens + b.InputTokens,
        OutputTokens = a.OutputTokens + b.OutputTokens,
        CacheReadTokens = a.CacheReadTokens + b.CacheReadTokens,
        CacheWriteTokens = a.CacheWriteTokens + b.CacheWriteTokens,
        CostUsd = a.CostUsd + b.CostUsd,
        Unpriced = a.Unpriced + b.Unpriced,
    };

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private static object? Scalar(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }
}
