using CcRelay.Host.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace CcRelay.Host.Metrics;

/// <summary>Maps the Prometheus exposition.</summary>
public static class CcRelayMetricsEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Serves the <see cref="PrometheusExposition"/> registered by
    /// <see cref="CcRelayMetricsServiceCollectionExtensions.AddCcRelayMetrics"/> (with <c>metrics.enabled</c>) at
    /// <paramref name="path"/> (<c>metrics.path</c>) for <c>GET</c> and <c>HEAD</c>, as <c>text/plain; version=0.0.4</c>.
    /// The standalone relay serves <c>metrics.listen</c> itself, on a listener of its own (see <c>CcRelayServer</c>);
    /// an embedding application can narrow the returned builder with <c>RequireHost("*:&lt;port&gt;")</c>.
    /// </summary>
    public static IEndpointConventionBuilder MapCcRelayMetrics(this IEndpointRouteBuilder endpoints, string path = "/metrics")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var exposition = endpoints.ServiceProvider.GetRequiredService<PrometheusExposition>();
        var timeProvider = endpoints.ServiceProvider.GetService<TimeProvider>() ?? TimeProvider.System;
        return endpoints.MapMethods(path, [HttpMethods.Get, HttpMethods.Head], RelayResponseHeaders.Stamped(exposition.ServeAsync, timeProvider));
    }
}
