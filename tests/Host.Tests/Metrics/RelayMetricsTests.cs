using CcRelay.Core;
using CcRelay.Host.Metrics;


namespace CcRelay.Host.Tests.Metrics;

public sealed class RelayMetricsTests : IAsyncLifetime
{
    private MetricsHost _host = null!;
    private RelayMetrics _metrics = null!;

    public async Task InitializeAsync()
    {
        _host = await MetricsHost.StartAsync();
        _metrics = _host.Metrics;
    }

    public async Task DisposeAsync() => await _host.DisposeAsync();

    private Task<PrometheusTextParser> ScrapeAsync() => _host.ScrapeAsync();

    private static Usage Tokens(long input, long output, long cacheRead, long cacheWrite) => new(input, output, cacheRead, cacheWrite);

    [Fact]
    public async Task RecordRequest_ScriptedRequests_CountedByLabelsAndTimed()
    {
        // Arrange
        (string Provider, string Model, int Status, bool Stream, double Seconds)[] script =
        [
            ("zai", "GLM-5", 200, true, 1.5),
            ("zai", "GLM-5", 200, true, 0.2),
            ("zai", "GLM-5", 429, true, 0.05),
            ("anthropic", "claude-sonnet-4-6", 200, false, 12),
            ("anthropic", "claude-sonnet-4-6", 502, false, 700),
        ];

        // Act
        foreach (var (provider, model, status, stream, seconds) in script)
        {
            _metrics.RecordRequest(provider, model, status, stream, TimeSpan.FromSeconds(seconds));
        }

        var scrape = await ScrapeAsync();

        // Assert
        const string Requests = "ccrelay_requests_total";
        Assert.Equal(2, scrape.Value(Requests, ("provider", "zai"), ("model", "GLM-5"), ("status_class", "2xx"), ("stream", "true")));
        Assert.Equal(1, scrape.Value(Requests, ("provider", "zai"), ("model", "GLM-5"), ("status_class", "4xx"), ("stream", "true")));
        Assert.Equal(1, scrape.Value(Requests, ("provider", "anthropic"), ("model", "claude-sonnet-4-6"), ("status_class", "2xx"), ("stream", "false")));
        Assert.Equal(1, scrape.Value(Requests, ("provider", "anthropic"), ("model", "claude-sonnet-4-6"), ("status_class", "5xx"), ("stream", "false")));
        Assert.Equal(5, scrape.Named(Requests).Sum(s => s.Value));

        const string Duration = "ccrelay_request_duration_seconds";
        (string, string) zai = ("provider", "zai");
        (string, string) glm = ("model", "GLM-5");
        Assert.Equal(3, scrape.Value(Duration + "_count", zai, glm));
        Assert.Equal(1.5 + 0.2 + 0.05, scrape.Value(Duration + "_sum", zai, glm), 12);
        Assert.Equal(1, scrape.Value(Duration + "_bucket", zai, glm, ("le", "0.1")));
        Assert.Equal(2, scrape.Value(Duration + "_bucket", zai, glm, ("le", "0.25")));
        Assert.Equal(3, scrape.Value(Duration + "_bucket", zai, glm, ("le", "2.5")));
        (string, string) anthropic = ("provider", "anthropic");
        (string, string) sonnet = ("model", "claude-sonnet-4-6");
        Assert.Equal(1, scrape.Value(Duration + "_bucket", anthropic, sonnet, ("le", "600")));
        Assert.Equal(2, scrape.Value(Duration + "_bucket", anthropic, sonnet, ("le", "+Inf")));
    }

    [Theory]
    [InlineData(100, "1xx")]
    [InlineData(200, "2xx")]
    [InlineData(299, "2xx")]
    [InlineData(304, "3xx")]
    [InlineData(499, "4xx")]
    [InlineData(529, "5xx")]
    [InlineData(0, "other")]
    [InlineData(600, "other")]
    public void StatusClass_GroupsByHundreds(int status, string expected) =>
        Assert.Equal(expected, RelayMetrics.StatusClass(status));

