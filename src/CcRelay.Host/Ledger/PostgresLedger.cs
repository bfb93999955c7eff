using CcRelay.Host.Shared;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace CcRelay.Host.Ledger;

/// <summary>
/// The usage ledger in the shared PostgreSQL store (<c>state.postgres</c> with <c>ledger.enabled</c>,
/// docs/scale-out.md): every relay's rows in one table, <c>ccrelay_requests</c>, so that <c>cc-relay usage</c> and
/// <c>GetUsage</c> on any relay answer for all of them.
/// Written by <see cref="BatchedLedger{TRow}"/>: one <c>INSERT … unnest</c> per batch of ≤ 1,000 rows; with the store
/// away, the batch in hand is kept and retried every interval and new rows wait in the queue.
/// Unlike the SQLite file, a store that is briefly away loses no row: what is queued waits, up to
/// <c>ledger.queue_capacity</c> rows (10,000 by default) plus the one batch in hand (1,000); only beyond that are rows
/// dropped, counted (<c>ccrelay_ledger_rows{outcome="dropped"}</c>) and reported. A retried batch that had in fact
/// committed adds nothing (each row carries its own id). A crash loses what was queued: at most one flush interval of
/// traffic while the store is there, everything waiting while it is not.
/// NOTE: nothing here is awaited by a request; a lost store is reported (log once, <c>/health</c>'s ledger line,
/// <c>ccrelay_ledger_healthy</c> 0) and never fails one.
/// </summary>
public sealed class PostgresLedger : BatchedLedger<(Guid Id, LedgerRow Row)>
{
    /// <summary>What the log names instead of a path (never the connection string).</summary>
    public const string Where = "PostgreSQL (state.postgres, table ccrelay_requests)";

    private readonly NpgsqlDataSource _pool;
    private bool _migrated;

    /// <summary>A ledger writing to <paramref name="connectionString"/>'s database as relay <paramref name="relay"/>; starts its writer (nothing is awaited here).</summary>
    public PostgresLedger(string connectionString, string relay, TimeSpan flushInterval, int queueCapacity, TimeProvider timeProvider, ILogger logger)
        : base(Where, flushInterval, queueCapacity, retryFailedBatch: true, timeProvider, logger)
    {
        Relay = relay;
        _pool = NpgsqlDataSource.Create(PostgresLedgerTable.Normalise(connectionString));
        Start();
    }

    /// <summary>The relay id written with each row.</summary>
    public string Relay { get; }

    /// <inheritdoc/>
    public override IReadOnlyList<UsageGroup> Query(UsageQuery query)
    {
        using var connection = _pool.OpenConnection();
        return PostgresLedgerTable.Query(connection, query);
    }

    /// <inheritdoc/>
    protected override (Guid Id, LedgerRow Row) Queued(LedgerRow row) => (Guid.NewGuid(), row);

    /// <inheritdoc/>
    protected override async ValueTask WriteAsync(IReadOnlyList<(Guid Id, LedgerRow Row)> batch)
    {
        // bounded by the connect and command timeouts
        await using var connection = await _pool.OpenConnectionAsync();
        if (!_migrated)
        {
            // the shared state's migrations: the ledger may be written before the shared state has connected
            await SharedSchema.MigrateAsync(connection, CancellationToken.None);
            _migrated = true;
        }

        await PostgresLedgerTable.InsertAsync(connection, Relay, batch, CancellationToken.None);
    }

    /// <inheritdoc/>
    protected override IReadOnlyList<SpendBucket> ReadSpendSince(DateTimeOffset since)
    {
        using var connection = _pool.OpenConnection();
        return PostgresLedgerTable.SpendSince(connection, since);
    }

    /// <inheritdoc/>
    protected override string? Describe(Exception e) => e switch
    {
        // NOTE: Npgsql's messages never carry the password; the connection string is never quoted
        PostgresException pg => $"PostgreSQL {pg.SqlState}: {pg.MessageText}",
        NpgsqlException { InnerException: { } inner } => "PostgreSQL unreachable: " + inner.Message,
        NpgsqlException or IOException or TimeoutException or InvalidOperationException or System.Net.Sockets.SocketException => e.Message,
        _ => null,
    };

    /// <inheritdoc/>
    protected override ValueTask CloseAsync() => _pool.DisposeAsync();
}
