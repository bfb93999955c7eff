module CcRelay.Core.Tests.FailoverTests

open System
open Xunit
open CcRelay.Core
open CcRelay.Core.Tests.Fixtures

let private runtime: RelayRuntime =
    relay RoutingStrategy.Failover [ provider "a" [ key "ka" 60 ]; provider "b" [ key "kb" 60 ] ]
    |> Relay.create TimeSpan.Zero

let private started () : RelayRuntime * Dispatch * Attempt =
    let rt, dispatch = plan runtime TimeSpan.Zero (request "m")
    let rt, step, dispatch = next rt TimeSpan.Zero dispatch
    rt, dispatch, sent step

let private keyless: Attempt =
    let _, _, attempt = started ()

    {
        attempt with
            Key = ValueNone
            KeyIndex = -1
            KeyId = ""
    }

[<Fact>]
let ``classify: answers by status`` () =
    let _, _, attempt = started ()
    let classify = Failover.classify attempt
    Assert.Equal(Classification.Succeeded(TimeSpan.FromMilliseconds 100.0), classify ok)
    Assert.Equal(Classification.RateLimited ValueNone, classify (status 429))
    Assert.Equal(Classification.KeyRefused, classify (status 401))
    Assert.Equal(Classification.KeyRefused, classify (status 403))
    Assert.Equal(Classification.ProviderFailed ValueNone, classify (status 500))
    Assert.Equal(Classification.ProviderFailed ValueNone, classify (status 529))
    Assert.Equal(Classification.ProviderFailed ValueNone, classify (status 408))
    Assert.Equal(Classification.Final, classify (status 400))
    Assert.Equal(Classification.Final, classify (status 404))
    Assert.Equal(Classification.Final, classify (status 413))

[<Fact>]
let ``classify: a 401 to the caller's own credential is final`` () =
    Assert.Equal(Classification.Final, Failover.classify keyless (status 401))

[<Fact>]
let ``classify: errors before the first byte and stream errors before content`` () =
    let _, _, attempt = started ()
    let classify = Failover.classify attempt

    let stream (errorType: string) =
        AttemptResult.StreamError(errorType, TimeSpan.Zero)

    Assert.Equal(Classification.ProviderFailed ValueNone, classify (stream "overloaded_error"))
    Assert.Equal(Classification.ProviderFailed ValueNone, classify (stream "api_error"))
    Assert.Equal(Classification.RateLimited ValueNone, classify (stream "rate_limit_error"))
    Assert.Equal(Classification.Final, classify (stream "invalid_request_error"))
    Assert.Equal(Classification.NoAnswer false, classify AttemptResult.ConnectFailed)
    Assert.Equal(Classification.NoAnswer true, classify AttemptResult.TimedOut)
    Assert.Equal(Classification.Abandoned, classify AttemptResult.Abandoned)

    Assert.Equal(
        Classification.Local LocalAnswer.PipelineFailed,
        classify (AttemptResult.Local LocalAnswer.PipelineFailed)
    )

    Assert.Equal(Classification.Unsent, classify AttemptResult.Unsent)

let private decide (now: float) (dispatch: Dispatch) (attempt: Attempt) (c: Classification) =
    let struct (decision, dispatch) = Failover.after (at now) dispatch attempt c
    decision, dispatch

[<Fact>]
let ``success, a final error and a disconnect end the request`` () =
    let _, dispatch, attempt = started ()
    Assert.Equal(Decision.Deliver, fst (decide 1.0 dispatch attempt (Classification.Succeeded TimeSpan.Zero)))
    Assert.Equal(Decision.Deliver, fst (decide 1.0 dispatch attempt Classification.Final))
    Assert.Equal(Decision.Abandon, fst (decide 1.0 dispatch attempt Classification.Abandoned))
    // the relay's own answer is delivered as it is
    Assert.Equal(Decision.Deliver, fst (decide 1.0 dispatch attempt (Classification.Local LocalAnswer.DroppedRefused)))

[<Fact>]
let ``a 429 or a refused key stays on the provider; a failing provider moves on`` () =
    let _, dispatch, attempt = started ()

    let decision, stay =
        decide 1.0 dispatch attempt (Classification.RateLimited ValueNone)

    Assert.Equal(Decision.Retry TimeSpan.Zero, decision)
    Assert.Equal(0, stay.Position)
    Assert.Equal(ValueSome(at 1.0), stay.FirstFailureAt)
    Assert.Equal(0, (snd (decide 1.0 dispatch attempt Classification.KeyRefused)).Position)
    Assert.Equal(1, (snd (decide 1.0 dispatch attempt (Classification.ProviderFailed ValueNone))).Position)
    Assert.Equal(1, (snd (decide 1.0 dispatch attempt (Classification.NoAnswer true))).Position)

