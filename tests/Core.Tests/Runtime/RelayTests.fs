module CcRelay.Core.Tests.RelayTests

open System
open Xunit
open CcRelay.Core
open CcRelay.Core.Tests.Fixtures

let private twoProviders () : RelayRuntime =
    relay RoutingStrategy.Failover [ provider "a" [ key "a1" 2; key "a2" 2 ]; provider "b" [ key "b1" 2 ] ]
    |> Relay.create TimeSpan.Zero

/// Sends, completes with `result`, releases; returns the runtime, decision and dispatch.
let private attempt (runtime: RelayRuntime) (now: TimeSpan) (dispatch: Dispatch) (result: AttemptResult) =
    let runtime, step, dispatch = next runtime now dispatch
    let sentAttempt = sent step
    let completed = Relay.complete runtime now dispatch sentAttempt result
    let struct (decision, dispatch) = completed.Value
    Relay.release completed.Runtime sentAttempt, sentAttempt, decision, dispatch, completed.Effects

[<Fact>]
let ``a 529 fails over to the next provider before the client sees anything`` () =
    let runtime, dispatch = plan (twoProviders ()) TimeSpan.Zero (request "m")

    let runtime, first, decision, dispatch, _ =
        attempt runtime TimeSpan.Zero dispatch (status 529)

    Assert.Equal("a", first.ProviderName)
    Assert.Equal(Decision.Retry TimeSpan.Zero, decision)
    let _, second, decision, _, _ = attempt runtime TimeSpan.Zero dispatch ok
    Assert.Equal("b", second.ProviderName)
    Assert.Equal(2, second.Number)
    Assert.Equal(Decision.Deliver, decision)

[<Fact>]
let ``a 429 cools the key down and the next key of the same provider answers`` () =
    let runtime, dispatch = plan (twoProviders ()) TimeSpan.Zero (request "m")

    let runtime, first, _, dispatch, effects =
        attempt runtime TimeSpan.Zero dispatch (AttemptResult.Answered(429, ValueSome(at 20.0), TimeSpan.Zero))

    Assert.Equal<RelayEffect list>([ RelayEffect.KeyCooledDown("a", first.KeyId, at 20.0) ], effects)
    let runtime, second, _, _, _ = attempt runtime TimeSpan.Zero dispatch ok
    Assert.Equal("a", second.ProviderName)
    Assert.NotEqual<string>(first.KeyId, second.KeyId)
    // One key's 429 is not the provider's failure.
    Assert.Equal(CircuitBreaker.closed, (stateOf runtime "a").Breaker)

[<Fact>]
let ``429s from two keys within the window count against the provider`` () =
    let config = {
        relay RoutingStrategy.Failover [ provider "a" [ key "a1" 0; key "a2" 0 ] ] with
            Health = {
                Config.defaultHealth with
                    CircuitBreaker = {
                        Config.defaultHealth.CircuitBreaker with
                            FailureThreshold = 1
                    }
            }
    }

    let runtime, dispatch =
        plan (Relay.create TimeSpan.Zero config) TimeSpan.Zero (request "m")

    let runtime, _, _, dispatch, _ = attempt runtime TimeSpan.Zero dispatch (status 429)
    Assert.Equal("closed", CircuitBreaker.stateName (stateOf runtime "a").Breaker)
    let runtime, _, _, _, effects = attempt runtime (at 1.0) dispatch (status 429)
    Assert.Equal("open", CircuitBreaker.stateName (stateOf runtime "a").Breaker)
    Assert.Contains(RelayEffect.BreakerOpened("a", at 31.0), effects)

[<Fact>]
let ``when every key is exhausted the verdict says when the earliest comes back`` () =
    let mutable runtime = twoProviders ()

    // 2 + 2 + 2 requests drain every key.
    for _ in 1..6 do
        let rt, dispatch = plan runtime TimeSpan.Zero (request "m")
        let rt, step, _ = next rt TimeSpan.Zero dispatch
        sent step |> ignore
        runtime <- rt

    let rt, dispatch = plan runtime TimeSpan.Zero (request "m")
    let _, step, _ = next rt TimeSpan.Zero dispatch
    // 2 per minute: the next token in 30 s, beyond the 5 s failover window.
    Assert.Equal(Step.Stop(Verdict.RateLimited 30), step)

