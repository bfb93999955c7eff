using System.Net;
using System.Net.Http.Headers;
using CcRelay.Core;
using CcRelay.Host.Logging;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// Sends one planned attempt upstream (<see cref="SendAsync"/>: nothing reaches the client yet, so the
/// caller may still fail over) and relays a chosen answer (<see cref="RelayAsync"/>: the commit).
/// <code>
///   (6) send          Client     Relay ──request──► Upstream
///   (7) classify      Client     Relay ◄─headers─── Upstream   (none within first_byte_timeout: TimedOut; no connection: ConnectFailed)
///   (8) relay         Client ◄── Relay ◄──body───── Upstream   (SSE event by event; JSON copied)
/// </code>
/// </summary>
internal sealed class UpstreamForwarder(HttpMessageInvoker invoker, TimeProvider timeProvider, ILogger<UpstreamForwarder> logger)
{
    /// <summary>
    /// Sends one attempt and waits for its response headers; an error answer (4xx/5xx, not a stream) is
    /// buffered so it can be classified and still relayed later. Nothing is written to the client.
    /// </summary>
    public async Task<AttemptOutcome> SendAsync(HttpContext context, UpstreamPlan plan, ReadOnlyMemory<byte> body, ServerConfig server, CancellationToken lost = default)
    {
        // One token for the whole attempt: the client's abort, linked with the relay's own deadline
        // (first-byte timeout until headers arrive, then what is left of server.timeout_ms). Whichever
        // fired is told apart by `aborted.IsCancellationRequested`.
        var aborted = context.RequestAborted;
        // `lost`: the attempt lost a hedge race; it is reported as abandoned, like a client abort
        var linked = CancellationTokenSource.CreateLinkedTokenSource(aborted, lost);
        linked.CancelAfter(TimeSpan.FromMilliseconds(server.FirstByteTimeoutMs));
        var sentAt = timeProvider.GetTimestamp();

        // :: Step 6: send  Relay ──► Upstream
        var content = new UpstreamBodyContent(body);
        var request = BuildRequest(context.Request, plan, content);
        try
        {
            var response = await invoker.SendAsync(request, linked.Token);
            var attempt = new AttemptResponse(plan, request, response, content, linked, timeProvider.GetElapsedTime(sentAt));
            if ((int)response.StatusCode >= 400 && !IsEventStream(response))
            {
                try
                {
                    await response.Content.LoadIntoBufferAsync(linked.Token);
                }
                catch (Exception e) when (e is OperationCanceledException or IOException or HttpRequestException)
                {
                    attempt.Dispose();
                    return Failed(aborted.IsCancellationRequested ? AttemptFailure.ClientAborted : AttemptFailure.ConnectFailed, "upstream error body could not be read");
                }
            }

            else if (response.IsSuccessStatusCode && IsEventStream(response))
            {
                // a stream is judged by its first event: an `error` before any content may still fail over
                try
                {
                    var stream = await response.Content.ReadAsStreamAsync(linked.Token);
                    var (prefix, errorType, ended) = await StreamPeek.FirstEventAsync(stream, linked.Token);
                    attempt.Peeked = new PrefixedStream(prefix, stream);
                    attempt.StreamErrorType = errorType;
                    if (ended && prefix.Length == 0)
                    {
                        attempt.Dispose();
                        return Failed(AttemptFailure.ConnectFailed, "upstream stream ended before its first event");
                    }
                }
                catch (OperationCanceledException) when (!aborted.IsCancellationRequested)
                {
                    attempt.Dispose();
                    return Failed(AttemptFailure.TimedOut, $"upstream sent no event within {server.FirstByteTimeoutMs} ms");
                }
                catch (Exception e) when (e is OperationCanceledException or IOException or HttpRequestException)
                {
                    attempt.Dispose();
                    return Failed(aborted.IsCancellationRequested ? AttemptFailure.ClientAborted : AttemptFailure.ConnectFailed, "upstream stream broke before its first event");
                }
            }

            return new AttemptOutcome(attempt, AttemptFailure.None, "");
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested || lost.IsCancellationRequested)
        {
            request.Dispose();
            linked.Dispose();
            return new AttemptOutcome(null, AttemptFailure.ClientAborted, "client aborted");
        }
        catch (OperationCanceledException)
        {
            request.Dispose();
            linked.Dispose();
            return new AttemptOutcome(null, AttemptFailure.TimedOut, $"upstream sent no response headers within {server.FirstByteTimeoutMs} ms");
        }
        catch (HttpRequestException e)
        {
            request.Dispose();
            linked.Dispose();
            return new AttemptOutcome(null, AttemptFailure.ConnectFailed, $"upstream connection failed ({Describe(e)})");
        }

        static AttemptOutcome Failed(AttemptFailure failure, string reason) => new(null, failure, reason);
    }

