using CcRelay.Core;
using Npgsql;

namespace CcRelay.Host.Shared;

/// <summary>
/// The parts of the shared state's loop that keep relays honest with each other (docs/scale-out.md): the thinking pins
/// a relay learns when it (re)connects, and config agreement and clock skew, checked every few seconds.
/// </summary>
public sealed partial class SharedStateService
{
    private volatile AgreementReport _agreement = new(string.Empty, ConfigAgreement.Alone, null);

    /// <summary>What the last check found: this relay's fingerprint, how its live peers' compare, its clock against the database's.</summary>
    public AgreementReport Agreement => _agreement;

    /// <summary>
    /// Publishes this relay's config fingerprint and clock skew with its heartbeat row, reads its live peers' and judges
    /// them (Core <see cref="SharedAgreement"/>); a change is logged once; expired pins are deleted on the way.
    /// </summary>
    private async Task CheckAgreementAsync(CancellationToken cancellationToken)
    {
        var fingerprint = SharedAgreement.fingerprint(_state.Current.Config);
        await using var connection = await _pool.OpenConnectionAsync(cancellationToken);

        var before = _time.GetUtcNow();
        DateTimeOffset databaseNow;
        await using (var command = new NpgsqlCommand("SELECT clock_timestamp()", connection))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            await reader.ReadAsync(cancellationToken);
            databaseNow = reader.GetFieldValue<DateTimeOffset>(0);
        }

        var clock = SharedAgreement.skewOf(before, databaseNow, _time.GetUtcNow());
        var peers = new List<Tuple<string, string>>();
        await using (var batch = new NpgsqlBatch(connection))
        {
            var mine = new NpgsqlBatchCommand("""
                INSERT INTO ccrelay_relays (relay, seen_at, fingerprint, clock_skew_ms) VALUES (@relay, now(), @fingerprint, @skew)
                ON CONFLICT (relay) DO UPDATE SET seen_at = now(), fingerprint = excluded.fingerprint, clock_skew_ms = excluded.clock_skew_ms
                """);
            mine.Parameters.AddWithValue("relay", RelayId);
            mine.Parameters.AddWithValue("fingerprint", fingerprint);
            mine.Parameters.AddWithValue("skew", (long)clock.Skew.TotalMilliseconds);
            batch.BatchCommands.Add(mine);
            var expired = new NpgsqlBatchCommand("DELETE FROM ccrelay_pins WHERE pinned_at < now() - @lifetime");
            expired.Parameters.AddWithValue("lifetime", SharedPins.lifetime);
            batch.BatchCommands.Add(expired);
            var live = new NpgsqlBatchCommand(
                "SELECT relay, fingerprint FROM ccrelay_relays WHERE relay <> @relay AND fingerprint IS NOT NULL AND seen_at >= now() - @stale");
            live.Parameters.AddWithValue("relay", RelayId);
            live.Parameters.AddWithValue("stale", SharedHealth.staleAfter(_flushInterval));
            batch.BatchCommands.Add(live);
            await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                peers.Add(Tuple.Create(reader.GetString(0), reader.GetString(1)));
            }
        }

        var agreement = SharedAgreement.judge(fingerprint, peers);
        var previous = _agreement;
        _agreement = new AgreementReport(fingerprint, agreement, clock);
        if (agreement is ConfigAgreement.Differs differs)
        {
            if (previous.Config is not ConfigAgreement.Differs || previous.Fingerprint != fingerprint)
            {
                SharedStateLog.ConfigDiffers(_logger, fingerprint, string.Join(", ", differs.Relays), differs.Odd ? "this relay is the odd one out" : "the others differ");
            }
        }
        else if (previous.Config is ConfigAgreement.Differs)
        {
            SharedStateLog.ConfigAgrees(_logger, fingerprint);
        }

        if (SharedAgreement.isSkewed(clock) && (previous.Clock is null || !SharedAgreement.isSkewed(previous.Clock)))
        {
            SharedStateLog.ClockSkewed(_logger, (long)clock.Skew.TotalMilliseconds, (long)SharedAgreement.maxSkew.TotalMilliseconds);
        }
    }

    /// <summary>Restores the alive pins the others made (a relay that was not listening when they were announced).</summary>
    private async Task RestorePinsAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var stored = new List<StoredPin>();
        await using (var command = new NpgsqlCommand(
            "SELECT conversation_key, family, pinned_at FROM ccrelay_pins WHERE pinned_at >= now() - @lifetime ORDER BY pinned_at DESC LIMIT @max",
            connection))
        {
            command.Parameters.AddWithValue("lifetime", SharedPins.lifetime);
            command.Parameters.AddWithValue("max", SharedPins.maxRestored);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                stored.Add(new StoredPin(unchecked((ulong)reader.GetInt64(0)), reader.GetString(1), reader.GetFieldValue<DateTimeOffset>(2)));
            }
        }

        if (stored.Count > 0)
        {
            var wall = _time.GetUtcNow();
            _runtime.Update((stored, wall), static (runtime, now, arg) => SharedPins.restore(now, arg.wall, arg.stored, runtime));
        }
    }
}