[<Fact>]
let ``a short wait for a key is waited out`` () =
    let runtime =
        relay RoutingStrategy.Failover [ provider "a" [ key "a1" 60 ] ]
        |> Relay.create TimeSpan.Zero

    let mutable runtime = runtime

    for _ in 1..60 do
        let rt, dispatch = plan runtime TimeSpan.Zero (request "m")
        let rt, step, _ = next rt TimeSpan.Zero dispatch
        sent step |> ignore
        runtime <- rt

    let rt, dispatch = plan runtime TimeSpan.Zero (request "m")
    let rt, step, dispatch = next rt TimeSpan.Zero dispatch
    Assert.Equal(Step.Wait(at 1.0), step)
    let _, step, _ = next rt (at 1.0) dispatch
    Assert.Equal("a", (sent step).ProviderName)

[<Fact>]
let ``a 401 to a configured key revokes it until the config is reloaded`` () =
    let config =
        relay RoutingStrategy.Failover [ provider "a" [ key "a1" 0; key "a2" 0 ]; provider "b" [ key "b1" 0 ] ]

    let runtime, dispatch =
        plan (Relay.create TimeSpan.Zero config) TimeSpan.Zero (request "m")

    let runtime, first, decision, dispatch, effects =
        attempt runtime TimeSpan.Zero dispatch (status 401)

    Assert.Equal<RelayEffect list>([ RelayEffect.KeyRevoked("a", first.KeyId) ], effects)
    Assert.Equal(Decision.Retry TimeSpan.Zero, decision)
    let runtime, second, _, _, _ = attempt runtime TimeSpan.Zero dispatch ok
    Assert.Equal("a", second.ProviderName)
    Assert.NotEqual<string>(first.KeyId, second.KeyId)
    Assert.True((stateOf runtime "a").Keys |> Array.exists _.Revoked)
    let reloaded = Relay.reconcile (at 1.0) config runtime
    Assert.False((stateOf reloaded "a").Keys |> Array.exists _.Revoked)

[<Fact>]
let ``the caller's own credential uses no key at an anthropic provider`` () =
    let anthropic = {
        Config.defaultProvider "anthropic" ProviderType.Anthropic (Uri "https://api.anthropic.com") with
            Keys = [ key "sk-ant" 1 ]
    }

    let runtime =
        relay RoutingStrategy.Failover [ anthropic ] |> Relay.create TimeSpan.Zero

    let runtime, dispatch =
        plan runtime TimeSpan.Zero {
            request "m" with
                ClientCredential = true
        }

    let _, step, _ = next runtime TimeSpan.Zero dispatch
    let attempt = sent step
    Assert.Equal(ValueNone, attempt.Key)
    Assert.Equal("", attempt.KeyId)

[<Fact>]
let ``all circuits open: unavailable, retry when the first break ends`` () =
    let runtime = twoProviders ()

    let openAt (name: string) (until: float) (rt: RelayRuntime) =
        let p = RelayPolicy.indexOf rt.Policy name

        RelayRuntime.withProvider
            p
            {
                rt.Providers[p] with
                    Breaker = {
                        CircuitBreaker.closed with
                            State = CircuitBreaker.Open(at until)
                            Generation = 1
                    }
            }
            rt

    let runtime = runtime |> openAt "a" 40.0 |> openAt "b" 12.5
    let runtime, dispatch = plan runtime TimeSpan.Zero (request "m")
    Assert.Empty(dispatch.Order)
    let _, step, _ = next runtime TimeSpan.Zero dispatch
    Assert.Equal(Step.Stop(Verdict.Unavailable 13), step)

