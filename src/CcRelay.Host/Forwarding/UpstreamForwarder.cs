using System.Net;
using System.Net.Http.Headers;
using CcRelay.Core;
using CcRelay.Host.Credentials;
using CcRelay.Host.Http;
using CcRelay.Host.Logging;
using CcRelay.Host.Metrics;
using CcRelay.Host.Observability;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using MetricOutcome = CcRelay.Core.AttemptOutcome;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// Sends one planned attempt upstream (<see cref="SendAsync"/>: nothing reaches the client yet, so the
/// caller may still fail over) and relays a chosen answer (<see cref="RelayAsync"/>: the commit).
/// <code>
///   (6) send          Client     Relay ──request──► Upstream
///   (7) classify      Client     Relay ◄─headers─── Upstream   (none within first_byte_timeout: TimedOut; no connection: ConnectFailed)
///   (8) relay         Client ◄── Relay ◄──body───── Upstream   (SSE event by event; JSON copied)
///   (9) account       each attempt's outcome and span; the delivered answer's usage and cost
/// </code>
/// </summary>
internal sealed class UpstreamForwarder(HttpMessageInvoker invoker, CloudCredentials credentials, TimeProvider timeProvider, RelayMetrics metrics, ILogger<UpstreamForwarder> logger) : IDisposable
{
    /// <summary>How long a converted stream may be silent before a keep-alive (<see cref="CcRelayOptions.PingInterval"/>, tests); null: <c>server.stream_keepalive_ms</c>.</summary>
    internal TimeSpan? PingInterval { get; init; }

