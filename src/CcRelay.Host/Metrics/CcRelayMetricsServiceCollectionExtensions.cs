using System.Diagnostics.Metrics;
using CcRelay.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics;
using OpenTelemetry.Metrics;

namespace CcRelay.Host.Metrics;

/// <summary>Registers the relay's metrics.</summary>
public static class CcRelayMetricsServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="RelayMetrics"/> and <see cref="ProcessMetrics"/> on the container's <see cref="IMeterFactory"/>,
    /// and, when <paramref name="config"/> (default: <see cref="Config.defaults"/>) has <c>metrics.enabled</c>,
    /// OpenTelemetry's <see cref="MeterProvider"/> with the Prometheus exporter (<see cref="PrometheusExposition"/>).
    /// OTLP export (<c>otel.enabled</c>, added by <c>AddCcRelay</c>) joins the same provider, so one set of instruments
    /// feeds both. Only this container's meters are listened to (<see cref="MeterScope.Local"/>): several relays in
    /// one process never see each other's measurements. With neither, nothing listens and recording costs a check.
    /// Calling it twice registers nothing new.
    /// </summary>
    public static IServiceCollection AddCcRelayMetrics(this IServiceCollection services, RelayConfig? config = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        if (services.Any(d => d.ServiceType == typeof(RelayMetrics)))
        {
            return services;
        }

        config ??= Config.defaults;
        services.AddMetrics(metrics => metrics
            .EnableMetrics(RelayMetrics.MeterName, instrumentName: null, listenerName: null, scopes: MeterScope.Local)
            .EnableMetrics(ProcessMetrics.MeterName, instrumentName: null, listenerName: null, scopes: MeterScope.Local));
        services.AddSingleton(sp => new RelayMetrics(sp.GetRequiredService<IMeterFactory>(), config.Metrics.MaxModelLabels, sp.GetService<TimeProvider>()));
        services.AddSingleton(sp => new ProcessMetrics(sp.GetRequiredService<IMeterFactory>()));
        if (config.Metrics.Enabled)
        {
            // every scrape collects afresh (no cached answer), without target_info or otel_scope_* labels
            services.AddOpenTelemetry().WithMetrics(provider => provider.AddPrometheusExporter(o =>
            {
                o.ScrapeResponseCacheDurationMilliseconds = 0;
                o.TargetInfoEnabled = false;
                o.ScopeInfoEnabled = false;
            }));
            services.AddSingleton<PrometheusExposition>();
        }

        return services;
    }
}