[<Fact>]
let ``learned headers steer away from a key before it says 429`` () =
    let runtime, dispatch = plan (twoProviders ()) TimeSpan.Zero (request "m")
    let runtime, step, _ = next runtime TimeSpan.Zero dispatch
    let first = sent step

    let learned =
        Relay.learn runtime TimeSpan.Zero first {
            RateLimitHeaders.empty with
                Requests = {
                    Limit = Some 100L
                    Remaining = Some 0L
                    ResetIn = None
                }
        }

    Assert.Equal<RelayEffect list>(
        [
            RelayEffect.KeyLimitsLearned("a", first.KeyId, { Rpm = 100; Itpm = 0; Otpm = 0 })
        ],
        learned.Effects
    )

    let runtime = Relay.release learned.Runtime first
    let runtime, dispatch = plan runtime TimeSpan.Zero (request "m")
    let _, step, _ = next runtime TimeSpan.Zero dispatch
    Assert.NotEqual<string>(first.KeyId, (sent step).KeyId)

[<Fact>]
let ``settle gives back an over-estimate`` () =
    let config =
        relay RoutingStrategy.Failover [
            provider "a" [
                {
                    key "a1" 0 with
                        ItpmLimit = 1000
                        OtpmLimit = 1000
                }
            ]
        ]

    let runtime, dispatch =
        plan (Relay.create TimeSpan.Zero config) TimeSpan.Zero {
            request "m" with
                EstimatedInputTokens = 900
        }

    let runtime, step, _ = next runtime TimeSpan.Zero dispatch
    let attempt = sent step
    Assert.Equal(900L, attempt.ChargedInputTokens)

    let settled =
        Relay.settle runtime TimeSpan.Zero attempt {
            Usage.zero with
                InputTokens = 150L
                CacheWriteTokens = 50L
                CacheReadTokens = 10_000L // cache reads do not count against ITPM
                OutputTokens = 50L
        }

    let key = (stateOf settled "a").Keys[0]
    Assert.Equal(800L, TokenBucket.tokens (TokenBucket.perMinute 1000) key.Itpm)
    Assert.Equal(950L, TokenBucket.tokens (TokenBucket.perMinute 1000) key.Otpm)

[<Fact>]
let ``in flight counts admitted attempts until released`` () =
    let runtime, dispatch = plan (twoProviders ()) TimeSpan.Zero (request "m")
    let runtime, step, _ = next runtime TimeSpan.Zero dispatch
    Assert.Equal(1, (stateOf runtime "a").InFlight)
    Assert.Equal(0, (stateOf (Relay.release runtime (sent step)) "a").InFlight)

[<Fact>]
let ``a success pins the conversation; crossing families strips thinking`` () =
    let anthropic =
        Config.defaultProvider "anthropic" ProviderType.Anthropic (Uri "https://api.anthropic.com")

    let config = relay RoutingStrategy.Failover [ provider "zai" []; anthropic ]
    let runtime = Relay.create TimeSpan.Zero config

    let conversation = {
        request "m" with
            ConversationKey = 99UL
            ThinkingSignatures = true
    }

    // The first turn lands on zai and succeeds: the conversation is zai's.
    let runtime, dispatch = plan runtime TimeSpan.Zero conversation
    let runtime, first, _, _, _ = attempt runtime TimeSpan.Zero dispatch ok
    Assert.Equal("zai", first.ProviderName)
    Assert.Equal(ValueSome "zai", RelayRuntime.pinnedFamily (at 1.0) 99UL runtime)

    // zai goes down: the turn crosses to anthropic, stripped.
    let runtime = (RelayHealth.disable runtime "zai").Runtime
    let runtime, dispatch = plan runtime (at 1.0) conversation
    Assert.Equal("zai", dispatch.PinnedFamily)
    let _, step, _ = next runtime (at 1.0) dispatch
    let crossed = sent step
    Assert.Equal("anthropic", crossed.ProviderName)
    Assert.True(crossed.StripThinking)

