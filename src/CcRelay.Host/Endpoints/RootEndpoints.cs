using CcRelay.Core;
using CcRelay.Host.Http;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace CcRelay.Host.Endpoints;

/// <summary>The unauthenticated routes: <c>/</c> (Claude Code's preconnect), <c>/health</c>, and the 404 fallback.</summary>
internal static class RootEndpoints
{
    public static Task RootAsync(HttpContext context)
    {
        context.Response.StatusCode = StatusCodes.Status200OK;
        if (HttpMethods.IsHead(context.Request.Method))
        {
            return Task.CompletedTask;
        }

        context.Response.ContentType = "text/plain; charset=utf-8";
        return context.Response.WriteAsync("cc-relay " + RelayInfo.Version + "\n", context.RequestAborted);
    }

    public static Task HealthAsync(HttpContext context, Routing.RuntimeCell runtime, Ledger.IUsageLedger? ledger = null, Plugins.PluginHost? plugins = null, RelayState? state = null)
    {
        // one read of the runtime: its providers, circuits and keys, and the config they came from, all of one generation
        var report = RelayHealth.report(RelayInfo.Version, runtime.Current, runtime.Now);
        var json = report.ToJson(ledger is null ? null : LedgerHealthOf(ledger.Status));
        if (plugins is not null && state?.Current.Config.Pipelines.Plugins is { IsEmpty: false } configured)
        {
            // the plugins' states, when any is configured (docs/plugins.md)
            json = PluginStatuses.addToHealth(json, plugins.Statuses(configured));
        }

        if (context.RequestServices?.GetService<Shared.SharedStateService>() is { } shared)
        {
            // the link to the shared store (state.postgres): a degraded one still serves, on local state
            json = SharedHealth.addToHealth(json, (context.RequestServices.GetService<TimeProvider>() ?? TimeProvider.System).GetUtcNow(), shared.Link);
            if (shared.CompactionProblem is { } problem)
            {
                // compaction of the shared spend: said only while it fails
                json = SharedCompaction.addToHealth(json, problem);
            }

            if (shared.Agreement is { Fingerprint.Length: > 0 } agreement)
            {
                json = SharedAgreement.addToHealth(json, agreement.Fingerprint, agreement.Config, agreement.Clock!);
            }
        }

        context.Response.StatusCode = Health.statusCode(report);
        context.Response.ContentType = "application/json";
        context.Response.Headers.CacheControl = "no-store";
        context.Response.ContentLength = json.Length;
        return HttpMethods.IsHead(context.Request.Method)
            ? Task.CompletedTask
            : context.Response.Body.WriteAsync(json, context.RequestAborted).AsTask();
    }

    /// <summary>The ledger's line in <c>/health</c>: its state and counts, its problem, never its path.</summary>
    private static LedgerHealth LedgerHealthOf(Ledger.LedgerStatus status) =>
        LedgerHealth.Create(status.Enabled, status.Healthy, status.Written, status.Dropped, status.Problem);

    public static Task NotFoundAsync(HttpContext context) =>
        ErrorResponse.WriteAsync(context, ErrorType.NotFound, $"no route for {context.Request.Method} {context.Request.Path}");
}
