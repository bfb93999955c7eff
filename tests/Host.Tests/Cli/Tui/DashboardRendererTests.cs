using CcRelay.Cli.Tui;
using CcRelay.Management.V1;

namespace CcRelay.Host.Tests.Cli.Tui;

/// <summary>The dashboard drawn without a terminal: rows, symbols, order, widths.</summary>
public sealed class DashboardRendererTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 7, 8, 30, 0, TimeSpan.Zero);

    private static ProviderStats Provider(string name, string circuit = "closed", double rate = 1, int requests = 60, int errors = 0, bool disabled = false, params double[] keys)
    {
        var provider = new ProviderStats
        {
            Name = name,
            Circuit = disabled ? "disabled" : circuit,
            CircuitChangesInMs = circuit == "open" ? 12_000 : 0,
            Up = circuit == "closed" && !disabled,
            OperatorDisabled = disabled,
            Probe = "unknown",
            Requests = requests,
            RequestsPerSecond = rate,
            Errors = errors,
            LatencyMs = new Percentiles { P50 = 850, P95 = 1500, P99 = 2100 },
            TtfbMs = new Percentiles(),
            InputTokens = 120_000,
            OutputTokens = 3_400,
            CostUsd = 1.5,
        };
        provider.Keys.AddRange(keys.Select((c, i) => new Key { Provider = name, KeyId = $"{name[..1]}{i}-id", Capacity = c, RpmLimit = 50, RpmRemaining = (long)(50 * c), InputTokensRemaining = -1, OutputTokensRemaining = -1 }));
        return provider;
    }

    private static DashboardState State(params ProviderStats[] providers)
    {
        var stats = new Stats { ConfigGeneration = 3, RoutingStrategy = "failover", UptimeMs = 3_723_000, Totals = new Totals() };
        stats.Providers.AddRange(providers);
        return new DashboardState { Target = "127.0.0.1:8788" }.WithStats(stats);
    }

    private static CompletedRequest Request(string provider, int status, params string[] failedOver)
    {
        var request = new CompletedRequest
        {
            EndedUnixMs = Now.ToUnixTimeMilliseconds(),
            Provider = provider,
            Model = "claude-sonnet-4-5",
            Status = status,
            ErrorClass = status >= 500 ? "overloaded" : "",
            Result = status >= 500 ? "upstream_529" : "ok",
            LatencyMs = 1234,
            Attempts = failedOver.Length + 1,
            InputTokens = 1200,
            OutputTokens = 340,
        };
        request.FailedOver.AddRange(failedOver);
        return request;
    }

    private static CompletedRequest WithAttempts(CompletedRequest request, int attempts)
    {
        request.Attempts = attempts;
        return request;
    }

    private static List<string> Render(DashboardState state, int width = 80, int height = 24) =>
        [.. DashboardRenderer.Render(state, width, height, Now, TimeZoneInfo.Utc).Select(l => l.Text)];

    [Fact]
    public void At80x24_EveryLineIsExactly80Cells_And24Lines()
    {
        var state = State(Provider("anthropic", keys: [1, 0.5]), Provider("zai", "open", keys: [0.1]), Provider("ollama", disabled: true))
            .WithRequest(Request("anthropic", 200, "zai"));

        var lines = Render(state);

        Assert.Equal(24, lines.Count);
        Assert.All(lines, l => Assert.Equal(80, l.Length));
    }

    [Fact]
    public void RequestsHeader_SaysHowManyRequestsTheStreamMissed_OnlyWhenItMissedSome()
    {
        var skipped = Request("anthropic", 200);
        skipped.DroppedBefore = 1396;
        var missed = State(Provider("anthropic")).WithRequest(Request("anthropic", 200)).WithRequest(skipped).WithRequest(Request("anthropic", 200));
        var complete = State(Provider("anthropic")).WithRequest(Request("anthropic", 200)).WithRequest(Request("anthropic", 200));

        Assert.Equal(1396, missed.Missed);
        Assert.Contains(Render(missed, width: 120), l => l.Contains("TIME") && l.Contains("1396 missed"));
        Assert.DoesNotContain(Render(complete, width: 120), l => l.Contains("missed"));
    }

    [Fact]
    public void AnySize_GivesExactlyThatManyLinesOfThatWidth()
    {
        var state = State([.. Enumerable.Range(0, 12).Select(i => Provider($"p{i}", keys: [0.5]))]).WithRequest(Request("p1", 529));

        for (var width = 1; width <= 130; width += 7)
        {
            for (var height = 1; height <= 40; height += 3)
            {
                var lines = Render(state, width, height);
                Assert.Equal(height, lines.Count);
                Assert.All(lines, l => Assert.Equal(width, l.Length));
            }
        }
    }

    [Fact]
    public void ProviderRows_ShowHealthAsSymbolAndWord_EnabledAndCircuit()
    {
        var lines = Render(State(Provider("anthropic"), Provider("zai", "open"), Provider("ollama", disabled: true), Provider("minimax", "half_open"), Provider("deepseek", requests: 20, errors: 2)));

        Assert.Matches(@"^› anthropic +● ok +on +closed +1\.0 +850ms +2\.1s +0% +0 +123k +\$1\.50$", lines[2]);
        Assert.Matches(@"^  zai +✖ down +on +open 12s ", lines[3]);
        Assert.Matches(@"^  ollama +○ off +off +off ", lines[4]);
        Assert.Matches(@"^  minimax +◐ half +on +half ", lines[5]);
        Assert.Matches(@"^  deepseek +▲ warn +on +closed .* 10% ", lines[6]);
    }

    [Fact]
    public void Header_And_Title_ShowGenerationStrategyAndUptime()
    {
        var lines = Render(State(Provider("anthropic")));

        Assert.StartsWith(" cc-relay  127.0.0.1:8788 ● live │ gen 3 │ failover │ up 1h02m │ 1.0 req/s", lines[0]);
        Assert.Matches(@"^  PROVIDER +HEALTH ON +CIRCUIT +REQ/S +P50 +P99 +ERR% INFL TOKENS +COST$", lines[1]);
    }

    [Fact]
    public void NarrowTerminal_DropsTheLeastImportantColumnsFirst()
    {
        var lines = Render(State(Provider("anthropic")), width: 60);

        Assert.Contains("ERR%", lines[1]);
        Assert.DoesNotContain("COST", lines[1]);
        Assert.DoesNotContain("TOKENS", lines[1]);
    }

    [Fact]
    public void WideTerminal_WidensTheNameColumn()
    {
        var (_, at80) = DashboardRenderer.ColumnLayout(80);
        var (_, at120) = DashboardRenderer.ColumnLayout(120);

        Assert.Equal(12, at80);
        Assert.Equal(24, at120);
    }

    [Fact]
    public void KeyBars_ShowThePoolsMeanCapacity_AndAProviderWithoutKeys()
    {
        var lines = Render(State(Provider("anthropic", keys: [1, 0.5]), Provider("passthrough")));

        Assert.Contains(lines, l => l.Contains("anthropic", StringComparison.Ordinal) && l.Contains("███", StringComparison.Ordinal) && l.Contains("75%  2 keys · 75 rpm left", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("passthrough", StringComparison.Ordinal) && l.Contains("no keys", StringComparison.Ordinal));
    }

    [Fact]
    public void RecentRequests_NewestFirst_WithStatusSymbolAndWhatFailedOver()
    {
        var state = State(Provider("anthropic")).WithRequest(Request("zai", 529)).WithRequest(Request("anthropic", 200, "zai"));

        var lines = Render(state);
        var first = lines.FindIndex(l => l.Contains("claude-sonnet-4-5", StringComparison.Ordinal));

        Assert.Matches(@"^  08:30:00 claude-sonnet-4-5 anthropic  ✓200     1\.2s  1\.2k/340 ↪ from zai +$", lines[first]);
        Assert.Matches(@"zai +✗529 .*upstream_529", lines[first + 1]);
        Assert.Equal("↪ from zai, minimax", DashboardRenderer.Note(Request("anthropic", 200, "zai", "minimax")));
        Assert.Equal("upstream_529 3 tries", DashboardRenderer.Note(WithAttempts(Request("zai", 529), 3)));
    }

    [Fact]
    public void Disconnected_SaysSoAndWhenItRetries_KeepingTheLastTable()
    {
        var state = State(Provider("anthropic")).Disconnected("connection refused", Now.AddSeconds(3), 4);

        var lines = Render(state);

        Assert.Contains("✖ disconnected — retrying in 3s", lines[0]);
        Assert.StartsWith("✖ disconnected — retrying… (try 4, next in 3s): connection refused", lines[1]);
        Assert.Contains(lines, l => l.Contains("not live", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("anthropic", StringComparison.Ordinal));
    }

    [Fact]
    public void ManyProviders_TheTableScrollsToKeepTheSelectionVisible()
    {
        var state = State([.. Enumerable.Range(0, 30).Select(i => Provider($"p{i:00}"))]).Apply(TuiAction.Bottom);

        var lines = Render(state);

        Assert.Contains(lines, l => l.StartsWith("› p29", StringComparison.Ordinal));
        Assert.True(lines.Count(l => l.Contains("claude", StringComparison.Ordinal) || l.Contains("TIME", StringComparison.Ordinal)) >= 1);
    }

    [Fact]
    public void KeysPanel_ListsEachKeyByIdWithItsLimitsAndState()
    {
        var provider = Provider("anthropic", keys: [1, 0]);
        provider.Keys[1].CooldownRemainingMs = 30_000;
        var state = State(provider).Apply(TuiAction.Details);

        var lines = Render(state);

        Assert.Contains(lines, l => l.Contains("Keys of anthropic", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("a0-id", StringComparison.Ordinal) && l.Contains("50/50", StringComparison.Ordinal) && l.Contains("● ready", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("a1-id", StringComparison.Ordinal) && l.Contains("◐ cool 30s", StringComparison.Ordinal));
    }

    [Fact]
    public void ReloadPanel_Rejected_ShowsTheLocatedErrors()
    {
        var answer = new ReloadConfigResponse { Outcome = "rejected", ConfigGeneration = 3 };
        answer.Errors.Add(new ConfigIssue { Path = "routing.strategy", Line = 4, Column = 13, Text = "routing.strategy (4:13): unknown strategy 'bogus'" });
        var state = State(Provider("anthropic")) with { Overlay = new Overlay.Reload(answer) };

        var lines = Render(state);

        Assert.Contains(lines, l => l.Contains("✖ rejected: the running config (generation 3) stays", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("error: routing.strategy (4:13): unknown strategy 'bogus'", StringComparison.Ordinal));
    }

    [Fact]
    public void Footer_ShowsTheLastActionsNotice_ForAWhile_ThenTheKeys()
    {
        var state = State(Provider("anthropic")).Say("anthropic disabled", Tone.Warn, Now.AddSeconds(-1));

        Assert.StartsWith(" anthropic disabled", Render(state)[^1]);
        Assert.StartsWith(" ↑↓ select", Render(state with { Notice = state.Notice! with { At = Now.AddMinutes(-1) } })[^1]);
    }
}
