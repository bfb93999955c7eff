using CcRelay.Cli.Api;
using CcRelay.Cli.Tui;
using CcRelay.Management.V1;

namespace CcRelay.Host.Tests.Cli.Tui;

/// <summary>The dashboard's pure transitions, its keys, its health classes and orders, and where it connects.</summary>
public sealed class DashboardStateTests
{
    private static ProviderStats Provider(string name, double rate = 0, string circuit = "closed", int requests = 0, int errors = 0) =>
        new() { Name = name, Circuit = circuit, RequestsPerSecond = rate, Requests = requests, Errors = errors, Probe = "ok", LatencyMs = new Percentiles() };

    private static DashboardState State(params ProviderStats[] providers)
    {
        var stats = new Stats();
        stats.Providers.AddRange(providers);
        return new DashboardState { Target = "t" }.WithStats(stats);
    }

    [Fact]
    public void Selection_MovesAndStopsAtTheEnds()
    {
        var state = State(Provider("a"), Provider("b"), Provider("c"));

        Assert.Equal("a", state.SelectedProvider?.Name);
        Assert.Equal("b", state.Apply(TuiAction.Down).Selected);
        Assert.Equal("c", state.Apply(TuiAction.Down).Apply(TuiAction.Down).Apply(TuiAction.Down).Selected);
        Assert.Equal("a", state.Apply(TuiAction.Up).Selected);
        Assert.Equal("c", state.Apply(TuiAction.Bottom).Selected);
    }

    [Fact]
    public void Selection_IsKeptByName_WhenTheOrderChanges()
    {
        var state = State(Provider("a", rate: 1), Provider("b", rate: 5)).Apply(TuiAction.Down);

        var sorted = state with { Sort = SortOrder.Traffic };

        Assert.Equal("b", sorted.SelectedProvider?.Name);
        Assert.Equal(["b", "a"], sorted.Providers.Select(p => p.Name));
    }

    [Fact]
    public void Sort_CyclesThroughEveryOrder() =>
        Assert.Equal(
            [SortOrder.Health, SortOrder.Traffic, SortOrder.Errors, SortOrder.Latency, SortOrder.Config],
            new[] { 1, 2, 3, 4, 5 }.Select(n => Enumerable.Range(0, n).Aggregate(State(Provider("a")), (s, _) => s.Apply(TuiAction.Sort)).Sort));

    [Fact]
    public void Sort_ByHealth_PutsTheWorstFirst_TiesInConfigOrder()
    {
        var providers = new[] { Provider("ok1"), Provider("down", circuit: "open"), Provider("ok2"), Provider("warn", requests: 10, errors: 5) };

        Assert.Equal(["down", "warn", "ok1", "ok2"], ProviderHealth.Sort(providers, SortOrder.Health).Select(p => p.Name));
        Assert.Equal(["ok1", "down", "ok2", "warn"], ProviderHealth.Sort(providers, SortOrder.Config).Select(p => p.Name));
    }

    [Fact]
    public void Health_FromCircuitErrorsProbeAndKeys()
    {
        var spent = Provider("spent");
        spent.Keys.Add(new Key { Capacity = 0 });
        var probeFailed = Provider("probe");
        probeFailed.Probe = "failed";

        Assert.Same(Health.Ok, ProviderHealth.Of(Provider("a", requests: 100, errors: 4)));
        Assert.Same(Health.Degraded, ProviderHealth.Of(Provider("a", requests: 100, errors: 5)));
        Assert.Same(Health.Degraded, ProviderHealth.Of(spent));
        Assert.Same(Health.Degraded, ProviderHealth.Of(probeFailed));
        Assert.Same(Health.Probing, ProviderHealth.Of(Provider("a", circuit: "half_open")));
        Assert.Same(Health.Down, ProviderHealth.Of(Provider("a", circuit: "open")));
        Assert.Same(Health.Off, ProviderHealth.Of(Provider("a", circuit: "disabled")));
        Assert.Same(Health.Off, ProviderHealth.Of(Provider("a", circuit: "config_disabled")));
    }

    [Fact]
    public void RequestsThatFailedOverFromAProvider_WithinTheWindow_MarkItDegraded()
    {
        var stats = new Stats { UnixMs = 100_000, WindowMs = 60_000 };
        stats.Providers.Add(Provider("a"));
        stats.Providers.Add(Provider("b"));
        static CompletedRequest FromA(long endedUnixMs)
        {
            var request = new CompletedRequest { Provider = "b", Status = 200, EndedUnixMs = endedUnixMs };
            request.FailedOver.Add("a");
            return request;
        }

        var recent = new DashboardState { Target = "t" }.WithStats(stats).WithRequest(FromA(30_000)).WithRequest(FromA(90_000));
        var old = new DashboardState { Target = "t" }.WithStats(stats).WithRequest(FromA(30_000));

        Assert.Equal(new Dictionary<string, int> { ["a"] = 1 }, recent.FailoversFrom());
        Assert.Empty(old.FailoversFrom());
        Assert.Same(Health.Degraded, ProviderHealth.Of(stats.Providers[0], recent.FailoversFrom()["a"]));
        var row = DashboardRenderer.Render(recent, 80, 24, DateTimeOffset.FromUnixTimeMilliseconds(100_000), TimeZoneInfo.Utc)[2].Text;
        Assert.Matches(@"^› a +▲ warn +on +closed", row);
    }

