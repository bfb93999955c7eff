using CcRelay.Host.Endpoints;
using CcRelay.Host.Http;
using CcRelay.Host.Metrics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace CcRelay.Host;

/// <summary>Maps the relay's HTTP surface.</summary>
public static class CcRelayEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps <c>/v1/messages</c>, <c>/v1/messages/count_tokens</c>, the Bedrock and Vertex AI shaped routes
    /// (<c>/model/{id}/invoke[-with-response-stream]</c>, <c>/model/{id}/count-tokens</c>, <c>/inference-profiles[/{id}]</c>,
    /// <c>/v1/projects/…/models/{m}:rawPredict|:streamRawPredict</c>), <c>/v1/models[/{id}]</c>, <c>/</c> and
    /// <c>/health</c>. A known route called with another method answers 405 with <c>Allow</c>.
    /// With <paramref name="notFoundFallback"/>, every other path answers 404 in the Anthropic envelope
    /// (leave it off when the relay shares an application with other endpoints).
    /// </summary>
    public static IEndpointRouteBuilder MapCcRelay(this IEndpointRouteBuilder endpoints, bool notFoundFallback = false)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var services = endpoints.ServiceProvider;

        // OpenTelemetry's providers (when metrics or OTLP export is on) start before the first request, and before
        // the request accounting, which the container then disposes first
        _ = services.GetService<MeterProvider>();
        _ = services.GetService<TracerProvider>();
        _ = services.GetService<ProcessMetrics>();
        var messages = services.GetRequiredService<MessagesEndpoint>();
        var models = services.GetRequiredService<ModelsEndpoint>();
        var ingress = services.GetRequiredService<IngressEndpoint>();
        var runtime = services.GetRequiredService<Routing.RuntimeCell>();
        var time = services.GetService<TimeProvider>() ?? TimeProvider.System;

        // server.max_concurrent: the relayed routes take a slot (or wait for one, or get 529); reads take none
        var gate = services.GetRequiredService<Edge.AdmissionGate>();
        var audit = services.GetRequiredService<Edge.AuditTrail>();

        // the runtime client-key changes are read (and applied) before the first request
        _ = services.GetRequiredService<Clients.ClientKeyRegistry>();

        // ccrelay_provider_up, ccrelay_circuit_state and ccrelay_key_capacity_ratio read the live breakers and
        // key pools at each scrape (nothing per request)
        services.GetService<RelayMetrics>()?.ObserveProviders(() => ProviderStatus.Of(runtime.Current, runtime.Now));

        Route(endpoints, time, audit, "/v1/messages", "POST", gate.Wrap(messages.HandleAsync));
        Route(endpoints, time, audit, "/v1/messages/count_tokens", "POST", gate.Wrap(messages.HandleAsync));

        // the relay as Claude Code's Bedrock or Vertex AI endpoint: the same pipeline, the cloud's shapes
        Route(endpoints, time, audit, "/model/{**operation}", "POST", gate.Wrap(ingress.BedrockAsync));
        Route(endpoints, time, audit, "/inference-profiles", "GET", ingress.BedrockAsync);
        Route(endpoints, time, audit, "/inference-profiles/{**id}", "GET", ingress.BedrockAsync);
        Route(endpoints, time, audit, "/v1/projects/{**operation}", "POST", gate.Wrap(ingress.VertexAsync));

        Route(endpoints, time, audit, "/v1/models", "GET, HEAD", models.ListAsync);
        Route(endpoints, time, audit, "/v1/models/{id}", "GET, HEAD", context => models.GetAsync(context, (string)context.Request.RouteValues["id"]!));
        Route(endpoints, time, audit, "/", "GET, HEAD", RootEndpoints.RootAsync);
        var ledger = services.GetService<Ledger.IUsageLedger>();
        var plugins = services.GetService<Plugins.PluginHost>();
        var state = services.GetService<RelayState>();
        Route(endpoints, time, audit, "/health", "GET, HEAD", context => RootEndpoints.HealthAsync(context, runtime, ledger, plugins, state));

        if (notFoundFallback)
        {
            endpoints.MapFallback(RelayResponseHeaders.Stamped(RootEndpoints.NotFoundAsync, time));
        }

        return endpoints;
    }

    /// <summary>
    /// Maps a route whose every answer (405 included) carries the relay's response headers, and whose every 401 (a
    /// missing or wrong credential) is written to the audit log — in the standalone relay and in an application that
    /// embeds it alike.
    /// </summary>
    private static void Route(IEndpointRouteBuilder endpoints, TimeProvider time, Edge.AuditTrail audit, string pattern, string allow, RequestDelegate handler)
    {
        var allowed = allow.Split(", ");
        endpoints.Map(pattern, RelayResponseHeaders.Stamped(
            async context =>
            {
                await (allowed.Contains(context.Request.Method, StringComparer.OrdinalIgnoreCase)
                    ? handler(context)
                    : ErrorResponse.MethodNotAllowedAsync(context, allow));
                if (context.Response.StatusCode == StatusCodes.Status401Unauthorized)
                {
                    audit.AuthFailed(context, "relay");
                }
            },
            time));
    }
}
