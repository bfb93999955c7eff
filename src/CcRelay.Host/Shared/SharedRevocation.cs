using CcRelay.Core;
using Npgsql;

namespace CcRelay.Host.Shared;

/// <summary>
/// Revokes a client key in the shared store from outside a relay (<c>cc-relay state revoke-client-key</c>): the row every
/// relay reads when it (re)connects, and the NOTIFY the running ones apply at once (docs/scale-out.md).
/// </summary>
public static class SharedRevocation
{
    /// <summary>Writes the revocation of <paramref name="keyId"/> and announces it; true when it was not revoked before.</summary>
    public static async Task<bool> RevokeClientKeyAsync(string connectionString, string keyId, CancellationToken cancellationToken)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false, ApplicationName = "cc-relay state" };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync(cancellationToken);
        await SharedSchema.MigrateAsync(connection, cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        int inserted;
        await using (var insert = new NpgsqlCommand(
            "INSERT INTO ccrelay_revoked_client_keys (key_id) VALUES (@key) ON CONFLICT (key_id) DO NOTHING", connection, transaction))
        {
            insert.Parameters.AddWithValue("key", keyId);
            inserted = await insert.ExecuteNonQueryAsync(cancellationToken);
        }

        await using (var notify = new NpgsqlCommand("SELECT pg_notify('ccrelay_events', @payload)", connection, transaction))
        {
            notify.Parameters.AddWithValue("payload", SharedEvents.encode("cli", SharedEvent.NewClientKeyRevoked(keyId)));
            await notify.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return inserted == 1;
    }
}