    [Fact]
    public async Task RecordTimeToFirstByte_IsAHistogramPerProviderAndModel()
    {
        _metrics.RecordTimeToFirstByte("zai", "GLM-5", TimeSpan.FromMilliseconds(80));
        _metrics.RecordTimeToFirstByte("zai", "GLM-5", TimeSpan.FromSeconds(4));

        var scrape = await ScrapeAsync();
        Assert.Equal(1, scrape.Value("ccrelay_ttfb_seconds_bucket", ("provider", "zai"), ("model", "GLM-5"), ("le", "0.1")));
        Assert.Equal(2, scrape.Value("ccrelay_ttfb_seconds_bucket", ("provider", "zai"), ("model", "GLM-5"), ("le", "5")));
        Assert.Equal(2, scrape.Value("ccrelay_ttfb_seconds_count", ("provider", "zai"), ("model", "GLM-5")));
    }

    [Fact]
    public async Task RecordAttempt_LabelsCoreOutcomes()
    {
        _metrics.RecordAttempt("zai", AttemptOutcome.Success);
        _metrics.RecordAttempt("zai", AttemptOutcome.NewFailure("status 529"));
        _metrics.RecordAttempt("zai", AttemptOutcome.NewFailure("timeout"));
        _metrics.RecordAttempt("zai", AttemptOutcome.NewRejected(400));
        _metrics.RecordAttempt("zai", AttemptOutcome.Abandoned);

        var scrape = await ScrapeAsync();
        Assert.Equal(1, scrape.Value("ccrelay_upstream_attempts_total", ("provider", "zai"), ("outcome", "success")));
        Assert.Equal(2, scrape.Value("ccrelay_upstream_attempts_total", ("provider", "zai"), ("outcome", "failure")));
        Assert.Equal(1, scrape.Value("ccrelay_upstream_attempts_total", ("provider", "zai"), ("outcome", "rejected")));
        Assert.Equal(1, scrape.Value("ccrelay_upstream_attempts_total", ("provider", "zai"), ("outcome", "abandoned")));
    }

    [Fact]
    public async Task RecordUsage_AddsTokensByKindAndTheCostOfTheTable()
    {
        // Arrange: built-in Sonnet prices 3 / 15 / 0.30 / 3.75 USD per million tokens, as the relay prices an answer
        static decimal? Cost(Usage usage) => Pricing.cost(Pricing.builtIn, "claude-sonnet-4-6", usage)?.Value;

        // Act
        _metrics.RecordUsage("anthropic", "claude-sonnet-4-6", Tokens(12, 57, 900, 100), Cost(Tokens(12, 57, 900, 100)));
        _metrics.RecordUsage("anthropic", "claude-sonnet-4-6", Tokens(1_000_000, 0, 0, 0), Cost(Tokens(1_000_000, 0, 0, 0)));
        var scrape = await ScrapeAsync();

        // Assert
        (string, string) provider = ("provider", "anthropic");
        (string, string) model = ("model", "claude-sonnet-4-6");
        Assert.Equal(1_000_012, scrape.Value("ccrelay_tokens_total", provider, model, ("kind", "input")));
        Assert.Equal(57, scrape.Value("ccrelay_tokens_total", provider, model, ("kind", "output")));
        Assert.Equal(900, scrape.Value("ccrelay_tokens_total", provider, model, ("kind", "cache_read")));
        Assert.Equal(100, scrape.Value("ccrelay_tokens_total", provider, model, ("kind", "cache_write")));
        Assert.Equal((double)0.001536m + 3d, scrape.Value("ccrelay_cost_usd_total", provider, model), 12);
        Assert.False(scrape.Has("ccrelay_unpriced_answers_total", provider, model));
    }