[<Fact>]
let ``in the pinned family nothing is stripped`` () =
    let anthropic =
        Config.defaultProvider "anthropic" ProviderType.Anthropic (Uri "https://api.anthropic.com")

    let runtime =
        relay RoutingStrategy.Failover [ provider "zai" []; anthropic ]
        |> Relay.create TimeSpan.Zero
        |> RelayRuntime.pin TimeSpan.Zero 5UL "anthropic"

    let runtime, dispatch =
        plan runtime TimeSpan.Zero {
            request "m" with
                ConversationKey = 5UL
                ThinkingSignatures = true
        }

    let _, step, _ = next runtime TimeSpan.Zero dispatch
    Assert.Equal("anthropic", (sent step).ProviderName)
    Assert.False((sent step).StripThinking)

[<Fact>]
let ``reconcile keeps survivors, starts new ones fresh and drops removed ones`` () =
    let runtime = twoProviders ()
    let runtime, dispatch = plan runtime TimeSpan.Zero (request "m")
    let runtime, step, _ = next runtime TimeSpan.Zero dispatch
    let used = sent step
    let runtime = (RelayHealth.disable runtime "b").Runtime

    let reloaded =
        Relay.reconcile
            (at 1.0)
            (relay RoutingStrategy.Failover [ provider "a" [ key "a1" 2; key "a3" 2 ]; provider "c" [ key "c1" 2 ] ])
            runtime

    Assert.Equal(runtime.Policy.Version + 1L, reloaded.Policy.Version)
    Assert.Equal<string list>([ "a"; "c" ], reloaded.Providers |> Array.map _.Name |> List.ofArray)
    let a = stateOf reloaded "a"
    Assert.Equal(1, a.InFlight)
    Assert.Equal((stateOf runtime "a").Keys[0].Rpm, a.Keys[0].Rpm)
    Assert.Equal(KeyId.ofSecret "a3", a.Keys[1].Id)
    Assert.Equal(TokenBucket.full (TokenBucket.perMinute 2) (at 1.0), a.Keys[1].Rpm)
    // A release from before the reload finds its provider by name.
    Assert.Equal(0, (stateOf (Relay.release reloaded used) "a").InFlight)

[<Fact>]
let ``a plan made before a reload keeps working after it`` () =
    let runtime, dispatch = plan (twoProviders ()) TimeSpan.Zero (request "m")

    let reloaded =
        Relay.reconcile (at 1.0) (relay RoutingStrategy.Failover [ provider "b" [ key "b1" 2 ] ]) runtime

    let _, step, _ = next reloaded (at 1.0) dispatch
    Assert.Equal("b", (sent step).ProviderName)

[<Fact>]
let ``health probes: due for open circuits once per interval; a success ends the break`` () =
    let runtime = twoProviders ()
    let p = RelayPolicy.indexOf runtime.Policy "a"

    let runtime =
        RelayRuntime.withProvider
            p
            {
                runtime.Providers[p] with
                    Breaker = {
                        CircuitBreaker.closed with
                            State = CircuitBreaker.Open(at 30.0)
                            Generation = 1
                    }
            }
            runtime

    let due = RelayHealth.probesDue runtime (at 1.0)
    let probe = Assert.Single due.Value
    Assert.Equal("GET", probe.Method)
    Assert.Equal(Uri "https://a.example.test/v1/models", probe.Plan.Url)
    Assert.Empty((RelayHealth.probesDue due.Runtime (at 2.0)).Value)
    let probed = RelayHealth.probed due.Runtime (at 3.0) "a" true
    Assert.Equal(CircuitBreaker.Open(at 3.0), (stateOf probed.Runtime "a").Breaker.State)
    let runtime, dispatch = plan probed.Runtime (at 3.0) (request "m")
    let _, step, _ = next runtime (at 3.0) dispatch
    Assert.Equal("a", (sent step).ProviderName)

[<Fact>]
let ``status shows circuits, keys and latency`` () =
    let runtime, dispatch = plan (twoProviders ()) TimeSpan.Zero (request "m")
    let runtime, _, _, _, _ = attempt runtime TimeSpan.Zero dispatch ok
    let status = RelayHealth.status runtime TimeSpan.Zero
    Assert.Equal<string list>([ "a"; "b" ], status |> List.map _.Name)
    Assert.Equal("closed", status.Head.Circuit)
    Assert.Equal(2, status.Head.KeysReady)
    Assert.Equal(ValueSome 100.0, status.Head.LatencyMs)