    /// <summary>
    /// Sends one attempt and waits for its response headers (<paramref name="sentModel"/>: the model the attempt's
    /// body names before the provider's mapping, when a stage, switch or pipeline changed the client's); an error answer (4xx/5xx, not a stream) is
    /// buffered so it can be classified and still relayed later. Nothing is written to the client. The
    /// attempt is counted and its span ended here when it gets no response, else by <see cref="AttemptResponse.End"/>.
    /// </summary>
    public async Task<AttemptOutcome> SendAsync(
        HttpContext context,
        RelaySnapshot snapshot,
        UpstreamPlan plan,
        ReadOnlyMemory<byte> body,
        RequestRecord record,
        CancellationToken lost = default,
        AttemptPipeline? pipeline = null,
        string? sentModel = null)
    {
        var server = snapshot.Config.Server;
        var debug = snapshot.Config.Logging.DebugOptions;

        // an answer the relay makes itself (a failed pipeline, an on_dropped refusal, a translated count_tokens):
        // no upstream attempt, no credential, no time to first byte
        var local = LocalAnswer.TryOfPlan(pipeline is { Failed: true }, plan, out var made) ? made : null;

        // runs before the first await: attempts started by a hedge are numbered in order
        if (local is null)
        {
            record.Attempts++;
        }

        var keyId = record.Detailed ? KeyIdOf(snapshot, plan) : "-";
        record.KeyId = keyId;
        var span = RelayTracing.StartAttempt(plan, record);

        // One token for the whole attempt: the client's abort, linked with the relay's own deadline
        // (first-byte timeout until headers arrive, then what is left of server.timeout_ms). Whichever
        // fired is told apart by `aborted.IsCancellationRequested`.
        var aborted = context.RequestAborted;
        // `lost`: the attempt lost a hedge race; it is reported as abandoned, like a client abort
        var linked = lost.CanBeCanceled ? CancellationTokenSource.CreateLinkedTokenSource(aborted, lost) : CancellationTokenSource.CreateLinkedTokenSource(aborted);
        linked.CancelAfter(TimeSpan.FromMilliseconds(server.FirstByteTimeoutMs));
        var sentAt = timeProvider.GetTimestamp();

        // :: Step 6: send  Relay ──► Upstream
        var content = new UpstreamBodyContent(body);
        var request = BuildRequest(context.Request, plan, content);
        if (span is not null && snapshot.Config.Otel.PropagateTraceContext)
        {
            RelayTracing.Inject(span, request);
        }

        if (DebugLog.IsOn(logger, debug.LogRequestHeaders))
        {
            var secrets = DebugLog.Secrets(context, snapshot);
            Log.DebugUpstreamRequest(logger, record.RequestId, plan.Provider.Name, Redact.url(secrets, plan.Url), Redact.headers(secrets, DebugLog.Pairs(request)));
        }

        record.Timing.UpstreamWaitStarts(); // ends in the finally below
        try
        {
            // the credential step: signing or a token, over the final request
            if (local is null && !plan.Signing.IsStatic && await credentials.ApplyAsync(request, plan, body, linked.Token) is { } noCredential)
            {
                return NoResponse(AttemptFailure.ConnectFailed, noCredential);
            }

            // a plan the relay answers itself (a translated provider's count_tokens) calls no upstream
            // (a translated count_tokens is counted with a real tokenizer over the translated request)
            var response = Dialect.localAnswer(plan) is { } answer
                ? LocalResponse(request, answer.Value.Item1, await TokenCounter.AnswerAsync(plan, body) ?? answer.Value.Item2)
                : await invoker.SendAsync(request, linked.Token);
            var attempt = new AttemptResponse(plan, request, response, content, linked, timeProvider.GetElapsedTime(sentAt), metrics, span)
            {
                KeyId = keyId,
                Pipeline = pipeline,
                Local = local,
            };

            // a redirect is never followed (neither client does) nor passed on: no answer from this upstream
            if (UpstreamRedirect.refusal(attempt.Status, response.Headers.Location?.OriginalString) is { } redirect)
            {
                attempt.End(MetricOf(AttemptFailure.ConnectFailed), null, ErrorOf(AttemptFailure.ConnectFailed));
                attempt.Dispose();
                return Failed(AttemptFailure.ConnectFailed, redirect.Value);
            }

            // :: Step 7: classify — the headers arrived (an error body is buffered, a stream peeked, below)
            if (local is null)
            {
                metrics.RecordTimeToFirstByte(plan.Provider.Name, plan.UpstreamModel, timeProvider.GetElapsedTime(record.Timing.StartedAt));
            }

            if (DebugLog.IsOn(logger, debug.LogResponseHeaders))
            {
                Log.DebugResponseHeaders(logger, record.RequestId, plan.Provider.Name, attempt.Status, Redact.headers(DebugLog.Secrets(context, snapshot), DebugLog.Pairs(response)));
            }

            var framing = IsEventStream(response) ? Framing.Sse : IsAwsEventStream(response) ? Framing.AwsEventStream : Framing.Other;
            var reading = Dialect.reading(plan.Answer, (int)response.StatusCode, framing);
            var converted = reading.IsConvertEventStream || reading.IsTranslateStream;
            attempt.IsStream = converted || framing.IsSse;
            attempt.Converted = converted;
            var translated = reading.IsTranslate;

            // a mapped or switched model's answer names the client's model (AnswerModel; docs/providers.md)
            var renaming = plan.Operation.IsMessages && AnswerModel.renames(record.Model, sentModel ?? record.Model, plan.Provider.ModelMapping);
            attempt.Renames = renaming;
            var renamesJson = renaming && response.IsSuccessStatusCode && !attempt.IsStream;
            var answerPlugins = response.IsSuccessStatusCode && !attempt.IsStream && PipelineAnswers.HasPlugins(pipeline, snapshot);
            if (((int)response.StatusCode >= 400 && !attempt.IsStream) || translated || renamesJson || answerPlugins)
            {
                try
                {
                    await response.Content.LoadIntoBufferAsync(linked.Token);
                    if (translated)
                    {
                        // the answer in the Anthropic shape: a cloud's error envelope, Bedrock's token count
                        await AnswerDialects.TranslateAsync(plan.Answer, response, linked.Token);
                    }

                    if (pipeline is { Failed: false, Selected.Response.IsEmpty: false } && (int)response.StatusCode < 400)
                    {
                        // :: Step 7: the answer's steps on a whole JSON answer (repair_tool_json, plugins that see response)
                        var steps = await PipelineAnswers.ApplyAsync(pipeline, snapshot, plan.Provider.Name, record.Model, response, linked.Token);
                        attempt.AnswerReport = steps.Report;
                        attempt.AnswerRefusal = steps.Refusal;
                    }

                    if (renamesJson && attempt.AnswerRefusal is null)
                    {
                        attempt.RenamedFrom = await RenameJsonAsync(response, record.Model, linked.Token);
                    }
                }
                catch (Exception e) when (e is OperationCanceledException or IOException or HttpRequestException)
                {
                    var failure = aborted.IsCancellationRequested ? AttemptFailure.ClientAborted : AttemptFailure.ConnectFailed;
                    attempt.End(MetricOf(failure), null, ErrorOf(failure));
                    attempt.Dispose();
                    return Failed(failure, "upstream error body could not be read");
                }
            }

            else if (response.IsSuccessStatusCode && attempt.IsStream)
            {
                // a stream is judged by its first event: an `error` before any content may still fail over
                try
                {
                    var upstream = await response.Content.ReadAsStreamAsync(linked.Token);
                    var keepAliveAfter = PingInterval ?? TimeSpan.FromMilliseconds(server.StreamKeepAliveMs);
                    var stream = converted ? new EventStreamSseStream(upstream, DecoderOf(plan), keepAliveAfter, server.StreamKeepAlive) : upstream;
                    if (pipeline is { Failed: false, RepairsToolJson: true })
                    {
                        // tool input fragments held to their block's end, then sent whole (repaired when needed)
                        stream = new EventStreamSseStream(stream, new ToolJsonRepairDecoder(), keepAliveAfter, server.StreamKeepAlive);
                    }

                    var peek = await StreamPeek.FirstEventAsync(stream, timeProvider, linked.Token);
                    var prefix = peek.Prefix;
                    if (renaming && AnswerModel.ofStreamStart(prefix, record.Model) is { IsSome: true } renamed)
                    {
                        // message_start is among the events read ahead: its model is edited there, nothing else
                        prefix = renamed.Value.Bytes;
                        attempt.RenamedFrom = renamed.Value.Was;
                    }

                    attempt.Peeked = new PrefixedStream(prefix, stream, peek.Pending, peek.PendingBuffer);
                    attempt.StreamErrorType = peek.ErrorType;
                    if (peek.Ended && peek.Prefix.Length == 0)
                    {
                        attempt.End(MetricOf(AttemptFailure.ConnectFailed), null, ErrorOf(AttemptFailure.ConnectFailed));
                        attempt.Dispose();
                        return Failed(AttemptFailure.ConnectFailed, "upstream stream ended before its first event");
                    }
                }
                catch (OperationCanceledException) when (!aborted.IsCancellationRequested && !lost.IsCancellationRequested)
                {
                    attempt.End(MetricOf(AttemptFailure.TimedOut), null, ErrorOf(AttemptFailure.TimedOut));
                    attempt.Dispose();
                    return Failed(AttemptFailure.TimedOut, $"upstream sent no event within {server.FirstByteTimeoutMs} ms");
                }
                catch (Exception e) when (e is OperationCanceledException or IOException or HttpRequestException)
                {
                    var failure = aborted.IsCancellationRequested || lost.IsCancellationRequested ? AttemptFailure.ClientAborted : AttemptFailure.ConnectFailed;
                    attempt.End(MetricOf(failure), null, ErrorOf(failure));
                    attempt.Dispose();
                    return Failed(failure, "upstream stream broke before its first event");
                }
            }

            return new AttemptOutcome(attempt, AttemptFailure.None, "");
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested || lost.IsCancellationRequested)
        {
            return NoResponse(AttemptFailure.ClientAborted, "client aborted");
        }
        catch (OperationCanceledException)
        {
            return NoResponse(AttemptFailure.TimedOut, $"upstream sent no response headers within {server.FirstByteTimeoutMs} ms");
        }
        catch (HttpRequestException e)
        {
            return NoResponse(AttemptFailure.ConnectFailed, $"upstream connection failed ({Describe(e)})");
        }
        finally
        {
            // the upstream's share of the request's time: headers, an error body, a stream's first event
            // (a hedge and the attempt it races overlap: the union of their waits counts, once)
            record.Timing.UpstreamWaitEnds();
        }

        AttemptOutcome NoResponse(AttemptFailure failure, string reason)
        {
            request.Dispose();
            linked.Dispose();
            metrics.RecordAttempt(plan.Provider.Name, MetricOf(failure));
            RelayTracing.EndAttempt(span, 0, null, ErrorOf(failure), MetricOf(failure));
            return Failed(failure, reason);
        }

        static AttemptOutcome Failed(AttemptFailure failure, string reason) => new(null, failure, reason);
    }

