using Npgsql;
using NpgsqlTypes;

namespace CcRelay.Host.Ledger;

/// <summary>
/// The ledger's table in the shared PostgreSQL store (<c>ccrelay_requests</c>, created by the shared schema's
/// migrations, docs/scale-out.md): the same columns as the SQLite file's <c>requests</c>, plus the relay that wrote the
/// row and a row id that makes a retried batch insert nothing twice. The queries are the SQLite file's, so
/// <c>cc-relay usage</c> and <c>GetUsage</c> answer the same from either store.
/// </summary>
public static class PostgresLedgerTable
{
    /// <summary>
    /// The connection string with the relay's defaults for a store that must be noticed lost in seconds: connect and
    /// command timeouts of 3 s and 5 s unless set, TCP keep-alive, application name, a pool of at most 2.
    /// </summary>
    public static NpgsqlConnectionStringBuilder Normalise(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (builder.Timeout == 15)
        {
            builder.Timeout = 3;
        }

        if (builder.CommandTimeout == 30)
        {
            builder.CommandTimeout = 5;
        }

        builder.KeepAlive = builder.KeepAlive == 0 ? 5 : builder.KeepAlive;
        builder.ApplicationName ??= "cc-relay";
        if (builder.MaxPoolSize == 100)
        {
            builder.MaxPoolSize = 2;
        }

        return builder;
    }

    /// <summary>Inserts rows in one statement (arrays unnested); a row whose id is there already is skipped.</summary>
    public static async Task InsertAsync(NpgsqlConnection connection, string relay, IReadOnlyList<(Guid Id, LedgerRow Row)> rows, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(rows);
        await using var command = new NpgsqlCommand(
            """
            INSERT INTO ccrelay_requests (id, relay, ended_at_ms, request_id, client, client_key_id, provider, key_id, model,
                response_model, stage, status, result, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                cost_nanousd, latency_ms)
            SELECT u.id, @relay, u.ended_at_ms, u.request_id, u.client, u.client_key_id, u.provider, u.key_id, u.model,
                u.response_model, u.stage, u.status, u.result, u.input_tokens, u.output_tokens, u.cache_read_tokens,
                u.cache_write_tokens, u.cost_nanousd, u.latency_ms
            FROM unnest(@id, @ended, @request, @client, @client_key, @provider, @key, @model, @response_model,
                @stage, @status, @result, @input, @output, @cache_read, @cache_write, @cost, @latency)
                AS u(id, ended_at_ms, request_id, client, client_key_id, provider, key_id, model, response_model, stage, status,
                     result, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_nanousd, latency_ms)
            ON CONFLICT (id) DO NOTHING
            """,
            connection);
        command.Parameters.AddWithValue("relay", relay);
        command.Parameters.AddWithValue("id", rows.Select(r => r.Id).ToArray());
        command.Parameters.AddWithValue("ended", rows.Select(r => r.Row.EndedAt.ToUnixTimeMilliseconds()).ToArray());
        command.Parameters.AddWithValue("request", rows.Select(r => r.Row.RequestId).ToArray());
        command.Parameters.AddWithValue("client", rows.Select(r => r.Row.Client).ToArray());
        command.Parameters.AddWithValue("client_key", rows.Select(r => r.Row.ClientKeyId).ToArray());
        command.Parameters.AddWithValue("provider", rows.Select(r => r.Row.Provider).ToArray());
        command.Parameters.AddWithValue("key", rows.Select(r => r.Row.KeyId).ToArray());
        command.Parameters.AddWithValue("model", rows.Select(r => r.Row.Model).ToArray());
        command.Parameters.Add(new NpgsqlParameter("response_model", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = rows.Select(r => (object?)r.Row.ResponseModel ?? DBNull.Value).ToArray() });
        command.Parameters.Add(new NpgsqlParameter("stage", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = rows.Select(r => (object?)r.Row.Stage ?? DBNull.Value).ToArray() });
        command.Parameters.AddWithValue("status", rows.Select(r => r.Row.Status).ToArray());
        command.Parameters.AddWithValue("result", rows.Select(r => r.Row.Result).ToArray());
        command.Parameters.Add(Longs("input", rows.Select(r => r.Row.InputTokens)));
        command.Parameters.Add(Longs("output", rows.Select(r => r.Row.OutputTokens)));
        command.Parameters.Add(Longs("cache_read", rows.Select(r => r.Row.CacheReadTokens)));
        command.Parameters.Add(Longs("cache_write", rows.Select(r => r.Row.CacheWriteTokens)));
        command.Parameters.Add(Longs("cost", rows.Select(r => r.Row.CostUsd is { } cost ? (long?)(long)Math.Round(cost * UsageSql.NanoUsd, MidpointRounding.AwayFromZero) : null)));
        command.Parameters.AddWithValue("latency", rows.Select(r => r.Row.LatencyMs).ToArray());
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static NpgsqlParameter Longs(string name, IEnumerable<long?> values) =>
        new(name, NpgsqlDbType.Array | NpgsqlDbType.Bigint) { Value = values.Select(v => v is { } x ? (object)x : DBNull.Value).ToArray() };

    /// <summary>Usage grouped by <see cref="UsageQuery.By"/>, dearest first (by day: oldest first), every relay's rows.</summary>
    public static IReadOnlyList<UsageGroup> Query(NpgsqlConnection connection, UsageQuery query) =>
        UsageSql.Query(connection, query, "ccrelay_requests", byteOrder: " COLLATE \"C\"");

    /// <summary>The cost per client and model in 15-minute buckets from <paramref name="since"/>, every relay's rows.</summary>
    public static IReadOnlyList<SpendBucket> SpendSince(NpgsqlConnection connection, DateTimeOffset since) =>
        UsageSql.SpendSince(connection, since, "ccrelay_requests");
}
