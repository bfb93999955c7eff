namespace CcRelay.Core

open System

/// One attempt the host is to send: where, with which key, and what to report back with. Printed
/// (`ToString`, `%A`), it shows the key's id, never the key.
[<StructuredFormatDisplay("{Display}")>]
type Attempt = {
    Provider: ProviderConfig
    ProviderName: string
    /// The configured key to send; ValueNone when the caller's own credential goes upstream, or the
    /// provider has no key.
    Key: KeyConfig voption
    /// `KeyId.ofSecret` of the key; "" without one. The only way a key may be shown.
    KeyId: string
    /// 1 for the first attempt of a request.
    Number: int
    /// Remove thinking blocks from the body before sending (`ThinkingTurn.carry`, which also turns thinking off
    /// for a tool loop left without its leading thinking block): the attempt crosses to a provider family that did
    /// not mint the conversation's signatures, or retries one that rejected a signature.
    StripThinking: bool
    /// The model to send instead of the client's (a stage target's or a `provider,model` switch's); "" to
    /// send the client's.
    Model: string
    /// When it was admitted.
    StartedAt: TimeSpan
    // Bookkeeping for `Relay.record`/`learn`/`settle`/`release`.
    ProviderIndex: int
    KeyIndex: int
    Generation: int
    PolicyVersion: int64
    ChargedInputTokens: int64
} with

    /// `attempt 2 at zai (key 1a2b3c4d)`.
    member this.Display: string =
        let key =
            if this.KeyId.Length > 0 then
                $" (key %s{this.KeyId})"
            else
                ""

        $"attempt %d{this.Number} at %s{this.ProviderName}%s{key}"

    override this.ToString() : string = this.Display

    /// The request's `body` (whose facts are `facts`) with this attempt's `Model` in place of the client's
    /// (`RequestFacts.withModel`).
    member this.WithModel(body: ReadOnlySpan<byte>, facts: RequestFacts) : byte array =
        RequestFacts.withModel body facts this.Model

/// What the host saw of one attempt. A streamed 200 is classified after its first event: an `error`
/// event before any content is a `StreamError`, not a success.
[<RequireQualifiedAccess>]
type AttemptResult =
    /// The upstream answered with this status (`RetryAfter`: its parsed `retry-after`), `FirstByte` after
    /// the attempt started.
    | Answered of Status: int * RetryAfter: TimeSpan voption * FirstByte: TimeSpan
    /// A 200 stream whose first event was `error` (`ErrorType`: its `error.type`).
    | StreamError of ErrorType: string * FirstByte: TimeSpan
    /// A 400 saying a thinking signature is invalid (`Affinity.isSignatureError`).
    | SignatureRejected
    /// No connection, or it broke before any answer.
    | ConnectFailed
    /// No first byte within `server.first_byte_timeout_ms`.
    | TimedOut
    /// The client went away (or the attempt lost a hedge race): says nothing about the upstream.
    | Abandoned
    /// The relay answered the attempt itself (`LocalAnswer`), calling no upstream: says nothing about the provider.
    | Local of Answer: LocalAnswer
    /// The relay could not make the attempt's request for this provider (a body it cannot reshape for it) and sent
    /// nothing: says nothing about the provider; another provider may take the request.
    | Unsent

    /// `Answered` with the answer's parsed `retry-after` (`RateLimitHeaders.RetryAfter`): the C#-facing constructor.
    static member OfAnswer(status: int, retryAfter: TimeSpan option, firstByte: TimeSpan) : AttemptResult =
        AttemptResult.Answered(status, ValueOption.ofOption retryAfter, firstByte)

/// What one attempt's result means.
[<RequireQualifiedAccess>]
type Classification =
    /// 2xx/3xx: relay it.
    | Succeeded of FirstByte: TimeSpan
    /// Another 4xx (or a 401/403 to the caller's own credential, or a non-retryable stream error): relay it
    /// as it is.
    | Final
    /// 429: this key (or keyless provider) is rate-limited; another key or provider may answer.
    | RateLimited of RetryAfter: TimeSpan voption
    /// 401/403 to a configured key: the key is bad, not the request.
    | KeyRefused
    /// 5xx, 529, 408, an `overloaded_error`/`api_error`/`timeout_error` event before content: the provider
    /// is unwell.
    | ProviderFailed of RetryAfter: TimeSpan voption
    /// No answer at all (`TimedOut` true when it was the first-byte timeout).
    | NoAnswer of TimedOut: bool
    /// The provider refused a thinking signature: retry once with thinking stripped.
    | SignatureRejected
    | Abandoned
    /// The relay's own answer (`AttemptResult.Local`): relay it; nothing is recorded for the provider.
    | Local of Answer: LocalAnswer
    /// Nothing was sent (`AttemptResult.Unsent`): move on as after a failure, but record nothing for the provider.
    | Unsent

