using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Ledger;

namespace CcRelay.Cli;

/// <summary>
/// <c>cc-relay usage [--by client|provider|model|key|day] [--since 7d] [--json|--csv] [--config path] [--ledger path]</c>:
/// usage and cost from the ledger (docs/teams.md), read-only, while the relay runs or not: the SQLite file, or with
/// <c>state.postgres</c> the shared store's table (every relay's rows). Rows of the last flush interval may not be
/// written yet.
/// </summary>
internal static class UsageCommand
{
    private static readonly string[] Columns =
        ["requests", "errors", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd", "unpriced"];

    public static Command Create(CliEnvironment environment)
    {
        var by = new Option<string>("--by")
        {
            Description = "Group by client, provider, model, key (provider/key_id) or day (in ledger.time_zone).",
            DefaultValueFactory = _ => "client",
        };
        by.AcceptOnlyFromAmong("client", "provider", "model", "key", "day");
        var since = new Option<string>("--since")
        {
            Description = "From when: a span before now (7d, 24h, 30m, 2w), a date (2026-12-01) or a date-time.",
            DefaultValueFactory = _ => "7d",
        };
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var csv = new Option<bool>("--csv") { Description = "Print CSV." };
        var config = new Option<string?>("--config") { Description = "The config file whose ledger to read. Default: the file serve would load." };
        var ledger = new Option<string?>("--ledger") { Description = "The ledger file itself (overrides ledger.path)." };
        var command = new Command("usage", "Show usage and cost per client, provider, model, key or day, from the usage ledger.")
        {
            by,
            since,
            json,
            csv,
            config,
            ledger,
        };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            if (parse.GetValue(json) && parse.GetValue(csv))
            {
                error.WriteLine("cc-relay: give --json or --csv, not both");
                return ExitCodes.InvalidConfig;
            }

            var loaded = LoadConfig.Run(parse.GetValue(config), environment, error);
            if (loaded is null)
            {
                return ExitCodes.InvalidConfig;
            }

            var ledgerConfig = loaded.Value.Config.Ledger;
            var path = parse.GetValue(ledger) is { Length: > 0 } explicitPath
                ? environment.FullPath(explicitPath)
                : LedgerFile.ResolvePath(ledgerConfig, name => name == "HOME" ? environment.Home : environment.Variable(name));
            var from = BudgetPeriods.parseSince(ledgerConfig.TimeZone, TimeProvider.System.GetUtcNow(), parse.GetValue(since)!);
            if (from.IsError)
            {
                error.WriteLine("cc-relay: " + from.ErrorValue);
                return ExitCodes.InvalidConfig;
            }

            var grouping = Enum.Parse<UsageGrouping>(parse.GetValue(by)!, ignoreCase: true);
            var usageQuery = new UsageQuery(grouping, from.ResultValue, ledgerConfig.TimeZone);
            IReadOnlyList<UsageGroup> groups;

            // with state.postgres (and no --ledger), the relays write their rows to the shared store: read every relay's there
            if (parse.GetValue(ledger) is not { Length: > 0 } && loaded.Value.Config.State.Postgres?.Value is { } postgres)
            {
                try
                {
                    // a one-shot report, not a request path: time to connect and to sum a large table
                    var builder = PostgresLedgerTable.Normalise(postgres);
                    builder.Timeout = Math.Max(builder.Timeout, 15);
                    builder.CommandTimeout = Math.Max(builder.CommandTimeout, 60);
                    using var source = Npgsql.NpgsqlDataSource.Create(builder);
                    using var connection = source.OpenConnection();
                    groups = PostgresLedgerTable.Query(connection, usageQuery);
                }
                catch (Exception e) when (e is Npgsql.NpgsqlException or IOException or TimeoutException or InvalidOperationException)
                {
                    // NOTE: never the connection string (it may hold a password); Npgsql's messages do not carry it
                    error.WriteLine($"cc-relay: cannot read the usage ledger in {PostgresLedger.Where}: {e.Message}");
                    return ExitCodes.Failure;
                }
            }
            else
            {
                try
                {
                    using var connection = LedgerFile.OpenForReading(path);
                    groups = LedgerFile.Query(connection, usageQuery);
                }
                catch (Exception e) when (e is FileNotFoundException or Microsoft.Data.Sqlite.SqliteException or IOException or UnauthorizedAccessException)
                {
                    error.WriteLine($"cc-relay: cannot read the usage ledger {path}: {e.Message}");
                    return ExitCodes.Failure;
                }
            }

            var key = parse.GetValue(by)!;
            output.Write(parse.GetValue(json) ? Json(key, groups) : parse.GetValue(csv) ? Csv(key, groups) : Table(key, groups));
            return ExitCodes.Success;
        });
        return command;
    }

    private static string[] Values(UsageGroup g) =>
    [
        Number(g.Requests), Number(g.Errors), Number(g.InputTokens), Number(g.OutputTokens), Number(g.CacheReadTokens),
        Number(g.CacheWriteTokens), g.CostUsd.ToString("0.######", CultureInfo.InvariantCulture), Number(g.Unpriced),
    ];

    private static string[] Row(UsageGroup g) => [g.Key, .. Values(g)];

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>A table with aligned columns and a total line.</summary>
    internal static string Table(string key, IReadOnlyList<UsageGroup> groups)
    {
        List<string[]> rows = [[key, .. Columns]];
        rows.AddRange(groups.Select(Row));
        if (groups.Count > 1)
        {
            rows.Add(Row(Total(groups)));
        }

        var widths = Enumerable.Range(0, rows[0].Length).Select(i => rows.Max(r => r[i].Length)).ToArray();
        var text = new StringBuilder();
        foreach (var row in rows)
        {
            text.Append(row[0].PadRight(widths[0]));
            for (var i = 1; i < row.Length; i++)
            {
                text.Append("  ").Append(row[i].PadLeft(widths[i]));
            }

            text.Append('\n');
        }

        if (groups.Count == 0)
        {
            text.Append("(no requests in this period)\n");
        }

        return text.ToString();
    }

    /// <summary>RFC 4180 CSV with a header line.</summary>
    internal static string Csv(string key, IReadOnlyList<UsageGroup> groups)
    {
        var text = new StringBuilder();
        text.Append(key).Append(',').AppendJoin(',', Columns).Append('\n');
        foreach (var g in groups)
        {
            text.Append(Quote(g.Key)).Append(',').AppendJoin(',', Values(g)).Append('\n');
        }

        return text.ToString();
    }

    /// <summary><c>{"by": …, "groups": [{"key": …, "requests": …, …}]}</c>.</summary>
    internal static string Json(string key, IReadOnlyList<UsageGroup> groups)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartObject();
            writer.WriteString("by", key);
            writer.WriteStartArray("groups");
            foreach (var g in groups)
            {
                writer.WriteStartObject();
                writer.WriteString("key", g.Key);
                writer.WriteNumber("requests", g.Requests);
                writer.WriteNumber("errors", g.Errors);
                writer.WriteNumber("input_tokens", g.InputTokens);
                writer.WriteNumber("output_tokens", g.OutputTokens);
                writer.WriteNumber("cache_read_tokens", g.CacheReadTokens);
                writer.WriteNumber("cache_write_tokens", g.CacheWriteTokens);
                writer.WriteNumber("cost_usd", g.CostUsd);
                writer.WriteNumber("unpriced", g.Unpriced);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    private static UsageGroup Total(IReadOnlyList<UsageGroup> groups) => new(
        "total",
        groups.Sum(g => g.Requests),
        groups.Sum(g => g.Errors),
        groups.Sum(g => g.InputTokens),
        groups.Sum(g => g.OutputTokens),
        groups.Sum(g => g.CacheReadTokens),
        groups.Sum(g => g.CacheWriteTokens),
        groups.Sum(g => g.CostUsd),
        groups.Sum(g => g.Unpriced));

    private static string Quote(string value) =>
        value.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : value;
}