    private static MetricOutcome MetricOf(AttemptFailure failure) =>
        failure switch
        {
            AttemptFailure.TimedOut => MetricOutcome.NewFailure("timeout"),
            AttemptFailure.ClientAborted => MetricOutcome.Abandoned,
            _ => MetricOutcome.NewFailure("connection"),
        };

    private static string ErrorOf(AttemptFailure failure) =>
        failure switch
        {
            AttemptFailure.TimedOut => "timeout_error",
            AttemptFailure.ClientAborted => "client_aborted",
            _ => "api_error",
        };

    // bodyLease owns the pooled memory behind the body; it is disposed as soon as the answer is committed to
    // the client and the body has been sent, so a long stream does not pin it. Only the delivered answer
    // releases it: a failed attempt leaves it for the next one.
    // Returns the delivered answer's usage, when it told it (for key-pool settlement).
    // Broke: the answer failed after its first bytes reached the client (an error event mid-stream, a truncated
    // body, the whole-request time limit), which counts against the provider's health.
    public async Task<(Usage? Usage, bool Broke)> RelayAsync(HttpContext context, RelaySnapshot snapshot, AttemptResponse attempt, IDisposable bodyLease, RequestRecord record, long startedAt)
    {
        var server = snapshot.Config.Server;
        var response = attempt.Response;
        var content = attempt.Content;
        var linked = attempt.Cancellation;
        var aborted = context.RequestAborted;
        var plan = attempt.Plan;
        var outcome = attempt.StreamErrorType is null ? Outcome.ofStatus(attempt.Status) : MetricOutcome.NewFailure("error event");
        AnswerUsage? answer = null;
        try
        {
            // the first-byte limit is met; the whole-request limit applies from here
            record.TtfbMs = timeProvider.GetElapsedTime(startedAt).TotalMilliseconds;
            record.Status = attempt.Status;
            record.UpstreamStatus = attempt.Local is null ? attempt.Status : 0;
            record.Local = attempt.Local?.WireName;
            record.Provider = plan.Provider.Name;
            record.UpstreamModel = plan.UpstreamModel;
            record.Translated = plan.Body.IsTranslate;
            record.RenamedFrom = attempt.RenamedFrom;
            record.KeyId = attempt.KeyId;
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

            var isStream = attempt.IsStream;
            CopyResponseHeaders(context.Response, response, isStream);
            if (attempt.Converted)
            {
                context.Response.ContentType = "text/event-stream; charset=utf-8";
            }

            if (attempt.Renames)
            {
                // the answer names the client's model; the model that answered stays visible here (and in the log)
                context.Response.Headers["x-cc-relay-model"] = attempt.RenamedFrom ?? plan.UpstreamModel;
            }

            if (!plan.Dropped.IsEmpty)
            {
                // what the provider cannot take was left out: the client is told which
                context.Response.Headers["x-cc-relay-dropped-betas"] = string.Join(",", plan.Dropped);
            }

            var transformers = string.Join(",", new[] { attempt.Pipeline?.Report ?? "", attempt.AnswerReport }.Where(r => r.Length > 0));
            if (transformers.Length > 0)
            {
                // the transformers the attempt's pipelines ran (docs/pipelines.md): in place, (reserialised), (skipped), …
                context.Response.Headers["x-cc-relay-transformers"] = transformers;
            }

            if (!plan.DroppedFeatures.IsEmpty)
            {
                // what a translated target cannot do was left out of the request (or, refusing, named in a 400):
                // the client, the request line and (when it was left out) the metric say which
                var dropped = string.Join(",", plan.DroppedFeatures);
                context.Response.Headers["x-cc-relay-dropped"] = dropped;
                record.Dropped = dropped;
                if (!Dialect.refusedDropped(plan))
                {
                    metrics.RecordDropped(plan.Provider.Name, plan.DroppedFeatures);
                }
            }
            if (record.Status >= 400)
            {
                // the relay's own error answer is its own result (invalid_request_error, api_error), not an upstream_… one
                record.Ended(attempt.Local is null ? RequestResult.OfUpstreamStatus(record.Status) : LocalAnswer.Result(record.Status), relayed: true);
            }

            if (attempt.AnswerRefusal is not null)
            {
                // an answer-side plugin failed under on_error: fail: the answer is withheld, the relay's error sent
                // instead; the upstream answered, so its attempt stays a success
                context.Response.StatusCode = StatusCodes.Status500InternalServerError;
                record.Status = StatusCodes.Status500InternalServerError;
                record.Ended(RequestResult.PluginFailed, relayed: true);
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
                record.Ended(aborted.IsCancellationRequested ? RequestResult.ClientAborted : RequestResult.BodyFailed, relayed: true);
                outcome = aborted.IsCancellationRequested ? MetricOutcome.Abandoned : MetricOutcome.NewFailure("body");
                return (null, !aborted.IsCancellationRequested);
            }

            await using (upstreamBody)
            {
                if (isStream)
                {
                    // NOTE: awaited here, not in a helper: an async helper's state machine would live as long as the stream
                    var debug = snapshot.Config.Logging.DebugOptions;
                    using var capture = DebugLog.IsOn(logger, debug.LogResponseBody) ? new BodyCapture(debug.MaxBodyLogSize) : null;
                    using var plugins = StreamEventPlugins.For(attempt.Pipeline, snapshot, plan.Provider.Name, record.Model, record.RequestId);
                    var (end, reason, tap) = await SseRelay.RelayAsync(upstreamBody, context, record, linked.Token, capture, plugins);
                    (outcome, answer) = StreamEnded(context, snapshot, plan, record, outcome, end, reason, tap, capture);
                }
                else
                {
                    (outcome, answer) = await CopyBodyAsync(context, snapshot, plan, record, upstreamBody, response.Content.Headers.ContentLength, outcome, linked.Token, refused: attempt.AnswerRefusal is not null);
                }
            }

            // an answer that began as an error (status or first event) did not break: it was an error all along
            var began = attempt.StreamErrorType is null && attempt.Status < 400;
            return (answer.Usage?.Value, began && outcome.IsFailure);
        }
        finally
        {
            // :: Step 9: account for the delivered attempt
            attempt.End(outcome, answer, outcome.IsSuccess ? null : record.ErrorType ?? (outcome.IsAbandoned ? "client_aborted" : record.Result));
        }
    }

