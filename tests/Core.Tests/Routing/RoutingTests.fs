module CcRelay.Core.Tests.RoutingTests

open System
open Xunit
open CcRelay.Core
open CcRelay.Core.Tests.Fixtures

let private runtimeOf (config: RelayConfig) : RelayRuntime = Relay.create TimeSpan.Zero config

let private abc (strategy: RoutingStrategy) : RelayRuntime =
    relay strategy [ provider "a" []; provider "b" []; provider "c" [] ]
    |> runtimeOf

/// The first provider of `count` consecutive plans.
let private leaders (count: int) (runtime: RelayRuntime) : string list =
    let mutable runtime = runtime

    [
        for i in 1..count do
            let r, dispatch = plan runtime (at 1.0) { request "m" with Seed = uint64 i }
            runtime <- r
            yield names runtime dispatch |> List.head
    ]

/// Opens a provider's breaker by recording failures.
let private trip (name: string) (now: TimeSpan) (runtime: RelayRuntime) : RelayRuntime =
    let p = RelayPolicy.indexOf runtime.Policy name
    let state = runtime.Providers[p]

    let breaker = {
        state.Breaker with
            State = CircuitBreaker.Open(now + TimeSpan.FromSeconds 30.0)
    }

    RelayRuntime.withProvider p { state with Breaker = breaker } runtime

[<Fact>]
let ``failover plans by priority, then config order`` () =
    let runtime =
        relay RoutingStrategy.Failover [ provider "a" []; { provider "b" [] with Priority = 2 }; provider "c" [] ]
        |> runtimeOf

    let _, dispatch = plan runtime (at 1.0) (request "m")
    Assert.Equal<string list>([ "b"; "a"; "c" ], names runtime dispatch)

[<Fact>]
let ``an open provider is not planned; after its break it is`` () =
    let runtime = abc RoutingStrategy.Failover |> trip "a" (at 0.0)
    let _, dispatch = plan runtime (at 1.0) (request "m")
    Assert.Equal<string list>([ "b"; "c" ], names runtime dispatch)
    let _, later = plan runtime (at 31.0) (request "m")
    Assert.Equal<string list>([ "a"; "b"; "c" ], names runtime later)

[<Fact>]
let ``a disabled provider is never planned`` () =
    let runtime = (RelayHealth.disable (abc RoutingStrategy.Failover) "b").Runtime
    let _, dispatch = plan runtime (at 1000.0) (request "m")
    Assert.Equal<string list>([ "a"; "c" ], names runtime dispatch)

[<Fact>]
let ``round robin rotates the leader and keeps the rotation order`` () =
    let runtime = abc RoutingStrategy.RoundRobin
    Assert.Equal<string list>([ "a"; "b"; "c"; "a" ], leaders 4 runtime)
    let runtime, _ = plan runtime (at 1.0) (request "m")
    let _, dispatch = plan runtime (at 1.0) (request "m")
    Assert.Equal<string list>([ "b"; "c"; "a" ], names runtime dispatch)

[<Fact>]
let ``smooth weighted round robin interleaves as nginx does`` () =
    let runtime =
        relay RoutingStrategy.WeightedRoundRobin [
            { provider "a" [] with Weight = 5 }
            provider "b" []
            provider "c" []
        ]
        |> runtimeOf

    Assert.Equal<string list>([ "a"; "a"; "b"; "a"; "c"; "a"; "a" ], leaders 7 runtime)

[<Fact>]
let ``shuffle deals every provider once per deck`` () =
    let dealt = leaders 9 (abc RoutingStrategy.Shuffle)

    for deck in List.chunkBySize 3 dealt do
        Assert.Equal<string list>([ "a"; "b"; "c" ], List.sort deck)

[<Fact>]
let ``least loaded puts the fewest in flight first`` () =
    let runtime = abc RoutingStrategy.LeastLoaded

    let busy (name: string) (n: int) (rt: RelayRuntime) =
        let p = RelayPolicy.indexOf rt.Policy name
        RelayRuntime.withProvider p { rt.Providers[p] with InFlight = n } rt

    let runtime = runtime |> busy "a" 3 |> busy "b" 1 |> busy "c" 2
    let _, dispatch = plan runtime (at 1.0) (request "m")
    Assert.Equal<string list>([ "b"; "c"; "a" ], names runtime dispatch)

[<Fact>]
let ``least loaded rotates idle equals`` () =
    Assert.Equal<string list>([ "a"; "b"; "c" ], leaders 3 (abc RoutingStrategy.LeastLoaded))