[<Fact>]
let ``gauges show the live circuits and key capacities of every configured provider`` () =
    let config = {
        relay RoutingStrategy.Failover [
            provider "a" [ key "a1" 4 ]
            provider "b" [ key "b1" 0 ]
            {
                provider "off" [ key "o1" 0 ] with
                    Enabled = false
            }
            provider "c" []
        ] with
            Health = {
                Config.defaultHealth with
                    CircuitBreaker = {
                        Config.defaultHealth.CircuitBreaker with
                            FailureThreshold = 1
                            OpenDurationMs = 30_000
                    }
            }
    }

    let runtime, dispatch =
        plan (Relay.create TimeSpan.Zero config) TimeSpan.Zero (request "m")

    let runtime, _, _, _, _ = attempt runtime TimeSpan.Zero dispatch (status 503)
    let runtime = (RelayHealth.disable runtime "b").Runtime

    let lines (gauges: ProviderGauges list) =
        gauges
        |> List.map (fun g ->
            let keys = g.Keys |> Array.map (fun k -> $"%.2f{k.Ratio}") |> String.concat "/"
            $"%s{g.Name}:%b{g.Up}:%s{g.Circuit}:%s{keys}")

    // A failed (open, one request taken of 4), B isolated by the operator, `off` disabled in the config.
    Assert.Equal<string list>(
        [
            "a:false:open:0.75"
            "b:false:isolated:1.00"
            "off:false:isolated:"
            "c:true:closed:"
        ],
        lines (RelayHealth.gauges runtime TimeSpan.Zero)
    )

    // After the break A may be probed: up, and half-open (its next request is the probe), never "open and up".
    Assert.Equal("a:true:half_open:1.00", (lines (RelayHealth.gauges runtime (at 30.0))).Head)
    Assert.Equal("half-open", (RelayHealth.status runtime (at 30.0)).Head.Circuit)
    let runtime, dispatch = plan runtime (at 30.0) (request "m")
    let runtime, _, _, _, _ = attempt runtime (at 30.0) dispatch (status 503)
    Assert.Equal("a:false:open:0.75", (lines (RelayHealth.gauges runtime (at 30.0))).Head)

    let ids =
        RelayHealth.gauges runtime (at 30.0)
        |> List.collect (fun g -> g.Keys |> Array.map _.KeyId |> List.ofArray)

    Assert.Equal<string list>([ KeyId.ofSecret "a1"; KeyId.ofSecret "b1" ], ids)

[<Fact>]
let ``the policy prices with the tables it is given: one compiled table per config load`` () =
    let free = flatPrice "local-*" 0m

    let config =
        relay RoutingStrategy.Failover [
            {
                provider "a" [] with
                    Pricing = [ free ]
            }
            provider "b" []
        ]

    let prices = ProviderPrices.compile config.Providers
    let runtime = Relay.createWith TimeSpan.Zero prices config
    let reconciled = Relay.reconcileWith (at 1.0) prices config runtime

    Assert.Same(ProviderPrices.tableOf prices "a", runtime.Policy.Providers[0].Pricing)
    Assert.Same(ProviderPrices.tableOf prices "a", reconciled.Policy.Providers[0].Pricing)
    Assert.Equal(Some free.Price, Pricing.tryFind (ProviderPrices.tableOf prices "a") "local-1")
    // over the built-in prices; a provider without rules, or not in the config, has the built-in table
    Assert.Equal(
        Pricing.tryFind Pricing.builtIn "claude-sonnet-4-6",
        Pricing.tryFind runtime.Policy.Providers[0].Pricing "claude-sonnet-4-6"
    )

    Assert.Same(Pricing.builtIn, ProviderPrices.tableOf prices "b")
    Assert.Same(Pricing.builtIn, ProviderPrices.tableOf prices "unknown")
    Assert.Equal(ValueSome(struct (0.0, 0.0)), RelayPolicy.price runtime.Policy.Providers[0] "local-1")

