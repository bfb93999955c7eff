using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace CcRelay.Host.Ledger;

/// <summary>
/// The ledger file open for writing (<see cref="LedgerFile.OpenForWriting"/>), its statements prepared once: a batch is
/// <c>BEGIN IMMEDIATE</c>, one INSERT stepped per row, <c>COMMIT</c> — all of it or nothing.
/// NOTE: rows are bound by position through SQLite's own API (<see cref="raw"/>), not through
/// <see cref="SqliteCommand"/>, whose every execution looks each of the 17 parameters up by name and boxes its value
/// (most of the ledger's CPU per request, measured with bench/callgrind-pair.sh); and the statements live as long
/// as the connection, so a batch of one row (a relay at a few requests a second) does not compile SQL.
/// </summary>
public sealed class LedgerWriter : IDisposable
{
    private readonly SqliteConnection _connection;
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _begin;
    private readonly sqlite3_stmt _insert;
    private readonly sqlite3_stmt _commit;
    private readonly sqlite3_stmt _rollback;

    /// <summary>Opens (or creates) the ledger at <paramref name="path"/>; throws what SQLite or the file system throws.</summary>
    public LedgerWriter(string path)
    {
        _connection = LedgerFile.OpenForWriting(path);
        _db = _connection.Handle!;
        var prepared = new List<sqlite3_stmt>();
        try
        {
            _begin = Prepare("BEGIN IMMEDIATE;"u8);
            _insert = Prepare("""
                INSERT INTO requests (ended_at_ms, request_id, client, client_key_id, provider, key_id, model, response_model,
                    stage, status, result, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_nanousd, latency_ms)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17);
                """u8);
            _commit = Prepare("COMMIT;"u8);
            _rollback = Prepare("ROLLBACK;"u8);
        }
        catch
        {
            prepared.ForEach(statement => statement.Dispose());
            _connection.Dispose();
            throw;
        }

        sqlite3_stmt Prepare(ReadOnlySpan<byte> sql)
        {
            Check(raw.sqlite3_prepare_v2(_db, sql, out var statement));
            prepared.Add(statement);
            return statement;
        }
    }

    /// <summary>Writes <paramref name="rows"/> in one transaction, all or none; throws a <see cref="SqliteException"/> when the file refuses them.</summary>
    public void Insert(IReadOnlyList<LedgerRow> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        Step(_begin);
        try
        {
            foreach (var row in rows)
            {
                Check(Bind(_insert, row));
                Step(_insert);
            }

            Step(_commit);
        }
        catch
        {
            // a failed COMMIT may leave the transaction open (SQLITE_BUSY): it is rolled back, as a failed row's is
            // (the rollback's own result is not the error to report)
            if (raw.sqlite3_get_autocommit(_db) == 0)
            {
                raw.sqlite3_step(_rollback);
                raw.sqlite3_reset(_rollback);
            }

            throw;
        }
    }

    /// <summary>Finalises the statements and closes the file.</summary>
    public void Dispose()
    {
        _begin.Dispose();
        _insert.Dispose();
        _commit.Dispose();
        _rollback.Dispose();
        _connection.Dispose();
    }

    /// <summary>Runs a statement that returns no row, ready to run again; throws SQLite's error.</summary>
    private void Step(sqlite3_stmt statement)
    {
        var rc = raw.sqlite3_step(statement);
        try
        {
            if (rc != raw.SQLITE_DONE)
            {
                Check(rc); // before the reset, while SQLite still holds the step's message
            }
        }
        finally
        {
            raw.sqlite3_reset(statement);
        }
    }

    /// <summary>Binds <paramref name="row"/>'s values to the INSERT's parameters ?1…?17; the first failing result code, else SQLITE_OK.</summary>
    private static int Bind(sqlite3_stmt statement, LedgerRow row)
    {
        var rc = raw.sqlite3_bind_int64(statement, 1, row.EndedAt.ToUnixTimeMilliseconds());
        rc = rc != raw.SQLITE_OK ? rc : raw.sqlite3_bind_text(statement, 2, row.RequestId);
        rc = rc != raw.SQLITE_OK ? rc : raw.sqlite3_bind_text(statement, 3, row.Client);
        rc = rc != raw.SQLITE_OK ? rc : raw.sqlite3_bind_text(statement, 4, row.ClientKeyId);
        rc = rc != raw.SQLITE_OK ? rc : raw.sqlite3_bind_text(statement, 5, row.Provider);
        rc = rc != raw.SQLITE_OK ? rc : raw.sqlite3_bind_text(statement, 6, row.KeyId);
        rc = rc != raw.SQLITE_OK ? rc : raw.sqlite3_bind_text(statement, 7, row.Model);
        rc = rc != raw.SQLITE_OK ? rc : Text(statement, 8, row.ResponseModel);
        rc = rc != raw.SQLITE_OK ? rc : Text(statement, 9, row.Stage);
        rc = rc != raw.SQLITE_OK ? rc : raw.sqlite3_bind_int64(statement, 10, row.Status);
        rc = rc != raw.SQLITE_OK ? rc : raw.sqlite3_bind_text(statement, 11, row.Result);
        rc = rc != raw.SQLITE_OK ? rc : Integer(statement, 12, row.InputTokens);
        rc = rc != raw.SQLITE_OK ? rc : Integer(statement, 13, row.OutputTokens);
        rc = rc != raw.SQLITE_OK ? rc : Integer(statement, 14, row.CacheReadTokens);
        rc = rc != raw.SQLITE_OK ? rc : Integer(statement, 15, row.CacheWriteTokens);
        rc = rc != raw.SQLITE_OK ? rc : Integer(statement, 16, row.CostUsd is { } cost ? (long)Math.Round(cost * UsageSql.NanoUsd, MidpointRounding.AwayFromZero) : null);
        rc = rc != raw.SQLITE_OK ? rc : raw.sqlite3_bind_double(statement, 17, row.LatencyMs);
        return rc;

        static int Text(sqlite3_stmt statement, int index, string? value) =>
            value is null ? raw.sqlite3_bind_null(statement, index) : raw.sqlite3_bind_text(statement, index, value);

        static int Integer(sqlite3_stmt statement, int index, long? value) =>
            value is { } v ? raw.sqlite3_bind_int64(statement, index, v) : raw.sqlite3_bind_null(statement, index);
    }

    /// <summary>Throws SQLite's own error (a <see cref="SqliteException"/>) for a failing result code.</summary>
    private void Check(int rc)
    {
        if (rc != raw.SQLITE_OK)
        {
            SqliteException.ThrowExceptionForRC(rc, _db);
        }
    }
}