[<Fact>]
let ``weighted failover is a permutation drawn from the seed`` () =
    let runtime =
        relay RoutingStrategy.WeightedFailover [ { provider "a" [] with Weight = 8 }; provider "b" []; provider "c" [] ]
        |> runtimeOf

    let plans =
        [ 1UL .. 200UL ]
        |> List.map (fun seed -> plan runtime (at 1.0) { request "m" with Seed = seed } |> snd |> names runtime)

    Assert.All(plans, fun p -> Assert.Equal<string list>([ "a"; "b"; "c" ], List.sort p))
    let ledByA = plans |> List.filter (fun p -> p.Head = "a") |> List.length
    // Weight 8 of 10: about 160 of 200.
    Assert.InRange(ledByA, 130, 190)

let private modelBased
    (rules: (string * string) list)
    (defaultProvider: string option)
    (providers: ProviderConfig list)
    =
    {
        relay RoutingStrategy.ModelBased providers with
            Routing = {
                Config.defaultRouting with
                    Strategy = RoutingStrategy.ModelBased
                    ModelRules = rules |> List.map (fun (p, n) -> { Pattern = p; Provider = n })
                    DefaultProvider = defaultProvider
            }
    }
    |> runtimeOf

[<Fact>]
let ``model based: the longest prefix wins, other matching rules follow`` () =
    let runtime =
        modelBased [ "claude", "b"; "claude-opus", "a" ] None [ provider "a" []; provider "b" []; provider "c" [] ]

    Assert.Equal<string list>([ "a"; "b" ], plan runtime (at 1.0) (request "claude-opus-4") |> snd |> names runtime)
    Assert.Equal<string list>([ "b" ], plan runtime (at 1.0) (request "claude-sonnet-4") |> snd |> names runtime)

[<Fact>]
let ``model based: a glob matches the whole name`` () =
    let runtime =
        modelBased [ "*-opus-*", "a"; "qwen*:8b", "b" ] None [ provider "a" []; provider "b" []; provider "c" [] ]

    Assert.Equal<string list>([ "a" ], plan runtime (at 1.0) (request "claude-opus-4") |> snd |> names runtime)
    Assert.Equal<string list>([ "b" ], plan runtime (at 1.0) (request "qwen3:8b") |> snd |> names runtime)
    Assert.Equal<string list>([ "a"; "b"; "c" ], plan runtime (at 1.0) (request "qwen3:70b") |> snd |> names runtime)

[<Fact>]
let ``model based: no match goes to the default provider, then to those that serve the model`` () =
    let runtime =
        modelBased [ "claude", "a" ] (Some "c") [
            provider "a" []
            {
                provider "b" [] with
                    Models = [ "GLM-5" ]
            }
            provider "c" []
        ]

    Assert.Equal<string list>([ "c"; "b" ], plan runtime (at 1.0) (request "GLM-5") |> snd |> names runtime)

[<Fact>]
let ``model based: when the target is down, the others that serve the model answer`` () =
    let runtime =
        modelBased [ "claude-opus", "a" ] None [
            provider "a" []
            provider "b" []
            {
                provider "c" [] with
                    ModelMapping = Map [ "claude-opus-4", "x" ]
            }
        ]
        |> trip "a" (at 0.0)

    Assert.Equal<string list>([ "c" ], plan runtime (at 1.0) (request "claude-opus-4") |> snd |> names runtime)

[<Fact>]
let ``latency based: fastest first, unmeasured before measured`` () =
    let runtime = abc RoutingStrategy.LatencyBased

    let measured (name: string) (ms: float) (rt: RelayRuntime) =
        let p = RelayPolicy.indexOf rt.Policy name

        RelayRuntime.withProvider
            p
            {
                rt.Providers[p] with
                    Latency = Routing.sampleLatency (at 1.0) (TimeSpan.FromMilliseconds ms) rt.Providers[p].Latency
            }
            rt

    let runtime = runtime |> measured "a" 900.0 |> measured "b" 300.0
    Assert.Equal<string list>([ "c"; "b"; "a" ], plan runtime (at 2.0) (request "m") |> snd |> names runtime)
    let runtime = runtime |> measured "c" 600.0
    Assert.Equal<string list>([ "b"; "c"; "a" ], plan runtime (at 2.0) (request "m") |> snd |> names runtime)

