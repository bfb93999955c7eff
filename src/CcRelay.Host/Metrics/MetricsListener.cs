using CcRelay.Core;
using CcRelay.Host.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace CcRelay.Host.Metrics;

/// <summary>
/// <c>metrics.listen</c>: a Kestrel listener of its own that serves the exposition and nothing else.
/// Its connections carry a marker feature; a middleware answers them before routing, so the relay's routes
/// are never reachable there, and the metrics path is not mapped on the relay's own listener.
/// </summary>
internal static class MetricsListener
{
    /// <summary>Marks every connection of <paramref name="options"/> as a metrics connection.</summary>
    public static void Mark(ListenOptions options) =>
        options.Use(next => connection =>
        {
            connection.Features.Set(Marker.Instance);
            return next(connection);
        });

    /// <summary>Answers every request of a metrics connection: the exposition at <paramref name="path"/>, 404 elsewhere.</summary>
    public static void UseMetricsListener(this IApplicationBuilder app, string path, PrometheusExposition exposition, TimeProvider timeProvider) =>
        app.Use((context, next) =>
        {
            if (context.Features.Get<Marker>() is null)
            {
                return next(context);
            }

            RelayResponseHeaders.Stamp(context, timeProvider);
            if (!string.Equals(context.Request.Path.Value, path, StringComparison.Ordinal))
            {
                return ErrorResponse.WriteAsync(context, ErrorType.NotFound, $"this listener serves only {path}");
            }

            return HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method)
                ? exposition.ServeAsync(context)
                : ErrorResponse.MethodNotAllowedAsync(context, "GET, HEAD");
        });

    private sealed class Marker
    {
        public static readonly Marker Instance = new();
    }
}
