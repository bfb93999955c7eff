module CcRelay.Core.Properties.RoutingProperties

open System
open System.Text.RegularExpressions
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core

let private provider (i: int) (weight: int) : ProviderConfig = {
    Config.defaultProvider $"p%d{i}" ProviderType.AnthropicCompatible (Uri $"https://p%d{i}.example.test") with
        Weight = weight
        Priority = 0
}

let private runtimeOf (strategy: RoutingStrategy) (providers: ProviderConfig list) : RelayRuntime =
    Relay.create TimeSpan.Zero {
        Config.defaults with
            Providers = providers
            Routing = {
                Config.defaultRouting with
                    Strategy = strategy
            }
    }

let private request (seed: uint64) : RouteRequest = {
    Model = "m"
    EstimatedInputTokens = 10
    ExpectedOutputTokens = 10
    ThinkingSignatures = false
    ConversationKey = 0UL
    ClientCredential = false
    Seed = seed
    ArrivedAt = TimeSpan.Zero
}

/// The first provider index of `count` consecutive plans.
let private leaders (count: int) (runtime: RelayRuntime) : int list =
    let mutable runtime = runtime

    [
        for i in 1..count do
            let t = Relay.plan runtime (TimeSpan.FromSeconds 1.0) (request (uint64 i * 7919UL))
            runtime <- t.Runtime
            yield t.Value.Order[0]
    ]

let private weights =
    Gen.listOf (Gen.choose (1, 6))
    |> Gen.resize 6
    |> Gen.filter (fun w -> w.Length >= 1)

[<Fact>]
let ``round robin leads evenly, within 1, over any run`` () =
    Check.property (
        Prop.forAll (Gen.zip (Gen.choose (1, 7)) (Gen.choose (1, 60)) |> Check.arb) (fun (n, runs) ->
            let runtime =
                runtimeOf RoutingStrategy.RoundRobin [ for i in 0 .. n - 1 -> provider i 1 ]

            let counts = Array.zeroCreate n

            for p in leaders runs runtime do
                counts[p] <- counts[p] + 1

            Assert.True(Array.max counts - Array.min counts <= 1))
    )

[<Fact>]
let ``smooth weighted round robin matches the weights exactly over each full cycle`` () =
    Check.property (
        Prop.forAll (Gen.zip weights (Gen.choose (1, 3)) |> Check.arb) (fun (ws, cycles) ->
            let runtime =
                runtimeOf RoutingStrategy.WeightedRoundRobin (ws |> List.mapi provider)

            let total = List.sum ws

            for cycle in leaders (total * cycles) runtime |> List.chunkBySize total do
                let counts = Array.zeroCreate ws.Length

                for p in cycle do
                    counts[p] <- counts[p] + 1

                Assert.Equal<int list>(ws, List.ofArray counts))
    )

[<Fact>]
let ``shuffle deals each provider once per deck`` () =
    Check.property (
        Prop.forAll (Gen.zip (Gen.choose (1, 7)) (Gen.choose (1, 4)) |> Check.arb) (fun (n, decks) ->
            let runtime =
                runtimeOf RoutingStrategy.Shuffle [ for i in 0 .. n - 1 -> provider i 1 ]

            for deck in leaders (n * decks) runtime |> List.chunkBySize n do
                Assert.Equal<int list>([ 0 .. n - 1 ], List.sort deck))
    )

/// Two disjoint candidate sets (as two stages give: providers 0..k-1 and k..n-1) and, for each request, which of
/// the two it has.
let private alternatingSets =
    gen {
        let! n = Gen.choose (2, 6)
        let! k = Gen.choose (1, n - 1)
        let! ws = Gen.listOfLength n (Gen.choose (1, 4))
        let! picks = Gen.listOfLength 60 (Gen.elements [ true; false ])
        return ws, k, picks
    }

/// The leaders of each set, in request order, when the requests alternate between the two sets as `picks` says.
let private leadersAmong (strategy: RoutingStrategy) (ws: int list) (k: int) (picks: bool list) =
    let mutable runtime = runtimeOf strategy (ws |> List.mapi provider)
    let first = [| 0 .. k - 1 |]
    let second = [| k .. ws.Length - 1 |]
    let led = Collections.Generic.Dictionary<bool, ResizeArray<int>>()
    led[true] <- ResizeArray()
    led[false] <- ResizeArray()

    picks
    |> List.iteri (fun i pick ->
        let struct (order, _, next) =
            Routing.orderAmong
                runtime
                (TimeSpan.FromSeconds 1.0)
                (request (uint64 i * 7919UL))
                (if pick then first else second)

        runtime <- next
        led[pick].Add order[0])

    [ first, List.ofSeq led[true]; second, List.ofSeq led[false] ]

[<Fact>]
let ``smooth weighted round robin keeps each set's weights when disjoint sets alternate`` () =
    Check.property (
        Prop.forAll (Check.arb alternatingSets) (fun (ws, k, picks) ->
            for set, leaders in leadersAmong RoutingStrategy.WeightedRoundRobin ws k picks do
                let total = set |> Array.sumBy (fun i -> ws[i])

                for cycle in leaders |> List.chunkBySize total |> List.filter (fun c -> c.Length = total) do
                    for i in set do
                        Assert.Equal(ws[i], cycle |> List.filter ((=) i) |> List.length))
    )

[<Fact>]
let ``shuffle deals each member of a set once per round when disjoint sets alternate`` () =
    Check.property (
        Prop.forAll (Check.arb alternatingSets) (fun (ws, k, picks) ->
            for set, leaders in leadersAmong RoutingStrategy.Shuffle ws k picks do
                for round in
                    leaders
                    |> List.chunkBySize set.Length
                    |> List.filter (fun c -> c.Length = set.Length) do
                    Assert.Equal<int list>(List.ofArray set, List.sort round))
    )

