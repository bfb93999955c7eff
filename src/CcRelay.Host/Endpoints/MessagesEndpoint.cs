using System.Diagnostics;
using CcRelay.Core;
using CcRelay.Host.Forwarding;
using CcRelay.Host.Http;
using CcRelay.Host.Logging;
using CcRelay.Host.Metrics;
using CcRelay.Host.Observability;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Endpoints;

/// <summary>
/// <c>POST /v1/messages</c> and <c>POST /v1/messages/count_tokens</c>: one impureim sandwich per request.
/// Steps 1–4 read and decide (Core does the deciding); 5–8 plan and act with failover (<see cref="FailoverForwarder"/>); 9 records.
/// The cloud-shaped routes (<see cref="IngressEndpoint"/>) run the same pipeline with their body converted after step 2.
/// </summary>
internal sealed class MessagesEndpoint(
    RelayState state,
    FailoverForwarder forwarder,
    RelayMetrics metrics,
    RequestAccounting accounting,
    TimeProvider timeProvider,
    ILogger<MessagesEndpoint> logger,
    Management.RequestFeed? feed = null,
    Clients.ClientGate? clientGate = null,
    Clients.ClientMetrics? clientMetrics = null,
    Edge.AuditTrail? audit = null,
    Shared.SharedStateService? shared = null)
{
    public Task HandleAsync(HttpContext context) => HandleAsync(context, null);

    /// <summary>
    /// The pipeline; with <paramref name="ingress"/>, the request arrived in a cloud's shape: once authenticated, its
    /// body is converted (<see cref="Ingress.convert"/>), its <c>anthropic_beta</c> values join the <c>anthropic-beta</c>
    /// header, and it is served as the Anthropic path the conversion names.
    /// </summary>
    public async Task HandleAsync(HttpContext context, IngressRoute? ingress)
    {
        // :: Step 1: read — clock, snapshot, request id, body
        var timing = RelayResponseHeaders.Stamp(context, timeProvider);
        var snapshot = state.Current;
        var request = context.Request;
        var record = new RequestRecord
        {
            RequestId = timing.RequestId,
            Method = request.Method,
            Path = request.Path.Value ?? "",
            Timing = timing,
            Detailed = logger.IsEnabled(Microsoft.Extensions.Logging.LogLevel.Information),
        };

        metrics.RequestStarted();
        feed?.Started();
        var span = RelayTracing.StartRequest(context, record.RequestId);
        ClientConfig? client = null;
        ClientTicket? ticket = null;
        try
        {
            var server = snapshot.Config.Server;

            var body = await RequestBody.ReadAsync(request, server.MaxBodyBytes, context.RequestAborted);
            using var lease = body;
            if (body is null)
            {
                // the rest of a refused body is not read: the connection ends with the answer
                context.Response.Headers.Connection = "close";
                await RejectAsync(context, record, ErrorType.RequestTooLarge, $"request body exceeds the relay's limit of {server.MaxBodyBytes} bytes (server.max_body_bytes)");
                return;
            }

            record.BytesIn = body.Length;

            // :: Step 2: authenticate — the relay's own credential is consumed here, foreign ones may travel on
            var apiKey = request.Headers["x-api-key"].ToString();
            var authorization = request.Headers.Authorization.ToString();
            // a client key (clients[]) names the caller; anything else is server.auth's to decide, as before
            var verdict = ClientKeys.authenticateWith(snapshot.ClientKeyIndex, snapshot.Auth, timeProvider.GetUtcNow(), apiKey, authorization);
            if (shared is not null)
            {
                // a client key revoked on any relay (state.postgres) is refused here too, from memory
                verdict = shared.Check(verdict);
            }

            if (record.Detailed)
            {
                record.ClientKeyId = ClientKeyId(snapshot, apiKey, authorization);
            }

            if (verdict is ClientVerdict.Refused refused)
            {
                await RejectAsync(context, record, ErrorType.Authentication, refused.Reason);
                return;
            }

            var admitted = (ClientVerdict.Admitted)verdict;
            var forward = admitted.Forward;
            client = admitted.Client?.Value;
            if (client is not null)
            {
                record.Client = client.Name;
                record.ClientKeyId = client.KeyId;
            }

            var pathAndQuery = PathAndQuery(request);
            if (ingress is not null)
            {
                var converted = Ingress.convert(ingress, body.Span);
                if (converted.IsError)
                {
                    await RejectAsync(context, record, ErrorType.InvalidRequest, converted.ErrorValue);
                    return;
                }

                // the converted body replaces the client's (the lease above returns the client's buffer)
                body = RequestBody.Of(converted.ResultValue.Body);
                pathAndQuery = converted.ResultValue.PathAndQuery;
                IngressEndpoint.PrepareHeaders(request, converted.ResultValue.Betas);
            }

            var debug = snapshot.Config.Logging.DebugOptions;
            if (DebugLog.IsOn(logger, debug.LogRequestBody))
            {
                Log.DebugRequestBody(logger, record.RequestId, body.Length, Redact.json(DebugLog.Secrets(context, snapshot), debug.MaxBodyLogSize, body.Span));
            }

            // :: Step 3: inspect — one pass over the body, never re-serialised (with the stage facts when stages are configured)
            var staged = Stages.active(snapshot.Config);
            var inspected = RequestFacts.Inspect(body.Span, staged);
            if (inspected.IsError)
            {
                await RejectAsync(context, record, ErrorType.InvalidRequest, inspected.ErrorValue.Message);
                return;
            }

            var facts = inspected.ResultValue;
            record.Model = facts.Model;
            record.Stream = facts.Stream;

            // :: Step 4: plan — where the request goes
            if (snapshot.Candidates.Count == 0)
            {
                await RejectAsync(context, record, ErrorType.Overloaded, "no enabled provider is configured", StatusCodes.Status503ServiceUnavailable);
                return;
            }

            // :: Step 4: plan — the stage (routing.stages, a provider,model switch) picks the candidates
            var headers = request.Headers;
            var stageHeaders = staged
                ? Stages.headersOf(headers["x-claude-code-agent-id"].ToString(), headers["anthropic-beta"].ToString(), headers.UserAgent.ToString(), headers["x-app"].ToString())
                : Stages.noHeaders;
            var stage = StageDecision.Classify(snapshot.Config, facts, stageHeaders);
            record.Stage = stage.StageName;
            record.StageReason = stage.Reason;

            // :: Step 4: plan — the client's models, providers, stages, limits and budgets, before routing
            if (client is not null && clientGate is not null)
            {
                var decision = ClientAdmission.decide(client, snapshot.Candidates, snapshot.PricesFor, facts);
                var stageAllowed = ClientAdmission.admitStage(client, stage.Stage);
                ClientDenial? denied = decision.IsError ? decision.ErrorValue : stageAllowed.IsError ? stageAllowed.ErrorValue : null;
                if (denied is not null)
                {
                    // refused before any limit is taken: no ticket, no slot, no upstream call
                    clientMetrics?.Refused(client.Name, denied.Reason);
                    await RejectAsync(context, record, denied.Type, denied.Message);
                    return;
                }

                var admission = clientGate.Admit(client, decision.ResultValue);
                if (admission.IsError)
                {
                    await RefuseAsync(context, record, client, admission.ErrorValue);
                    return;
                }

                ticket = admission.ResultValue;
            }

            // :: Steps 5–8: plan, send, classify, fail over, relay (the model patch, thinking strip and key are per attempt)
            await forwarder.ForwardAsync(context, snapshot, facts, body, forward, pathAndQuery, record, record.Timing.StartedAt, stage, client);
        }
        finally
        {
            if (ticket is not null && client is not null && clientGate is not null)
            {
                // the slot frees and the estimate gives way to the real usage and cost, as soon as the request ends
                var cost = ClientLimits.settledCost(record.Attempts > 0, record.Status, record.Usage is not null, record.CostUsd is { } c ? c : null);
                clientGate.Settle(client, ticket, record.Usage, cost?.Value);
            }

            Complete(context, record, span);
        }
    }

    /// <summary>
    /// :: Step 9: account — the request span here; the metrics and the one line per request by
    /// <see cref="RequestAccounting"/>, off this thread (the client has its answer already).
    /// </summary>
    private void Complete(HttpContext context, RequestRecord record, Activity? span)
    {
        if (record.Status == 0)
        {
            // an exception ended the request (the client left while its body was read, …)
            record.Ended(context.RequestAborted.IsCancellationRequested ? RequestResult.ClientAborted : RequestResult.InternalError);
        }

        record.Elapsed = record.Timing.Elapsed;
        record.EndedAt = timeProvider.GetUtcNow().UtcDateTime;
        RelayTracing.EndRequest(span, record);
        accounting.Add(record);
        feed?.Completed(record);

        // after the record is queued: a scrape that finds no request in flight finds every finished one accounted
        metrics.RequestFinished();
    }

    private static async Task RejectAsync(HttpContext context, RequestRecord record, ErrorType errorType, string message, int? status = null)
    {
        record.Ended(RequestResult.NewRefused(errorType, status ?? ErrorEnvelope.status(errorType)));
        record.BytesOut = await ErrorResponse.WriteAsync(context, errorType, message, status);
    }

    /// <summary>
    /// Answers a request a client limit refused: 429 <c>rate_limit_error</c> with <c>retry-after</c> when waiting helps
    /// (a limit, or a budget until its period rolls over), 400 <c>invalid_request_error</c> when it never does.
    /// </summary>
    private async Task RefuseAsync(HttpContext context, RequestRecord record, ClientConfig client, ClientRefusal refusal)
    {
        clientMetrics?.Refused(client.Name, ClientLimits.reason(refusal));
        if (ClientLimits.budgetOf(refusal)?.Value is { } budget)
        {
            // who was blocked and by which budget; the client's key id, never its key
            audit?.BudgetBlocked(context, client.Name, client.KeyId, budget);
        }

        if (ClientLimits.retryAfter(timeProvider.GetUtcNow(), refusal) is { } seconds)
        {
            context.Response.Headers.RetryAfter = seconds.Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        await RejectAsync(context, record, ClientLimits.errorType(refusal), ClientLimits.describe(client, refusal));
    }

    /// <summary>The key id of the caller's credential (its <c>x-api-key</c>, else its bearer token); <c>-</c> when it sent none.</summary>
    private static string ClientKeyId(RelaySnapshot snapshot, string apiKey, string authorization) =>
        apiKey.Length > 0 ? snapshot.KeyIdOf(apiKey)
        : Headers.tryBearer(authorization)?.Value is { } token ? snapshot.KeyIdOf(token)
        : "-";

    /// <summary>The route path and query, without any PathBase the relay is mounted under.</summary>
    private static string PathAndQuery(HttpRequest request) => request.Path.Value + request.QueryString.Value;
}