[<Fact>]
let ``latency based: a provider unmeasured for a while is explored once`` () =
    let sample (name: string) (ms: float) (now: float) (rt: RelayRuntime) =
        let p = RelayPolicy.indexOf rt.Policy name

        RelayRuntime.withProvider
            p
            {
                rt.Providers[p] with
                    Latency = Routing.sampleLatency (at now) (TimeSpan.FromMilliseconds ms) rt.Providers[p].Latency
            }
            rt

    let runtime =
        abc RoutingStrategy.LatencyBased
        |> sample "a" 900.0 1.0
        |> sample "b" 300.0 1.0
        |> sample "c" 400.0 1.0
        |> sample "b" 300.0 40.0
        |> sample "c" 400.0 40.0

    let runtime, first = plan runtime (at 41.0) (request "m")
    Assert.Equal<string list>([ "a"; "b"; "c" ], names runtime first)
    let _, second = plan runtime (at 42.0) (request "m")
    Assert.Equal<string list>([ "b"; "c"; "a" ], names runtime second)

[<Fact>]
let ``cost based: cheapest first for the model, unpriced last`` () =
    let rule (pattern: string) (input: decimal) (output: decimal) : PriceRule = {
        Pattern = pattern
        Price = {
            Input = input
            Output = output
            CacheRead = input
            CacheWrite = input
        }
    }

    let runtime =
        relay RoutingStrategy.CostBased [
            {
                provider "a" [] with
                    Pricing = [ rule "glm*" 3m 15m ]
            }
            provider "b" [] // nothing prices GLM models here: last
            {
                provider "c" [] with
                    Pricing = [ rule "glm-5" 1m 5m; rule "*" 100m 100m ]
            }
        ]
        |> runtimeOf

    Assert.Equal<string list>([ "c"; "a"; "b" ], plan runtime (at 1.0) (request "glm-5") |> snd |> names runtime)
    Assert.Equal<string list>([ "a"; "c"; "b" ], plan runtime (at 1.0) (request "glm-4.7") |> snd |> names runtime)

[<Fact>]
let ``cost based: a provider's pricing overrides the built-in Claude prices the others fall back to`` () =
    let cheap = flatPrice "claude-opus*" 1m

    let runtime =
        relay RoutingStrategy.CostBased [
            provider "list-price" []
            {
                provider "discounted" [] with
                    Pricing = [ cheap ]
            }
        ]
        |> runtimeOf

    Assert.Equal<string list>(
        [ "discounted"; "list-price" ],
        plan runtime (at 1.0) (request "claude-opus-4-1") |> snd |> names runtime
    )

[<Fact>]
let ``a thinking conversation puts its pinned family first`` () =
    let runtime =
        relay RoutingStrategy.Failover [
            provider "a" []
            Config.defaultProvider "b" ProviderType.Anthropic (Uri "https://api.anthropic.com")
            provider "c" []
        ]
        |> runtimeOf
        |> RelayRuntime.pin (at 0.0) 7UL "anthropic"

    let thinking = {
        request "m" with
            ThinkingSignatures = true
            ConversationKey = 7UL
    }

    let _, dispatch = plan runtime (at 1.0) thinking
    Assert.Equal<string list>([ "b"; "a"; "c" ], names runtime dispatch)
    Assert.Equal("anthropic", dispatch.PinnedFamily)
    // Without signatures, the strategy alone decides.
    let _, plain =
        plan runtime (at 1.0) {
            thinking with
                ThinkingSignatures = false
        }

    Assert.Equal<string list>([ "a"; "b"; "c" ], names runtime plain)

[<Theory>]
[<InlineData("claude-opus", "claude-opus-4-6", true)>]
[<InlineData("claude-opus", "claude-sonnet", false)>]
[<InlineData("claude-*", "claude-x", true)>]
[<InlineData("*opus*", "claude-opus-4", true)>]
[<InlineData("*opus", "claude-opus-4", false)>]
[<InlineData("a*b*c", "aXbYc", true)>]
[<InlineData("a*b*c", "aXbY", false)>]
[<InlineData("*", "", true)>]
[<InlineData("", "anything", true)>]
[<InlineData("Claude", "claude", false)>]
let ``model patterns: prefixes, and globs over the whole name`` (pattern: string) (name: string) (expected: bool) =
    Assert.Equal(expected, ModelPattern.matches pattern name)

[<Fact>]
let ``model patterns: the most literal characters win, then file order`` () =
    let patterns = [| "claude"; "claude-*"; "claude-opus"; "*opus*"; "claude-opus" |]
    let order = ModelPattern.precedence patterns
    Assert.Equal(2, ModelPattern.tryFindIn patterns order "claude-opus-4")
    Assert.Equal(1, ModelPattern.tryFindIn patterns order "claude-sonnet")
    Assert.Equal(-1, ModelPattern.tryFindIn patterns order "gpt")
