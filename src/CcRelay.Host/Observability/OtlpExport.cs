using System.Runtime.CompilerServices;
using CcRelay.Core;
using CcRelay.Host.Metrics;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace CcRelay.Host.Observability;

/// <summary>
/// OTLP export of the relay's spans (<see cref="RelayTracing"/>) and metrics (<see cref="RelayMetrics"/>,
/// <see cref="ProcessMetrics"/>) when <c>otel.enabled</c> is true. Off, it builds nothing: no listener is
/// registered, so spans are never created.
/// NOTE: built with the SDK's own builders (OpenTelemetry.Extensions.Hosting is not used); disposing it
/// (the container does, at shutdown) flushes what is still buffered.
/// </summary>
public sealed class OtlpExport : IDisposable
{
    private readonly TracerProvider? _tracing;
    private readonly MeterProvider? _metrics;

    /// <summary>Starts exporting when <paramref name="config"/> says so.</summary>
    public OtlpExport(OtelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (!config.Enabled)
        {
            return;
        }

        (_tracing, _metrics) = Build(config);
    }

    /// <summary>Whether anything is exported.</summary>
    public bool Enabled => _tracing is not null;

    /// <summary>Exports everything buffered now (spans and a metrics collection).</summary>
    public void Flush()
    {
        _tracing?.ForceFlush();
        _metrics?.ForceFlush();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _tracing?.Dispose();
        _metrics?.Dispose();
    }

    // NOTE: a method of its own, not inlined: compiling the constructor would otherwise load the SDK and the
    // exporter assemblies (~0.5 MB resident) in every relay, exporting or not
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static (TracerProvider Tracing, MeterProvider Metrics) Build(OtelConfig config)
    {
        var resource = ResourceBuilder.CreateDefault().AddService(config.ServiceName, serviceVersion: RelayInfo.Version);
        var tracing = Sdk.CreateTracerProviderBuilder()
            .SetResourceBuilder(resource)
            .AddSource(RelayTracing.SourceName)
            .AddOtlpExporter(o => Configure(o, config, "v1/traces"))
            .Build();
        var metrics = Sdk.CreateMeterProviderBuilder()
            .SetResourceBuilder(resource)
            .AddMeter(RelayMetrics.MeterName, ProcessMetrics.MeterName)
            .AddOtlpExporter(o => Configure(o, config, "v1/metrics"))
            .Build();
        return (tracing, metrics);
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
