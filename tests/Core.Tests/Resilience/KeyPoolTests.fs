module CcRelay.Core.Tests.KeyPoolTests

open System
open Xunit
open CcRelay.Core
open CcRelay.Core.Tests.Fixtures

let private keyWith (secret: string) (change: KeyConfig -> KeyConfig) : KeyConfig = change (key secret 0)

let private compiled (keys: KeyConfig list) : KeyPolicy array * int array array * KeyState array =
    let policies = KeyPool.compile keys
    policies, KeyPool.tiers policies, policies |> Array.map (KeyPool.initial TimeSpan.Zero)

let private pick (strategy: KeyStrategy) (keys: KeyConfig list) (states: KeyState array option) (now: float) =
    let policies, tiers, fresh = compiled keys
    KeyPool.pick strategy tiers policies (defaultArg states fresh) 0 (at now) 100 7UL

[<Fact>]
let ``tpm_limit is split evenly when ITPM and OTPM are both 0`` () =
    Assert.Equal(
        { Rpm = 0; Itpm = 501; Otpm = 500 },
        KeyPool.limitsOf (keyWith "a" (fun k -> { k with TpmLimit = 1001 }))
    )

    Assert.Equal(
        { Rpm = 0; Itpm = 10; Otpm = 0 },
        KeyPool.limitsOf (
            keyWith "a" (fun k -> {
                k with
                    TpmLimit = 1000
                    ItpmLimit = 10
            })
        )
    )

[<Fact>]
let ``key ids are KeyId.ofSecret, never the key`` () =
    let policies, _, states = compiled [ key "sk-secret-1" 60 ]
    Assert.Equal(KeyId.ofSecret "sk-secret-1", policies[0].Id)
    Assert.Equal(KeyId.ofSecret "sk-secret-1", states[0].Id)
    Assert.DoesNotContain("secret", policies[0].Id)

[<Fact>]
let ``least loaded picks the key with the most headroom`` () =
    let policies, tiers, states = compiled [ key "a" 10; key "b" 10 ]
    let states = [| KeyPool.take TimeSpan.Zero 0L states[0]; states[1] |]
    Assert.Equal(KeyPool.Chosen 1, KeyPool.pick KeyStrategy.LeastLoaded tiers policies states 0 TimeSpan.Zero 1 0UL)

[<Fact>]
let ``a higher priority tier is always tried first`` () =
    let keys = [ key "low" 10; keyWith "high" (fun k -> { k with Priority = 2 }) ]
    Assert.Equal(KeyPool.Chosen 1, pick KeyStrategy.LeastLoaded keys None 0.0)
    Assert.Equal(KeyPool.Chosen 1, pick KeyStrategy.RoundRobin keys None 0.0)

[<Fact>]
let ``a lower tier is used when the higher one has no ready key`` () =
    let keys = [ key "low" 10; { key "high" 1 with Priority = 1 } ]
    let policies, tiers, states = compiled keys
    let states = [| states[0]; KeyPool.take TimeSpan.Zero 0L states[1] |]
    Assert.Equal(KeyPool.Chosen 0, KeyPool.pick KeyStrategy.LeastLoaded tiers policies states 0 TimeSpan.Zero 1 0UL)

[<Fact>]
let ``round robin starts at the cursor`` () =
    let policies, tiers, states = compiled [ key "a" 0; key "b" 0; key "c" 0 ]

    let picks =
        [ 0..3 ]
        |> List.map (fun cursor -> KeyPool.pick KeyStrategy.RoundRobin tiers policies states cursor TimeSpan.Zero 1 0UL)

    Assert.Equal<KeyPool.Pick list>([ KeyPool.Chosen 0; KeyPool.Chosen 1; KeyPool.Chosen 2; KeyPool.Chosen 0 ], picks)

[<Fact>]
let ``weighted follows the weights of the ready keys`` () =
    let policies, tiers, states =
        compiled [ { key "a" 0 with Weight = 1 }; { key "b" 0 with Weight = 3 } ]

    let counts = Array.zeroCreate 2

    for r in 0UL .. 3UL do
        match KeyPool.pick KeyStrategy.Weighted tiers policies states 0 TimeSpan.Zero 1 r with
        | KeyPool.Chosen k -> counts[k] <- counts[k] + 1
        | KeyPool.NoneReady _ -> failwith "no key"

    Assert.Equal<int array>([| 1; 3 |], counts)

