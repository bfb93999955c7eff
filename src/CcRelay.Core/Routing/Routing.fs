namespace CcRelay.Core

open System

/// What routing needs to know about one request.
type RouteRequest = {
    /// The model the client asked for.
    Model: string
    /// `RequestFacts.EstimatedInputTokens`.
    EstimatedInputTokens: int
    /// What `cost_based` assumes the answer costs (`expectedOutputTokens`).
    ExpectedOutputTokens: int
    /// The request replays signed thinking blocks (`RequestFacts.ThinkingSignatures`).
    ThinkingSignatures: bool
    /// `Affinity.conversationKey`; 0 when unknown.
    ConversationKey: uint64
    /// The caller's own credential goes upstream (Anthropic passthrough): no configured key is used at
    /// providers that accept it.
    ClientCredential: bool
    /// A random value from the host (e.g. `Random.Shared.NextInt64()`): every random choice derives from it.
    Seed: uint64
    /// When the request arrived, on the monotonic clock.
    ArrivedAt: TimeSpan
}

/// Ordering providers: every strategy produces an ordered list of provider indexes, the plan's backbone.
///
/// Two rules hold for every strategy:
/// - only *admissible* providers are planned: Closed, Half-open with a probe to spare, or Open with the
///   break over (the next admit turns it half-open). An Open provider is never planned, and a Disabled one
///   never.
/// - a request that replays thinking signatures puts the providers of its pinned family first (stable).
[<RequireQualifiedAccess>]
module Routing =

    /// How long a `latency_based` provider may go unmeasured before one request is sent there to measure it.
    let exploreAfter: TimeSpan = TimeSpan.FromSeconds 30.0

    /// Smoothing of the latency EWMA (weight of the newest sample).
    let latencyAlpha: float = 0.3

    /// What `cost_based` assumes an answer costs: `max_tokens`, at most 4096; 1024 when absent.
    let expectedOutputTokens (maxTokens: int) : int =
        if maxTokens > 0 then min maxTokens 4096 else 1024

    /// Whether a provider may be planned now.
    let admissible (policy: RelayPolicy) (now: TimeSpan) (state: ProviderState) : bool =
        match CircuitBreaker.peek policy.Breaker now state.Breaker with
        | CircuitBreaker.Admitted _ -> true
        | CircuitBreaker.Refused _ -> false

    /// The admissible providers among `candidates`, order kept. When all are, `candidates` itself: callers
    /// never change the array they get.
    let private filterAdmissible (runtime: RelayRuntime) (now: TimeSpan) (candidates: int array) : int array =
        let mutable count = 0

        for i in candidates do
            if admissible runtime.Policy now runtime.Providers[i] then
                count <- count + 1

        if count = candidates.Length then
            candidates
        else
            let result = Array.zeroCreate count
            let mutable j = 0

            for i in candidates do
                if admissible runtime.Policy now runtime.Providers[i] then
                    result[j] <- i
                    j <- j + 1

            result

    /// Stable insertion sort of `order` by ascending `keys` (aligned with `order`). Small n only.
    let private sortByKeys (keys: float array) (order: int array) : unit =
        for i in 1 .. order.Length - 1 do
            let key = keys[i]
            let value = order[i]
            let mutable j = i - 1

            while j >= 0 && keys[j] > key do
                keys[j + 1] <- keys[j]
                order[j + 1] <- order[j]
                j <- j - 1

            keys[j + 1] <- key
            order[j + 1] <- value

    let private configOrder (policy: RelayPolicy) : int array = policy.ConfigOrder

    // ---------------------------
    // model_based
    // ---------------------------

    /// The `model_based` candidates for a model, in order: the providers of every matching rule (most
    /// specific first), or `default_provider` when none matches; then the other providers that list or map
    /// the model, by priority. With no rule, no default and no provider serving the model: every provider,
    /// by priority.
    ///
    /// NOTE: unlike the Go project, a target that is down does not fail the request: the others that serve
    /// the model follow it. Providers that do not serve the model are not tried, because they would answer
    /// 404 for a model they do not have.
    let modelCandidates (policy: RelayPolicy) (model: string) : int array =
        let seen = Array.zeroCreate<bool> policy.Providers.Length
        let result = ResizeArray<int>(policy.Providers.Length)

        let add (i: int) =
            if i >= 0 && not seen[i] then
                seen[i] <- true
                result.Add i

        let mutable matched = false

        for r in policy.RuleOrder do
            if ModelPattern.matches policy.RulePatterns[r] model then
                matched <- true
                add policy.RuleProviders[r]

        if not matched then
            add policy.DefaultProvider

        for i in policy.PriorityOrder do
            if policy.Providers[i].Serves.Contains model then
                add i

        if result.Count = 0 then
            policy.PriorityOrder
        else
            result.ToArray()

    // ---------------------------
    // Strategies
    // ---------------------------

    let private roundRobin (routing: RoutingState) (set: int array) : struct (int array * RoutingState) =
        if set.Length > 1 then
            let start = int (routing.Counter % int64 set.Length)
            let order = Array.zeroCreate set.Length

            for i in 0 .. set.Length - 1 do
                order[i] <- set[(start + i) % set.Length]

            struct (order,
                    {
                        routing with
                            Counter = routing.Counter + 1L
                    })
        else
            struct (set,
                    {
                        routing with
                            Counter = routing.Counter + 1L
                    })

    /// Smooth weighted round robin (nginx): every provider in the set grows its current by its weight; the
    /// largest leads and gives back the set's total. The rest follow by current, largest first. The currents are
    /// kept for every provider, whatever the set: a provider outside this request's set (not admissible, or not
    /// among a stage's candidates) keeps its current, as nginx keeps a down peer's, so sets that alternate between
    /// requests each keep their own smooth rhythm instead of restarting it. The currents always sum to 0.
    let private weightedRoundRobin
        (policy: RelayPolicy)
        (routing: RoutingState)
        (set: int array)
        : struct (int array * RoutingState) =
        if set.Length = 0 then
            struct (set, routing)
        else
            let current =
                if routing.WrrCurrent.Length = policy.Providers.Length then
                    Array.copy routing.WrrCurrent
                else
                    Array.zeroCreate policy.Providers.Length

            let mutable total = 0
            let mutable best = -1

            for i in set do
                let w = policy.Providers[i].Weight
                current[i] <- current[i] + w
                total <- total + w

                if best < 0 || current[i] > current[best] then
                    best <- i

            current[best] <- current[best] - total
            let keys = Array.zeroCreate<float> set.Length
            let order = Array.copy set

            for j in 0 .. order.Length - 1 do
                keys[j] <-
                    if order[j] = best then
                        -infinity
                    else
                        -(float current[order[j]])

            sortByKeys keys order

            struct (order, { routing with WrrCurrent = current })

    /// Deals from a deck of every provider, shuffled with the request's seed: the first card of the request's set
    /// not dealt yet leads and is marked dealt; the set's other members follow in deck order after it. When every
    /// member of the set has been dealt, their marks are cleared and the deck is shuffled anew. Marks are per
    /// provider, so each member of a set leads once per round of that set whatever other sets the requests in
    /// between had (a deck per set would restart whenever consecutive sets differ).
    let private shuffle
        (providers: int)
        (routing: RoutingState)
        (seed: uint64)
        (set: int array)
        : struct (int array * RoutingState) =
        if set.Length = 0 then
            struct (set, routing)
        else
            let kept = routing.Deck.Length = providers && routing.Dealt.Length = providers

            let fresh () =
                // Fisher-Yates.
                let deck = Array.init providers id

                for i in deck.Length - 1 .. -1 .. 1 do
                    let j = Rng.below (Rng.mix seed (uint64 i)) (i + 1)
                    let t = deck[i]
                    deck[i] <- deck[j]
                    deck[j] <- t

                deck

            let dealt =
                if kept then
                    Array.copy routing.Dealt
                else
                    Array.zeroCreate providers

            let firstUndealt (deck: int array) =
                let mutable j = 0

                while j < deck.Length && (dealt[deck[j]] || not (Array.contains deck[j] set)) do
                    j <- j + 1

                j

            let deck, lead =
                let deck = if kept then routing.Deck else fresh ()
                let lead = firstUndealt deck

                if lead < deck.Length then
                    deck, lead
                else
                    for i in set do
                        dealt[i] <- false

                    let deck = fresh ()
                    deck, firstUndealt deck

            dealt[deck[lead]] <- true
            let order = Array.zeroCreate set.Length
            let mutable n = 0

            for k in 0 .. deck.Length - 1 do
                let card = deck[(lead + k) % deck.Length]

                if Array.contains card set then
                    order[n] <- card
                    n <- n + 1

            struct (order,
                    {
                        routing with
                            Deck = deck
                            Dealt = dealt
                    })

    /// Fewest in flight first; then priority; then a rotation, so that idle equals share the load.
    let private leastLoaded
        (runtime: RelayRuntime)
        (routing: RoutingState)
        (set: int array)
        : struct (int array * RoutingState) =
        let set = Array.copy set
        let n = set.Length
        let keys = Array.zeroCreate<float> n
        let rotation = if n = 0 then 0 else int (routing.Counter % int64 n)

        for j in 0 .. n - 1 do
            let p = set[j]
            // `set` is in priority order, so its position ranks priority; the rotation only breaks exact ties.
            let tie = float ((j - rotation + n) % n) / float (n + 1)

            keys[j] <-
                float runtime.Providers[p].InFlight * 1_000_000.0
                - float runtime.Policy.Providers[p].Priority * 1_000.0
                + tie

        sortByKeys keys set

        struct (set,
                {
                    routing with
                        Counter = routing.Counter + 1L
                })

    /// A weighted random permutation: each next provider drawn in proportion to its weight.
    let private weightedFailover (policy: RelayPolicy) (seed: uint64) (set: int array) : int array =
        let order = Array.copy set
        let mutable remaining = 0

        for i in order do
            remaining <- remaining + policy.Providers[i].Weight

        for j in 0 .. order.Length - 2 do
            let mutable r = Rng.below (Rng.mix seed (uint64 (j + 100))) remaining
            let mutable k = j

            while r >= policy.Providers[order[k]].Weight do
                r <- r - policy.Providers[order[k]].Weight
                k <- k + 1

            let chosen = order[k]
            // Move the chosen one to position j, keeping the others' relative order.
            for m in k .. -1 .. j + 1 do
                order[m] <- order[m - 1]

            order[j] <- chosen
            remaining <- remaining - policy.Providers[chosen].Weight

        order

    /// Fastest first by EWMA; unmeasured providers count as fastest (so they get measured), and one
    /// provider left unmeasured for `exploreAfter` goes first once per `exploreAfter`.
    let private latencyBased
        (runtime: RelayRuntime)
        (now: TimeSpan)
        (set: int array)
        : struct (int array * ProviderState array) =
        let n = set.Length
        let keys = Array.zeroCreate<float> n

        for j in 0 .. n - 1 do
            let latency = runtime.Providers[set[j]].Latency
            keys[j] <- if latency.Samples = 0 then 0.0 else latency.EwmaMs

        let order = Array.copy set
        sortByKeys keys order

        let stale (p: int) =
            let latency = runtime.Providers[p].Latency

            // `ExploredAt` starts at TimeSpan.MinValue: compare, never subtract (it would overflow).
            latency.Samples > 0
            && now - latency.SampledAt >= exploreAfter
            && (latency.ExploredAt = TimeSpan.MinValue
                || now - latency.ExploredAt >= exploreAfter)

        match order |> Array.tryFindIndex stale with
        | Some j when j > 0 ->
            let explorer = order[j]

            for m in j .. -1 .. 1 do
                order[m] <- order[m - 1]

            order[0] <- explorer
            let providers = Array.copy runtime.Providers

            providers[explorer] <- {
                providers[explorer] with
                    Latency = {
                        providers[explorer].Latency with
                            ExploredAt = now
                    }
            }

            struct (order, providers)
        | _ -> struct (order, runtime.Providers)

    /// Cheapest first for the model (input estimate × input price + expected output × output price);
    /// providers without a price for it go last, by priority.
    let private costBased (policy: RelayPolicy) (request: RouteRequest) (set: int array) : int array =
        let keys = Array.zeroCreate<float> set.Length

        for j in 0 .. set.Length - 1 do
            keys[j] <-
                match RelayPolicy.price policy.Providers[set[j]] request.Model with
                | ValueSome(struct (input, output)) ->
                    input * float request.EstimatedInputTokens
                    + output * float request.ExpectedOutputTokens
                | ValueNone -> infinity

        let order = Array.copy set
        sortByKeys keys order
        order

    /// Puts the providers of `family` first, keeping the order within both groups.
    let private familyFirst (policy: RelayPolicy) (family: string) (order: int array) : int array =
        let mutable same = 0

        for i in order do
            if policy.Providers[i].Family = family then
                same <- same + 1

        if same = 0 || same = order.Length then
            order
        else
            let result = Array.zeroCreate order.Length
            let mutable a = 0
            let mutable b = same

            for i in order do
                if policy.Providers[i].Family = family then
                    result[a] <- i
                    a <- a + 1
                else
                    result[b] <- i
                    b <- b + 1

            result

    /// The ordered providers for a request, the family its thinking signatures are pinned to ("" when
    /// none), and the runtime with the strategy's cursors advanced.
    let private orderIn
        (runtime: RelayRuntime)
        (now: TimeSpan)
        (request: RouteRequest)
        (candidates: int array voption)
        : struct (int array * string * RelayRuntime) =
        let policy = runtime.Policy
        let routing = runtime.Routing

        // A stage's candidates in the order it lists them (`failover`, `model_based`), or the strategy's own
        // base order kept to the candidates.
        let listed (fallback: int array) =
            match candidates with
            | ValueSome c -> c
            | ValueNone -> fallback

        let restrict (order: int array) =
            match candidates with
            | ValueSome c -> order |> Array.filter (fun i -> Array.contains i c)
            | ValueNone -> order

        let configOrder (policy: RelayPolicy) = restrict (configOrder policy)

        let struct (order, runtime) =
            match policy.Strategy with
            | RoutingStrategy.Failover -> struct (filterAdmissible runtime now (listed policy.PriorityOrder), runtime)
            | RoutingStrategy.RoundRobin ->
                let struct (order, routing) =
                    roundRobin routing (filterAdmissible runtime now (configOrder policy))

                struct (order, { runtime with Routing = routing })
            | RoutingStrategy.WeightedRoundRobin ->
                let struct (order, routing) =
                    weightedRoundRobin policy routing (filterAdmissible runtime now (configOrder policy))

                struct (order, { runtime with Routing = routing })
            | RoutingStrategy.Shuffle ->
                let struct (order, routing) =
                    shuffle
                        policy.Providers.Length
                        routing
                        request.Seed
                        (filterAdmissible runtime now (configOrder policy))

                struct (order, { runtime with Routing = routing })
            | RoutingStrategy.LeastLoaded ->
                let struct (order, routing) =
                    leastLoaded runtime routing (filterAdmissible runtime now (restrict policy.PriorityOrder))

                struct (order, { runtime with Routing = routing })
            | RoutingStrategy.WeightedFailover ->
                struct (weightedFailover policy request.Seed (filterAdmissible runtime now (configOrder policy)),
                        runtime)
            | RoutingStrategy.ModelBased ->
                struct (filterAdmissible runtime now (listed (modelCandidates policy request.Model)), runtime)
            | RoutingStrategy.LatencyBased ->
                let struct (order, providers) =
                    latencyBased runtime now (filterAdmissible runtime now (configOrder policy))

                struct (order, { runtime with Providers = providers })
            | RoutingStrategy.CostBased ->
                struct (costBased policy request (filterAdmissible runtime now (restrict policy.PriorityOrder)), runtime)

        let family =
            if request.ThinkingSignatures then
                match RelayRuntime.pinnedFamily now request.ConversationKey runtime with
                | ValueSome f -> f
                | ValueNone -> ""
            else
                ""

        let order =
            if family.Length > 0 then
                familyFirst policy family order
            else
                order

        struct (order, family, runtime)

    /// The ordered providers for a request, the family its thinking signatures are pinned to ("" when
    /// none), and the runtime with the strategy's cursors advanced.
    let order
        (runtime: RelayRuntime)
        (now: TimeSpan)
        (request: RouteRequest)
        : struct (int array * string * RelayRuntime) =
        orderIn runtime now request ValueNone

    /// `order` within a stage's candidates (provider indexes, in the order the stage lists them, no
    /// duplicates): under `failover` and `model_based` the stage's order is the order; every other strategy
    /// orders the candidates its own way. Admissibility and the thinking family apply as in `order`.
    let orderAmong
        (runtime: RelayRuntime)
        (now: TimeSpan)
        (request: RouteRequest)
        (candidates: int array)
        : struct (int array * string * RelayRuntime) =
        orderIn runtime now request (ValueSome candidates)

    /// Records a time-to-first-byte sample.
    let sampleLatency (now: TimeSpan) (firstByte: TimeSpan) (latency: Latency) : Latency =
        let ms = firstByte.TotalMilliseconds

        {
            latency with
                EwmaMs =
                    if latency.Samples = 0 then
                        ms
                    else
                        latencyAlpha * ms + (1.0 - latencyAlpha) * latency.EwmaMs
                Samples = latency.Samples + 1
                SampledAt = now
        }
