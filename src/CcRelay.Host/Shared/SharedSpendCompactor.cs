using CcRelay.Core;
using Npgsql;
using NpgsqlTypes;

namespace CcRelay.Host.Shared;

/// <summary>
/// Compaction of <c>ccrelay_spend</c> (Core <see cref="SharedCompaction"/>, docs/scale-out.md): every relay tries a run
/// every <see cref="SharedCompaction.interval"/>; the one that takes the advisory lock folds the rows below the lowest
/// seq every counted relay has read, in one transaction (nothing half-written), at most
/// <see cref="SharedCompaction.maxRows"/> rows a run; the others skip. Off the request path: the loop runs it.
/// </summary>
public sealed partial class SharedStateService
{
    /// <summary>The advisory lock of compaction runs ("cccompac" in ASCII): one relay at a time folds.</summary>
    private const long CompactLockKey = 0x6363_636F_6D70_6163;

    private long _compactionRuns;
    private long _compactionRowsDeleted;
    private long _compactionFailures;
    private volatile string? _compactionProblem;
    private volatile string? _behindProblem;
    private bool _readOnce;

    /// <summary>Compaction runs this relay carried out (it held the lock and found rows to fold), rows they deleted, runs that failed.</summary>
    public (long Runs, long RowsDeleted, long Failures) Compactions =>
        (Interlocked.Read(ref _compactionRuns), Interlocked.Read(ref _compactionRowsDeleted), Interlocked.Read(ref _compactionFailures));

    /// <summary>What is wrong with compaction as this relay sees it (its last run failed, or it rejoined behind a run), or null.</summary>
    public string? CompactionProblem => _behindProblem ?? _compactionProblem;

    /// <summary>
    /// One compaction run, if this relay takes the lock: reads the relays' read positions and the oldest rows at or
    /// below the cutoff, has Core plan the fold, rewrites and deletes in the same transaction. A failure is reported
    /// (log, metric, <c>/health</c>) and leaves the table as it was; it does not break the link.
    /// </summary>
    internal async Task<CompactionPlan?> CompactAsync(CancellationToken cancellationToken)
    {
        try
        {
            var plan = await CompactOnceAsync(cancellationToken);
            if (_compactionProblem is not null)
            {
                _compactionProblem = null;
                SharedStateLog.CompactionRecovered(_logger);
            }

            return plan;
        }
        catch (PostgresException e) when (!cancellationToken.IsCancellationRequested)
        {
            // a statement failed (the link is fine): reported, rolled back, tried again at the next interval
            Interlocked.Increment(ref _compactionFailures);
            var problem = Problem(e);
            if (_compactionProblem is null)
            {
                SharedStateLog.CompactionFailed(_logger, problem);
            }

            _compactionProblem = $"the last compaction run of ccrelay_spend failed: {problem}";
            return null;
        }
    }

    private async Task<CompactionPlan?> CompactOnceAsync(CancellationToken cancellationToken)
    {
        var started = _time.GetTimestamp();
        await using var connection = await _pool.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var command = new NpgsqlCommand("SELECT pg_try_advisory_xact_lock(@lock)", connection, transaction))
        {
            command.Parameters.AddWithValue("lock", CompactLockKey);
            if (await command.ExecuteScalarAsync(cancellationToken) is not true)
            {
                // another relay is at it: its run covers the same rows
                return null;
            }
        }