[<Fact>]
let ``a key below the low-water mark is used only when no other key is ready`` () =
    let policies, tiers, states = compiled [ key "a" 100; key "b" 100 ]
    // a: 5 left of 100; b: 60 left.
    let drain (n: int) (state: KeyState) =
        Seq.fold (fun s _ -> KeyPool.take TimeSpan.Zero 0L s) state (seq { 1..n })

    let states = [| drain 95 states[0]; drain 40 states[1] |]
    Assert.Equal(KeyPool.Chosen 1, KeyPool.pick KeyStrategy.RoundRobin tiers policies states 0 TimeSpan.Zero 1 0UL)
    let states = [| states[0]; drain 60 states[1] |]
    Assert.Equal(KeyPool.Chosen 0, KeyPool.pick KeyStrategy.RoundRobin tiers policies states 1 TimeSpan.Zero 1 0UL)

[<Fact>]
let ``no ready key says when the earliest one will be`` () =
    let policies, tiers, states = compiled [ key "a" 60; key "b" 60 ]

    let states = [|
        KeyPool.coolDown (at 30.0) states[0]
        Seq.fold (fun s _ -> KeyPool.take TimeSpan.Zero 0L s) states[1] (seq { 1..60 })
    |]

    Assert.Equal(
        KeyPool.NoneReady(at 1.0),
        KeyPool.pick KeyStrategy.LeastLoaded tiers policies states 0 TimeSpan.Zero 1 0UL
    )

[<Fact>]
let ``a revoked key is never ready`` () =
    let _, _, states = compiled [ key "a" 60 ]
    Assert.Equal(TimeSpan.MaxValue, KeyPool.readyIn TimeSpan.Zero 1 (KeyPool.revoke states[0]))

[<Fact>]
let ``capacity is the tightest bucket's fraction, and 0 while cooling down or revoked`` () =
    let _, _, states = compiled [ key "a" 4; key "unlimited" 0 ]
    let used = KeyPool.take TimeSpan.Zero 0L states[0]
    Assert.Equal(1.0, KeyPool.capacity TimeSpan.Zero states[0])
    Assert.Equal(0.75, KeyPool.capacity TimeSpan.Zero used)
    Assert.Equal(1.0, KeyPool.capacity TimeSpan.Zero states[1])
    let cooled = KeyPool.coolDown (at 30.0) states[1]
    Assert.Equal(0.0, KeyPool.capacity (at 29.0) cooled)
    Assert.Equal(1.0, KeyPool.capacity (at 30.0) cooled)
    Assert.Equal(0.0, KeyPool.capacity TimeSpan.Zero (KeyPool.revoke states[0]))

[<Fact>]
let ``a later cooldown is never shortened by an earlier one`` () =
    let _, _, states = compiled [ key "a" 60 ]
    let cooled = states[0] |> KeyPool.coolDown (at 60.0) |> KeyPool.coolDown (at 10.0)
    Assert.Equal(at 60.0, cooled.CooldownUntil)

[<Fact>]
let ``an estimate above the ITPM capacity waits for a full bucket instead of never going out`` () =
    let _, _, states = compiled [ keyWith "a" (fun k -> { k with ItpmLimit = 1000 }) ]
    Assert.Equal(1000L, KeyPool.inputCost states[0] 50_000)
    let drained = KeyPool.take TimeSpan.Zero 500L states[0]
    Assert.Equal(at 30.0, KeyPool.readyIn TimeSpan.Zero 50_000 drained)

[<Fact>]
let ``settle refunds an over-estimate and charges the output`` () =
    let _, _, states =
        compiled [
            keyWith "a" (fun k -> {
                k with
                    ItpmLimit = 1000
                    OtpmLimit = 1000
            })
        ]

    let charged = KeyPool.take TimeSpan.Zero 800L states[0]
    let settled = KeyPool.settle TimeSpan.Zero 800L 300L 250L charged
    Assert.Equal(700L, TokenBucket.tokens (TokenBucket.perMinute 1000) settled.Itpm)
    Assert.Equal(750L, TokenBucket.tokens (TokenBucket.perMinute 1000) settled.Otpm)