    // bodyLease owns the pooled memory behind the body; it is disposed as soon as the answer is committed to
    // the client and the body has been sent, so a long stream does not pin it. Only the delivered answer
    // releases it: a failed attempt leaves it for the next one.
    public async Task RelayAsync(HttpContext context, AttemptResponse attempt, IDisposable bodyLease, ServerConfig server, RequestRecord record, long startedAt)
    {
        var response = attempt.Response;
        var content = attempt.Content;
        var linked = attempt.Cancellation;
        var aborted = context.RequestAborted;

        // :: Step 7: classify. The first-byte limit is met; the whole-request limit applies from here.
        record.TtfbMs = timeProvider.GetElapsedTime(startedAt).TotalMilliseconds;
        record.Status = (int)response.StatusCode;
        record.Provider = attempt.Plan.Provider.Name;
        record.UpstreamModel = attempt.Plan.UpstreamModel;
        linked.CancelAfter(server.TimeoutMs > 0
            ? TimeSpan.FromMilliseconds(Math.Max(1, server.TimeoutMs - record.TtfbMs))
            : Timeout.InfiniteTimeSpan);

        // the answer is committed to the client from here on: release what only the request needed.
        // NOTE: HTTP/1.1 has always finished sending the body when headers arrive; HTTP/2 may still be
        // sending it (duplex), in which case the lease is released when the request ends instead.
        if (content.Sent)
        {
            content.Forget();
            bodyLease.Dispose();
        }

        attempt.Request.Headers.Clear(); // already on the wire; the message itself lives as long as the response

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
            upstreamBody = attempt.Peeked ?? await response.Content.ReadAsStreamAsync(linked.Token);
            attempt.Peeked = null; // owned by the relay below from here
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or HttpRequestException)
        {
            context.Abort();
            record.Result = aborted.IsCancellationRequested ? "client_aborted" : "upstream_body_failed";
            return;
        }

        await using (upstreamBody)
        {
            if (isStream)
            {
                await RelayStreamAsync(context, attempt.Plan, record, upstreamBody, linked.Token);
            }
            else
            {
                await CopyBodyAsync(context, record, upstreamBody, linked.Token);
            }
        }
    }

    private async Task RelayStreamAsync(
        HttpContext context,
        UpstreamPlan plan,
        RequestRecord record,
        Stream upstreamBody,
        CancellationToken cancellationToken)
    {
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        context.Response.Headers["X-Accel-Buffering"] = "no";
        await context.Response.StartAsync(cancellationToken);

        var (end, reason) = await SseRelay.RelayAsync(
            upstreamBody,
            context.Response,
            () => context.RequestAborted.IsCancellationRequested,
            bytes => record.BytesOut += bytes,
            cancellationToken);

        switch (end)
        {
            case StreamEnd.Completed:
                break;
            case StreamEnd.ClientAborted:
                record.Result = "client_aborted";
                break;
            case StreamEnd.UpstreamErrorEvent:
                record.Result = "upstream_error_event";
                break;
            default:
                record.Result = end == StreamEnd.TimedOut ? "timeout_error" : "stream_error";
                Log.StreamBroken(logger, record.RequestId, plan.Provider.Name, reason);
                break;
        }
    }

    private static async Task CopyBodyAsync(HttpContext context, RequestRecord record, Stream upstreamBody, CancellationToken cancellationToken)
    {
        // Read straight into Kestrel's output pipe: no intermediate buffer, one flush per upstream read.
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
            record.Result = context.RequestAborted.IsCancellationRequested ? "client_aborted" : "upstream_body_failed";
            context.Abort();
        }
    }

    private static HttpRequestMessage BuildRequest(HttpRequest incoming, UpstreamPlan plan, HttpContent content)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, plan.Url)
        {
            Content = content,
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