/// Why the relay answers the client itself instead of relaying an upstream answer.
[<RequireQualifiedAccess>]
type Verdict =
    /// Relay the last upstream answer unchanged (an upstream error is never rewritten).
    | PassThrough
    /// 429 `rate_limit_error` with `Retry-After`: every key that could answer is rate-limited.
    | RateLimited of RetryAfterSeconds: int
    /// 503 `overloaded_error` with `Retry-After`: every provider that could answer is unavailable.
    | Unavailable of RetryAfterSeconds: int
    /// The last attempt got no answer: 502 `api_error`, or 504 `timeout_error` after a first-byte timeout.
    | NoAnswer of TimedOut: bool

/// What the host does next.
[<RequireQualifiedAccess>]
type Step =
    /// Send this attempt now.
    | Send of Attempt: Attempt
    /// Nothing can go out now but something will soon: wait, then ask again.
    | Wait of Delay: TimeSpan
    /// Answer the client (see `Verdict`).
    | Stop of Verdict: Verdict

/// What the host does after an attempt.
[<RequireQualifiedAccess>]
type Decision =
    /// Relay this attempt's answer to the client (a success, or a final error).
    | Deliver
    /// Try again (after `Delay`; usually zero): call `Relay.next`. Keep this attempt's answer until `next`
    /// sends another: a `Stop PassThrough` relays it.
    | Retry of Delay: TimeSpan
    /// Answer the client (see `Verdict`).
    | Stop of Verdict: Verdict
    /// The client is gone: nothing more to do.
    | Abandon

/// One request's progress along its plan: request-local, never shared, immutable.
type Dispatch = {
    Request: RouteRequest
    /// The policy `Order` was computed under.
    Policy: RelayPolicy
    /// Provider indexes (into `Policy.Providers`), in the order to try them. May be shared with the policy:
    /// never modify it.
    Order: int array
    /// The model each provider of `Order` is sent ("" for the client's), aligned with `Order`; empty when
    /// no provider gets another model.
    Models: string array
    /// The family the conversation's thinking signatures are pinned to; "" when none.
    PinnedFamily: string
    /// The position in `Order` to look at next.
    Position: int
    /// Attempts sent so far.
    Attempts: int
    /// When the first attempt failed (the failover clock starts there).
    FirstFailureAt: TimeSpan voption
    /// Times the plan was wrapped around (each wrap waits a backoff).
    Round: int
    /// The next attempt strips thinking (after a signature rejection); at most once per request.
    StripNext: bool
    StripUsed: bool
    /// The last attempt's classification; None before any.
    Last: Classification voption
}