    [Fact]
    public async Task RecordUsage_UnpricedModel_CountsAnUnpricedAnswerAndNoCost()
    {
        Assert.Null(Pricing.cost(Pricing.builtIn, "GLM-5", Tokens(10, 5, 0, 0)));
        _metrics.RecordUsage("zai", "GLM-5", Tokens(10, 5, 0, 0), costUsd: null);
        _metrics.RecordUsage("zai", "GLM-5", Tokens(10, 5, 0, 0), costUsd: null);

        var scrape = await ScrapeAsync();
        Assert.Equal(2, scrape.Value("ccrelay_unpriced_answers_total", ("provider", "zai"), ("model", "GLM-5")));
        Assert.Equal(20, scrape.Value("ccrelay_tokens_total", ("provider", "zai"), ("model", "GLM-5"), ("kind", "input")));
        Assert.Empty(scrape.Named("ccrelay_cost_usd_total"));
    }

    [Fact]
    public async Task ModelLabels_PastTheLimit_CollapseToOther()
    {
        // Arrange
        _metrics.MaxModelLabels = 2;

        // Act
        _metrics.RecordRequest("p", "m1", 200, false, TimeSpan.Zero);
        _metrics.RecordRequest("p", "m2", 200, false, TimeSpan.Zero);
        _metrics.RecordRequest("p", "m3", 200, false, TimeSpan.Zero);
        _metrics.RecordRequest("p", "m4", 200, false, TimeSpan.Zero);
        _metrics.RecordRequest("p", "m1", 200, false, TimeSpan.Zero);
        _metrics.RecordRequest("p", "", 200, false, TimeSpan.Zero);
        _metrics.RecordRequest("p", null, 200, false, TimeSpan.Zero);
        var scrape = await ScrapeAsync();

        // Assert
        static (string, string)[] Labels(string model) => [("provider", "p"), ("model", model), ("status_class", "2xx"), ("stream", "false")];
        Assert.Equal(2, scrape.Value("ccrelay_requests_total", Labels("m1")));
        Assert.Equal(1, scrape.Value("ccrelay_requests_total", Labels("m2")));
        Assert.Equal(2, scrape.Value("ccrelay_requests_total", Labels(RelayMetrics.OtherModel)));
        Assert.Equal(2, scrape.Value("ccrelay_requests_total", Labels(RelayMetrics.UnknownModel)));
        Assert.Equal(4, scrape.Named("ccrelay_requests_total").Count());
    }

    [Fact]
    public void ModelLabel_VeryLongId_IsOther()
    {
        Assert.Equal(RelayMetrics.OtherModel, _metrics.ModelLabel(new string('m', 201)));
        Assert.Equal("claude-opus-4-6", _metrics.ModelLabel("claude-opus-4-6"));
    }

    [Fact]
    public void ModelLabel_ManyThreadsManyModels_NeverExceedsTheLimit()
    {
        _metrics.MaxModelLabels = 10;

        Parallel.For(0, 1000, i => _metrics.ModelLabel("model-" + (i % 50).ToString(System.Globalization.CultureInfo.InvariantCulture)));

        var distinct = Enumerable.Range(0, 50).Select(i => _metrics.ModelLabel("model-" + i.ToString(System.Globalization.CultureInfo.InvariantCulture))).Distinct().ToList();
        Assert.Equal(11, distinct.Count);
        Assert.Contains(RelayMetrics.OtherModel, distinct);
    }

    [Fact]
    public async Task Inflight_FollowsStartsAndFinishes()
    {
        _metrics.RequestStarted();
        _metrics.RequestStarted();
        _metrics.RequestStarted();
        _metrics.RequestFinished();

        Assert.Equal(2, (await ScrapeAsync()).Value("ccrelay_inflight_requests"));
    }

    [Fact]
    public async Task Inflight_RequestsInFlightWhenTheListenerAttaches_AreCounted()
    {
        // Arrange: a relay whose requests start before anything listens to its meter
        await using var host = await MetricsHost.StartAsync(beforeStart: metrics =>
        {
            metrics.RequestStarted();
            metrics.RequestStarted();
        });

        // Act: the listener has attached; one of them finishes
        var during = (await host.ScrapeAsync()).Value("ccrelay_inflight_requests");
        host.Metrics.RequestFinished();
        var after = (await host.ScrapeAsync()).Value("ccrelay_inflight_requests");

        // Assert
        Assert.Equal(2, during);
        Assert.Equal(1, after);
    }