[<Fact>]
let ``a 429 from a keyless provider moves on`` () =
    let _, dispatch, _ = started ()
    Assert.Equal(1, (snd (decide 1.0 dispatch keyless (Classification.RateLimited ValueNone))).Position)

[<Fact>]
let ``past the end of the plan it wraps around after a jittered backoff`` () =
    let _, dispatch, attempt = started ()
    let last = { dispatch with Position = 1 }

    match decide 1.0 last attempt (Classification.ProviderFailed ValueNone) with
    | Decision.Retry delay, wrapped ->
        Assert.Equal(0, wrapped.Position)
        Assert.Equal(1, wrapped.Round)
        Assert.InRange(delay, Failover.backoffBase / 2.0, Failover.backoffBase)
    | other -> failwith $"unexpected %A{other}"

[<Fact>]
let ``a wrap honours the upstream's retry-after`` () =
    let _, dispatch, attempt = started ()
    let last = { dispatch with Position = 1 }

    let decision, _ =
        decide 1.0 last attempt (Classification.ProviderFailed(ValueSome(TimeSpan.FromSeconds 3.0)))

    Assert.Equal(Decision.Retry(TimeSpan.FromSeconds 3.0), decision)

[<Fact>]
let ``backoff doubles per round up to the cap`` () =
    for round in 1..12 do
        let ceiling =
            min Failover.backoffCap (Failover.backoffBase * Math.Pow(2.0, float (round - 1)))

        Assert.InRange(Failover.backoff 99UL round, ceiling / 2.0, ceiling)

[<Fact>]
let ``max_attempts stops retrying and relays the last answer`` () =
    let _, dispatch, attempt = started ()

    let spent = {
        dispatch with
            Attempts = dispatch.Policy.MaxAttempts
    }

    Assert.Equal(Decision.Deliver, fst (decide 1.0 spent attempt (Classification.ProviderFailed ValueNone)))
    Assert.Equal(Decision.Stop(Verdict.NoAnswer true), fst (decide 1.0 spent attempt (Classification.NoAnswer true)))

[<Fact>]
let ``nothing starts after the failover deadline`` () =
    let _, dispatch, attempt = started ()
    // The first failure at 1 s opens a 5 s window.
    let _, failed =
        decide 1.0 dispatch attempt (Classification.ProviderFailed ValueNone)

    Assert.Equal(at 6.0, Failover.deadline failed)
    let last = { failed with Position = 1 }
    Assert.Equal(Decision.Deliver, fst (decide 5.9 last attempt (Classification.ProviderFailed(ValueSome(at 1.0)))))

[<Fact>]
let ``a rejected signature is retried once, stripped, on the same provider`` () =
    let _, dispatch, attempt = started ()
    let decision, retried = decide 1.0 dispatch attempt Classification.SignatureRejected
    Assert.Equal(Decision.Retry TimeSpan.Zero, decision)
    Assert.True(retried.StripNext)
    Assert.Equal(dispatch.Position, retried.Position)
    Assert.Equal(Decision.Deliver, fst (decide 2.0 retried attempt Classification.SignatureRejected))

[<Fact>]
let ``hedging is off by default; when on, it names its delay and the next provider`` () =
    let _, dispatch, _ = started ()
    Assert.Equal(ValueNone, Failover.hedgeAfter dispatch)

    let policy = {
        dispatch.Policy with
            HedgeAfter = TimeSpan.FromSeconds 2.0
    }

    let hedging = { dispatch with Policy = policy }
    Assert.Equal(ValueSome(TimeSpan.FromSeconds 2.0), Failover.hedgeAfter hedging)
    Assert.Equal(1, (Failover.hedged hedging).Position)
    Assert.Equal(ValueNone, Failover.hedgeAfter { hedging with Position = 1 })

[<Fact>]
let ``Retry-After seconds round up and are at least 1`` () =
    Assert.Equal(1, Failover.retryAfterSeconds TimeSpan.Zero)
    Assert.Equal(1, Failover.retryAfterSeconds (TimeSpan.FromMilliseconds 10.0))
    Assert.Equal(3, Failover.retryAfterSeconds (TimeSpan.FromSeconds 2.001))
    Assert.Equal(86_400, Failover.retryAfterSeconds TimeSpan.MaxValue)

[<Fact>]
let ``verdicts map to statuses and envelopes`` () =
    Assert.Equal(429, Verdict.status (Verdict.RateLimited 3))
    Assert.Equal(ErrorType.RateLimit, Verdict.errorType (Verdict.RateLimited 3))
    Assert.Equal(ValueSome 3, Verdict.retryAfterSeconds (Verdict.RateLimited 3))
    Assert.Equal(503, Verdict.status (Verdict.Unavailable 9))
    Assert.Equal(504, Verdict.status (Verdict.NoAnswer true))
    Assert.Equal(502, Verdict.status (Verdict.NoAnswer false))
    Assert.Equal(ValueNone, Verdict.retryAfterSeconds (Verdict.NoAnswer false))