        // NOTE: read under the lock, in this transaction: a plan made from rows another run has since folded would
        // delete what that run kept (SharedCompaction: runs are serialised and read what they fold)
        var relays = new List<RelayReadMark>();
        var wall = DateTimeOffset.MinValue;
        await using (var command = new NpgsqlCommand(
            "SELECT now(), relay, seen_at, read_seq FROM ccrelay_relays WHERE read_seq IS NOT NULL", connection, transaction))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                wall = reader.GetFieldValue<DateTimeOffset>(0);
                relays.Add(new RelayReadMark(reader.GetString(1), reader.GetFieldValue<DateTimeOffset>(2), reader.GetInt64(3)));
            }
        }

        var cutoff = SpendCompaction.Cutoff(wall, relays);
        if (cutoff <= 0)
        {
            return null;
        }

        var rows = new List<SpendFlush>();
        await using (var command = new NpgsqlCommand(
            "SELECT seq, flush_id, relay, body::text FROM ccrelay_spend WHERE seq <= @cutoff ORDER BY seq LIMIT @limit", connection, transaction))
        {
            command.Parameters.AddWithValue("cutoff", cutoff);
            command.Parameters.AddWithValue("limit", SharedCompaction.maxRows);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                // an unreadable row is left as it is (the plan folds only the rows it is given)
                var read = SpendFlushJson.read(reader.GetGuid(1), reader.GetString(2), reader.GetInt64(0), reader.GetString(3));
                if (read.IsOk)
                {
                    rows.Add(read.ResultValue);
                }
            }
        }

        var plan = SpendCompaction.Plan(_state.Current.Config.Ledger.TimeZone, wall, relays, rows);
        if (plan.IsEmpty)
        {
            return plan;
        }

        await using (var batch = new NpgsqlBatch(connection, transaction))
        {
            foreach (var row in plan.Rewrite)
            {
                var rewrite = new NpgsqlBatchCommand("UPDATE ccrelay_spend SET relay = @relay, body = @body::jsonb WHERE seq = @seq");
                rewrite.Parameters.AddWithValue("relay", row.Relay);
                rewrite.Parameters.AddWithValue("body", SpendFlushJson.write(row));
                rewrite.Parameters.AddWithValue("seq", row.Seq);
                batch.BatchCommands.Add(rewrite);
            }

            var delete = new NpgsqlBatchCommand("DELETE FROM ccrelay_spend WHERE seq = ANY(@seqs)");
            delete.Parameters.Add(new NpgsqlParameter("seqs", NpgsqlDbType.Array | NpgsqlDbType.Bigint) { Value = plan.Delete.ToArray() });
            batch.BatchCommands.Add(delete);
            var record = new NpgsqlBatchCommand("""
                INSERT INTO ccrelay_spend_compaction (id, through_seq, at, relay, runs, rows_deleted) VALUES (1, @through, now(), @relay, 1, @deleted)
                ON CONFLICT (id) DO UPDATE SET through_seq = greatest(ccrelay_spend_compaction.through_seq, excluded.through_seq), at = now(),
                    relay = excluded.relay, runs = ccrelay_spend_compaction.runs + 1, rows_deleted = ccrelay_spend_compaction.rows_deleted + excluded.rows_deleted
                """);
            record.Parameters.AddWithValue("through", plan.Through);
            record.Parameters.AddWithValue("relay", RelayId);
            record.Parameters.AddWithValue("deleted", (long)plan.Delete.Length);
            batch.BatchCommands.Add(record);

            // relays silent for twice the horizon are forgotten for good (their rows folded, their reservations released)
            var forget = new NpgsqlBatchCommand("DELETE FROM ccrelay_relays WHERE seen_at < now() - @forget");
            forget.Parameters.AddWithValue("forget", SharedCompaction.horizon * 2);
            batch.BatchCommands.Add(forget);
            await batch.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        Interlocked.Increment(ref _compactionRuns);
        Interlocked.Add(ref _compactionRowsDeleted, plan.Delete.Length);
        SharedStateLog.Compacted(_logger, plan.Through, rows.Count, rows.Count - plan.Delete.Length, (long)_time.GetElapsedTime(started).TotalMilliseconds);
        return plan;
    }

    /// <summary>
    /// At a (re)connection, before reading on: whether a compaction run went past this relay's read position while it
    /// was away (longer than <see cref="SharedCompaction.horizon"/>): its view of the others' spend may then be off by
    /// what was folded across its position. Reported (log once, <c>/health</c>); a restart rebuilds the view exactly.
    /// </summary>
    private async Task CheckBehindAsync(CancellationToken cancellationToken)
    {
        await using var connection = await _pool.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand("SELECT coalesce(max(through_seq), 0) FROM ccrelay_spend_compaction", connection);
        var through = Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
        if (SharedCompaction.rejoinedBehind(_readOnce, _lastSeq, through) && _behindProblem is null)
        {
            SharedStateLog.RejoinedBehind(_logger, _lastSeq, through);
            _behindProblem =
                $"this relay had read ccrelay_spend to seq {_lastSeq} when it lost the database; a compaction run has since folded rows to seq {through}: " +
                "its view of the other relays' spend may be off by what was folded across its position; restart it to rebuild the view";
        }
    }
}
