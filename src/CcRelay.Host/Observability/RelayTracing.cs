using System.Diagnostics;
using CcRelay.Core;
using CcRelay.Host.Http;
using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Observability;

/// <summary>
/// The relay's spans (ActivitySource <c>CcRelay</c>): one server span per relayed request and one client span
/// per upstream attempt, with OpenTelemetry's HTTP and GenAI attributes.
/// <code>
///   POST /v1/messages         (server)  http.*, gen_ai.request.model (as asked), gen_ai.response.model, usage
///   └─ chat {upstream model}  (client)  gen_ai.system, gen_ai.request.model (as sent), server.address, http.response.status_code, usage
/// </code>
/// NOTE: with no listener (OTLP export off, no test listener) <see cref="ActivitySource.HasListeners"/> is
/// false, every method returns at once and nothing is allocated: tracing costs nothing when it is off.
/// </summary>
internal static class RelayTracing
{
    /// <summary>The ActivitySource name (what an OpenTelemetry tracer provider adds with <c>AddSource</c>).</summary>
    public const string SourceName = "CcRelay";

    public static readonly ActivitySource Source = new(SourceName, RelayInfo.Version);

    /// <summary>
    /// Starts the request's server span. Its parent is the ambient span when someone traces ASP.NET Core
    /// itself (that span already holds the caller's context), else the caller's W3C <c>traceparent</c>.
    /// </summary>
    public static Activity? StartRequest(HttpContext context, string requestId)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        var request = context.Request;
        var current = Activity.Current;
        ActivityContext parent = default;
        if (current is null || current.Source.Name.Length == 0)
        {
            // ASP.NET Core's own activity, created only for its logging scopes and exported by nobody:
            // take the caller's context from the headers instead, or start a new trace
            Activity.Current = null;
            _ = ActivityContext.TryParse(request.Headers.TraceParent, request.Headers.TraceState, isRemote: true, out parent);
        }
        else
        {
            parent = current.Context;
        }

        var path = request.Path.Value ?? "";
        var activity = Source.StartActivity(request.Method + " " + path, ActivityKind.Server, parent);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("http.request.method", request.Method);
            activity.SetTag("http.route", path);
            activity.SetTag("url.path", path);
            activity.SetTag("cc_relay.request_id", requestId);
        }

        return activity;
    }

    /// <summary>Starts the client span of one upstream attempt (a child of the request span).</summary>
    public static Activity? StartAttempt(UpstreamPlan plan, RequestRecord record)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        var operation = record.Path.EndsWith("/count_tokens", StringComparison.Ordinal) ? "count_tokens" : "chat";
        var activity = Source.StartActivity(operation + " " + plan.UpstreamModel, ActivityKind.Client);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("gen_ai.operation.name", operation);
            activity.SetTag("gen_ai.system", plan.Provider.Type.WireName);
            activity.SetTag("gen_ai.request.model", plan.UpstreamModel);
            activity.SetTag("server.address", plan.Url.Host);
            activity.SetTag("server.port", plan.Url.Port);
            activity.SetTag("http.request.method", "POST");
            activity.SetTag("url.path", plan.Url.AbsolutePath);
            activity.SetTag("cc_relay.provider", plan.Provider.Name);
            activity.SetTag("cc_relay.attempt", record.Attempts);
        }

        return activity;
    }

    /// <summary>
    /// Sends the attempt span's W3C context upstream (<c>otel.propagate_trace_context</c>): a client's own
    /// <c>traceparent</c>/<c>tracestate</c> is replaced, as the relay's span is now the parent.
    /// </summary>
    public static void Inject(Activity attempt, HttpRequestMessage request)
    {
        if (attempt.IdFormat != ActivityIdFormat.W3C || attempt.Id is not { } id)
        {
            return;
        }

        request.Headers.Remove("traceparent");
        request.Headers.Remove("tracestate");
        request.Headers.TryAddWithoutValidation("traceparent", id);
        if (!string.IsNullOrEmpty(attempt.TraceStateString))
        {
            request.Headers.TryAddWithoutValidation("tracestate", attempt.TraceStateString);
        }
    }

    /// <summary>Ends an attempt span with what the attempt learned.</summary>
    public static void EndAttempt(Activity? attempt, int upstreamStatus, AnswerUsage? answer, string? error, AttemptOutcome outcome)
    {
        if (attempt is null)
        {
            return;
        }

        if (attempt.IsAllDataRequested)
        {
            if (upstreamStatus > 0)
            {
                attempt.SetTag("http.response.status_code", upstreamStatus);
            }

            Answer(attempt, answer);
            if (!outcome.IsSuccess)
            {
                error ??= outcome.IsAbandoned ? "client_aborted" : "api_error";
                attempt.SetTag("error.type", error);
                if (outcome.IsFailure)
                {
                    attempt.SetStatus(ActivityStatusCode.Error, error);
                }
            }
        }

        attempt.Dispose();
    }


    /// <summary>Ends the request span with the request's outcome.</summary>
    public static void EndRequest(Activity? activity, RequestRecord record)
    {
        if (activity is null)
        {
            return;
        }

        if (activity.IsAllDataRequested)
        {
            activity.SetTag("http.response.status_code", record.Status);
            if (record.Model != "-")
            {
                activity.SetTag("gen_ai.request.model", record.Model);
            }

            if (record.Provider != "-")
            {
                activity.SetTag("cc_relay.provider", record.Provider);
            }

            activity.SetTag("cc_relay.result", record.Result);
            activity.SetTag("cc_relay.attempts", record.Attempts);
            Answer(activity, record.Answer);
            if (record.ErrorType is { } error)
            {
                activity.SetTag("error.type", error);
            }

            if (record.Status >= 500)
            {
                activity.SetStatus(ActivityStatusCode.Error, record.ErrorType ?? record.Result);
            }
        }

        activity.Dispose();
    }

    private static void Answer(Activity activity, AnswerUsage? answer)
    {
        if (answer is null)
        {
            return;
        }

        if (answer.Model?.Value is { } model)
        {
            activity.SetTag("gen_ai.response.model", model);
        }

        if (answer.StopReason?.Value is { } stopReason)
        {
            activity.SetTag("gen_ai.response.finish_reasons", new[] { stopReason });
        }

        if (answer.Usage?.Value is { } usage)
        {
            // GenAI semantic conventions count the whole prompt as input
            activity.SetTag("gen_ai.usage.input_tokens", usage.PromptTokens);
            activity.SetTag("gen_ai.usage.output_tokens", usage.OutputTokens);
            activity.SetTag("gen_ai.usage.cache_read.input_tokens", usage.CacheReadTokens);
            activity.SetTag("gen_ai.usage.cache_creation.input_tokens", usage.CacheWriteTokens);
        }
    }
}
