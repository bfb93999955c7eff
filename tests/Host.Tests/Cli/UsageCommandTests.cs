using System.Text.Json;
using CcRelay.Host.Ledger;

namespace CcRelay.Host.Tests.Cli;

/// <summary><c>cc-relay usage</c>: the ledger file read back, as a table, CSV or JSON.</summary>
public sealed class UsageCommandTests : IDisposable
{
    private readonly CliSandbox _cli = new();

    public void Dispose() => _cli.Dispose();

    /// <summary>A config naming a ledger in the sandbox, with three rows written: two of alice, one of bob, one day apart.</summary>
    private string Arrange(string timeZone = "UTC")
    {
        var ledger = Path.Combine(_cli.WorkingDirectory, "ledger.db");
        var now = TimeProvider.System.GetUtcNow();
        using (var writer = new LedgerWriter(ledger))
        {
            writer.Insert(
            [
                Row(now.AddMinutes(-5), "alice", "claude-sonnet-4-6", 200, 1000, 500, 0.0105m),
                Row(now.AddDays(-1), "alice", "claude-opus-4-5", 200, 2000, 100, 0.0125m),
                Row(now.AddMinutes(-1), "bob", "claude-sonnet-4-6", 429, null, null, null),
                Row(now.AddDays(-30), "carol", "claude-sonnet-4-6", 200, 1, 1, 1m),
            ]);
        }

        return _cli.Write("cc-relay.yaml", $"""
            providers:
              - name: anthropic
                type: anthropic
            ledger:
              path: "{ledger}"
              time_zone: "{timeZone}"
            """);
    }

    private static LedgerRow Row(DateTimeOffset at, string client, string model, int status, long? input, long? output, decimal? cost) => new()
    {
        EndedAt = at,
        RequestId = "req_" + Guid.NewGuid().ToString("N"),
        Client = client,
        ClientKeyId = "0011aabb",
        Provider = "anthropic",
        KeyId = "ccddeeff",
        Model = model,
        Status = status,
        Result = status == 200 ? "ok" : "rate_limit_error",
        InputTokens = input,
        OutputTokens = output,
        CacheReadTokens = input is null ? null : 0,
        CacheWriteTokens = input is null ? null : 0,
        CostUsd = cost,
        LatencyMs = 12.5,
    };

    [Fact]
    public async Task Usage_ByClient_AsATable_WithATotal_OverTheLastWeekByDefault()
    {
        var config = Arrange();

        var (code, output, error) = await _cli.RunAsync("usage", "--config", config);

        Assert.Equal(0, code);
        Assert.Equal("", error);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(4, lines.Length);
        Assert.StartsWith("client ", lines[0]);
        Assert.Matches(@"^alice\s+2\s+0\s+3000\s+600\s+0\s+0\s+0\.023\s+0$", lines[1]);
        Assert.Matches(@"^bob\s+1\s+1\s+0\s+0\s+0\s+0\s+0\s+0$", lines[2]);
        Assert.Matches(@"^total\s+3\s+1\s+3000\s+600\s+0\s+0\s+0\.023\s+0$", lines[3]);
        Assert.DoesNotContain("carol", output);
    }

    [Fact]
    public async Task Usage_AsJson_ByModel_SinceADate()
    {
        var config = Arrange();
        var since = TimeProvider.System.GetUtcNow().AddDays(-60).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);

        var (code, output, _) = await _cli.RunAsync("usage", "--config", config, "--by", "model", "--since", since, "--json");

        Assert.Equal(0, code);
        using var json = JsonDocument.Parse(output);
        Assert.Equal("model", json.RootElement.GetProperty("by").GetString());
        var groups = json.RootElement.GetProperty("groups").EnumerateArray().ToList();
        Assert.Equal(["claude-sonnet-4-6", "claude-opus-4-5"], groups.Select(g => g.GetProperty("key").GetString()));
        Assert.Equal(3, groups[0].GetProperty("requests").GetInt64());
        Assert.Equal(1.0105m, groups[0].GetProperty("cost_usd").GetDecimal());
    }

    [Fact]
    public async Task Usage_AsCsv_ByDay()
    {
        var config = Arrange();

        var (code, output, _) = await _cli.RunAsync("usage", "--config", config, "--by", "day", "--since", "3d", "--csv");

        Assert.Equal(0, code);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("day,requests,errors,input_tokens,output_tokens,cache_read_tokens,cache_write_tokens,cost_usd,unpriced", lines[0]);
        Assert.InRange(lines.Length, 2, 4);
        Assert.All(lines.Skip(1), l => Assert.Matches(@"^\d{4}-\d{2}-\d{2},", l));
        Assert.Equal(3, lines.Skip(1).Sum(l => int.Parse(l.Split(',')[1], System.Globalization.CultureInfo.InvariantCulture)));
    }

    [Fact]
    public async Task Usage_WithoutALedger_Fails_AndABadSince_IsAUsageError()
    {
        var missing = _cli.Write("missing.yaml", """
            providers:
              - name: anthropic
                type: anthropic
            ledger:
              path: "/nonexistent/cc-relay/ledger.db"
            """);
        var config = Arrange();

        var (noLedger, _, noLedgerError) = await _cli.RunAsync("usage", "--config", missing);
        var (badSince, _, badSinceError) = await _cli.RunAsync("usage", "--config", config, "--since", "last tuesday");
        var (badBy, _, _) = await _cli.RunAsync("usage", "--config", config, "--by", "team");

        Assert.Equal(1, noLedger);
        Assert.Contains("cannot read the usage ledger", noLedgerError);
        Assert.Equal(2, badSince);
        Assert.Contains("--since", badSinceError);
        Assert.Equal(2, badBy);
    }
}
