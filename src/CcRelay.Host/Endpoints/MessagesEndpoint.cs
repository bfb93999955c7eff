using CcRelay.Core;
using CcRelay.Host.Forwarding;
using CcRelay.Host.Http;
using CcRelay.Host.Logging;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Endpoints;

/// <summary>
/// <c>POST /v1/messages</c> and <c>POST /v1/messages/count_tokens</c>: one impureim sandwich per request.
/// Steps 1–4 read and decide (Core does the deciding); 5–8 plan and act with failover (<see cref="FailoverForwarder"/>); 9 records.
/// </summary>
internal sealed class MessagesEndpoint(
    RelayState state,
    FailoverForwarder forwarder,
    TimeProvider timeProvider,
    ILogger<MessagesEndpoint> logger)
{
    public async Task HandleAsync(HttpContext context)
    {
        // :: Step 1: read — clock, snapshot, request id, body
        var startedAt = timeProvider.GetTimestamp();
        var snapshot = state.Current;
        var request = context.Request;
        var record = new RequestRecord
        {
            RequestId = RequestId.Assign(context),
            Method = request.Method,
            Path = request.Path.Value ?? "",
        };

        try
        {
            await HandleAsync(context, snapshot, record, startedAt);
        }
        finally
        {
            // :: Step 9: account — one line per request, after the response is done
            Log.RequestCompleted(
                logger,
                record.RequestId,
                record.Method,
                record.Path,
                record.Status,
                record.Provider,
                record.Model,
                record.UpstreamModel,
                record.Stream,
                record.Result,
                Math.Round(timeProvider.GetElapsedTime(startedAt).TotalMilliseconds, 2),
                Math.Round(record.TtfbMs, 2),
                record.BytesIn,
                record.BytesOut);
        }
    }

    private async Task HandleAsync(HttpContext context, RelaySnapshot snapshot, RequestRecord record, long startedAt)
    {
        var request = context.Request;
        var server = snapshot.Config.Server;

        using var body = await RequestBody.ReadAsync(request, server.MaxBodyBytes, context.RequestAborted);
        if (body is null)
        {
            await RejectAsync(context, record, ErrorType.RequestTooLarge, $"request body exceeds the relay's limit of {server.MaxBodyBytes} bytes (server.max_body_bytes)");
            return;
        }

        record.BytesIn = body.Length;

        // :: Step 2: authenticate — the relay's own credential is consumed here, foreign ones may travel on
        var verdict = Core.Auth.authenticate(snapshot.Auth, request.Headers["x-api-key"].ToString(), request.Headers.Authorization.ToString());
        if (verdict is AuthVerdict.Denied denied)
        {
            await RejectAsync(context, record, ErrorType.Authentication, denied.Reason);
            return;
        }

        var forward = ((AuthVerdict.Allowed)verdict).Forward;

        // :: Step 3: inspect — one pass over the body, never re-serialised
        var inspected = RequestFactsModule.inspect(body.Span);
        if (inspected.IsError)
        {
            await RejectAsync(context, record, ErrorType.InvalidRequest, RequestFactsModule.describe(inspected.ErrorValue));
            return;
        }

        var facts = inspected.ResultValue;
        record.Model = facts.Model;
        record.Stream = facts.Stream;

        // :: Step 4: plan — where the request goes
        if (snapshot.Candidates.IsEmpty)
        {
            await RejectAsync(context, record, ErrorType.Overloaded, "no enabled provider is configured", StatusCodes.Status503ServiceUnavailable);
            return;
        }

        // :: Steps 5–8: plan, send, classify, fail over, relay (the model patch, thinking strip and key are per attempt)
        await forwarder.ForwardAsync(context, snapshot, facts, body, forward, PathAndQuery(request), record, startedAt);
    }

    private static async Task RejectAsync(HttpContext context, RequestRecord record, ErrorType errorType, string message, int? status = null)
    {
        record.Status = status ?? ErrorEnvelope.status(errorType);
        record.Result = ErrorEnvelope.wireName(errorType);
        record.BytesOut = await ErrorResponse.WriteAsync(context, errorType, message, status);
    }

    /// <summary>The route path and query, without any PathBase the relay is mounted under.</summary>
    private static string PathAndQuery(HttpRequest request) => request.Path.Value + request.QueryString.Value;
}