let private headers (requests: RateLimitWindow) : RateLimitHeaders = {
    RateLimitHeaders.empty with
        Requests = requests
}

[<Fact>]
let ``learning a remaining count lowers the bucket and never refills it`` () =
    let _, _, states = compiled [ key "a" 100 ]

    let low =
        KeyPool.learn
            TimeSpan.Zero
            (headers {
                RateLimitHeaders.emptyWindow with
                    Remaining = Some 3L
            })
            states[0]

    Assert.Equal(3L, TokenBucket.tokens (TokenBucket.perMinute 100) low.Rpm)

    let again =
        KeyPool.learn
            TimeSpan.Zero
            (headers {
                RateLimitHeaders.emptyWindow with
                    Remaining = Some 90L
            })
            low

    Assert.Equal(3L, TokenBucket.tokens (TokenBucket.perMinute 100) again.Rpm)

[<Fact>]
let ``learning a bigger limit keeps the level; a smaller one clamps it`` () =
    let _, _, states = compiled [ key "a" 100 ]

    let used =
        Seq.fold (fun s _ -> KeyPool.take TimeSpan.Zero 0L s) states[0] (seq { 1..50 })

    let bigger =
        KeyPool.learn
            TimeSpan.Zero
            (headers {
                RateLimitHeaders.emptyWindow with
                    Limit = Some 1000L
            })
            used

    Assert.Equal(1000, bigger.Limits.Rpm)
    Assert.Equal(50L, TokenBucket.tokens (TokenBucket.perMinute 1000) bigger.Rpm)

    let smaller =
        KeyPool.learn
            TimeSpan.Zero
            (headers {
                RateLimitHeaders.emptyWindow with
                    Limit = Some 20L
            })
            used

    Assert.Equal(20L, TokenBucket.tokens (TokenBucket.perMinute 20) smaller.Rpm)

[<Fact>]
let ``an unlimited key learns its limit and starts at what remains`` () =
    let _, _, states = compiled [ key "a" 0 ]

    let learned =
        KeyPool.learn
            TimeSpan.Zero
            {
                RateLimitHeaders.empty with
                    InputTokens = {
                        Limit = Some 40_000L
                        Remaining = Some 12_000L
                        ResetIn = None
                    }
            }
            states[0]

    Assert.Equal({ Rpm = 0; Itpm = 40_000; Otpm = 0 }, learned.Limits)
    Assert.Equal(12_000L, TokenBucket.tokens (TokenBucket.perMinute 40_000) learned.Itpm)

[<Fact>]
let ``the tokens headers stand in for missing input-token headers`` () =
    let _, _, states = compiled [ keyWith "a" (fun k -> { k with ItpmLimit = 100 }) ]

    let learned =
        KeyPool.learn
            TimeSpan.Zero
            {
                RateLimitHeaders.empty with
                    Tokens = {
                        RateLimitHeaders.emptyWindow with
                            Remaining = Some 10L
                    }
            }
            states[0]

    Assert.Equal(10L, TokenBucket.tokens (TokenBucket.perMinute 100) learned.Itpm)

[<Fact>]
let ``a reload keeps buckets and cooldowns, clears a revocation, and takes changed limits`` () =
    let policies, _, states = compiled [ key "a" 10 ]

    let used =
        states[0]
        |> KeyPool.take TimeSpan.Zero 0L
        |> KeyPool.coolDown (at 20.0)
        |> KeyPool.revoke

    let kept = KeyPool.carryOver TimeSpan.Zero policies[0] used
    Assert.False(kept.Revoked)
    Assert.Equal(used.Rpm, kept.Rpm)
    Assert.Equal(at 20.0, kept.CooldownUntil)

    let changed = KeyPool.compile [ key "a" 100 ]
    let relimited = KeyPool.carryOver TimeSpan.Zero changed[0] used
    Assert.Equal(100, relimited.Limits.Rpm)
    Assert.Equal(9L, TokenBucket.tokens (TokenBucket.perMinute 100) relimited.Rpm)
    Assert.Equal(at 20.0, relimited.CooldownUntil)