    [Fact]
    public async Task Inflight_BeforeAnyRequest_IsReportedAsZero() =>
        Assert.Equal(0, (await ScrapeAsync()).Value("ccrelay_inflight_requests"));

    [Fact]
    public async Task RecordRequest_StatusOutsideHttp_CountsAsOther()
    {
        _metrics.RecordRequest("p", "m", 0, false, TimeSpan.Zero);
        _metrics.RecordRequest("p", "m", 700, true, TimeSpan.Zero);

        var scrape = await ScrapeAsync();
        Assert.Equal(1, scrape.Value("ccrelay_requests_total", ("provider", "p"), ("model", "m"), ("status_class", "other"), ("stream", "false")));
        Assert.Equal(1, scrape.Value("ccrelay_requests_total", ("provider", "p"), ("model", "m"), ("status_class", "other"), ("stream", "true")));
        Assert.Equal(2, scrape.Named("ccrelay_requests_total").Count());
    }

    [Fact]
    public async Task Counters_EqualNamesInOtherStrings_ShareOneSeries()
    {
        // a reload builds new provider name strings; they must count into the series the old ones started
        var usage = Tokens(1, 2, 0, 0);
        for (var i = 0; i < 3; i++)
        {
            var provider = new string("zai".AsSpan());
            _metrics.RecordRequest(provider, new string("GLM-5".AsSpan()), 200, false, TimeSpan.Zero);
            _metrics.RecordAttempt(provider, AttemptOutcome.Success);
            _metrics.RecordUsage(provider, "GLM-5", usage, 0.5m);
        }

        var scrape = await ScrapeAsync();
        Assert.Equal(3, scrape.Value("ccrelay_requests_total", ("provider", "zai"), ("model", "GLM-5"), ("status_class", "2xx"), ("stream", "false")));
        Assert.Single(scrape.Named("ccrelay_requests_total"));
        Assert.Equal(3, scrape.Value("ccrelay_upstream_attempts_total", ("provider", "zai"), ("outcome", "success")));
        Assert.Equal(6, scrape.Value("ccrelay_tokens_total", ("provider", "zai"), ("model", "GLM-5"), ("kind", "output")));
        Assert.Equal(1.5, scrape.Value("ccrelay_cost_usd_total", ("provider", "zai"), ("model", "GLM-5")), 12);
    }