    /// <summary>Accounts for a relayed stream: its usage, its debug capture, and what its end means for the record and the metrics.</summary>
    private (MetricOutcome Outcome, AnswerUsage Answer) StreamEnded(
        HttpContext context,
        RelaySnapshot snapshot,
        UpstreamPlan plan,
        RequestRecord record,
        MetricOutcome outcome,
        StreamEnd end,
        string reason,
        UsageTap tap,
        BodyCapture? capture)
    {
        var answer = AnswerUsage.OfTap(tap);
        Answered(snapshot, plan, record, answer);
        if (capture is not null)
        {
            var debug = snapshot.Config.Logging.DebugOptions;
            Log.DebugResponseBody(logger, record.RequestId, plan.Provider.Name, capture.TotalLength, Redact.sse(DebugLog.Secrets(context, snapshot), debug.MaxBodyLogSize, capture.Span));
        }

        switch (end.Tag)
        {
            case StreamEnd.Tags.Completed:
                return (outcome, answer);
            case StreamEnd.Tags.ClientAborted:
                record.Ended(RequestResult.ClientAborted, relayed: true);
                return (MetricOutcome.Abandoned, answer);
            case StreamEnd.Tags.PluginFailed:
                // the relay's plugin failed, not the upstream: the attempt is abandoned (it counts neither way)
                record.Ended(RequestResult.PluginFailed, relayed: true);
                Log.StreamBroken(logger, record.RequestId, plan.Provider.Name, reason);
                return (MetricOutcome.Abandoned, answer);
            case StreamEnd.Tags.UpstreamErrorEvent:
                record.Ended(RequestResult.NewUpstreamErrorEvent(tap.ErrorType?.Value ?? "api_error"), relayed: true);
                return (MetricOutcome.NewFailure("error event"), answer);
            default:
                record.Ended(end.IsTimedOut ? RequestResult.TimedOut : RequestResult.StreamBroken, relayed: true);
                Log.StreamBroken(logger, record.RequestId, plan.Provider.Name, reason);
                return (MetricOutcome.NewFailure(record.Result), answer);
        }
    }

