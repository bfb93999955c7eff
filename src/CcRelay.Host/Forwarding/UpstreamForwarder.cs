using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using CcRelay.Core;
using CcRelay.Host.Http;
using CcRelay.Host.Logging;
using CcRelay.Host.Metrics;
using CcRelay.Host.Observability;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// Sends one planned attempt upstream and relays the answer.
/// <code>
///   (6) send          Client     Relay ──request──► Upstream
///   (7) classify      Client     Relay ◄─headers─── Upstream   (none within first_byte_timeout: 504; no connection: 502)
///   (8) relay         Client ◄── Relay ◄──body───── Upstream   (SSE event by event; JSON copied)
///   (9) account       the answer's usage and cost, the attempt's outcome and span
/// </code>
/// </summary>
internal sealed class UpstreamForwarder(HttpMessageInvoker invoker, TimeProvider timeProvider, RelayMetrics metrics, ILogger<UpstreamForwarder> logger)
{
    /// <summary>Makes one attempt at <paramref name="plan"/>; counts it and ends its span however it ends.</summary>
    public async Task ForwardAsync(
        HttpContext context,
        RelaySnapshot snapshot,
        UpstreamPlan plan,
        ReadOnlyMemory<byte> body,
        RequestRecord record)
    {
        record.Attempts++;
        record.UpstreamStatus = 0;
        if (record.Detailed)
        {
            record.KeyId = KeyIdOf(snapshot, plan);
        }

        var attempt = RelayTracing.StartAttempt(plan, record);
        var outcome = AttemptOutcome.Abandoned;
        try
        {
            outcome = await AttemptAsync(context, snapshot, plan, body, record, attempt);
        }
        finally
        {
            // :: Step 9: account for the attempt
            metrics.RecordAttempt(plan.Provider.Name, outcome);
            RelayTracing.EndAttempt(attempt, record, outcome);
        }
    }

