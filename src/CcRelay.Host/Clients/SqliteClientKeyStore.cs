using CcRelay.Core;
using CcRelay.Host.Ledger;
using Microsoft.Data.Sqlite;

namespace CcRelay.Host.Clients;

/// <summary>
/// The runtime client-key changes in the table <c>client_key_changes</c> of the ledger's SQLite file (created with
/// mode 0600, as the ledger: <see cref="LedgerFile.OpenForWriting"/>), whether the ledger records requests or not.
/// The file is created only by the first change: a relay that never changes a key at run time never creates it.
/// One row per change, holding key digests only.
/// </summary>
public sealed class SqliteClientKeyStore(string path) : IClientKeyStore
{
    private const string Schema = """
        CREATE TABLE IF NOT EXISTS client_key_changes (
            id INTEGER PRIMARY KEY,
            at_ms INTEGER NOT NULL,
            kind TEXT NOT NULL,
            client TEXT NOT NULL,
            key_sha256 TEXT NOT NULL,
            previous_sha256 TEXT NOT NULL,
            grace_until_ms INTEGER,
            expires_at_ms INTEGER,
            like_client TEXT,
            actor TEXT NOT NULL
        );
        """;

    /// <summary>The SQLite file.</summary>
    public string Path { get; } = path;

    /// <inheritdoc/>
    public event EventHandler? Changed;

    /// <inheritdoc/>
    public Task<IReadOnlyList<ClientKeyChange>> LoadAsync(CancellationToken cancellationToken = default)
    {
        if (!File.Exists(Path))
        {
            return Task.FromResult<IReadOnlyList<ClientKeyChange>>([]);
        }

        using var connection = LedgerFile.OpenForWriting(Path);
        using var command = connection.CreateCommand();
        command.CommandText = Schema + """
            SELECT at_ms, kind, client, key_sha256, previous_sha256, grace_until_ms, expires_at_ms, like_client, actor
            FROM client_key_changes ORDER BY id;
            """;
        var changes = new List<ClientKeyChange>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            if (ClientKeyChangeKind.TryParse(reader.GetString(1))?.Value is not { } kind)
            {
                continue; // written by a newer relay: not this one's to apply
            }

            changes.Add(ClientKeyChange.Create(
                DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(0)),
                kind,
                reader.GetString(2),
                reader.GetString(3),
                reader.GetString(4),
                Time(reader, 5),
                Time(reader, 6),
                reader.IsDBNull(7) ? null : reader.GetString(7),
                reader.GetString(8)));
        }

        return Task.FromResult<IReadOnlyList<ClientKeyChange>>(changes);
    }

    /// <inheritdoc/>
    public Task AppendAsync(IReadOnlyList<ClientKeyChange> changes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(changes);
        using (var connection = LedgerFile.OpenForWriting(Path))
        {
            using (var schema = connection.CreateCommand())
            {
                schema.CommandText = Schema;
                schema.ExecuteNonQuery();
            }

            using var transaction = connection.BeginTransaction();
            foreach (var change in changes)
            {
                using var insert = connection.CreateCommand();
                insert.Transaction = transaction;
                insert.CommandText = """
                    INSERT INTO client_key_changes (at_ms, kind, client, key_sha256, previous_sha256, grace_until_ms, expires_at_ms, like_client, actor)
                    VALUES ($at, $kind, $client, $key, $previous, $grace, $expires, $like, $actor);
                    """;
                insert.Parameters.AddWithValue("$at", change.At.ToUnixTimeMilliseconds());
                insert.Parameters.AddWithValue("$kind", change.Kind.WireName);
                insert.Parameters.AddWithValue("$client", change.Client);
                insert.Parameters.AddWithValue("$key", change.KeySha256);
                insert.Parameters.AddWithValue("$previous", change.PreviousSha256);
                insert.Parameters.AddWithValue("$grace", (object?)change.GraceUntil?.Value.ToUnixTimeMilliseconds() ?? DBNull.Value);
                insert.Parameters.AddWithValue("$expires", (object?)change.ExpiresAt?.Value.ToUnixTimeMilliseconds() ?? DBNull.Value);
                insert.Parameters.AddWithValue("$like", (object?)change.Like?.Value ?? DBNull.Value);
                insert.Parameters.AddWithValue("$actor", change.Actor);
                insert.ExecuteNonQuery();
            }

            transaction.Commit();
        }

        Changed?.Invoke(this, EventArgs.Empty);
        return Task.CompletedTask;
    }

    private static DateTimeOffset? Time(SqliteDataReader reader, int column) =>
        reader.IsDBNull(column)
            ? null
            : DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(column));
}