    private async Task<(MetricOutcome Outcome, AnswerUsage Answer)> CopyBodyAsync(
        HttpContext context,
        RelaySnapshot snapshot,
        UpstreamPlan plan,
        RequestRecord record,
        Stream upstreamBody,
        long? contentLength,
        MetricOutcome outcome,
        CancellationToken cancellationToken,
        bool refused = false)
    {
        // Read straight into Kestrel's output pipe: no intermediate buffer, one flush per upstream read. The
        // first MiB is also copied aside: the answer's usage sits at its end and is read once it is relayed.
        using var capture = new BodyCapture(BodyCapture.JsonAnswerLimit, contentLength);
        var writer = context.Response.BodyWriter;
        var read = StreamRead.Eof;
        var write = StreamWrite.Delivered;
        while (true)
        {
            var memory = writer.GetMemory(4096);
            int count;
            try
            {
                count = await upstreamBody.ReadAsync(memory, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                read = StreamRead.Cancelled;
                break;
            }
            catch (Exception e) when (e is IOException or HttpRequestException or ObjectDisposedException)
            {
                read = StreamRead.NewFailed(e.Message);
                break;
            }

            if (count == 0)
            {
                break;
            }

            capture.Append(memory.Span[..count]);
            writer.Advance(count);
            record.BytesOut += count;
            try
            {
                var flushed = await writer.FlushAsync(cancellationToken);
                if (flushed.IsCanceled || flushed.IsCompleted)
                {
                    write = StreamWrite.Failed; // the client's side of the connection is done
                    break;
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                write = StreamWrite.Cancelled; // the client's abort or the relay's time limit
                break;
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException)
            {
                write = StreamWrite.Failed; // the client is gone, whether or not RequestAborted says so yet
                break;
            }
        }

        // Core decides whose side ended the copy: a failed write is the client leaving, never the upstream
        var end = BodyEnd.Classify(new BodyFacts(read, write, context.RequestAborted.IsCancellationRequested));
        if (!end.IsCompleted)
        {
            // NOTE: the status line is gone already; ending the response normally would make a truncated
            // JSON body look complete. Abort the connection so the client sees the truncation.
            context.Abort();
            outcome = end.IsClientAborted ? MetricOutcome.Abandoned : MetricOutcome.NewFailure("body");
            record.Ended(end.IsClientAborted ? RequestResult.ClientAborted : RequestResult.BodyFailed, relayed: true);
        }
        else
        {
            // the answer is whole: the client has it before the accounting below runs
            await ResponseEnd.CompleteAsync(context.Response);
        }

        var answer = AnswerUsage.OfJson(capture.Span);
        Answered(snapshot, plan, record, answer);
        if (record.Status >= 400 && end.IsCompleted && !refused)
        {
            // an error answer passed through: its error type from its body (the relay's own error answer is its own result)
            record.Ended(record.Local is null ? RequestResult.NewUpstreamStatus(record.Status, answer.ErrorType) : LocalAnswer.Result(record.Status), relayed: true);
        }

        var debug = snapshot.Config.Logging.DebugOptions;
        if (DebugLog.IsOn(logger, debug.LogResponseBody))
        {
            Log.DebugResponseBody(logger, record.RequestId, plan.Provider.Name, capture.TotalLength, Redact.json(DebugLog.Secrets(context, snapshot), debug.MaxBodyLogSize, capture.Span));
        }

        return (outcome, answer);
    }

    /// <summary>Records what the answer said about itself on the record: its usage and its cost (counted in the metrics by <see cref="RequestAccounting"/>).</summary>
    private void Answered(RelaySnapshot snapshot, UpstreamPlan plan, RequestRecord record, AnswerUsage answer)
    {
        record.Answer = answer;
        if (answer.Usage?.Value is not { } usage)
        {
            return;
        }

        // a translated answer names the client's model (Core: ChatAnswerPlan.Model); the price is the target's
        var model = plan.Body.IsTranslate ? plan.UpstreamModel : record.RenamedFrom ?? answer.Model?.Value ?? plan.UpstreamModel;
        record.CostUsd = Pricing.cost(snapshot.PricesFor(plan.Provider.Name), model, usage)?.Value;
    }

    /// <summary>
    /// Names <paramref name="model"/> in a buffered JSON answer (<see cref="AnswerModel.ofJson"/>, a byte edit of the one
    /// string); returns the model the answer named before, null when it was left as it came.
    /// </summary>
    private static async Task<string?> RenameJsonAsync(HttpResponseMessage response, string model, CancellationToken cancellationToken)
    {
        var bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken);
        if (AnswerModel.ofJson(bytes, model) is not { IsSome: true } renamed)
        {
            return null;
        }

        var original = response.Content;
        response.Content = new ByteArrayContent(renamed.Value.Bytes);
        foreach (var header in original.Headers)
        {
            if (!string.Equals(header.Key, "Content-Length", StringComparison.OrdinalIgnoreCase))
            {
                response.Content.Headers.TryAddWithoutValidation(header.Key, header.Value);
            }
        }

        original.Dispose();
        return renamed.Value.Was;
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
            if (!Headers.forwardRequest(header.Key) || plan.DropsHeader(header.Key))
            {
                continue;
            }

            // one value (the usual case) is added as a string: the StringValues is not boxed
            var values = header.Value;
            var added = values.Count == 1
                ? request.Headers.TryAddWithoutValidation(header.Key, values.ToString())
                : request.Headers.TryAddWithoutValidation(header.Key, (IEnumerable<string?>)values);
            if (!added)
            {
                _ = values.Count == 1
                    ? request.Content.Headers.TryAddWithoutValidation(header.Key, values.ToString())
                    : request.Content.Headers.TryAddWithoutValidation(header.Key, (IEnumerable<string?>)values);
            }
        }

        foreach (var (name, value) in plan.SetHeaders)
        {
            request.Headers.Remove(name);
            request.Headers.TryAddWithoutValidation(name, value);
        }

        foreach (var (name, value) in plan.Credentials)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return request;
    }

