using System.Diagnostics.Metrics;
using System.Net;
using CcRelay.Core;
using CcRelay.Host.Configuration;
using CcRelay.Host.Metrics;
using CcRelay.Host.Tests.Infrastructure;
using CcRelay.Host.Tests.Metrics;
using OpenTelemetry.Metrics;

namespace CcRelay.Host.Tests.Observability;

/// <summary>Where <c>/metrics</c> is served: the relay's listener, its own listener (<c>metrics.listen</c>), or nowhere.</summary>
public sealed class MetricsWiringTests : IAsyncLifetime
{
    private FakeUpstream _upstream = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson());
    }

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    private RelayConfig Config(MetricsConfig metrics) =>
        TestConfig.Relay([TestConfig.Provider("fake", _upstream.BaseUrl, keys: ["k"])]).With(metrics: metrics);

    [Fact]
    public async Task MetricsListen_ServesOnlyMetricsThere_AndNoMetricsOnTheRelaysPort()
    {
        await using var relay = await RelayHost.StartAsync(Config(TestConfig.Metrics(path: "/prom", listen: new ListenAddress("127.0.0.1", 0))));
        Assert.Equal(2, relay.Addresses.Count);
        var metricsBase = relay.Addresses[1];

        using var relayed = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody));
        await relay.Logs.RequestLinesAsync();
        var scraped = PrometheusTextParser.Parse(await relay.ScrapeAsync("/prom", metricsBase));
        using var onRelayPort = await relay.Client.GetAsync(new Uri(relay.BaseUrl, "/prom"));
        using var relayRouteOnMetricsPort = await relay.Client.GetAsync(new Uri(metricsBase, "/health"));
        using var messagesOnMetricsPort = await relay.Client.SendAsync(new HttpRequestMessage(HttpMethod.Post, new Uri(metricsBase, "/v1/messages")) { Content = new StringContent(Requests.PlainBody) });
        using var head = await relay.Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, new Uri(metricsBase, "/prom")));

        Assert.Equal(HttpStatusCode.OK, relayed.StatusCode);
        Assert.Equal(1, scraped.Named("ccrelay_requests_total").Sum(s => s.Value));
        Assert.Equal(HttpStatusCode.NotFound, onRelayPort.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, relayRouteOnMetricsPort.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, messagesOnMetricsPort.StatusCode);
        Assert.Single(_upstream.Requests);
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.True(head.Headers.Contains("x-cc-relay-overhead-ms"));
    }

    [Fact]
    public async Task Scrape_CountsAFinishedRequest_TheAccountingThreadHasNotReachedYet()
    {
        // Arrange: the relay's accounting thread would wait forever; only a scrape (or the end) accounts
        await using var relay = await RelayHost.StartAsync(Config(TestConfig.Metrics()), accountingInterval: Timeout.InfiniteTimeSpan);
        using var relayed = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody));
        _ = await relayed.Content.ReadAsByteArrayAsync();

        // Act: scrape until the request has left the relay (it is queued for accounting before it leaves), then once more
        for (var scrapes = 0; PrometheusTextParser.Parse(await relay.ScrapeAsync()).Value("ccrelay_inflight_requests") != 0; scrapes++)
        {
            Assert.True(scrapes < 1000, "the request never left the relay");
        }

        var scraped = PrometheusTextParser.Parse(await relay.ScrapeAsync());

        // Assert: counted, timed, and its line written, by the scrape
        Assert.Equal(HttpStatusCode.OK, relayed.StatusCode);
        Assert.Equal(1, scraped.Value("ccrelay_requests_total", ("provider", "fake"), ("model", "claude-test"), ("status_class", "2xx"), ("stream", "false")));
        Assert.Equal(1, scraped.Named("ccrelay_request_duration_seconds_count").Sum(s => s.Value));
        Assert.Single(relay.Logs.Lines, l => l.EventId == 1);
    }

    [Fact]
    public async Task Stop_AccountsForFinishedRequests_TheAccountingThreadHasNotReachedYet()
    {
        // Arrange
        var relay = await RelayHost.StartAsync(Config(TestConfig.Metrics()), accountingInterval: Timeout.InfiniteTimeSpan);
        using (var relayed = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody)))
        {
            _ = await relayed.Content.ReadAsByteArrayAsync();
        }

        // Act
        await relay.DisposeAsync();

        // Assert: the request line was written on the way out
        var line = Assert.Single(relay.Logs.Lines, l => l.EventId == 1);
        Assert.Equal(200, line.Fields["status"]);
    }

    [Fact]
    public async Task MetricsDisabled_ServesNoMetrics()
    {
        await using var relay = await RelayHost.StartAsync(Config(TestConfig.Metrics(enabled: false)));

        using var response = await relay.Client.GetAsync(new Uri("/metrics", UriKind.Relative));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task MetricsAndOtlpDisabled_NothingListensToTheInstruments()
    {
        // Arrange: a listener of the test's own sees which of this relay's instruments anything has enabled
        await using var relay = await RelayHost.StartAsync(Config(TestConfig.Metrics(enabled: false)));
        var meter = ((RelayMetrics)relay.Services.GetService(typeof(RelayMetrics))!).Meter;
        var enabled = new List<string>();
        using var probe = new MeterListener
        {
            InstrumentPublished = (instrument, _) =>
            {
                if (instrument.Meter == meter && instrument.Enabled)
                {
                    enabled.Add(instrument.Name);
                }
            },
        };

        // Act: a request, then every instrument published so far is looked at
        using var relayed = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody));
        probe.Start();

        // Assert
        Assert.Equal(HttpStatusCode.OK, relayed.StatusCode);
        Assert.Null(relay.Services.GetService(typeof(MeterProvider)));
        Assert.Empty(enabled);
    }

    [Fact]
    public async Task Reloads_AreCounted_AndTheModelLabelLimitFollows()
    {
        var dir = Directory.CreateTempSubdirectory("cc-relay-metrics-reload-").FullName;
        try
        {
            var path = Path.Combine(dir, "cc-relay.yaml");
            string Yaml(int labels) => $"""
                server:
                  listen: "127.0.0.1:0"
                providers:
                  - name: fake
                    type: anthropic_compatible
                    base_url: "{_upstream.BaseUrl}"
                metrics:
                  max_model_labels: {labels}
                """;
            await File.WriteAllTextAsync(path, Yaml(100));
            var load = (ConfigLoad.Loaded)ConfigFile.Load(path, Environment.GetEnvironmentVariable);
            await using var relay = await RelayHost.StartAsync(load.Config, path);

            await File.WriteAllTextAsync(path, Yaml(7));
            relay.Reloader.Reload("test");
            await File.WriteAllTextAsync(path, "providers: [");
            relay.Reloader.Reload("test");
            var scraped = PrometheusTextParser.Parse(await relay.ScrapeAsync());

            Assert.True(scraped.Value("ccrelay_config_reloads_total", ("result", "success")) >= 1);
            Assert.True(scraped.Value("ccrelay_config_reloads_total", ("result", "failure")) >= 1);
            Assert.Equal(7, ((RelayMetrics)relay.Services.GetService(typeof(RelayMetrics))!).MaxModelLabels);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
