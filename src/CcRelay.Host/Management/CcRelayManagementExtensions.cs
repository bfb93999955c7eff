using CcRelay.Host.Routing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace CcRelay.Host.Management;

/// <summary>Registers and maps the gRPC management API (<c>grpc:</c>; docs/management.md).</summary>
public static class CcRelayManagementExtensions
{
    /// <summary>
    /// Adds gRPC with the token check on every call, health checking (<c>grpc.health.v1</c>), reflection and
    /// the <see cref="RequestFeed"/> the relay records completed requests into. Call after <c>AddCcRelay</c>.
    /// </summary>
    public static IServiceCollection AddCcRelayManagement(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddSingleton(sp => new RequestFeed(sp.GetRequiredService<RuntimeCell>()));
        services.AddSingleton<ManagementAuthInterceptor>();
        services.AddGrpc(grpc =>
        {
            grpc.Interceptors.Add<ManagementAuthInterceptor>();
            grpc.EnableDetailedErrors = false;
        });
        services.AddGrpcHealthChecks();
        services.AddGrpcReflection();
        return services;
    }

    /// <summary>Maps the management service, health and reflection (served only on the management listener).</summary>
    public static IEndpointRouteBuilder MapCcRelayManagement(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        endpoints.MapGrpcService<RelayManagementService>();
        endpoints.MapGrpcHealthChecksService();
        endpoints.MapGrpcReflectionService();
        return endpoints;
    }
}
