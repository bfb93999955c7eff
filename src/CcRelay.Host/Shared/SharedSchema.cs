using Npgsql;

namespace CcRelay.Host.Shared;

/// <summary>
/// The shared store's schema, created and migrated by the relay itself (docs/scale-out.md). Each migration runs once,
/// in order, recorded in <c>ccrelay_schema_version</c>; all of them run in one transaction under a transaction-level
/// advisory lock, so relays starting together migrate once and the others wait, then find the work done.
/// </summary>
internal static class SharedSchema
{
    /// <summary>The advisory lock key ("ccrelay" in ASCII): one relay at a time migrates.</summary>
    private const long LockKey = 0x6363_7265_6C61_79;

    /// <summary>The migrations, oldest first; the version of each is its position (1-based). Append only.</summary>
    private static readonly string[] Migrations =
    [
        // 1: spend flushes, the per-kind state tables the events keep, the relays' heartbeats
        """
        CREATE TABLE IF NOT EXISTS ccrelay_spend (
            seq bigserial PRIMARY KEY,
            flush_id uuid NOT NULL UNIQUE,
            relay text NOT NULL,
            at timestamptz NOT NULL DEFAULT now(),
            body jsonb NOT NULL);
        CREATE TABLE IF NOT EXISTS ccrelay_relays (
            relay text PRIMARY KEY,
            seen_at timestamptz NOT NULL);
        CREATE TABLE IF NOT EXISTS ccrelay_circuits (
            provider text PRIMARY KEY,
            open_until timestamptz NOT NULL,
            relay text NOT NULL);
        CREATE TABLE IF NOT EXISTS ccrelay_providers (
            provider text PRIMARY KEY,
            disabled boolean NOT NULL,
            relay text NOT NULL,
            at timestamptz NOT NULL DEFAULT now());
        CREATE TABLE IF NOT EXISTS ccrelay_keys (
            provider text NOT NULL,
            key_id text NOT NULL,
            cooldown_until timestamptz,
            rpm integer,
            itpm integer,
            otpm integer,
            PRIMARY KEY (provider, key_id));
        CREATE TABLE IF NOT EXISTS ccrelay_revoked_client_keys (
            key_id text PRIMARY KEY,
            at timestamptz NOT NULL DEFAULT now());
        """,

        // 2: the runtime client-key changes (cc-relay clients add|revoke|rotate), replicated from each relay's own store
        """
        CREATE TABLE IF NOT EXISTS ccrelay_client_key_changes (
            seq bigserial PRIMARY KEY,
            at timestamptz NOT NULL,
            kind text NOT NULL,
            client text NOT NULL,
            key_sha256 text NOT NULL,
            previous_sha256 text NOT NULL,
            grace_until timestamptz,
            expires_at timestamptz,
            like_client text,
            actor text NOT NULL,
            UNIQUE (at, kind, client, key_sha256));
        """,

        // 3: the usage ledger of every relay (ledger.enabled with state.postgres; docs/scale-out.md): the SQLite file's
        // columns, the relay that wrote the row, and a row id so that a batch retried after a lost answer adds nothing
        """
        CREATE TABLE IF NOT EXISTS ccrelay_requests (
            id uuid PRIMARY KEY,
            relay text NOT NULL,
            ended_at_ms bigint NOT NULL,
            request_id text NOT NULL,
            client text NOT NULL,
            client_key_id text NOT NULL,
            provider text NOT NULL,
            key_id text NOT NULL,
            model text NOT NULL,
            response_model text,
            stage text,
            status integer NOT NULL,
            result text NOT NULL,
            input_tokens bigint,
            output_tokens bigint,
            cache_read_tokens bigint,
            cache_write_tokens bigint,
            cost_nanousd bigint,
            latency_ms double precision NOT NULL);
        CREATE INDEX IF NOT EXISTS ccrelay_requests_ended_at ON ccrelay_requests (ended_at_ms);
        CREATE INDEX IF NOT EXISTS ccrelay_requests_client_ended_at ON ccrelay_requests (client, ended_at_ms);
        """,

        // 4: thinking pins, so that a relay joining late learns the pins made before (newest per conversation; rows
        // older than the pin lifetime are deleted); each relay's config fingerprint and clock skew with its heartbeat
        """
        CREATE TABLE IF NOT EXISTS ccrelay_pins (
            conversation_key bigint PRIMARY KEY,
            family text NOT NULL,
            pinned_at timestamptz NOT NULL);
        CREATE INDEX IF NOT EXISTS ccrelay_pins_pinned_at ON ccrelay_pins (pinned_at);
        ALTER TABLE ccrelay_relays ADD COLUMN IF NOT EXISTS fingerprint text;
        ALTER TABLE ccrelay_relays ADD COLUMN IF NOT EXISTS clock_skew_ms bigint;
        """,

        // 5: compaction of ccrelay_spend (SharedCompaction): each relay publishes the highest seq it has read with its
        // heartbeat (NULL once it has left: it holds nothing back); one row records how far runs have folded
        """
        ALTER TABLE ccrelay_relays ADD COLUMN IF NOT EXISTS read_seq bigint;
        CREATE TABLE IF NOT EXISTS ccrelay_spend_compaction (
            id integer PRIMARY KEY CHECK (id = 1),
            through_seq bigint NOT NULL,
            at timestamptz NOT NULL,
            relay text NOT NULL,
            runs bigint NOT NULL,
            rows_deleted bigint NOT NULL);
        """,
    ];

    /// <summary>The schema version this build writes.</summary>
    public static int Version => Migrations.Length;

    /// <summary>Brings the schema to <see cref="Version"/>; returns the version found before.</summary>
    public static async Task<int> MigrateAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var command = new NpgsqlCommand(
            "SELECT pg_advisory_xact_lock(@key); CREATE TABLE IF NOT EXISTS ccrelay_schema_version (version integer NOT NULL);",
            connection,
            transaction))
        {
            command.Parameters.AddWithValue("key", LockKey);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        int found;
        await using (var command = new NpgsqlCommand("SELECT coalesce(max(version), 0) FROM ccrelay_schema_version", connection, transaction))
        {
            found = Convert.ToInt32(await command.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
        }

        if (found > Migrations.Length)
        {
            throw new InvalidOperationException(
                $"the shared store's schema is version {found}, newer than this relay's {Migrations.Length}: upgrade the relay");
        }

        for (var version = found + 1; version <= Migrations.Length; version++)
        {
            await using var command = new NpgsqlCommand(Migrations[version - 1], connection, transaction);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        if (found < Migrations.Length)
        {
            await using var command = new NpgsqlCommand(
                "DELETE FROM ccrelay_schema_version; INSERT INTO ccrelay_schema_version (version) VALUES (@v)", connection, transaction);
            command.Parameters.AddWithValue("v", Migrations.Length);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return found;
    }
}
