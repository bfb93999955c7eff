using CcRelay.Core;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace CcRelay.Host.Observability;

/// <summary>
/// OTLP export (<c>otel.enabled</c>) of the relay's spans (<see cref="RelayTracing"/>) and of its metrics: the
/// OTLP exporter joins the container's OpenTelemetry <see cref="MeterProvider"/>, beside the Prometheus exporter
/// when <c>metrics.enabled</c>. Off, nothing is registered: no listener, so spans are never created. The
/// providers are flushed when the container disposes them.
/// </summary>
internal static class OtlpExport
{
    public static void Add(IServiceCollection services, OtelConfig config)
    {
        if (!config.Enabled)
        {
            return;
        }

        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(config.ServiceName, serviceVersion: RelayInfo.Version))
            .WithTracing(tracing => tracing.AddSource(RelayTracing.SourceName).AddOtlpExporter(o => Configure(o, config, "v1/traces")))
            .WithMetrics(metrics => metrics.AddOtlpExporter(o => Configure(o, config, "v1/metrics")));
    }

    private static void Configure(OtlpExporterOptions options, OtelConfig config, string signalPath)
    {
        options.Protocol = config.Protocol.IsHttpProtobuf ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
        if (config.Endpoint?.Value is { } endpoint)
        {
            // over HTTP a configured endpoint is the collector's base URL; the signal's path goes after it, as
            // OTEL_EXPORTER_OTLP_ENDPOINT would have it
            options.Endpoint = config.Protocol.IsHttpProtobuf
                ? new Uri(endpoint.AbsoluteUri.TrimEnd('/') + "/" + signalPath)
                : endpoint;
        }
    }
}
