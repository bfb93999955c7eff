using System.Text;
using CcRelay.Host.Metrics;
using CcRelay.Host.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace CcRelay.Host.Tests.Metrics;

/// <summary>
/// The relay's metrics as <c>AddCcRelay</c> registers them (<see cref="CcRelayMetricsServiceCollectionExtensions.AddCcRelayMetrics"/>:
/// the instruments, OpenTelemetry's provider and its Prometheus exporter) in a host of their own, started, so its
/// metric listeners run; scraped without HTTP.
/// </summary>
public sealed class MetricsHost : IAsyncDisposable
{
    private readonly IHost _host;

    private MetricsHost(IHost host) => _host = host;

    public IServiceProvider Services => _host.Services;

    public RelayMetrics Metrics => _host.Services.GetRequiredService<RelayMetrics>();

    public PrometheusExposition Exposition => _host.Services.GetRequiredService<PrometheusExposition>();

    /// <summary>Starts the host; <paramref name="beforeStart"/> records before any listener is there.</summary>
    public static async Task<MetricsHost> StartAsync(int maxModelLabels = 100, Action<RelayMetrics>? beforeStart = null)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddCcRelayMetrics(TestConfig.Relay([]).With(metrics: TestConfig.Metrics(maxModelLabels: maxModelLabels)));
        var host = builder.Build();
        beforeStart?.Invoke(host.Services.GetRequiredService<RelayMetrics>());
        await host.StartAsync();
        return new MetricsHost(host);
    }

    /// <summary>A scrape without HTTP: the exposition's answer to a <c>GET</c>, as text.</summary>
    public async Task<string> RenderAsync()
    {
        var context = new DefaultHttpContext();
        context.Request.Method = HttpMethods.Get;
        using var body = new MemoryStream();
        context.Response.Body = body;
        await Exposition.ServeAsync(context);
        Assert.Equal(PrometheusExposition.ContentType, context.Response.ContentType);
        return Encoding.UTF8.GetString(body.ToArray());
    }

    public async Task<PrometheusTextParser> ScrapeAsync() => PrometheusTextParser.Parse(await RenderAsync());

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
    }
}
