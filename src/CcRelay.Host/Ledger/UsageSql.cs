using System.Data.Common;
using CcRelay.Core;

namespace CcRelay.Host.Ledger;

/// <summary>
/// The usage queries of the ledger, one text for both engines (the SQLite file and the PostgreSQL table hold the same
/// columns): usage grouped for <c>cc-relay usage</c> and <c>GetUsage</c>, and the spend per client and model for the
/// budgets' rebuild. Every aggregate is cast to BIGINT, so both engines' readers give 64-bit integers.
/// </summary>
internal static class UsageSql
{
    /// <summary>Costs are stored exactly, in billionths of a US dollar.</summary>
    public const decimal NanoUsd = 1_000_000_000m;

    private const string Sums = """
        COUNT(*), CAST(COALESCE(SUM(CASE WHEN status >= 400 OR status = 0 THEN 1 ELSE 0 END), 0) AS BIGINT),
        CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT),
        CAST(COALESCE(SUM(cache_read_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(cache_write_tokens), 0) AS BIGINT),
        CAST(COALESCE(SUM(cost_nanousd), 0) AS BIGINT),
        CAST(COALESCE(SUM(CASE WHEN cost_nanousd IS NULL AND input_tokens IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT)
        """;

    /// <summary>
    /// Usage grouped by <see cref="UsageQuery.By"/> from <paramref name="table"/>, dearest first, ties by name in
    /// byte order (<paramref name="byteOrder"/>: the engine's collation clause for it, empty where it is the default);
    /// by day oldest first.
    /// </summary>
    public static IReadOnlyList<UsageGroup> Query(DbConnection connection, UsageQuery query, string table, string byteOrder)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(query);
        using var command = connection.CreateCommand();
        Since(command, query.Since.ToUnixTimeMilliseconds());
        if (query.By == UsageGrouping.Day)
        {
            // the day is local to the budgets' time zone, which SQLite does not know: 15-minute buckets are summed
            // here and named by day in C# (every zone's midnight falls on a 15-minute boundary)
            command.CommandText = $"SELECT ended_at_ms / 900000, {Sums} FROM {table} WHERE ended_at_ms >= @since GROUP BY ended_at_ms / 900000";
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
        command.CommandText = $"""
            SELECT {column} AS grouped, {Sums} FROM {table} WHERE ended_at_ms >= @since
            GROUP BY {column} ORDER BY COALESCE(SUM(cost_nanousd), 0) DESC, {column}{byteOrder}
            """;
        using var rows = command.ExecuteReader();
        var groups = new List<UsageGroup>();
        while (rows.Read())
        {
            groups.Add(ReadGroup(rows, rows.GetString(0)));
        }

        return groups;
    }

    /// <summary>The cost per client and model in 15-minute buckets from <paramref name="since"/> (budgets' rebuild).</summary>
    public static IReadOnlyList<SpendBucket> SpendSince(DbConnection connection, DateTimeOffset since, string table)
    {
        ArgumentNullException.ThrowIfNull(connection);
        using var command = connection.CreateCommand();
        command.CommandText = $"""
            SELECT client, model, ended_at_ms / 900000, CAST(SUM(cost_nanousd) AS BIGINT) FROM {table}
            WHERE ended_at_ms >= @since AND client <> '-' AND cost_nanousd IS NOT NULL
            GROUP BY client, model, ended_at_ms / 900000
            """;
        Since(command, since == DateTimeOffset.MinValue ? long.MinValue : since.ToUnixTimeMilliseconds());
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

    private static void Since(DbCommand command, long unixMs)
    {
        var since = command.CreateParameter();
        since.ParameterName = "@since";
        since.Value = unixMs;
        command.Parameters.Add(since);
    }

    private static UsageGroup ReadGroup(DbDataReader reader, string key) => new(
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
}
