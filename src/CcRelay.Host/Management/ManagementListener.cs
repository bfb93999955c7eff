using Grpc.AspNetCore.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace CcRelay.Host.Management;

/// <summary>
/// <c>grpc.listen</c>: a Kestrel listener of its own (HTTP/2 without TLS) that serves the management API and
/// nothing else. Its connections carry a marker; a middleware after routing answers 404 to a gRPC method
/// reached on the relay's listener and to anything but a gRPC method reached on the management listener.
/// </summary>
internal static class ManagementListener
{
    /// <summary>Marks every connection of <paramref name="options"/> as a management connection.</summary>
    public static void Mark(ListenOptions options) =>
        options.Use(next => connection =>
        {
            connection.Features.Set(Marker.Instance);
            return next(connection);
        });

    /// <summary>Keeps the management API and the relay's routes each on their own listener.</summary>
    public static void UseManagementListener(this IApplicationBuilder app) =>
        app.Use((context, next) =>
        {
            var management = context.Features.Get<Marker>() is not null;
            var grpc = context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>() is not null;
            if (management == grpc)
            {
                return next(context);
            }

            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        });

    private sealed class Marker
    {
        public static readonly Marker Instance = new();
    }
}