    private async Task<AttemptOutcome> AttemptAsync(
        HttpContext context,
        RelaySnapshot snapshot,
        UpstreamPlan plan,
        ReadOnlyMemory<byte> body,
        RequestRecord record,
        Activity? attempt)
    {
        var server = snapshot.Config.Server;
        var debug = snapshot.Config.Logging.DebugOptions;

        // One token for the whole attempt: the client's abort, linked with the relay's own deadline
        // (first-byte timeout until headers arrive, then what is left of server.timeout_ms). Whichever
        // fired is told apart by `aborted.IsCancellationRequested`.
        var aborted = context.RequestAborted;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(aborted);
        linked.CancelAfter(TimeSpan.FromMilliseconds(server.FirstByteTimeoutMs));

        // :: Step 6: send  Relay ──► Upstream
        using var request = BuildRequest(context.Request, plan, body);
        if (attempt is not null && snapshot.Config.Otel.PropagateTraceContext)
        {
            RelayTracing.Inject(attempt, request);
        }

        if (DebugLog.IsOn(logger, debug.LogRequestHeaders))
        {
            var secrets = DebugLog.Secrets(context, snapshot);
            Log.DebugUpstreamRequest(logger, record.RequestId, plan.Provider.Name, Redact.url(secrets, plan.Url), Redact.headers(secrets, DebugLog.Pairs(request)));
        }

        HttpResponseMessage response;
        var sentAt = timeProvider.GetTimestamp();
        try
        {
            response = await invoker.SendAsync(request, linked.Token);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            record.Result = "client_aborted";
            record.Status = 499;
            return AttemptOutcome.Abandoned;
        }
        catch (OperationCanceledException)
        {
            var reason = $"upstream sent no response headers within {server.FirstByteTimeoutMs} ms";
            Log.UpstreamFailed(logger, record.RequestId, plan.Provider.Name, reason);
            record.Result = "timeout_error";
            await RespondErrorAsync(context, record, ErrorType.Timeout, reason);
            return AttemptOutcome.NewFailure("timeout");
        }
        catch (HttpRequestException e)
        {
            var reason = $"upstream connection failed ({Describe(e)})";
            Log.UpstreamFailed(logger, record.RequestId, plan.Provider.Name, reason);
            record.Result = "api_error";
            await RespondErrorAsync(context, record, ErrorType.Api, reason);
            return AttemptOutcome.NewFailure("connection");
        }
        finally
        {
            record.Timing.AddUpstreamWait(sentAt);
        }

        using (response)
        {
            // :: Step 7: classify. The first-byte limit is met; the whole-request limit applies from here.
            var ttfb = timeProvider.GetElapsedTime(record.Timing.StartedAt);
            record.TtfbMs = ttfb.TotalMilliseconds;
            record.Status = record.UpstreamStatus = (int)response.StatusCode;
            metrics.RecordTimeToFirstByte(plan.Provider.Name, plan.UpstreamModel, ttfb);
            linked.CancelAfter(server.TimeoutMs > 0
                ? TimeSpan.FromMilliseconds(Math.Max(1, server.TimeoutMs - record.TtfbMs))
                : Timeout.InfiniteTimeSpan);

            if (DebugLog.IsOn(logger, debug.LogResponseHeaders))
            {
                Log.DebugResponseHeaders(logger, record.RequestId, plan.Provider.Name, record.Status, Redact.headers(DebugLog.Secrets(context, snapshot), DebugLog.Pairs(response)));
            }

            var outcome = Outcome.ofStatus(record.Status);
            var isStream = IsEventStream(response);
            CopyResponseHeaders(context.Response, response, isStream);
            if (record.Status >= 400)
            {
                record.Result = "upstream_" + record.Status.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }

            // :: Step 8: relay  Client ◄── Relay ◄── Upstream
            Stream upstreamBody;
            try
            {
                upstreamBody = await response.Content.ReadAsStreamAsync(linked.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or HttpRequestException)
            {
                context.Abort();
                record.Result = aborted.IsCancellationRequested ? "client_aborted" : "upstream_body_failed";
                return aborted.IsCancellationRequested ? AttemptOutcome.Abandoned : AttemptOutcome.NewFailure("body");
            }

            await using (upstreamBody)
            {
                return isStream
                    ? await RelayStreamAsync(context, snapshot, plan, record, upstreamBody, outcome, linked.Token)
                    : await CopyBodyAsync(context, snapshot, plan, record, upstreamBody, response.Content.Headers.ContentLength, outcome, linked.Token);
            }
        }
    }

    private async Task<AttemptOutcome> RelayStreamAsync(
        HttpContext context,
        RelaySnapshot snapshot,
        UpstreamPlan plan,
        RequestRecord record,
        Stream upstreamBody,
        AttemptOutcome outcome,
        CancellationToken cancellationToken)
    {
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        context.Response.Headers["X-Accel-Buffering"] = "no";
        await context.Response.StartAsync(cancellationToken);

        // NOTE: StartAsync only buffers the status line and headers; flush them, so the client has them as soon
        // as the upstream's arrived (x-cc-relay-overhead-ms included), not with the first event
        await context.Response.BodyWriter.FlushAsync(cancellationToken);

        var debug = snapshot.Config.Logging.DebugOptions;
        using var capture = DebugLog.IsOn(logger, debug.LogResponseBody) ? new BodyCapture(debug.MaxBodyLogSize) : null;
        var (end, reason, tap) = await SseRelay.RelayAsync(
            upstreamBody,
            context.Response,
            () => context.RequestAborted.IsCancellationRequested,
            bytes => record.BytesOut += bytes,
            cancellationToken,
            capture);

        Answered(snapshot, plan, record, UsageModule.ofTap(tap));
        if (capture is not null)
        {
            Log.DebugResponseBody(logger, record.RequestId, plan.Provider.Name, capture.TotalLength, Redact.sse(DebugLog.Secrets(context, snapshot), debug.MaxBodyLogSize, capture.Span));
        }

        switch (end)
        {
            case StreamEnd.Completed:
                return outcome;
            case StreamEnd.ClientAborted:
                record.Result = "client_aborted";
                return AttemptOutcome.Abandoned;
            case StreamEnd.UpstreamErrorEvent:
                record.Result = "upstream_error_event";
                record.ErrorType = tap.ErrorType?.Value ?? "api_error";
                return AttemptOutcome.NewFailure("error event");
            default:
                record.Result = end == StreamEnd.TimedOut ? "timeout_error" : "stream_error";
                record.ErrorType = end == StreamEnd.TimedOut ? "timeout_error" : "api_error";
                Log.StreamBroken(logger, record.RequestId, plan.Provider.Name, reason);
                return AttemptOutcome.NewFailure(record.Result);
        }
    }

    private async Task<AttemptOutcome> CopyBodyAsync(
        HttpContext context,
        RelaySnapshot snapshot,
        UpstreamPlan plan,
        RequestRecord record,
        Stream upstreamBody,
        long? contentLength,
        AttemptOutcome outcome,
        CancellationToken cancellationToken)
    {
        // Read straight into Kestrel's output pipe: no intermediate buffer, one flush per upstream read. The
        // first MiB is also copied aside: the answer's usage sits at its end and is read once it is relayed.
        using var capture = new BodyCapture(BodyCapture.JsonAnswerLimit, contentLength);
        var writer = context.Response.BodyWriter;
        try
        {
            while (true)
            {
                var memory = writer.GetMemory(4096);
                var read = await upstreamBody.ReadAsync(memory, cancellationToken);
                if (read == 0)
                {
                    break;
                }

                capture.Append(memory.Span[..read]);
                writer.Advance(read);
                record.BytesOut += read;
                var flushed = await writer.FlushAsync(cancellationToken);
                if (flushed.IsCanceled || flushed.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or HttpRequestException)
        {
            // NOTE: the status line is gone already; ending the response normally would make a truncated
            // JSON body look complete. Abort the connection so the client sees the truncation.
            var clientLeft = context.RequestAborted.IsCancellationRequested;
            record.Result = clientLeft ? "client_aborted" : "upstream_body_failed";
            context.Abort();
            outcome = clientLeft ? AttemptOutcome.Abandoned : AttemptOutcome.NewFailure("body");
        }

        var answer = UsageModule.ofJson(capture.Span);
        Answered(snapshot, plan, record, answer);
        if (record.Status >= 400)
        {
            record.ErrorType = answer.ErrorType?.Value ?? "upstream_error";
        }

        var debug = snapshot.Config.Logging.DebugOptions;
        if (DebugLog.IsOn(logger, debug.LogResponseBody))
        {
            Log.DebugResponseBody(logger, record.RequestId, plan.Provider.Name, capture.TotalLength, Redact.json(DebugLog.Secrets(context, snapshot), debug.MaxBodyLogSize, capture.Span));
        }

        return outcome;
    }

    /// <summary>Records what the answer said about itself: its usage (metrics, cost) on the record.</summary>
    private void Answered(RelaySnapshot snapshot, UpstreamPlan plan, RequestRecord record, AnswerUsage answer)
    {
        record.Answer = answer;
        if (answer.Usage?.Value is not { } usage)
        {
            return;
        }

        var model = answer.Model?.Value ?? plan.UpstreamModel;
        record.CostUsd = Pricing.cost(snapshot.PricesFor(plan.Provider.Name), model, usage)?.Value;
        metrics.RecordUsage(plan.Provider.Name, model, usage, record.CostUsd);
    }

    private static async Task RespondErrorAsync(HttpContext context, RequestRecord record, ErrorType errorType, string message)
    {
        record.Status = ErrorEnvelope.status(errorType);
        record.ErrorType = ErrorEnvelope.wireName(errorType);
        if (!context.Response.HasStarted)
        {
            record.BytesOut = await ErrorResponse.WriteAsync(context, errorType, message);
        }
    }

    /// <summary>The key id of the credential the plan sends (a configured key, or the caller's own); <c>-</c> when none.</summary>
    private static string KeyIdOf(RelaySnapshot snapshot, UpstreamPlan plan)
    {
        if (plan.Credentials.IsEmpty)
        {
            return "-";
        }

        var (name, value) = plan.Credentials.Head;
        var secret = string.Equals(name, "authorization", StringComparison.OrdinalIgnoreCase) && Headers.tryBearer(value)?.Value is { } token
            ? token
            : value;
        return snapshot.KeyIdOf(secret);
    }

    private static HttpRequestMessage BuildRequest(HttpRequest incoming, UpstreamPlan plan, ReadOnlyMemory<byte> body)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, plan.Url)
        {
            Content = new ReadOnlyMemoryContent(body),
        };

        if (plan.Url.Scheme == Uri.UriSchemeHttps)
        {
            request.Version = HttpVersion.Version20;
            request.VersionPolicy = HttpVersionPolicy.RequestVersionOrLower;
        }

        foreach (var header in incoming.Headers)
        {
            if (!Headers.forwardRequest(header.Key))
            {
                continue;
            }

            if (!request.Headers.TryAddWithoutValidation(header.Key, (IEnumerable<string?>)header.Value))
            {
                request.Content.Headers.TryAddWithoutValidation(header.Key, (IEnumerable<string?>)header.Value);
            }
        }

        foreach (var (name, value) in plan.Credentials)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return request;
    }

    private static void CopyResponseHeaders(HttpResponse response, HttpResponseMessage upstream, bool isStream)
    {
        response.StatusCode = (int)upstream.StatusCode;
        Copy(response, upstream.Headers, isStream);
        Copy(response, upstream.Content.Headers, isStream);

        static void Copy(HttpResponse response, HttpHeaders headers, bool isStream)
        {
            foreach (var header in headers.NonValidated)
            {
                if (Headers.forwardResponse(isStream, header.Key))
                {
                    var values = header.Value;
                    response.Headers[header.Key] = values.Count == 1 ? new StringValues(values.ToString()) : new StringValues([.. values]);
                }
            }
        }
    }

    private static bool IsEventStream(HttpResponseMessage response) =>
        string.Equals(response.Content.Headers.ContentType?.MediaType, "text/event-stream", StringComparison.OrdinalIgnoreCase);

    private static string Describe(HttpRequestException e) =>
        e.HttpRequestError switch
        {
            HttpRequestError.NameResolutionError => "name resolution failed",
            HttpRequestError.ConnectionError => "connection refused or reset",
            HttpRequestError.SecureConnectionError => "TLS handshake failed",
            HttpRequestError.ResponseEnded => "upstream closed the connection before answering",
            HttpRequestError.InvalidResponse => "invalid HTTP response",
            _ => e.HttpRequestError.ToString(),
        };
}
