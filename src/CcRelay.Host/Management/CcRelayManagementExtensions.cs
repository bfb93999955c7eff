using CcRelay.Host.Routing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

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
        services.AddSingleton<Edge.ManagementAuditInterceptor>();
        services.AddGrpc(grpc =>
        {
            // the audit first: it records the token check's refusals
            grpc.Interceptors.Add<Edge.ManagementAuditInterceptor>();
            grpc.Interceptors.Add<ManagementAuthInterceptor>();
            grpc.EnableDetailedErrors = false;
        });
        // checked on each call (no publisher cache: a Check right after start answers the truth)
        services.AddGrpcHealthChecks(health => health.UseHealthChecksCache = false)
            .Add(new HealthCheckRegistration("providers", sp => new ProvidersHealthCheck(sp.GetRequiredService<RuntimeCell>()), HealthStatus.Unhealthy, null));
        services.AddGrpcReflection();
        return services;
    }

    /// <summary>
    /// grpc-web (Grpc.AspNetCore.Web) for every method, always on: a grpc-web client calls the same API, binary
    /// (<c>application/grpc-web</c>) or text (<c>application/grpc-web-text</c>), with the same token check, over HTTP/2
    /// on <c>grpc.listen</c> and over HTTP/1.1 (a browser page) on <c>grpc.web_listen</c>. Call after routing, before
    /// the endpoints.
    /// </summary>
    public static IApplicationBuilder UseCcRelayManagementWeb(this IApplicationBuilder app) =>
        app.UseGrpcWeb(new GrpcWebOptions { DefaultEnabled = true });

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
