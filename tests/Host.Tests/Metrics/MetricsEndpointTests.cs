using System.Net;
using CcRelay.Core;
using CcRelay.Host.Metrics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Tests.Metrics;

public sealed class MetricsEndpointTests : IAsyncLifetime
{
    private WebApplication _app = null!;
    private HttpClient _client = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddCcRelayMetrics(Config.defaults);
        builder.Services.AddCcRelayMetrics(Config.defaults);
        _app = builder.Build();
        _app.MapCcRelayMetrics("/prom");
        await _app.StartAsync();
        _client = new HttpClient { BaseAddress = new Uri(_app.Urls.First()) };
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _app.DisposeAsync();
    }

    [Fact]
    public async Task Get_ServesTheExpositionAsPrometheusText()
    {
        // Arrange
        var metrics = _app.Services.GetRequiredService<RelayMetrics>();
        metrics.RecordRequest("anthropic", "claude-haiku-4-5", 200, stream: true, TimeSpan.FromSeconds(1));

        // Act
        using var response = await _client.GetAsync(new Uri("/prom", UriKind.Relative));
        var body = await response.Content.ReadAsStringAsync();

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        Assert.Contains("no-store", response.Headers.CacheControl?.ToString(), StringComparison.Ordinal);
        var scrape = PrometheusTextParser.Parse(body);
        Assert.Equal(1, scrape.Value("ccrelay_requests_total", ("provider", "anthropic"), ("model", "claude-haiku-4-5"), ("status_class", "2xx"), ("stream", "true")));
        Assert.True(scrape.Has("process_resident_memory_bytes"));
    }

    [Fact]
    public async Task Get_AskingForOpenMetrics_StillGetsTheTextFormat()
    {
        // Arrange: what Prometheus sends by default
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("/prom", UriKind.Relative));
        request.Headers.TryAddWithoutValidation("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1");

        // Act
        using var response = await _client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();

        // Assert
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        Assert.DoesNotContain("# EOF", body, StringComparison.Ordinal);
        Assert.True(PrometheusTextParser.Parse(body).Has("process_resident_memory_bytes"));
    }

    [Fact]
    public async Task Head_AnswersWithoutABody()
    {
        using var request = new HttpRequestMessage(HttpMethod.Head, new Uri("/prom", UriKind.Relative));
        using var response = await _client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Empty(await response.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public void AddCcRelayMetrics_TakesTheModelLabelLimitFromTheConfig()
    {
        Assert.Equal(Config.defaults.Metrics.MaxModelLabels, _app.Services.GetRequiredService<RelayMetrics>().MaxModelLabels);
    }
}
