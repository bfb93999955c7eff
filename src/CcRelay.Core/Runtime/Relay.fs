namespace CcRelay.Core

open System

/// The relay's decisions over one `RelayRuntime`, for the host. Every function is pure: it takes the
/// runtime and `now` (monotonic) and returns a new runtime, the answer, and effects to log.
///
/// Per request, the host does (each arrow is one compare-and-swap on the runtime cell; a transition is
/// pure, so a CAS retry simply calls it again):
///
/// ```
/// (1) request  = Relay.request facts key clientCredential seed now
/// (2) dispatch = Relay.plan runtime now request                      ── the ordered plan
/// (3) loop:    Relay.next runtime now dispatch                        ── breaker admit + key pick
///                Send attempt → (4)  |  Wait d → sleep d, (3)  |  Stop verdict → answer it, (7)
/// (4) send the attempt (Upstream.planAttempt; ThinkingTurn.carry for an Anthropic-shaped plan)
///     on response headers: Relay.learn runtime now attempt (RateLimitHeaders.parse …)
/// (5) Relay.complete runtime now dispatch attempt result              ── record + decide
///                Deliver → relay the answer; at its end Relay.settle (usage), (6)
///                Retry d → (6), sleep d, (3)  |  Stop verdict → (6), answer it  |  Abandon → (6)
/// (6) Relay.release runtime attempt                                   ── exactly once per Send
/// ```
[<RequireQualifiedAccess>]
module Relay =

    /// A runtime for a first config whose price tables are compiled already (the host compiles them once per
    /// config load and shares them with its snapshot; see `RelayRuntime.create`).
    let createWith (now: TimeSpan) (prices: ProviderPrices) (config: RelayConfig) : RelayRuntime =
        RelayRuntime.create now prices config

    /// A runtime for a first config, compiling its price tables.
    let create (now: TimeSpan) (config: RelayConfig) : RelayRuntime =
        createWith now (ProviderPrices.compile config.Providers) config

    /// The runtime for a reloaded config whose price tables are compiled already; state survives by provider
    /// name and key id (see `RelayRuntime.reconcile`).
    let reconcileWith
        (now: TimeSpan)
        (prices: ProviderPrices)
        (config: RelayConfig)
        (runtime: RelayRuntime)
        : RelayRuntime =
        RelayRuntime.reconcile now prices config runtime

    /// The runtime for a reloaded config, compiling its price tables.
    let reconcile (now: TimeSpan) (config: RelayConfig) (runtime: RelayRuntime) : RelayRuntime =
        reconcileWith now (ProviderPrices.compile config.Providers) config runtime

    /// What routing needs from a request. `conversationKey`: `Affinity.conversationKey`;
    /// `clientCredential`: the caller's own credential will be forwarded (Anthropic passthrough);
    /// `seed`: any random value.
    let request
        (facts: RequestFacts)
        (conversationKey: uint64)
        (clientCredential: bool)
        (seed: uint64)
        (now: TimeSpan)
        : RouteRequest = {
        Model = facts.Model
        EstimatedInputTokens = facts.EstimatedInputTokens
        ExpectedOutputTokens = Routing.expectedOutputTokens facts.MaxTokens
        ThinkingSignatures = facts.ThinkingSignatures
        ConversationKey = conversationKey
        ClientCredential = clientCredential
        Seed = seed
        ArrivedAt = now
    }

    /// The dispatch of `request` before its first attempt: providers in `order` (`models`: each attempt's model,
    /// or empty when every attempt sends the client's), under the runtime's policy.
    let private started
        (runtime: RelayRuntime)
        (request: RouteRequest)
        (order: int array)
        (models: string array)
        (family: string)
        : Transition<Dispatch> = {
        Runtime = runtime
        Value = {
            Request = request
            Policy = runtime.Policy
            Order = order
            Models = models
            PinnedFamily = family
            Position = 0
            Attempts = 0
            FirstFailureAt = ValueNone
            Round = 0
            StripNext = false
            StripUsed = false
            Last = ValueNone
        }
        Effects = []
    }

    /// Plans a request: the strategy's ordered providers (admissible ones only; the pinned family first
    /// for a thinking conversation). Advances the strategy's cursors.
    let plan (runtime: RelayRuntime) (now: TimeSpan) (request: RouteRequest) : Transition<Dispatch> =
        let struct (order, family, runtime) = Routing.order runtime now request
        started runtime request order [||] family

    /// Plans a request within a stage decision's targets (`Stages.classify`): the targets' enabled
    /// providers are the candidates (in the order listed; a provider listed twice keeps its first place),
    /// the strategy orders them (`Routing.orderAmong`), and each attempt carries its target's model. With no
    /// targets: `plan`. When no target names an enabled provider, the plan is empty (the relay answers 503).
    let planRoute
        (runtime: RelayRuntime)
        (now: TimeSpan)
        (request: RouteRequest)
        (targets: StageTarget list)
        : Transition<Dispatch> =
        if targets.IsEmpty then
            plan runtime now request
        else
            let policy = runtime.Policy
            let picked = ResizeArray<struct (int * string)>()

            for target in targets do
                let i = RelayPolicy.indexOf policy target.Provider

                if i >= 0 && not (picked.Exists(fun (struct (j, _)) -> j = i)) then
                    picked.Add(struct (i, defaultArg target.Model ""))

            let candidates = picked |> Seq.map (fun (struct (i, _)) -> i) |> Array.ofSeq

            let struct (order, family, runtime) =
                Routing.orderAmong runtime now request candidates

            let modelOf (i: int) =
                picked |> Seq.pick (fun (struct (j, m)) -> if j = i then Some m else None)

            let models = order |> Array.map modelOf

            started
                runtime
                request
                order
                (if models |> Array.forall String.IsNullOrEmpty then
                     [||]
                 else
                     models)
                family

    /// The dispatch with only the providers `allowed` names in its order (a client's `providers`); an empty
    /// list allows every provider. A stage's per-attempt models (`Models`) are filtered with their providers.
    let restrictTo (allowed: string list) (dispatch: Dispatch) : Dispatch =
        match allowed with
        | [] -> dispatch
        | names ->
            let providers = dispatch.Policy.Providers
            let keep (p: int) = List.contains providers[p].Name names

            {
                dispatch with
                    Order = dispatch.Order |> Array.filter keep
                    Models =
                        if dispatch.Models.Length = dispatch.Order.Length then
                            Array.zip dispatch.Order dispatch.Models
                            |> Array.filter (fst >> keep)
                            |> Array.map snd
                        else
                            dispatch.Models
            }

    // ---------------------------
    // Mapping across reloads
    // ---------------------------

    /// A dispatch planned under an older policy, with its providers mapped to the current one by name
    /// (removed ones dropped).
    let private current (runtime: RelayRuntime) (dispatch: Dispatch) : Dispatch =
        if obj.ReferenceEquals(dispatch.Policy, runtime.Policy) then
            dispatch
        else
            let names = dispatch.Order |> Array.map (fun i -> dispatch.Policy.Providers[i].Name)
            let before = names |> Array.truncate dispatch.Position

            let indexes = names |> Array.map (RelayPolicy.indexOf runtime.Policy)
            let mapped = indexes |> Array.filter (fun i -> i >= 0)

            let models =
                if dispatch.Models.Length = 0 then
                    dispatch.Models
                else
                    Array.zip indexes dispatch.Models
                    |> Array.filter (fun (i, _) -> i >= 0)
                    |> Array.map snd

            let position =
                before
                |> Array.filter (fun n -> RelayPolicy.indexOf runtime.Policy n >= 0)
                |> Array.length

            {
                dispatch with
                    Policy = runtime.Policy
                    Order = mapped
                    Models = models
                    Position = position
            }

    /// The attempt's provider and key in the current policy; -1 when gone.
    let private locate (runtime: RelayRuntime) (attempt: Attempt) : struct (int * int) =
        if attempt.PolicyVersion = runtime.Policy.Version then
            struct (attempt.ProviderIndex, attempt.KeyIndex)
        else
            match RelayPolicy.indexOf runtime.Policy attempt.ProviderName with
            | -1 -> struct (-1, -1)
            | p ->
                let key =
                    if attempt.KeyId.Length = 0 then
                        -1
                    else
                        runtime.Policy.Providers[p].Keys
                        |> Array.tryFindIndex (fun k -> k.Id = attempt.KeyId)
                        |> Option.defaultValue -1

                struct (p, key)

    // ---------------------------
    // next: breaker admit + key pick
    // ---------------------------

    /// Whether the attempt at provider `p` uses a configured key.
    let private usesKeys (policy: RelayPolicy) (request: RouteRequest) (p: int) : bool =
        let provider = policy.Providers[p]

        provider.Keys.Length > 0
        && not (request.ClientCredential && provider.AcceptsClientCredential)

    /// The next step of a request: the first provider of the plan (from the dispatch's position) whose
    /// breaker admits and which has a ready key. Admitting takes the key's tokens, counts the attempt in
    /// flight and may turn an Open breaker half-open. When nothing is ready: `Wait` if something will be
    /// within the failover deadline (and `Failover.maxRetryAfterWait`), else `Stop`.
    let next (runtime: RelayRuntime) (now: TimeSpan) (dispatch: Dispatch) : Transition<struct (Step * Dispatch)> =
        let dispatch = current runtime dispatch
        let policy = runtime.Policy
        let request = dispatch.Request

        if dispatch.Attempts >= policy.MaxAttempts then
            {
                Runtime = runtime
                Value = struct (Step.Stop(Failover.unavailable dispatch false (TimeSpan.FromSeconds 1.0)), dispatch)
                Effects = []
            }
        else
            let mutable chosen = -1
            let mutable chosenKey = -1
            let mutable position = dispatch.Position
            let mutable breakerWait = TimeSpan.MaxValue
            let mutable keyWait = TimeSpan.MaxValue

            while chosen < 0 && position < dispatch.Order.Length do
                let p = dispatch.Order[position]
                let state = runtime.Providers[p]

                match CircuitBreaker.peek policy.Breaker now state.Breaker with
                | CircuitBreaker.Refused wait ->
                    breakerWait <- Time.earlier breakerWait (wait |> ValueOption.defaultValue TimeSpan.MaxValue)

                    position <- position + 1
                | CircuitBreaker.Admitted _ ->
                    if usesKeys policy request p then
                        let provider = policy.Providers[p]

                        match
                            KeyPool.pick
                                provider.KeyStrategy
                                provider.Tiers
                                provider.Keys
                                state.Keys
                                state.KeyCursor
                                now
                                request.EstimatedInputTokens
                                (Rng.mix request.Seed (uint64 (dispatch.Attempts * 64 + p)))
                        with
                        | KeyPool.Chosen k ->
                            chosen <- p
                            chosenKey <- k
                        | KeyPool.NoneReady wait ->
                            keyWait <- Time.earlier keyWait wait

                            position <- position + 1
                    else
                        chosen <- p

            if chosen >= 0 then
                let p = chosen
                let provider = policy.Providers[p]
                let state = runtime.Providers[p]

                let struct (admission, breaker) =
                    CircuitBreaker.admit policy.Breaker now state.Breaker

                let generation =
                    match admission with
                    | CircuitBreaker.Admitted g -> g
                    | CircuitBreaker.Refused _ -> breaker.Generation

                let struct (keys, charged) =
                    if chosenKey >= 0 then
                        let keys = Array.copy state.Keys
                        let charged = KeyPool.inputCost keys[chosenKey] request.EstimatedInputTokens
                        keys[chosenKey] <- KeyPool.take now charged keys[chosenKey]
                        struct (keys, charged)
                    else
                        struct (state.Keys, 0L)

                let state = {
                    state with
                        Breaker = breaker
                        Keys = keys
                        KeyCursor =
                            if chosenKey >= 0 && provider.KeyStrategy = KeyStrategy.RoundRobin then
                                state.KeyCursor + 1
                            else
                                state.KeyCursor
                        InFlight = state.InFlight + 1
                }

                let attempt = {
                    Provider = provider.Config
                    ProviderName = provider.Name
                    Key =
                        if chosenKey >= 0 then
                            ValueSome provider.Keys[chosenKey].Config
                        else
                            ValueNone
                    KeyId = if chosenKey >= 0 then provider.Keys[chosenKey].Id else ""
                    Number = dispatch.Attempts + 1
                    StripThinking =
                        dispatch.StripNext
                        || (dispatch.PinnedFamily.Length > 0 && provider.Family <> dispatch.PinnedFamily)
                    Model =
                        if dispatch.Models.Length > position then
                            dispatch.Models[position]
                        else
                            ""
                    StartedAt = now
                    ProviderIndex = p
                    KeyIndex = chosenKey
                    Generation = generation
                    PolicyVersion = policy.Version
                    ChargedInputTokens = charged
                }

                {
                    Runtime = RelayRuntime.withProvider p state runtime
                    Value =
                        struct (Step.Send attempt,
                                {
                                    dispatch with
                                        Position = position
                                        Attempts = dispatch.Attempts + 1
                                        StripNext = false
                                })
                    Effects = RelayRuntime.breakerEffects provider.Name runtime.Providers[p].Breaker breaker
                }
            else
                // Nothing admissible in the plan at all: when the soonest breaker ends, if any does.
                let breakerWait =
                    if dispatch.Order.Length = 0 then
                        runtime.Providers
                        |> Array.fold
                            (fun soonest state ->
                                match CircuitBreaker.peek policy.Breaker now state.Breaker with
                                | CircuitBreaker.Refused(ValueSome wait) -> Time.earlier soonest wait
                                | _ -> soonest)
                            TimeSpan.MaxValue
                    else
                        breakerWait

                let wait = Time.earlier breakerWait keyWait

                let rateLimited =
                    not (Time.same keyWait TimeSpan.MaxValue) && keyWait.Ticks <= breakerWait.Ticks

                let limit = Failover.deadline dispatch

                if
                    wait <> TimeSpan.MaxValue
                    && wait <= Failover.maxRetryAfterWait
                    && (limit = TimeSpan.MaxValue || now + wait <= limit)
                then
                    {
                        Runtime = runtime
                        Value = struct (Step.Wait wait, dispatch)
                        Effects = []
                    }
                else
                    // Unknown (every breaker disabled, every key revoked): a minute is a fair guess.
                    let wait =
                        if wait = TimeSpan.MaxValue then
                            TimeSpan.FromSeconds 60.0
                        else
                            wait

                    {
                        Runtime = runtime
                        Value = struct (Step.Stop(Failover.unavailable dispatch rateLimited wait), dispatch)
                        Effects = []
                    }

    // ---------------------------
    // Outcomes
    // ---------------------------

    /// Records an attempt's result: the breaker (5xx, 529, 408, no answer, an error event before content
    /// are failures; a 429 is one when the provider has no other key, or a second key got a 429 within the
    /// breaker window; a client disconnect is nothing), the key (429 → cooldown for `retry-after`, default
    /// 60 s, at most 300 s; 401/403 → revoked until reload), the latency, and the conversation's pin.
    /// An attempt that never reached its upstream (`Failover.reachedUpstream`: the relay answered it itself, or
    /// sent nothing) records nothing: the breaker only gets back a half-open probe slot the attempt took
    /// (`CircuitBreaker.unused`); the host gives back the key capacity it took at release (`refund`). Returns the
    /// classification.
    let record
        (runtime: RelayRuntime)
        (now: TimeSpan)
        (attempt: Attempt)
        (result: AttemptResult)
        : Transition<Classification> =
        let classification = Failover.classify attempt result
        let struct (p, k) = locate runtime attempt

        if p < 0 then
            {
                Runtime = runtime
                Value = classification
                Effects = []
            }
        else
            let policy = runtime.Policy
            let state = runtime.Providers[p]
            let name = state.Name

            // What happens to the key, the breaker, and the 429 memory.
            let struct (keyChange, effects, outcome, last429Key, last429At) =
                match classification with
                | Classification.Succeeded _
                | Classification.Final
                | Classification.SignatureRejected ->
                    struct (None, [], CircuitBreaker.Outcome.Success, state.Last429Key, state.Last429At)
                | Classification.KeyRefused when k >= 0 && not state.Keys[k].Revoked ->
                    struct (Some KeyPool.revoke,
                            [ RelayEffect.KeyRevoked(name, attempt.KeyId) ],
                            CircuitBreaker.Outcome.Success,
                            state.Last429Key,
                            state.Last429At)
                | Classification.KeyRefused ->
                    struct (None, [], CircuitBreaker.Outcome.Success, state.Last429Key, state.Last429At)
                | Classification.RateLimited retryAfter ->
                    let until = now + RateLimitHeaders.cooldown (ValueOption.toOption retryAfter)

                    let providerFailure =
                        k < 0
                        || policy.Providers[p].Keys.Length <= 1
                        || (state.Last429Key.Length > 0
                            && state.Last429Key <> attempt.KeyId
                            && now - state.Last429At < policy.Breaker.Window)

                    let outcome =
                        if providerFailure then
                            CircuitBreaker.Outcome.Failure
                        else
                            // The key's cooldown handles one key's limit; the provider is fine.
                            CircuitBreaker.Outcome.Abandoned

                    if k >= 0 then
                        struct (Some(KeyPool.coolDown until),
                                [ RelayEffect.KeyCooledDown(name, attempt.KeyId, until) ],
                                outcome,
                                attempt.KeyId,
                                now)
                    else
                        struct (None, [], outcome, attempt.KeyId, now)
                | Classification.ProviderFailed _
                | Classification.NoAnswer _ ->
                    struct (None, [], CircuitBreaker.Outcome.Failure, state.Last429Key, state.Last429At)
                | Classification.Abandoned
                | Classification.Local _
                | Classification.Unsent ->
                    struct (None, [], CircuitBreaker.Outcome.Abandoned, state.Last429Key, state.Last429At)

            let keys =
                match keyChange with
                | Some change when k >= 0 ->
                    let keys = Array.copy state.Keys
                    keys[k] <- change keys[k]
                    keys
                | _ -> state.Keys

            let breaker =
                match classification with
                // the relay answered itself: the provider was not called, a probe slot it took is given back
                | Classification.Local _
                | Classification.Unsent -> CircuitBreaker.unused attempt.Generation state.Breaker
                | _ -> CircuitBreaker.record policy.Breaker now attempt.Generation outcome state.Breaker

            let transition = RelayRuntime.breakerEffects name state.Breaker breaker

            let latency =
                match classification, breaker.State with
                // A recovered provider is measured afresh.
                | _, CircuitBreaker.Closed _ when not transition.IsEmpty -> {
                    state.Latency with
                        Samples = 0
                        ExploredAt = TimeSpan.MinValue
                  }
                | Classification.Succeeded firstByte, _ -> Routing.sampleLatency now firstByte state.Latency
                | _ -> state.Latency

            let runtime =
                RelayRuntime.withProvider
                    p
                    {
                        state with
                            Breaker = breaker
                            Keys = keys
                            Latency = latency
                            Last429Key = last429Key
                            Last429At = last429At
                    }
                    runtime

            {
                Runtime = runtime
                Value = classification
                Effects = transition @ effects
            }

    /// Records that a delivered answer broke after content reached the client (an `error` event mid-stream, a
    /// truncated body, the whole-request timeout): a failure for the provider's breaker, so a provider that
    /// always breaks mid-stream trips. It stays final for the request (bytes were sent) and leaves the key alone.
    let brokeAfterDelivery (runtime: RelayRuntime) (now: TimeSpan) (attempt: Attempt) : Transition<unit> =
        let struct (p, _) = locate runtime attempt

        if p < 0 then
            {
                Runtime = runtime
                Value = ()
                Effects = []
            }
        else
            let state = runtime.Providers[p]

            let breaker =
                CircuitBreaker.record
                    runtime.Policy.Breaker
                    now
                    attempt.Generation
                    CircuitBreaker.Outcome.Failure
                    state.Breaker

            {
                Runtime = RelayRuntime.withProvider p { state with Breaker = breaker } runtime
                Value = ()
                Effects = RelayRuntime.breakerEffects state.Name state.Breaker breaker
            }

    /// Pins a conversation to the family that just answered it (call after a success; `Relay.complete`
    /// does).
    let pin (runtime: RelayRuntime) (now: TimeSpan) (conversationKey: uint64) (attempt: Attempt) : RelayRuntime =
        if conversationKey = 0UL then
            runtime
        else
            RelayRuntime.pin now conversationKey attempt.Provider.Family runtime

    /// `record`, then `Failover.after`: the runtime updated and what the request does next, in one swap.
    let complete
        (runtime: RelayRuntime)
        (now: TimeSpan)
        (dispatch: Dispatch)
        (attempt: Attempt)
        (result: AttemptResult)
        : Transition<struct (Decision * Dispatch)> =
        let recorded = record runtime now attempt result

        let runtime =
            match recorded.Value with
            | Classification.Succeeded _ -> pin recorded.Runtime now dispatch.Request.ConversationKey attempt
            | _ -> recorded.Runtime

        // a new pin (or a pin to another family) is an effect: relays sharing state spread it
        let key = dispatch.Request.ConversationKey

        let effects =
            if
                key <> 0UL
                && not (obj.ReferenceEquals(runtime, recorded.Runtime))
                && RelayRuntime.pinnedFamily now key recorded.Runtime
                   <> ValueSome attempt.Provider.Family
            then
                recorded.Effects
                @ [ RelayEffect.ConversationPinned(key, attempt.Provider.Family) ]
            else
                recorded.Effects

        {
            Runtime = runtime
            Value = Failover.after now dispatch attempt recorded.Value
            Effects = effects
        }

    /// Learns from the rate-limit headers of an answer to a configured key: new limits change capacities
    /// (never refilling), remaining counts lower levels (never raising them).
    let learn
        (runtime: RelayRuntime)
        (now: TimeSpan)
        (attempt: Attempt)
        (headers: RateLimitHeaders)
        : Transition<unit> =
        let struct (p, k) = locate runtime attempt

        if p < 0 || k < 0 || RateLimitHeaders.isEmpty headers then
            {
                Runtime = runtime
                Value = ()
                Effects = []
            }
        else
            let state = runtime.Providers[p]
            let before = state.Keys[k]
            let after = KeyPool.learn now headers before
            let keys = Array.copy state.Keys
            keys[k] <- after

            {
                Runtime = RelayRuntime.withProvider p { state with Keys = keys } runtime
                Value = ()
                Effects =
                    if after.Limits <> before.Limits then
                        [ RelayEffect.KeyLimitsLearned(state.Name, attempt.KeyId, after.Limits) ]
                    else
                        []
            }

    /// Settles an answer's real usage against what was charged before sending.
    let settle (runtime: RelayRuntime) (now: TimeSpan) (attempt: Attempt) (usage: Usage) : RelayRuntime =
        let struct (p, k) = locate runtime attempt

        if p < 0 || k < 0 then
            runtime
        else
            let state = runtime.Providers[p]
            let keys = Array.copy state.Keys
            // ITPM counts fresh input and cache writes; cache reads do not count against it
            let input = usage.InputTokens + usage.CacheWriteTokens
            keys[k] <- KeyPool.settle now attempt.ChargedInputTokens input usage.OutputTokens keys[k]
            RelayRuntime.withProvider p { state with Keys = keys } runtime

    /// Gives back the key capacity an attempt took, for a call that does not count against the key's message
    /// limits: `count_tokens` (Anthropic limits token counting apart from messages), which would otherwise drain
    /// the requests per minute and input tokens that messages need and never return them (it has no usage), and
    /// an attempt the relay answered itself (`AttemptResult.Local`: the key was never sent).
    let refund (runtime: RelayRuntime) (now: TimeSpan) (attempt: Attempt) : RelayRuntime =
        let struct (p, k) = locate runtime attempt

        if p < 0 || k < 0 then
            runtime
        else
            let state = runtime.Providers[p]
            let keys = Array.copy state.Keys
            keys[k] <- KeyPool.refund now attempt.ChargedInputTokens keys[k]
            RelayRuntime.withProvider p { state with Keys = keys } runtime

    /// An admitted attempt is over (its answer relayed, abandoned, or failed): exactly once per `Send`.
    let release (runtime: RelayRuntime) (attempt: Attempt) : RelayRuntime =
        let struct (p, _) = locate runtime attempt

        if p < 0 then
            runtime
        else
            let state = runtime.Providers[p]

            RelayRuntime.withProvider
                p
                {
                    state with
                        InFlight = max 0 (state.InFlight - 1)
                }
                runtime
