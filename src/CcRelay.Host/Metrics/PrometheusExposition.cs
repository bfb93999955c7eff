using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;

namespace CcRelay.Host.Metrics;

/// <summary>
/// The Prometheus scrape: OpenTelemetry's Prometheus exporter (<c>OpenTelemetry.Exporter.Prometheus.AspNetCore</c>)
/// over the container's <see cref="MeterProvider"/>, which <see cref="CcRelayMetricsServiceCollectionExtensions.AddCcRelayMetrics"/>
/// registers with the exporter when <c>metrics.enabled</c>. A scrape first runs the <see cref="OnScrape"/> callbacks,
/// then collects: the observable instruments are observed then, and the output is the text format 0.0.4.
/// </summary>
public sealed class PrometheusExposition
{
    /// <summary>The media type of the output: <c>text/plain; version=0.0.4; charset=utf-8</c>.</summary>
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    private readonly RequestDelegate _exporter;
    private readonly Lock _lock = new();
    private Action[] _onScrape = [];

    /// <summary>The exporter of <paramref name="services"/>' <see cref="MeterProvider"/>, over its relay and process metrics.</summary>
    public PrometheusExposition(IServiceProvider services)
    {
        ArgumentNullException.ThrowIfNull(services);

        // their instruments exist from the first scrape on
        _ = services.GetRequiredService<RelayMetrics>();
        _ = services.GetRequiredService<ProcessMetrics>();
        var pipeline = new ApplicationBuilder(services);
        pipeline.UseOpenTelemetryPrometheusScrapingEndpoint(
            services.GetRequiredService<MeterProvider>(), predicate: _ => true, path: null, configureBranchedPipeline: null, optionsName: null);
        _exporter = pipeline.Build();
    }

    /// <summary>
    /// Runs <paramref name="beforeScrape"/> at the start of every scrape, before any instrument is read: a
    /// producer that records its measurements in batches settles the ones still pending, so a scrape shows
    /// everything that happened before it (the relay's request accounting does).
    /// </summary>
    public void OnScrape(Action beforeScrape)
    {
        ArgumentNullException.ThrowIfNull(beforeScrape);
        lock (_lock)
        {
            _onScrape = [.. _onScrape, beforeScrape];
        }
    }

    /// <summary>Answers a <c>GET</c> with the exposition, a <c>HEAD</c> with its headers alone (nothing is collected).</summary>
    public Task ServeAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Response.Headers.CacheControl = "no-store";
        if (HttpMethods.IsHead(context.Request.Method))
        {
            context.Response.ContentType = ContentType;
            return Task.CompletedTask;
        }

        foreach (var settle in Volatile.Read(ref _onScrape))
        {
            settle();
        }

        // always the text format 0.0.4, as before: the exporter would answer OpenMetrics to a client that asks for it
        context.Request.Headers.Remove("Accept");
        return _exporter(context);
    }
}