[<Fact>]
let ``a rejected signature is retried on the same provider with thinking stripped`` () =
    let runtime, dispatch = plan (twoProviders ()) TimeSpan.Zero (request "m")

    let runtime, first, decision, dispatch, effects =
        attempt runtime TimeSpan.Zero dispatch AttemptResult.SignatureRejected

    Assert.Empty effects
    Assert.Equal(Decision.Retry TimeSpan.Zero, decision)
    let _, step, _ = next runtime TimeSpan.Zero dispatch
    let retried = sent step
    Assert.Equal(first.ProviderName, retried.ProviderName)
    Assert.True(retried.StripThinking)
    Assert.False(first.StripThinking)

[<Fact>]
let ``a hedge goes to the next provider of the plan`` () =
    let config = {
        relay RoutingStrategy.Failover [ provider "a" [ key "a1" 0 ]; provider "b" [ key "b1" 0 ] ] with
            Routing = {
                Config.defaultRouting with
                    HedgeAfterMs = 1500
            }
    }

    let runtime, dispatch =
        plan (Relay.create TimeSpan.Zero config) TimeSpan.Zero (request "m")

    let runtime, step, primary = next runtime TimeSpan.Zero dispatch
    Assert.Equal("a", (sent step).ProviderName)
    Assert.Equal(ValueSome(TimeSpan.FromMilliseconds 1500.0), Failover.hedgeAfter primary)
    let runtime, hedge, _ = next runtime (at 1.5) (Failover.hedged primary)
    Assert.Equal("b", (sent hedge).ProviderName)
    Assert.Equal(1, (stateOf runtime "a").InFlight)
    Assert.Equal(1, (stateOf runtime "b").InFlight)
    // The loser is abandoned: nothing changes but its release.
    let abandoned =
        Relay.complete runtime (at 2.0) primary (sent step) AttemptResult.Abandoned

    let struct (decision, _) = abandoned.Value
    Assert.Equal(Decision.Abandon, decision)
    Assert.Equal((stateOf runtime "a").Breaker, (stateOf abandoned.Runtime "a").Breaker)

[<Fact>]
let ``a 429 from a keyless provider counts against its circuit`` () =
    let config = {
        relay RoutingStrategy.Failover [ provider "a" []; provider "b" [] ] with
            Health = {
                Config.defaultHealth with
                    CircuitBreaker = {
                        Config.defaultHealth.CircuitBreaker with
                            FailureThreshold = 1
                    }
            }
    }

    let runtime, dispatch =
        plan (Relay.create TimeSpan.Zero config) TimeSpan.Zero (request "m")

    let runtime, first, decision, dispatch, _ =
        attempt runtime TimeSpan.Zero dispatch (status 429)

    Assert.Equal("a", first.ProviderName)
    Assert.Equal("open", CircuitBreaker.stateName (stateOf runtime "a").Breaker)
    Assert.Equal(Decision.Retry TimeSpan.Zero, decision)
    let _, second, _, _, _ = attempt runtime TimeSpan.Zero dispatch ok
    Assert.Equal("b", second.ProviderName)

[<Fact>]
let ``after failures past the end of the plan, the relay starts over after a backoff`` () =
    let runtime, dispatch = plan (twoProviders ()) TimeSpan.Zero (request "m")
    let runtime, _, _, dispatch, _ = attempt runtime TimeSpan.Zero dispatch (status 503)

    let runtime, _, decision, dispatch, _ =
        attempt runtime TimeSpan.Zero dispatch (status 503)

    match decision with
    | Decision.Retry delay ->
        Assert.True(delay > TimeSpan.Zero)
        let _, third, _, _, _ = attempt runtime delay dispatch ok
        Assert.Equal("a", third.ProviderName)
        Assert.Equal(3, third.Number)
    | other -> failwith $"expected a retry, got %A{other}"