/// Failover decisions: what counts as retryable, when to stop, how long to back off, when to hedge.
/// Retries happen only while no byte has reached the client; after that, the host ends the stream with
/// an `error` event instead.
[<RequireQualifiedAccess>]
module Failover =

    /// The first wrap-around backoff; it doubles per round, with jitter.
    let backoffBase: TimeSpan = TimeSpan.FromMilliseconds 250.0

    /// The largest backoff between rounds.
    let backoffCap: TimeSpan = TimeSpan.FromSeconds 8.0

    /// The longest a `retry-after` on a 5xx/529 is honoured before giving up instead.
    let maxRetryAfterWait: TimeSpan = TimeSpan.FromSeconds 30.0

    /// Whole seconds for a `Retry-After` header: rounded up, at least 1.
    let retryAfterSeconds (delay: TimeSpan) : int =
        if delay = TimeSpan.MaxValue || delay.TotalSeconds > 86_400.0 then
            86_400
        else
            max 1 (int (Math.Ceiling delay.TotalSeconds))

    /// What a result means for the attempt that produced it.
    let classify (attempt: Attempt) (result: AttemptResult) : Classification =
        match result with
        | AttemptResult.Answered(status, _, firstByte) when status >= 200 && status < 400 ->
            Classification.Succeeded firstByte
        | AttemptResult.Answered(429, retryAfter, _) -> Classification.RateLimited retryAfter
        | AttemptResult.Answered((401 | 403), _, _) when attempt.Key.IsSome -> Classification.KeyRefused
        | AttemptResult.Answered(status, retryAfter, _) when status = 408 || status >= 500 ->
            Classification.ProviderFailed retryAfter
        | AttemptResult.Answered _ -> Classification.Final
        | AttemptResult.StreamError(("overloaded_error" | "api_error" | "timeout_error"), _) ->
            Classification.ProviderFailed ValueNone
        | AttemptResult.StreamError("rate_limit_error", _) -> Classification.RateLimited ValueNone
        | AttemptResult.StreamError _ -> Classification.Final
        | AttemptResult.SignatureRejected -> Classification.SignatureRejected
        | AttemptResult.ConnectFailed -> Classification.NoAnswer false
        | AttemptResult.TimedOut -> Classification.NoAnswer true
        | AttemptResult.Abandoned -> Classification.Abandoned
        | AttemptResult.Local answer -> Classification.Local answer
        | AttemptResult.Unsent -> Classification.Unsent

    /// Whether the attempt reached its upstream (an answer, an error, a timeout, a broken connection, a client that
    /// left meanwhile). One that did not (the relay answered it itself, or sent nothing) records nothing for the
    /// provider, and gives back the key capacity its admission took (`Relay.refund`, at release).
    let reachedUpstream (result: AttemptResult) : bool =
        match result with
        | AttemptResult.Local _
        | AttemptResult.Unsent -> false
        | AttemptResult.Answered _
        | AttemptResult.StreamError _
        | AttemptResult.SignatureRejected
        | AttemptResult.ConnectFailed
        | AttemptResult.TimedOut
        | AttemptResult.Abandoned -> true

    /// The jittered backoff before wrap-around `round` (1, 2, …): "equal jitter", half fixed and half
    /// random, doubling per round up to `backoffCap`.
    let backoff (seed: uint64) (round: int) : TimeSpan =
        let exponent = min 10 (max 0 (round - 1))
        let ceiling = min backoffCap.Ticks (backoffBase.Ticks <<< exponent)
        let jitter = Rng.unit (Rng.mix seed (uint64 (1000 + round)))
        TimeSpan.FromTicks(ceiling / 2L + int64 (float (ceiling / 2L) * jitter))

    /// The moment after which no new attempt (or wait) may start: the failover timeout, counted from the
    /// first failure, or from arrival before any. `TimeSpan.MaxValue` when unbounded.
    let deadline (dispatch: Dispatch) : TimeSpan =
        let timeout = dispatch.Policy.FailoverTimeout

        if timeout <= TimeSpan.Zero then
            TimeSpan.MaxValue
        else
            match dispatch.FirstFailureAt with
            | ValueSome at -> at + timeout
            | ValueNone -> dispatch.Request.ArrivedAt + timeout

    /// What to tell the client when an attempt failed and no further attempt will be made: its own
    /// answer when it had one.
    let private giveUp (classification: Classification) : Decision =
        match classification with
        | Classification.NoAnswer timedOut -> Decision.Stop(Verdict.NoAnswer timedOut)
        | Classification.Unsent -> Decision.Stop(Verdict.NoAnswer false)
        | _ -> Decision.Deliver

    /// Decides what follows an attempt, given its classification (`classify`) at `now`. Returns the
    /// decision and the request's progress. The runtime is updated separately (`Relay.record`).
    ///
    /// - success, a final error, or a client disconnect end the request;
    /// - a 429 or a refused key moves to the provider's next key (the same position: the cooled or
    ///   revoked key is skipped), then on along the plan;
    /// - a failing provider moves to the next provider; past the end, the plan wraps around after a
    ///   jittered backoff (honouring the upstream's `retry-after`, up to `maxRetryAfterWait`);
    /// - a rejected thinking signature retries the same provider once with thinking stripped;
    /// - never more than `routing.max_attempts` attempts, and nothing starts after the failover deadline.
    let after
        (now: TimeSpan)
        (dispatch: Dispatch)
        (attempt: Attempt)
        (classification: Classification)
        : struct (Decision * Dispatch) =
        let dispatch = {
            dispatch with
                Last = ValueSome classification
        }

        match classification with
        | Classification.Succeeded _
        | Classification.Final
        | Classification.Local _ -> struct (Decision.Deliver, dispatch)
        | Classification.Abandoned -> struct (Decision.Abandon, dispatch)
        | Classification.SignatureRejected when dispatch.StripUsed -> struct (Decision.Deliver, dispatch)
        | _ ->
            let dispatch =
                match dispatch.FirstFailureAt with
                | ValueSome _ -> dispatch
                | ValueNone -> {
                    dispatch with
                        FirstFailureAt = ValueSome now
                  }

            let limit = deadline dispatch
            let n = dispatch.Order.Length

            let struct (dispatch, delay) =
                match classification with
                | Classification.SignatureRejected ->
                    struct ({
                                dispatch with
                                    StripNext = true
                                    StripUsed = true
                            },
                            TimeSpan.Zero)
                // Another key of the same provider may answer; a keyless provider has no other key.
                | Classification.RateLimited _
                | Classification.KeyRefused when attempt.KeyIndex >= 0 -> struct (dispatch, TimeSpan.Zero)
                | _ when dispatch.Position + 1 < n ->
                    struct ({
                                dispatch with
                                    Position = dispatch.Position + 1
                            },
                            TimeSpan.Zero)
                | _ ->
                    let round = dispatch.Round + 1

                    let upstreamAsked =
                        match classification with
                        | Classification.ProviderFailed(ValueSome ra) -> ra
                        | _ -> TimeSpan.Zero

                    struct ({
                                dispatch with
                                    Position = 0
                                    Round = round
                            },
                            max (backoff dispatch.Request.Seed round) upstreamAsked)

            let tooLong =
                delay > maxRetryAfterWait || (limit <> TimeSpan.MaxValue && now + delay > limit)

            if dispatch.Attempts >= dispatch.Policy.MaxAttempts || tooLong then
                struct (giveUp classification, dispatch)
            else
                struct (Decision.Retry delay, dispatch)

    /// When to start a hedge (a parallel second attempt) if the first has sent no byte: ValueNone when
    /// hedging is off or no attempt is left. The host then calls `Relay.next` with `hedged dispatch`.
    let hedgeAfter (dispatch: Dispatch) : TimeSpan voption =
        if
            dispatch.Policy.HedgeAfter > TimeSpan.Zero
            && dispatch.Attempts < dispatch.Policy.MaxAttempts
            && dispatch.Position + 1 < dispatch.Order.Length
        then
            ValueSome dispatch.Policy.HedgeAfter
        else
            ValueNone

    /// The dispatch for a hedge: the next provider of the plan (never the one already in flight).
    let hedged (dispatch: Dispatch) : Dispatch = {
        dispatch with
            Position = dispatch.Position + 1
    }

    /// The verdict when nothing can be sent: relay the last upstream answer if there is one worth
    /// relaying (a 5xx, a 429 with the upstream's own `retry-after` and message, a refused key); else say
    /// when to come back.
    let unavailable (dispatch: Dispatch) (rateLimited: bool) (readyIn: TimeSpan) : Verdict =
        match dispatch.Last with
        | ValueSome(Classification.ProviderFailed _)
        | ValueSome(Classification.RateLimited _)
        | ValueSome Classification.KeyRefused -> Verdict.PassThrough
        | ValueSome(Classification.NoAnswer timedOut) -> Verdict.NoAnswer timedOut
        | ValueSome Classification.Unsent -> Verdict.NoAnswer false
        | _ when rateLimited -> Verdict.RateLimited(retryAfterSeconds readyIn)
        | _ -> Verdict.Unavailable(retryAfterSeconds readyIn)

