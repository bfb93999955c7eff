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

    // NOTE: one index: every query (UsageSql) selects a time range, which requests_ended_at finds. The file once had a
    // second one on (client, ended_at_ms): without ANALYZE statistics SQLite chose it for the grouped queries as a
    // whole-index scan (slower than the range), and it cost every insert a second B-tree write. It is dropped on open;
    // a relay of the same schema version that still creates it reads the file unchanged.
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
        DROP INDEX IF EXISTS requests_client_ended_at;
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

    /// <summary>Usage grouped by <see cref="UsageQuery.By"/>, dearest first (by day: oldest first).</summary>
    public static IReadOnlyList<UsageGroup> Query(SqliteConnection connection, UsageQuery query) =>
        UsageSql.Query(connection, query, "requests", byteOrder: "");

    /// <summary>The cost per client and model in 15-minute buckets from <paramref name="since"/> (budgets' rebuild).</summary>
    public static IReadOnlyList<SpendBucket> SpendSince(SqliteConnection connection, DateTimeOffset since) =>
        UsageSql.SpendSince(connection, since, "requests");

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