[<Fact>]
let ``a printed attempt shows the key id, never the key`` () =
    let runtime, dispatch = plan (twoProviders ()) TimeSpan.Zero (request "m")
    let _, step, _ = next runtime TimeSpan.Zero dispatch
    let attempt = sent step
    let id = KeyId.ofSecret "a1"
    Assert.Equal($"attempt 1 at a (key %s{id})", string attempt)
    Assert.DoesNotContain("\"a1\"", sprintf "%A" step)

[<Fact>]
let ``the health report shows each circuit and the keys ready, and is ok while any provider is up`` () =
    let config =
        relay RoutingStrategy.Failover [ provider "a" [ key "a1" 2; key "a2" 2 ]; provider "b" [ key "b1" 2 ] ]

    let runtime = Relay.create TimeSpan.Zero config
    let runtime = (RelayHealth.disable runtime "b").Runtime

    let lines (report: HealthReport) =
        report.Providers
        |> List.map (fun p -> $"%s{p.Name}:%s{p.Status}:%s{p.Circuit}:%d{p.KeysAvailable}/%d{p.Keys}")

    let report = RelayHealth.report "v" runtime TimeSpan.Zero
    Assert.Equal("ok", report.Status)
    Assert.Equal<string list>([ "a:up:closed:2/2"; "b:disabled:disabled:1/1" ], lines report)

    let runtime = (RelayHealth.disable runtime "a").Runtime
    let report = RelayHealth.report "v" runtime TimeSpan.Zero
    Assert.Equal("unavailable", report.Status)
    Assert.Equal(503, Health.statusCode report)

[<Fact>]
let ``a 429 that ends the request is relayed as the upstream sent it`` () =
    let config = relay RoutingStrategy.Failover [ provider "a" [ key "a1" 2 ] ]

    let runtime, dispatch =
        plan (Relay.create TimeSpan.Zero config) TimeSpan.Zero (request "m")

    let runtime, _, decision, dispatch, _ =
        attempt runtime TimeSpan.Zero dispatch (AttemptResult.Answered(429, ValueSome(at 20.0), TimeSpan.Zero))

    Assert.Equal(Decision.Retry TimeSpan.Zero, decision)
    let _, step, _ = next runtime TimeSpan.Zero dispatch
    Assert.Equal(Step.Stop Verdict.PassThrough, step)

/// A relay with one provider `a` (one key of `rpm` requests a minute) whose breaker opens after one failure for
/// 30 s and closes after one half-open success.
let private oneProvider (rpm: int) : RelayRuntime =
    {
        relay RoutingStrategy.Failover [ provider "a" [ key "a1" rpm ] ] with
            Health = {
                Config.defaultHealth with
                    CircuitBreaker = {
                        Config.defaultHealth.CircuitBreaker with
                            FailureThreshold = 1
                            OpenDurationMs = 30_000
                            HalfOpenProbes = 1
                    }
            }
    }
    |> Relay.create TimeSpan.Zero

[<Fact>]
let ``an answer the relay makes itself does not close a half-open circuit: its probe is the next real call's`` () =
    let runtime, dispatch = plan (oneProvider 0) TimeSpan.Zero (request "m")
    let runtime, _, _, _, _ = attempt runtime TimeSpan.Zero dispatch (status 503)
    Assert.Equal("open", CircuitBreaker.stateName (stateOf runtime "a").Breaker)

    // after the break: two local answers (a failed pipeline, an on_dropped refusal) on the half-open provider
    let mutable runtime = runtime

    for answer in [ LocalAnswer.PipelineFailed; LocalAnswer.DroppedRefused ] do
        let rt, dispatch = plan runtime (at 30.0) (request "m")

        let rt, local, decision, _, effects =
            attempt rt (at 30.0) dispatch (AttemptResult.Local answer)

        Assert.Equal("a", local.ProviderName)
        Assert.Equal(Decision.Deliver, decision)
        Assert.Empty(effects)
        Assert.Equal("half-open", CircuitBreaker.stateNameAt (at 30.0) (stateOf rt "a").Breaker)
        runtime <- rt

    // the probe is still there: a real call is admitted, and its success closes the circuit
    let runtime, dispatch = plan runtime (at 31.0) (request "m")
    let runtime, probe, decision, _, _ = attempt runtime (at 31.0) dispatch ok
    Assert.Equal("a", probe.ProviderName)
    Assert.Equal(Decision.Deliver, decision)
    Assert.Equal("closed", CircuitBreaker.stateName (stateOf runtime "a").Breaker)