/// What the relay answers itself for a verdict.
[<RequireQualifiedAccess>]
module Verdict =

    /// The HTTP status (0 for `PassThrough`: the upstream's own).
    let status (verdict: Verdict) : int =
        match verdict with
        | Verdict.PassThrough -> 0
        | Verdict.RateLimited _ -> 429
        | Verdict.Unavailable _ -> 503
        | Verdict.NoAnswer true -> 504
        | Verdict.NoAnswer false -> 502

    /// The error type of the envelope.
    let errorType (verdict: Verdict) : ErrorType =
        match verdict with
        | Verdict.RateLimited _ -> ErrorType.RateLimit
        | Verdict.Unavailable _
        | Verdict.PassThrough -> ErrorType.Overloaded
        | Verdict.NoAnswer true -> ErrorType.Timeout
        | Verdict.NoAnswer false -> ErrorType.Api

    /// `Retry-After` in whole seconds, when the verdict carries one.
    let retryAfterSeconds (verdict: Verdict) : int voption =
        match verdict with
        | Verdict.RateLimited s
        | Verdict.Unavailable s -> ValueSome s
        | Verdict.PassThrough
        | Verdict.NoAnswer _ -> ValueNone

    /// The message of the envelope.
    let message (verdict: Verdict) : string =
        match verdict with
        | Verdict.RateLimited s -> $"every key that can serve this request is rate-limited; retry after %d{s} s"
        | Verdict.Unavailable s -> $"no provider can serve this request now; retry after %d{s} s"
        | Verdict.NoAnswer true -> "the upstream did not answer in time"
        | Verdict.NoAnswer false -> "the upstream could not be reached"
        | Verdict.PassThrough -> "the upstream failed"

/// The C#-facing surface of `Verdict`: the host writes the relay's error envelope from these.
type Verdict with

    /// The HTTP status (`Verdict.status`).
    member this.Status: int = Verdict.status this

    /// The error type of the envelope (`Verdict.errorType`).
    member this.ErrorType: ErrorType = Verdict.errorType this

    /// `Retry-After` in whole seconds, or null (`Verdict.retryAfterSeconds`).
    member this.RetryAfterSeconds: Nullable<int> =
        match Verdict.retryAfterSeconds this with
        | ValueSome s -> Nullable s
        | ValueNone -> Nullable()

    /// The message of the envelope (`Verdict.message`).
    member this.Message: string = Verdict.message this