    /// <summary>How a converted stream of this plan's dialect becomes Anthropic SSE.</summary>
    private static IAnswerDecoder DecoderOf(UpstreamPlan plan) =>
        plan.Answer switch
        {
            AnswerDialect.OpenAiChat chat => new ChatStreamDecoder(chat.Item),
            AnswerDialect.OpenAiResponses responses => new ResponsesStreamDecoder(responses.Item),
            AnswerDialect.Gemini gemini => new GeminiStreamDecoder(gemini.Item),
            _ => new BedrockEventStreamDecoder(),
        };

    /// <summary>The answer of a plan the relay answers itself, as if an upstream had given it.</summary>
    private static HttpResponseMessage LocalResponse(HttpRequestMessage request, int status, byte[] body)
    {
        var response = new HttpResponseMessage((HttpStatusCode)status)
        {
            RequestMessage = request,
            Content = new ByteArrayContent(body),
        };
        response.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return response;
    }

    /// <summary>Whether the answer is an AWS event stream (<c>application/vnd.amazon.eventstream</c>).</summary>
    private static bool IsAwsEventStream(HttpResponseMessage response) =>
        response.Content.Headers.NonValidated.TryGetValues("Content-Type", out var values)
        && values.ToString().StartsWith("application/vnd.amazon.eventstream", StringComparison.OrdinalIgnoreCase);

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

    /// <summary>
    /// Whether the answer is an SSE stream (<c>Content-Type: text/event-stream</c>, parameters ignored).
    /// NOTE: read from the raw header: the typed <c>ContentType</c> would parse it into header objects that the
    /// response keeps for as long as a stream is open.
    /// </summary>
    private static bool IsEventStream(HttpResponseMessage response)
    {
        if (!response.Content.Headers.NonValidated.TryGetValues("Content-Type", out var values) || values.Count != 1)
        {
            return false;
        }

        var value = values.ToString().AsSpan();
        var semicolon = value.IndexOf(';');
        var mediaType = (semicolon < 0 ? value : value[..semicolon]).Trim();
        return mediaType.Equals("text/event-stream", StringComparison.OrdinalIgnoreCase);
    }

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

    /// <summary>Closes the pooled upstream connections (the relay's DI container owns the forwarder).</summary>
    public void Dispose() => invoker.Dispose();
}