[<Fact>]
let ``an answer the relay makes itself records nothing: no latency sample, no pin, no key change`` () =
    let runtime = oneProvider 0

    let request = {
        request "m" with
            ConversationKey = 42UL
    }

    let runtime, dispatch = plan runtime TimeSpan.Zero request
    let before = stateOf runtime "a"

    let runtime, _, decision, _, effects =
        attempt runtime (at 1.0) dispatch (AttemptResult.Local LocalAnswer.CountTokens)

    let after = stateOf runtime "a"
    Assert.Equal(Decision.Deliver, decision)
    Assert.Empty(effects)
    Assert.Equal(before.Breaker, after.Breaker)
    Assert.Equal(before.Latency, after.Latency)
    Assert.Equal(before.Last429Key, after.Last429Key)
    Assert.Equal(0, after.InFlight)
    // a success would pin the conversation to the family that answered; the relay's own answer does not
    Assert.Equal(ValueNone, RelayRuntime.pinnedFamily (at 1.0) 42UL runtime)

[<Fact>]
let ``a local answer's key capacity is given back at release`` () =
    // one request a minute: three local answers, refunded, leave it for a real call
    let mutable runtime = oneProvider 1

    for _ in 1..3 do
        let rt, dispatch = plan runtime TimeSpan.Zero (request "m")
        let rt, step, dispatch = next rt TimeSpan.Zero dispatch
        let local = sent step

        let completed =
            Relay.complete rt TimeSpan.Zero dispatch local (AttemptResult.Local LocalAnswer.DroppedRefused)

        runtime <- Relay.release (Relay.refund completed.Runtime TimeSpan.Zero local) local

    let runtime, dispatch = plan runtime TimeSpan.Zero (request "m")
    let _, step, _ = next runtime TimeSpan.Zero dispatch
    Assert.Equal("a", (sent step).ProviderName)

[<Fact>]
let ``an attempt that sent nothing moves on to the next provider without counting against its breaker`` () =
    let config = {
        relay RoutingStrategy.Failover [ provider "a" [ key "a1" 0 ]; provider "b" [ key "b1" 0 ] ] with
            Health = {
                Config.defaultHealth with
                    CircuitBreaker = {
                        Config.defaultHealth.CircuitBreaker with
                            FailureThreshold = 1
                    }
            }
    }

    let runtime, dispatch =
        plan (Relay.create TimeSpan.Zero config) TimeSpan.Zero (request "m")

    let runtime, first, decision, dispatch, effects =
        attempt runtime TimeSpan.Zero dispatch AttemptResult.Unsent

    Assert.Equal("a", first.ProviderName)
    Assert.Equal(Decision.Retry TimeSpan.Zero, decision)
    Assert.Empty(effects)
    Assert.Equal("closed", CircuitBreaker.stateName (stateOf runtime "a").Breaker)
    Assert.False(Failover.reachedUpstream AttemptResult.Unsent)
    Assert.False(Failover.reachedUpstream (AttemptResult.Local LocalAnswer.CountTokens))
    Assert.True(Failover.reachedUpstream AttemptResult.ConnectFailed)
    Assert.True(Failover.reachedUpstream AttemptResult.Abandoned)

    // b sends nothing either: the request ends with the relay's own 502, no provider blamed
    let runtime, second, decision, _, _ =
        attempt runtime TimeSpan.Zero dispatch AttemptResult.Unsent

    Assert.Equal("b", second.ProviderName)

    match decision with
    | Decision.Retry _ -> ()
    | Decision.Stop(Verdict.NoAnswer false) -> ()
    | other -> failwith $"unexpected %A{other}"

    Assert.Equal("closed", CircuitBreaker.stateName (stateOf runtime "b").Breaker)