    [Fact]
    public async Task RecordUsage_KindsWithoutTokens_AreReportedAsZero()
    {
        _metrics.RecordUsage("zai", "GLM-5", Tokens(10, 5, 0, 0), 0m);

        var scrape = await ScrapeAsync();
        Assert.Equal(0, scrape.Value("ccrelay_tokens_total", ("provider", "zai"), ("model", "GLM-5"), ("kind", "cache_read")));
        Assert.Equal(0, scrape.Value("ccrelay_tokens_total", ("provider", "zai"), ("model", "GLM-5"), ("kind", "cache_write")));
        Assert.Equal(0, scrape.Value("ccrelay_cost_usd_total", ("provider", "zai"), ("model", "GLM-5")));
        Assert.Empty(scrape.Named("ccrelay_unpriced_answers_total"));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task Counters_RandomTrafficOnManyThreads_MatchAModelAndNeverGoBack(int seed)
    {
        // Arrange: a script of requests, attempts and answers over a few routes, counted by a plain model
        string[] providers = ["zai", "anthropic", "bedrock"];
        string[] models = ["GLM-5", "claude-sonnet-4-6", "claude-opus-4-6"];
        int[] statuses = [200, 201, 400, 429, 500, 529, 0];
        var random = new Random(seed);
        var script = Enumerable.Range(0, 20_000).Select(_ => (
            Provider: providers[random.Next(providers.Length)],
            Model: models[random.Next(models.Length)],
            Status: statuses[random.Next(statuses.Length)],
            Stream: random.Next(2) == 1,
            Outcome: random.Next(4),
            Input: (long)random.Next(0, 100_000),
            Priced: random.Next(3) != 0)).ToArray();
        AttemptOutcome[] outcomes = [AttemptOutcome.Success, AttemptOutcome.NewFailure("x"), AttemptOutcome.NewRejected(400), AttemptOutcome.Abandoned];
        string[] outcomeNames = ["success", "failure", "rejected", "abandoned"];

        // Act: four threads record the script while a fifth scrapes
        var scrapes = new List<PrometheusTextParser>();
        using var done = new CancellationTokenSource();
        var scraper = Task.Run(async () =>
        {
            while (!done.IsCancellationRequested)
            {
                scrapes.Add(await ScrapeAsync());
            }
        });
        Parallel.For(0, script.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            var (provider, model, status, stream, outcome, input, priced) = script[i];
            _metrics.RequestStarted();
            _metrics.RecordAttempt(provider, outcomes[outcome]);
            _metrics.RecordUsage(provider, model, Tokens(input, 1, 0, 0), priced ? 0.25m : null);
            _metrics.RecordRequest(provider, model, status, stream, TimeSpan.FromMilliseconds(5));
            _metrics.RequestFinished();
        });
        done.Cancel();
        await scraper;
        var final = await ScrapeAsync();

        // Assert: every series holds exactly what the model counted
        foreach (var group in script.GroupBy(r => (r.Provider, r.Model, Class: RelayMetrics.StatusClass(r.Status), r.Stream)))
        {
            Assert.Equal(group.Count(), final.Value("ccrelay_requests_total", ("provider", group.Key.Provider), ("model", group.Key.Model), ("status_class", group.Key.Class), ("stream", group.Key.Stream ? "true" : "false")));
        }

        foreach (var group in script.GroupBy(r => (r.Provider, r.Outcome)))
        {
            Assert.Equal(group.Count(), final.Value("ccrelay_upstream_attempts_total", ("provider", group.Key.Provider), ("outcome", outcomeNames[group.Key.Outcome])));
        }

        foreach (var group in script.GroupBy(r => (r.Provider, r.Model)))
        {
            (string, string)[] route = [("provider", group.Key.Provider), ("model", group.Key.Model)];
            Assert.Equal(group.Sum(r => r.Input), final.Value("ccrelay_tokens_total", [.. route, ("kind", "input")]));
            Assert.Equal(group.Count(), final.Value("ccrelay_tokens_total", [.. route, ("kind", "output")]));
            Assert.Equal(group.Count(r => r.Priced) * 0.25, final.Value("ccrelay_cost_usd_total", route), 9);
            Assert.Equal(group.Count(r => !r.Priced), final.Value("ccrelay_unpriced_answers_total", route));
        }

        Assert.Equal(script.Length, final.Named("ccrelay_request_duration_seconds_count").Sum(s => s.Value));
        Assert.Equal(0, final.Value("ccrelay_inflight_requests"));

        // and no counter went back between two scrapes taken while the threads recorded
        foreach (var (before, after) in scrapes.Append(final).Zip(scrapes.Append(final).Skip(1)))
        {
            foreach (var sample in before.Named("ccrelay_requests_total").Concat(before.Named("ccrelay_tokens_total")).Concat(before.Named("ccrelay_upstream_attempts_total")))
            {
                Assert.True(after.Value(sample.Name, [.. sample.Labels.Select(l => (l.Key, l.Value))]) >= sample.Value, $"{sample.Name} went back");
            }
        }
    }

