using CcRelay.Host.Routing;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace CcRelay.Host.Management;

/// <summary>
/// The relay's health as <c>grpc.health.v1</c> reports it (service <c>""</c> and <c>ccrelay.v1.RelayManagement</c>):
/// SERVING while some provider's breaker would admit a request (the rule of <c>/health</c>'s <c>up</c>), else NOT_SERVING.
/// </summary>
internal sealed class ProvidersHealthCheck(RuntimeCell runtime) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var views = Core.Management.providers(runtime.Current, runtime.Now);
        var up = views.Count(p => p.Up);
        return Task.FromResult(up > 0
            ? HealthCheckResult.Healthy($"{up} of {views.Length} providers can take a request")
            : HealthCheckResult.Unhealthy("no provider can take a request"));
    }
}
