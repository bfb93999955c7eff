using CcRelay.Core;
using CcRelay.Host.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Edge;

/// <summary>
/// The first middleware of the standalone relay: <c>security.status_token</c> in front of <c>/metrics</c> (401
/// without it) and <c>/health</c> (the status only, without providers, keys or circuits). The audit of the relay's
/// routes' 401s is theirs (<c>MapCcRelay</c>), so an application that embeds the relay audits them too.
/// </summary>
internal static class EdgeGuard
{
    public static void UseEdgeGuard(this IApplicationBuilder app, RelayState state, Routing.RuntimeCell runtime, AuditTrail audit, TimeProvider timeProvider) =>
        app.Use(async (context, next) =>
        {
            var snapshot = state.Current;
            var path = context.Request.Path.Value;
            var metrics = snapshot.Config.Metrics is { Enabled: true } m && string.Equals(path, m.Path, StringComparison.Ordinal);
            var health = string.Equals(path, "/health", StringComparison.Ordinal) && (HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method));
            if ((metrics || health) && !Core.StatusToken.admits(snapshot.StatusToken, context.Request.Headers.Authorization.ToString()))
            {
                RelayResponseHeaders.Stamp(context, timeProvider);
                if (metrics)
                {
                    audit.StatusDenied(context);
                    context.Response.Headers.WWWAuthenticate = "Bearer";
                    await ErrorResponse.WriteAsync(context, ErrorType.Authentication, "this path needs Authorization: Bearer <security.status_token>");
                    return;
                }

                await HealthSummaryAsync(context, runtime);
                return;
            }

            await next(context);
        });

    /// <summary><c>/health</c> for a caller without the token: the status and its code, nothing more.</summary>
    private static Task HealthSummaryAsync(HttpContext context, Routing.RuntimeCell runtime)
    {
        var report = RelayHealth.report(RelayInfo.Version, runtime.Current, runtime.Now);
        var json = Core.StatusToken.healthSummary(report.Status);
        context.Response.StatusCode = Health.statusCode(report);
        context.Response.ContentType = "application/json";
        context.Response.Headers.CacheControl = "no-store";
        context.Response.ContentLength = json.Length;
        return HttpMethods.IsHead(context.Request.Method)
            ? Task.CompletedTask
            : context.Response.Body.WriteAsync(json, context.RequestAborted).AsTask();
    }
}