    [Fact]
    public async Task Families_HaveTheirPrometheusNamesTypesAndHelp()
    {
        // Arrange: one of everything
        _metrics.RequestStarted();
        _metrics.RecordTimeToFirstByte("p", "m", TimeSpan.FromSeconds(1));
        _metrics.RecordAttempt("p", AttemptOutcome.Success);
        _metrics.RecordUsage("p", "m", Tokens(1, 1, 0, 0), 0.5m);
        _metrics.RecordUsage("p", "m", Tokens(1, 1, 0, 0), costUsd: null);
        _metrics.RecordRequest("p", "m", 200, false, TimeSpan.FromSeconds(1));
        _metrics.RecordConfigReload(succeeded: true);
        _metrics.RecordDropped("p", ["cache_control"]);
        _metrics.ObserveProviders(() => [new ProviderGauges("p", true, "closed", [new KeyGauge("k1", 1)])]);

        // Act
        var scrape = await ScrapeAsync();

        // Assert
        (string Name, string Type, string Help)[] expected =
        [
            ("ccrelay_requests_total", "counter", "Relayed requests by provider, model, HTTP status class and streaming."),
            ("ccrelay_request_duration_seconds", "histogram", "Time from request start to the last byte sent to the client."),
            ("ccrelay_ttfb_seconds", "histogram", "Time from request start to the upstream's response headers."),
            ("ccrelay_upstream_attempts_total", "counter", "Upstream attempts by outcome: success, failure, rejected, abandoned."),
            ("ccrelay_tokens_total", "counter", "Tokens reported by upstream answers, by kind: input, output, cache_read, cache_write."),
            ("ccrelay_cost_usd_total", "counter", "Estimated cost of answers in US dollars (list prices; see pricing)."),
            ("ccrelay_unpriced_answers_total", "counter", "Answers with usage but no price for their model: their cost is unknown."),
            ("ccrelay_inflight_requests", "gauge", "Requests being relayed now."),
            ("ccrelay_config_reloads_total", "counter", "Configuration reloads by result: success, failure."),
            ("ccrelay_dropped_capabilities_total", "counter", "Translated requests sent without something they asked for, by provider and capability (other: a name outside the known set)."),
            ("ccrelay_provider_up", "gauge", "1 when the provider may receive requests, else 0."),
            ("ccrelay_circuit_state", "gauge", "1 for the provider's current circuit state (closed, half_open, open, isolated), 0 for the others."),
            ("ccrelay_key_capacity_ratio", "gauge", "Remaining capacity of a provider key, 0 (exhausted) to 1 (unused)."),
        ];
        foreach (var (name, type, help) in expected)
        {
            Assert.Equal(type, scrape.Types.GetValueOrDefault(name));
            Assert.Equal(help, scrape.Help.GetValueOrDefault(name));
        }

        Assert.Equal(expected.Length, scrape.Types.Keys.Count(k => k.StartsWith("ccrelay_", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task LabelValues_WithBackslashQuoteAndNewline_AreEscapedAndReadBack()
    {
        const string Provider = "odd\"provider\\";
        const string Model = "model\nwith}breaks,=";

        _metrics.RecordRequest(Provider, Model, 200, false, TimeSpan.Zero);

        Assert.Equal(1, (await ScrapeAsync()).Value("ccrelay_requests_total", ("provider", Provider), ("model", Model), ("status_class", "2xx"), ("stream", "false")));
    }

    [Fact]
    public async Task ConfigReloads_CountedByResult()
    {
        _metrics.RecordConfigReload(succeeded: true);
        _metrics.RecordConfigReload(succeeded: true);
        _metrics.RecordConfigReload(succeeded: false);

        var scrape = await ScrapeAsync();
        Assert.Equal(2, scrape.Value("ccrelay_config_reloads_total", ("result", "success")));
        Assert.Equal(1, scrape.Value("ccrelay_config_reloads_total", ("result", "failure")));
    }

    [Fact]
    public async Task DroppedCapabilities_CountedByProviderAndCapability_NamesOutsideTheKnownSetAsOther()
    {
        _metrics.RecordDropped("deepseek", ["cache_control", "web_search"]);
        _metrics.RecordDropped("deepseek", ["cache_control", "made_up_block_1", "made_up_block_2"]);

        var scrape = await ScrapeAsync();
        Assert.Equal(2, scrape.Value("ccrelay_dropped_capabilities_total", ("provider", "deepseek"), ("capability", "cache_control")));
        Assert.Equal(1, scrape.Value("ccrelay_dropped_capabilities_total", ("provider", "deepseek"), ("capability", "web_search")));
        Assert.Equal(2, scrape.Value("ccrelay_dropped_capabilities_total", ("provider", "deepseek"), ("capability", "other")));
    }

    [Fact]
    public async Task ObserveProviders_ReportsUpCircuitStateAndKeyCapacity_AtEachScrape()
    {
        // Arrange
        IReadOnlyList<ProviderGauges> providers =
        [
            new("anthropic", true, "closed", [new("k1a2b3", 0.75), new("k9z8y7", 1.5)]),
            new("zai", false, "open", []),
        ];
        _metrics.ObserveProviders(() => providers);

        // Act
        var first = await ScrapeAsync();
        providers = [new("anthropic", true, "half_open", [])];
        var second = await ScrapeAsync();

        // Assert
        Assert.Equal(1, first.Value("ccrelay_provider_up", ("provider", "anthropic")));
        Assert.Equal(0, first.Value("ccrelay_provider_up", ("provider", "zai")));
        Assert.Equal(1, first.Value("ccrelay_circuit_state", ("provider", "zai"), ("state", "open")));
        foreach (var state in new[] { "closed", "half_open", "isolated" })
        {
            Assert.Equal(0, first.Value("ccrelay_circuit_state", ("provider", "zai"), ("state", state)));
        }

        Assert.Equal(0.75, first.Value("ccrelay_key_capacity_ratio", ("provider", "anthropic"), ("key_id", "k1a2b3")));
        Assert.Equal(1, first.Value("ccrelay_key_capacity_ratio", ("provider", "anthropic"), ("key_id", "k9z8y7")));

        Assert.False(second.Has("ccrelay_provider_up", ("provider", "zai")));
        Assert.Equal(1, second.Value("ccrelay_circuit_state", ("provider", "anthropic"), ("state", "half_open")));
        Assert.Equal(0, second.Value("ccrelay_circuit_state", ("provider", "anthropic"), ("state", "closed")));
        Assert.Empty(second.Named("ccrelay_key_capacity_ratio"));
    }


    [Fact]
    public async Task ObserveProviders_OneReadingPerScrape_SoTheThreeGaugesAgree()
    {
        // Arrange: a source whose provider changes state at every call (a breaker moving mid-scrape)
        var calls = 0;
        _metrics.ObserveProviders(() =>
        {
            var call = Interlocked.Increment(ref calls);
            return call % 2 == 1
                ? [new ProviderGauges("a", true, "closed", [new("k1", 1.0)])]
                : [new ProviderGauges("a", false, "open", [new("k1", 0.0)])];
        });

        // Act
        var scrapes = new List<PrometheusTextParser>();
        for (var i = 0; i < 4; i++)
        {
            scrapes.Add(await ScrapeAsync());
        }

        // Assert: one call per scrape, and within each scrape up, circuit and capacity come from that one call
        Assert.Equal(4, calls);
        for (var i = 0; i < scrapes.Count; i++)
        {
            var up = i % 2 == 0;
            Assert.Equal(up ? 1 : 0, scrapes[i].Value("ccrelay_provider_up", ("provider", "a")));
            Assert.Equal(1, scrapes[i].Value("ccrelay_circuit_state", ("provider", "a"), ("state", up ? "closed" : "open")));
            Assert.Equal(up ? 1 : 0, scrapes[i].Value("ccrelay_key_capacity_ratio", ("provider", "a"), ("key_id", "k1")));
        }
    }
    [Fact]
    public async Task ProcessMetrics_ArePresentWithPlausibleValues()
    {
        var scrape = await ScrapeAsync();

        Assert.Equal("counter", scrape.Types["process_cpu_seconds_total"]);
        Assert.True(scrape.Value("process_cpu_seconds_total") > 0);
        Assert.True(scrape.Value("process_resident_memory_bytes") > 1_000_000);
        var started = DateTimeOffset.FromUnixTimeMilliseconds((long)(scrape.Value("process_start_time_seconds") * 1000));
        Assert.InRange(started, DateTimeOffset.UnixEpoch.AddYears(50), DateTimeOffset.MaxValue);
        Assert.True(scrape.Has("dotnet_gc_collections_total", ("generation", "gen0")));
        Assert.True(scrape.Has("dotnet_gc_collections_total", ("generation", "gen2")));
        Assert.True(scrape.Value("dotnet_gc_allocated_bytes_total") > 0);
        Assert.True(scrape.Value("dotnet_gc_heap_size_bytes") >= 0);
        Assert.True(scrape.Value("dotnet_total_memory_bytes") > 0);
        Assert.True(scrape.Value("dotnet_threadpool_threads") >= 0);
        Assert.True(scrape.Value("dotnet_gc_pause_seconds_total") >= 0);
        Assert.True(scrape.Value("dotnet_threadpool_queue_length") >= 0);
    }

    [Fact]
    public async Task Recording_ManyRoutes_AllocatesNothingPerRequest()
    {
        // Arrange: 40 providers × 2 models
        var providers = Enumerable.Range(0, 40).Select(i => "provider-" + i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        string[] models = ["GLM-5", "claude-sonnet-4-6"];
        var usage = Tokens(1, 2, 3, 4);

        // Act
        var allocated = await AllocatedByRepeatsAsync(Record, times: 20);

        // Assert: less than the smallest object (24 bytes) per request recorded
        Assert.InRange(allocated, 0, 20 * 80 * 24 / 2);
        Assert.Equal(22, (await ScrapeAsync()).Value("ccrelay_requests_total", ("provider", "provider-7"), ("model", "GLM-5"), ("status_class", "2xx"), ("stream", "false")));

        void Record()
        {
            foreach (var provider in providers)
            {
                foreach (var model in models)
                {
                    _metrics.RecordAttempt(provider, AttemptOutcome.Success);
                    _metrics.RecordUsage(provider, model, usage, 0.25m);
                    _metrics.RecordRequest(provider, model, 200, false, TimeSpan.FromSeconds(1));
                }
            }
        }
    }

    [Fact]
    public async Task Recording_KnownSeries_AllocatesNothingPerRequest()
    {
        // Arrange
        var usage = Tokens(1, 2, 3, 4);

        // Act
        var allocated = await AllocatedByRepeatsAsync(Record, times: 10_000);

        // Assert: OpenTelemetry's SDK finds an existing series without allocating. Under a busy test run the
        // runtime allocates a few KB now and then on the recording thread (seen: 4.5 KB in 1,000 requests, never
        // alone); one boxed value or tag array per request would be 240 KB or more.
        Assert.InRange(allocated, 0, 10_000 * 24 / 2);

        void Record()
        {
            _metrics.RequestStarted();
            _metrics.RecordTimeToFirstByte("zai", "GLM-5", TimeSpan.FromMilliseconds(300));
            _metrics.RecordAttempt("zai", AttemptOutcome.Success);
            _metrics.RecordUsage("zai", "GLM-5", usage, 0.25m);
            _metrics.RecordRequest("zai", "GLM-5", 200, true, TimeSpan.FromSeconds(2));
            _metrics.RequestFinished();
        }
    }

    /// <summary>
    /// Bytes <paramref name="record"/> allocates over <paramref name="times"/> calls, after one call and a scrape have
    /// made every series, and one more call on this thread (the SDK keeps per-thread buffers, made once).
    /// </summary>
    private async Task<long> AllocatedByRepeatsAsync(Action record, int times)
    {
        record();
        _ = await _host.RenderAsync();
        record();
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < times; i++)
        {
            record();
        }

        return GC.GetAllocatedBytesForCurrentThread() - before;
    }
}