/// A provider's breaker state for the admissibility property.
type private Health =
    | Closed
    | OpenFuture
    | OpenElapsed
    | HalfOpenFree
    | HalfOpenFull
    | Disabled

let private breakerOf (health: Health) : CircuitBreaker.Breaker =
    let now = TimeSpan.FromSeconds 100.0

    let state =
        match health with
        | Closed -> CircuitBreaker.Closed [||]
        | OpenFuture -> CircuitBreaker.Open(now + TimeSpan.FromSeconds 5.0)
        | OpenElapsed -> CircuitBreaker.Open(now - TimeSpan.FromSeconds 5.0)
        | HalfOpenFree -> CircuitBreaker.HalfOpen(0, 0, now - TimeSpan.FromSeconds 1.0)
        | HalfOpenFull -> CircuitBreaker.HalfOpen(10, 0, now - TimeSpan.FromSeconds 1.0)
        | Disabled -> CircuitBreaker.Closed [||]

    {
        State = state
        Generation = 3
        OperatorDisabled = (health = Disabled)
    }

let private strategies = RoutingStrategy.all |> List.map snd

let private fleet =
    gen {
        let! strategy = Gen.elements strategies

        let! healths =
            Gen.listOf (Gen.elements [ Closed; OpenFuture; OpenElapsed; HalfOpenFree; HalfOpenFull; Disabled ])
            |> Gen.resize 7
            |> Gen.filter (fun h -> h.Length >= 1)

        let! weights = Gen.listOfLength healths.Length (Gen.choose (1, 5))
        let! priorities = Gen.listOfLength healths.Length (Gen.choose (0, 2))
        let! inFlight = Gen.listOfLength healths.Length (Gen.choose (0, 3))
        let! seed = Gen.choose (0, Int32.MaxValue) |> Gen.map uint64
        let! plans = Gen.choose (1, 4)
        return strategy, healths, weights, priorities, inFlight, seed, plans
    }
    |> Check.arb

[<Fact>]
let ``no strategy ever plans an open provider, and every closed one is planned`` () =
    Check.property (
        Prop.forAll fleet (fun (strategy, healths, weights, priorities, inFlight, seed, plans) ->
            let providers =
                List.zip3 weights priorities [ 0 .. weights.Length - 1 ]
                |> List.map (fun (w, p, i) -> {
                    provider i w with
                        Priority = p
                        Models = [ "m" ]
                })

            let config = {
                Config.defaults with
                    Providers = providers
                    Routing = {
                        Config.defaultRouting with
                            Strategy = strategy
                            ModelRules = [ { Pattern = "m"; Provider = "p0" } ]
                    }
            }

            let mutable runtime = Relay.create TimeSpan.Zero config

            runtime <- {
                runtime with
                    Providers =
                        runtime.Providers
                        |> Array.mapi (fun i state -> {
                            state with
                                Breaker = breakerOf healths[i]
                                InFlight = inFlight[i]
                        })
            }

            let now = TimeSpan.FromSeconds 100.0

            for i in 1..plans do
                let t =
                    Relay.plan runtime now {
                        request (seed + uint64 i) with
                            Model = "m"
                    }

                runtime <- t.Runtime
                let planned = t.Value.Order |> Array.map (fun p -> healths[p]) |> List.ofArray

                Assert.DoesNotContain(OpenFuture, planned)
                Assert.DoesNotContain(Disabled, planned)
                Assert.DoesNotContain(HalfOpenFull, planned)
                Assert.Equal(t.Value.Order.Length, (Array.distinct t.Value.Order).Length)

                let servable =
                    healths
                    |> List.filter (fun h -> h = Closed || h = OpenElapsed || h = HalfOpenFree)

                Assert.Equal(servable.Length, planned.Length))
    )

// ---------------------------
// Model patterns against an oracle
// ---------------------------

let private alphabet = [ "a"; "b"; "-"; "*"; "ab"; "c" ]

let private pattern: Gen<string> =
    Gen.listOf (Gen.elements alphabet) |> Gen.resize 4 |> Gen.map String.Concat

let private name: Gen<string> =
    Gen.listOf (Gen.elements [ "a"; "b"; "-"; "c" ])
    |> Gen.resize 6
    |> Gen.map String.Concat

/// The oracle of one pattern: a prefix without `*`, an anchored regex with it.
let private naiveMatch (p: string) (n: string) : bool =
    if p.Contains '*' then
        let regex =
            "^" + (p.Split '*' |> Array.map Regex.Escape |> String.concat ".*") + "$"

        Regex.IsMatch(n, regex, RegexOptions.Singleline)
    else
        n.StartsWith(p, StringComparison.Ordinal)

[<Fact>]
let ``a pattern matches exactly when the naive oracle says so`` () =
    Check.quick
        1000
        (Prop.forAll (Gen.zip pattern name |> Check.arb) (fun (p, n) ->
            Assert.Equal(naiveMatch p n, ModelPattern.matches p n)))

[<Fact>]
let ``model rules agree with a naive longest-match oracle`` () =
    Check.quick
        500
        (Prop.forAll (Gen.zip (Gen.listOf pattern |> Gen.resize 6) name |> Check.arb) (fun (patterns, n) ->
            let patterns = Array.ofList patterns
            let literal (p: string) = p.Replace("*", "").Length

            let expected =
                patterns
                |> Array.indexed
                |> Array.filter (fun (_, p) -> naiveMatch p n)
                |> Array.sortBy (fun (i, p) -> -(literal p), i)
                |> Array.tryHead
                |> Option.map fst
                |> Option.defaultValue -1

            Assert.Equal(expected, ModelPattern.tryFindIn patterns (ModelPattern.precedence patterns) n)))
