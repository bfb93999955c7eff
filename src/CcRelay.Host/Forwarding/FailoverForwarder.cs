using System.Globalization;
using CcRelay.Core;
using CcRelay.Host.Credentials;
using CcRelay.Host.Http;
using CcRelay.Host.Logging;
using CcRelay.Host.Routing;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using MetricOutcome = CcRelay.Core.AttemptOutcome;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// Walks a request's plan until an answer can be delivered: Core decides (<c>Relay.plan</c>, <c>next</c>,
/// <c>learn</c>, <c>complete</c>, <c>release</c>, each one CAS on the <see cref="RuntimeCell"/>), the host
/// acts (<see cref="UpstreamForwarder.SendAsync"/>, then <see cref="UpstreamForwarder.RelayAsync"/> for the
/// one answer delivered). Nothing reaches the client before an answer is delivered, so every retry is
/// invisible to it.
/// </summary>
internal sealed class FailoverForwarder(
    UpstreamForwarder forwarder,
    CloudCredentials credentials,
    RuntimeCell cell,
    TimeProvider timeProvider,
    ILogger<FailoverForwarder> logger,
    Plugins.PluginHost? plugins = null)
{
    public async Task ForwardAsync(
        HttpContext context,
        RelaySnapshot snapshot,
        RequestFacts facts,
        RequestBody body,
        IReadOnlyList<Credential> forward,
        string pathAndQuery,
        RequestRecord record,
        long startedAt,
        StageDecision stage,
        ClientConfig? client = null)
    {
        // NOTE: choosing and relaying are two methods so that everything the choice needed (the plan, the
        // dispatch, the routing request, the closures over them, a kept failed answer) is garbage by the time a
        // stream starts: an async method's locals live as long as the method, a long stream's included.
        if (await ChooseAsync(context, snapshot, facts, body, forward, pathAndQuery, record, startedAt, stage, client) is not { } delivery)
        {
            return;
        }

        // :: Step 8: relay the delivered answer; its attempt is released once the relay is over
        try
        {
            var (usage, broke) = await forwarder.RelayAsync(context, snapshot, delivery.Answer, body, record, startedAt);
            if (usage is not null)
            {
                // the answer's real usage settles the key's token estimate
                cell.Update((delivery.Attempt, usage), static (runtime, now, s) => Relay.settle(runtime, now, s.Attempt, s.usage));
            }

            if (broke && delivery.ReachedUpstream)
            {
                // too late to fail over, not too late to count: a provider that breaks mid-stream trips its breaker
                cell.Transition(delivery.Attempt, static (runtime, now, a) => Relay.brokeAfterDelivery(runtime, now, a));
            }
        }
        finally
        {
            delivery.Answer.Dispose();

            // :: Step 9: account — the attempt is released exactly once per send (one that reached no upstream gives its key's capacity back)
            Release(delivery.Attempt, Dialect.operationOf(pathAndQuery).IsCountTokens || !delivery.ReachedUpstream);
        }
    }

    /// <summary>An answer chosen for the client, and the attempt that got it (released after the relay).</summary>
    private sealed record Delivery(AttemptResponse Answer, Attempt Attempt, bool ReachedUpstream);

    /// <summary>
    /// Walks the plan until an answer is to be delivered (returned, its attempt not yet released) or the
    /// request is over (null: the relay answered itself, passed an error through, or the client left).
    /// </summary>
    private async Task<Delivery?> ChooseAsync(
        HttpContext context,
        RelaySnapshot snapshot,
        RequestFacts facts,
        RequestBody body,
        IReadOnlyList<Credential> forward,
        string pathAndQuery,
        RequestRecord record,
        long startedAt,
        StageDecision stage,
        ClientConfig? client)
    {
        var aborted = context.RequestAborted;

        // :: Step 4: plan — what routing needs from the request
        var sessionId = context.Request.Headers["x-claude-code-session-id"].ToString();
        var conversation = Affinity.conversationKey(sessionId.Length > 0 ? sessionId : null, body.Span, facts);
        var request = Relay.request(facts, conversation, forward.Count > 0, unchecked((ulong)Random.Shared.NextInt64()), cell.Now);

        // :: Step 4: plan — the ordered providers (the strategy orders the stage's candidates)
        var dispatch = cell.Transition((request, stage.Targets), static (runtime, now, s) => Relay.planRoute(runtime, now, s.request, s.Targets));
        if (client is not null)
        {
            // a client limited to some providers (clients[].providers) is planned on those only
            dispatch = Relay.restrictTo(client.Providers, dispatch);
        }

        var countTokens = Dialect.operationOf(pathAndQuery).IsCountTokens;

        // the last failed answer, kept for a Stop PassThrough until another answer replaces it
        AttemptResponse? kept = null;
        var lastReason = "";
        try
        {
            while (true)
            {
                // :: Step 4: plan — breaker admission and key pick for the next attempt
                var (step, next) = cell.Transition(dispatch, static (runtime, now, d) => Relay.next(runtime, now, d));
                dispatch = next;
                switch (step)
                {
                    case Step.Wait wait:
                        if (!await DelayAsync(wait.Delay, record, aborted))
                        {
                            return null;
                        }

                        continue;
                    case Step.Stop stop:
                        await StopAsync(context, snapshot, stop.Verdict, kept, lastReason, body, record, startedAt);
                        return null;
                }

                var attempt = ((Step.Send)step).Attempt;
                AttemptResponse? answer = null;
                var delivered = false;
                var reached = true;
                try
                {
                    // :: Step 6: send; with routing.hedge_after_ms, race a second attempt when the first is slow
                    AttemptOutcome outcome;
                    if (Failover.hedgeAfter(dispatch).IsSome)
                    {
                        (attempt, outcome, dispatch) = await SendOrHedgeAsync(context, snapshot, attempt, dispatch, facts, body, forward, pathAndQuery, record);
                    }
                    else
                    {
                        // no hedging: the attempt alone, without the race's machinery
                        outcome = await SendAsync(context, attempt, facts, body, forward, pathAndQuery, snapshot, record, CancellationToken.None);
                    }

                    record.Provider = attempt.ProviderName;
                    answer = outcome.Response;
                    lastReason = outcome.Reason;
                    var result = answer is null ? Failed(outcome.Failure)
                        : answer.Local is { } local ? AttemptResult.NewLocal(local) // the relay's own answer: delivered, nothing recorded for the provider
                        : answer.Status == StatusCodes.Status400BadRequest ? await ClassifyBadRequestAsync(attempt, answer)
                        : Learn(attempt, answer);
                    reached = Failover.reachedUpstream(result);

                    // :: Step 7: classify — record the outcome, decide: deliver, retry or stop
                    var (decision, after) = cell.Transition((dispatch, attempt, result), static (runtime, now, s) => Relay.complete(runtime, now, s.dispatch, s.attempt, s.result));
                    dispatch = after;
                    switch (decision)
                    {
                        case var _ when decision.IsDeliver && answer is not null:
                            Decorate(context.Response, snapshot, attempt, record);
                            delivered = true;
                            var delivery = new Delivery(answer, attempt, reached);
                            answer = null; // the caller owns it now
                            return delivery;
                        case Decision.Retry retry:
                            if (reached)
                            {
                                // (an attempt that sent nothing is no failure of its provider's)
                                (record.FailedOver ??= []).Add(attempt.ProviderName);
                            }

                            Log.AttemptFailed(logger, record.RequestId, attempt.Display, answer is null ? outcome.Reason
                                : answer.StreamErrorType is { } streamError ? "upstream stream began with an error event (" + streamError + ")"
                                : "upstream answered " + answer.Status.ToString(CultureInfo.InvariantCulture));
                            if (answer is not null)
                            {
                                answer.Discarded(); // the attempt is over: count it now, keep its answer for a pass-through
                                kept?.Dispose();
                                kept = answer;
                                answer = null;
                            }

                            if (retry.Delay > TimeSpan.Zero && !await DelayAsync(retry.Delay, record, aborted))
                            {
                                return null;
                            }

                            continue;
                        case Decision.Stop stop:
                            if (answer is not null)
                            {
                                kept?.Dispose();
                                kept = answer;
                                answer = null;
                            }

                            await StopAsync(context, snapshot, stop.Verdict, kept, lastReason, body, record, startedAt);
                            return null;
                        default:
                            // Abandon: the client is gone
                            record.Ended(RequestResult.ClientAborted);
                            return null;
                    }
                }
                finally
                {
                    answer?.Dispose();

                    // :: Step 9: account — exactly once per send (a delivered attempt's is after its relay)
                    if (!delivered)
                    {
                        Release(attempt, countTokens || !reached);
                    }
                }
            }
        }
        finally
        {
            // a failed answer kept for a pass-through is not needed once another answer is delivered
            kept?.Dispose();
        }
    }

    /// <summary>The attempt's upstream request (its provider, its key, its body) sent.</summary>
    private Task<AttemptOutcome> SendAsync(
        HttpContext context,
        Attempt attempt,
        RequestFacts facts,
        RequestBody body,
        IReadOnlyList<Credential> forward,
        string pathAndQuery,
        RelaySnapshot snapshot,
        RequestRecord record,
        CancellationToken lost)
    {
        // :: Step 5: a stage target's model (or a provider,model switch) replaces the client's, in place
        var source = body.Memory;
        if (attempt.Model.Length > 0 && attempt.Model != facts.Model)
        {
            var swapped = attempt.WithModel(source.Span, facts);
            var reread = RequestFacts.Inspect(swapped);
            if (reread.IsError)
            {
                return Task.FromResult(new AttemptOutcome(null, AttemptFailure.NotSent, "the request body could not take model " + attempt.Model + ": " + reread.ErrorValue.Message));
            }

            source = swapped;
            facts = reread.ResultValue;
        }

        // :: Step 5: the attempt's pipelines (docs/pipelines.md), when any is attached to its provider or model
        var selected = Pipeline.select(snapshot.Config.Pipelines, attempt.ProviderName, facts.Model, record.Stage);
        if (!selected.IsEmpty)
        {
            return SendTransformedAsync(context, attempt, facts, source, forward, pathAndQuery, snapshot, record, selected, lost);
        }

        // :: Step 5: plan the attempt — the provider's dialect decides URL, headers, body edit, credential and answer
        var plan = Dialect.plan(attempt.Provider, attempt.Key, facts, pathAndQuery, Betas(context, attempt.Provider), forward);
        var edited = Dialect.edit(plan, source.Span, facts, attempt.StripThinking);
        if (edited.IsError)
        {
            return Task.FromResult(new AttemptOutcome(null, AttemptFailure.NotSent, "the request body could not be reshaped for " + attempt.ProviderName + ": " + edited.ErrorValue));
        }

        (plan, var reshaped) = edited.ResultValue;
        var payload = reshaped is { IsSome: true } ? reshaped.Value : source;
        (plan, payload) = CarryThinking(plan, attempt, facts, payload);
        if (Dialect.usesToken(plan))
        {
            return SendWithTokenAsync(context, snapshot, plan, payload, record, lost, sentModel: facts.Model);
        }

        return forwarder.SendAsync(context, snapshot, plan, payload, record, lost, sentModel: facts.Model);
    }

    /// <summary>
    /// The thinking an Anthropic-shaped upstream can take (<see cref="ThinkingTurn.carry"/>, decided in Core): when the
    /// attempt crosses families (or retries a rejected signature) every thinking block goes, else the unsigned and
    /// relay-signed ones (above all the relay's own keep-alive block, which Claude Code sends back); when that leaves
    /// a tool loop with thinking on without its leading thinking block, thinking is off for this attempt. What was
    /// left out joins the plan's dropped features. A translation leaves another family's thinking out itself
    /// (<see cref="Dialect.edit"/>); a request without thinking blocks is not read.
    /// </summary>
    private static (UpstreamPlan Plan, ReadOnlyMemory<byte> Payload) CarryThinking(UpstreamPlan plan, Attempt attempt, RequestFacts facts, ReadOnlyMemory<byte> payload)
    {
        if (plan.Body.IsTranslate || !(attempt.StripThinking || facts.UnsignedThinking))
        {
            return (plan, payload);
        }

        var (carried, body) = ThinkingTurn.carry(plan, attempt.StripThinking, payload.Span);
        return (carried, body is { IsSome: true } ? body.Value : payload);
    }

    /// <summary>
    /// An attempt through its pipelines: (1) the Anthropic-phase steps (plugins included) on a copy of the request,
    /// its facts read again when they edited it; (2) the dialect's plan and edit of that request (a translator
    /// writes it with the translation-phase steps' fix-ups); (3) the
    /// upstream-phase steps on the body the dialect produced; (4) send. A step that fails under <c>on_error: fail</c>
    /// makes the attempt the relay's own Anthropic error (400 for a transformer, 500 for a plugin), sent nowhere.
    /// </summary>
    private async Task<AttemptOutcome> SendTransformedAsync(
        HttpContext context,
        Attempt attempt,
        RequestFacts facts,
        ReadOnlyMemory<byte> body,
        IReadOnlyList<Credential> forward,
        string pathAndQuery,
        RelaySnapshot snapshot,
        RequestRecord record,
        SelectedPipeline selected,
        CancellationToken lost)
    {
        // :: Step 5.1: the Anthropic request's steps, on a copy (the client's bytes stay for other attempts)
        var run = await PipelineRunner.RunAnthropicAsync(selected, snapshot, plugins, attempt.Provider, facts.Model, body.Span.ToArray(), context.RequestAborted);
        var transformedFacts = facts;
        if (run.Failure is null && run.Changed)
        {
            var inspected = RequestFacts.Inspect(run.Body);
            if (inspected.IsError)
            {
                run = Pipeline.record(run, selected.Anthropic.Last(), StepOutcome.NewFailed("the transformed request is not valid: " + inspected.ErrorValue.Message));
            }
            else
            {
                transformedFacts = inspected.ResultValue;
            }
        }

        ReadOnlyMemory<byte> anthropic = run.Changed ? run.Body : body;

        // :: Step 5.2: the dialect's plan and edit, as for any request
        var plan = Dialect.plan(attempt.Provider, attempt.Key, transformedFacts, pathAndQuery, Betas(context, attempt.Provider), forward);
        ReadOnlyMemory<byte> payload = anthropic;
        if (run.Failure is null)
        {
            // the translation-phase steps (reasoning_echo, gemini_schema_clean) set how the translator writes the request
            var dialect = Pipeline.dialect(attempt.Provider);
            var edited = Dialect.editWith(Pipeline.fixups(selected.Translation, dialect), plan, anthropic.Span, transformedFacts, attempt.StripThinking);
            if (edited.IsError)
            {
                return new AttemptOutcome(null, AttemptFailure.NotSent, "the request body could not be reshaped for " + attempt.ProviderName + ": " + edited.ErrorValue);
            }

            (plan, var reshaped) = edited.ResultValue;
            run = Pipeline.translated(selected.Translation, dialect, run);
            payload = reshaped is { IsSome: true } ? reshaped.Value : anthropic;
            (plan, payload) = CarryThinking(plan, attempt, transformedFacts, payload);

            // :: Step 5.3: the upstream body's steps
            if (!selected.Upstream.IsEmpty)
            {
                var thinking = Transformers.thinkingOf(anthropic.Span);
                var upstream = Pipeline.runBuiltIn(selected.Upstream, dialect, thinking, Pipeline.continueWith(payload.ToArray(), run));
                if (upstream.Changed)
                {
                    payload = upstream.Body;
                }

                run = upstream;
            }
        }

        var report = Pipeline.report(run);
        var skipped = Redact.scrub(snapshot.Secrets, Pipeline.skipped(run.Reports));
        Log.PipelineApplied(logger, record.RequestId, attempt.ProviderName, report, skipped);
        var pipeline = new AttemptPipeline(report, skipped, selected, run.Failure is not null) { Host = plugins };
        if (run.Failure is { } failure)
        {
            // nothing half-transformed goes anywhere: the relay answers with the step's error
            plan = Pipeline.failedPlan(plan, snapshot.Secrets, failure.Value);
            return await forwarder.SendAsync(context, snapshot, plan, ReadOnlyMemory<byte>.Empty, record, lost, pipeline);
        }

        if (Dialect.usesToken(plan))
        {
            return await SendWithTokenAsync(context, snapshot, plan, payload, record, lost, pipeline, transformedFacts.Model);
        }

        return await forwarder.SendAsync(context, snapshot, plan, payload, record, lost, pipeline, transformedFacts.Model);
    }

    /// <summary>
    /// A request with an OAuth token (Google, Entra ID): a 401 means the token went stale before its time (revoked,
    /// rotated): the token is dropped and the request sent once more with a fresh one.
    /// </summary>
    private async Task<AttemptOutcome> SendWithTokenAsync(HttpContext context, RelaySnapshot snapshot, UpstreamPlan plan, ReadOnlyMemory<byte> payload, RequestRecord record, CancellationToken lost, AttemptPipeline? pipeline = null, string? sentModel = null)
    {
        var outcome = await forwarder.SendAsync(context, snapshot, plan, payload, record, lost, pipeline, sentModel);
        if (outcome.Response is not { } refused || !Dialect.retriesWithFreshToken(plan, refused.Status))
        {
            return outcome;
        }

        refused.Dispose();
        credentials.Invalidate(plan);
        return await forwarder.SendAsync(context, snapshot, plan, payload, record, lost, pipeline, sentModel);
    }

    /// <summary>
    /// The attempt is over; a token count, or an attempt that reached no upstream (<c>Failover.reachedUpstream</c>:
    /// the relay answered it itself, or sent nothing), also gives back the key capacity it took (<c>Relay.refund</c>).
    /// </summary>
    private void Release(Attempt attempt, bool refund)
    {
        if (refund)
        {
            cell.Update(attempt, static (runtime, now, a) => Relay.refund(runtime, now, a));
        }

        cell.Update(attempt, static (runtime, _, a) => Relay.release(runtime, a));
    }

    /// <summary>The client's <c>anthropic-beta</c> values (a dialect may move them into the body or drop some).</summary>
    private static IEnumerable<string> Betas(HttpContext context, ProviderConfig provider) =>
        Dialect.readsBetas(provider) && context.Request.Headers.TryGetValue("anthropic-beta", out var betas) && betas.Count > 0
            ? Headers.betaValues(betas!)
            : [];

    /// <summary>
    /// Sends the attempt. When <c>Failover.hedgeAfter</c> passes with no answer and <c>Relay.next</c> on the
    /// hedged dispatch sends a second attempt, the two race: the first to get an answer wins (or, when
    /// neither gets one, the last to fail); the loser is cancelled, completed as <c>Abandoned</c> and released
    /// here. Returns the attempt to carry on with and the dispatch.
    /// </summary>
    private async Task<(Attempt Attempt, AttemptOutcome Outcome, Dispatch Dispatch)> SendOrHedgeAsync(
        HttpContext context,
        RelaySnapshot snapshot,
        Attempt attempt,
        Dispatch dispatch,
        RequestFacts facts,
        RequestBody body,
        IReadOnlyList<Credential> forward,
        string pathAndQuery,
        RequestRecord record)
    {
        // only called with routing.hedge_after_ms set (ChooseAsync sends a lone attempt itself)
        var hedgeAfter = Failover.hedgeAfter(dispatch);
        using var firstLost = new CancellationTokenSource();
        var first = SendAsync(context, attempt, facts, body, forward, pathAndQuery, snapshot, record, firstLost.Token);

        using (var timer = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted))
        {
            var delay = Task.Delay(hedgeAfter.Value, timeProvider, timer.Token);
            if (await Task.WhenAny(first, delay) == first)
            {
                await timer.CancelAsync();
                return (attempt, await first, dispatch);
            }
        }

        if (context.RequestAborted.IsCancellationRequested)
        {
            return (attempt, await first, dispatch);
        }

        var hedgedDispatch = Failover.hedged(dispatch);
        var (step, afterHedge) = cell.Transition(runtime => Relay.next(runtime, cell.Now, hedgedDispatch));
        if (step is not Step.Send { Attempt: var hedge })
        {
            return (attempt, await first, dispatch);
        }

        using var hedgeLost = new CancellationTokenSource();
        var second = SendAsync(context, hedge, facts, body, forward, pathAndQuery, snapshot, record, hedgeLost.Token);
        var done = await Task.WhenAny(first, second);
        var other = done == first ? second : first;
        if ((await done).Response is null)
        {
            // no answer from the first to finish: the other one is all that is left
            // (when it fails too, the request carries on with its failure)
            var failed = await done;
            var rest = await other;
            Abandon(done == first ? attempt : hedge, failed);
            return done == first ? (hedge, rest, afterHedge) : (attempt, rest, afterHedge);
        }

        // the winner has an answer: cancel the loser and wait for it to let go
        await (done == first ? hedgeLost : firstLost).CancelAsync();
        var loser = await other;
        Abandon(done == first ? hedge : attempt, loser);
        return done == first ? (attempt, await first, afterHedge) : (hedge, await second, afterHedge);

        void Abandon(Attempt lost, AttemptOutcome outcome)
        {
            outcome.Response?.End(MetricOutcome.Abandoned);
            outcome.Response?.Dispose();
            var now = cell.Now;
            cell.Transition(runtime => Relay.complete(runtime, now, afterHedge, lost, AttemptResult.Abandoned));
            cell.Update(runtime => Relay.release(runtime, lost));
        }
    }

    /// <summary>Learns from the answer's rate-limit headers and classifies it.</summary>
    private AttemptResult Learn(Attempt attempt, AttemptResponse answer)
    {
        var headers = RateLimitHeaderParser.Parse(timeProvider.GetUtcNow(), answer.Header);
        cell.Transition((attempt, headers), static (runtime, now, s) => Relay.learn(runtime, now, s.attempt, s.headers));

        if (answer.StreamErrorType is { } errorType)
        {
            return AttemptResult.NewStreamError(errorType, answer.FirstByte);
        }

        return AttemptResult.OfAnswer(answer.Status, headers.RetryAfter, answer.FirstByte);
    }

    /// <summary>A 400 may be a thinking signature the provider rejects (its body, buffered, says so); else as <see cref="Learn"/>.</summary>
    private async Task<AttemptResult> ClassifyBadRequestAsync(Attempt attempt, AttemptResponse answer)
    {
        var learned = Learn(attempt, answer);
        return await IsSignatureErrorAsync(answer) ? AttemptResult.SignatureRejected : learned;
    }

    private static async Task<bool> IsSignatureErrorAsync(AttemptResponse answer)
    {
        // the error body is buffered by SendAsync; reading it here leaves it readable for relaying
        var bytes = await answer.Response.Content.ReadAsByteArrayAsync(answer.Cancellation.Token);
        return Affinity.isSignatureError(bytes);
    }

    private static AttemptResult Failed(AttemptFailure failure) =>
        failure switch
        {
            AttemptFailure.TimedOut => AttemptResult.TimedOut,
            AttemptFailure.ClientAborted => AttemptResult.Abandoned,
            AttemptFailure.NotSent => AttemptResult.Unsent,
            _ => AttemptResult.ConnectFailed,
        };

    /// <summary>The relay's own headers on a delivered answer: never a key, only its id.</summary>
    private void Decorate(HttpResponse response, RelaySnapshot snapshot, Attempt attempt, RequestRecord record)
    {
        if (attempt.KeyId.Length > 0)
        {
            response.Headers["x-cc-relay-key-id"] = attempt.KeyId;
            if (RelayHealth.keys(cell.Current, cell.Now, attempt.ProviderName) is { IsSome: true } keys)
            {
                var (ready, total) = keys.Value;
                response.Headers["x-cc-relay-keys-available"] = Count(ready);
                response.Headers["x-cc-relay-keys-total"] = Count(total);
            }
        }

        if (snapshot.Config.Routing.Debug)
        {
            var health = RelayHealth.status(cell.Current, cell.Now);
            response.Headers["x-cc-relay-strategy"] = snapshot.Config.Routing.Strategy.WireName;
            response.Headers["x-cc-relay-provider"] = attempt.ProviderName;
            response.Headers["x-cc-relay-attempts"] = attempt.Number.ToString(CultureInfo.InvariantCulture);
            response.Headers["x-cc-relay-health"] = string.Join(",", health.Select(p => p.Name + "=" + p.Circuit));
            if (record.Stage != "-")
            {
                response.Headers["x-cc-relay-stage"] = record.Stage;
                response.Headers["x-cc-relay-stage-reason"] = record.StageReason;
            }
        }
    }

    // small counts are the usual case: their strings are cached, not formatted per answer
    private static readonly string[] SmallCounts = [.. Enumerable.Range(0, 64).Select(i => i.ToString(CultureInfo.InvariantCulture))];

    private static string Count(int n) => (uint)n < (uint)SmallCounts.Length ? SmallCounts[n] : n.ToString(CultureInfo.InvariantCulture);

    private async Task StopAsync(
        HttpContext context,
        RelaySnapshot snapshot,
        Verdict verdict,
        AttemptResponse? kept,
        string lastReason,
        RequestBody body,
        RequestRecord record,
        long startedAt)
    {
        if (verdict.IsPassThrough && kept is not null)
        {
            // an error answer passed through: it carries no usage to settle
            await forwarder.RelayAsync(context, snapshot, kept, body, record, startedAt);
            return;
        }

        if (lastReason.Length > 0)
        {
            // the last attempt got no answer at all: the relay answers with its own error
            Log.UpstreamFailed(logger, record.RequestId, record.Provider, lastReason);
        }

        var status = verdict.Status;
        var errorType = verdict.ErrorType;
        if (status == 0)
        {
            status = StatusCodes.Status502BadGateway;
            errorType = ErrorType.Api;
        }

        if (verdict.RetryAfterSeconds is { } seconds)
        {
            context.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        }

        record.Ended(RequestResult.NewRefused(errorType, status));
        if (!context.Response.HasStarted)
        {
            // no answer at all: say why the last attempt got none (the Core's message is generic)
            var message = verdict.IsNoAnswer && lastReason.Length > 0 ? lastReason : verdict.Message;
            record.BytesOut = await ErrorResponse.WriteAsync(context, errorType, message, status);
        }
    }

    /// <summary>Waits on the relay's clock; false when the client went away meanwhile.</summary>
    private async Task<bool> DelayAsync(TimeSpan delay, RequestRecord record, CancellationToken aborted)
    {
        try
        {
            await Task.Delay(delay, timeProvider, aborted);
            return true;
        }
        catch (OperationCanceledException)
        {
            record.Ended(RequestResult.ClientAborted);
            return false;
        }
    }
}