    [Fact]
    public void APanel_TakesTheKeys_UntilClosed()
    {
        var state = State(Provider("a"), Provider("b")).Apply(TuiAction.Details);

        Assert.Equal(new Overlay.Keys("a"), state.Overlay);
        Assert.Equal("a", state.Apply(TuiAction.Down).Selected);
        Assert.Null(state.Apply(TuiAction.Close).Overlay);
        Assert.IsType<Overlay.Help>(state.Apply(TuiAction.Help).Overlay);
    }

    [Fact]
    public void Requests_NewestFirst_Capped_AndAScrolledPaneStaysPut()
    {
        var state = State(Provider("a"));
        for (var i = 0; i < DashboardState.MaxRecent + 10; i++)
        {
            state = state.WithRequest(new CompletedRequest { RequestId = $"r{i}" });
        }

        var scrolled = state.Apply(TuiAction.ScrollOlder);

        Assert.Equal(DashboardState.MaxRecent, state.Recent.Count);
        Assert.Equal($"r{DashboardState.MaxRecent + 9}", state.Recent[0].RequestId);
        Assert.Equal(10, scrolled.Scroll);
        Assert.Equal(11, scrolled.WithRequest(new CompletedRequest()).Scroll);
        Assert.Equal(0, scrolled.Apply(TuiAction.ScrollNewer).Scroll);
    }

    [Fact]
    public void SetProviderEnabledsAnswer_ShowsAtOnce()
    {
        var state = State(Provider("a"), Provider("b"));

        var after = state.WithProvider(new Provider { Name = "b", OperatorDisabled = true, Circuit = "disabled" });

        Assert.True(after.Stats!.Providers[1].OperatorDisabled);
        Assert.False(state.Stats!.Providers[1].OperatorDisabled);
        Assert.Equal("off", ProviderHealth.Enabled(after.Stats.Providers[1]));
    }

    [Theory]
    [InlineData("q", false, "Quit")]
    [InlineData("q", true, "Close")]
    [InlineData("Enter", false, "Details")]
    [InlineData("Enter", true, "Close")]
    [InlineData("Esc", false, "Close")]
    [InlineData("j", false, "Down")]
    [InlineData("Down", false, "Down")]
    [InlineData("k", false, "Up")]
    [InlineData("d", false, "Disable")]
    [InlineData("e", false, "Enable")]
    [InlineData("Space", false, "Toggle")]
    [InlineData("r", false, "Reload")]
    [InlineData("?", false, "Help")]
    [InlineData("Ctrl+C", true, "Quit")]
    [InlineData("x", false, "None")]
    public void Keys_MapToActions(string key, bool panelOpen, string expected) => Assert.Equal(expected, TuiKeys.Map(key, panelOpen).ToString());

    [Fact]
    public void Target_FlagBeatsEnvironmentBeatsConfigBeatsDefault()
    {
        var grpc = new Core.GrpcConfig(true, new Core.ListenAddress("0.0.0.0", 9001), Microsoft.FSharp.Core.FSharpOption<string>.Some("from-config"), Microsoft.FSharp.Core.FSharpOption<Core.ListenAddress>.None);
        string? Env(string name) => name == RelayTarget.AddressVariable ? "127.0.0.2:9002" : null;

        Assert.Equal(("http://10.0.0.1:9000/", "flag"), Pick(RelayTarget.From("10.0.0.1:9000", "flag", Env, grpc)));
        Assert.Equal(("http://127.0.0.2:9002/", "from-config"), Pick(RelayTarget.From(null, null, Env, grpc)));
        Assert.Equal(("http://127.0.0.1:9001/", "from-config"), Pick(RelayTarget.From(null, null, _ => null, grpc)));
        Assert.Equal(("http://127.0.0.1:8788/", null), Pick(RelayTarget.From(null, null, _ => null, null)));
        Assert.Equal(("https://relay.example/", null), Pick(RelayTarget.From("https://relay.example", null, _ => null, null)));

        static (string, string?) Pick((RelayTarget? Target, string? Error) r) => (r.Target!.Address.ToString(), r.Target.Token);
    }

    [Fact]
    public void Target_AnUnreadableAddressIsAnError()
    {
        var (target, error) = RelayTarget.From("ftp://x:1", null, _ => null, null);

        Assert.Null(target);
        Assert.Contains("ftp://x:1", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1, 500)]
    [InlineData(2, 1000)]
    [InlineData(3, 2000)]
    [InlineData(4, 4000)]
    [InlineData(5, 5000)]
    [InlineData(1000, 5000)]
    public void Backoff_DoublesUpTo5Seconds(int attempt, int ms) => Assert.Equal(TimeSpan.FromMilliseconds(ms), Backoff.Delay(attempt));

    [Fact]
    public void AFailure_IsDescribedWithoutTheToken()
    {
        var refused = RelayClient.Describe(new Grpc.Core.RpcException(new Grpc.Core.Status(Grpc.Core.StatusCode.Unauthenticated, "bad token secret-123")));

        Assert.StartsWith("refused: wrong or missing token", refused, StringComparison.Ordinal);
        Assert.DoesNotContain("secret-123", refused, StringComparison.Ordinal);
    }
}
