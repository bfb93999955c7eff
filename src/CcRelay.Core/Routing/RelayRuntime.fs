namespace CcRelay.Core

open System

/// Time to first byte of one provider, smoothed. (A reference: it changes once per success, while the
/// provider state that holds it is copied on every admit.)
type Latency = {
    /// Exponentially weighted moving average, in ms (meaningless while `Samples = 0`).
    EwmaMs: float
    Samples: int
    SampledAt: TimeSpan
    /// When `latency_based` last sent a request here to measure it.
    ExploredAt: TimeSpan
}

/// The live state of one provider.
type ProviderState = {
    Name: string
    Breaker: CircuitBreaker.Breaker
    /// Aligned with the policy's `Keys`.
    Keys: KeyState array
    /// Round-robin position among keys.
    KeyCursor: int
    /// Admitted attempts not yet released (`least_loaded`).
    InFlight: int
    Latency: Latency
    /// The key id and time of the last 429: a 429 from a second key within the breaker window counts
    /// against the provider.
    Last429Key: string
    Last429At: TimeSpan
    /// When a health-check probe was last handed out for this provider.
    ProbedAt: TimeSpan
    /// Whether the last health-check probe answered 2xx; ValueNone before the first result.
    ProbeSucceeded: bool voption
}

/// Cursors of the stateful routing strategies.
type RoutingState = {
    /// Plans made so far (`round_robin`, and tie rotation in `least_loaded`).
    Counter: int64
    /// Smooth weighted-round-robin currents, by provider index (kept across sets and reloads).
    WrrCurrent: int array
    /// The shuffled deck of every provider index, and which providers have led in their set's current round.
    Deck: int array
    Dealt: bool array
}

/// Which provider family last answered a conversation (thinking-signature affinity).
type Pin = { Family: string; At: TimeSpan }

/// All of the relay's mutable-in-spirit state, as one immutable value the host keeps in one atomic cell.
/// Provider states are aligned with `Policy.Providers`; everything is keyed by provider name and key id
/// across reloads (`reconcile`).
type RelayRuntime = {
    Policy: RelayPolicy
    Providers: ProviderState array
    Routing: RoutingState
    /// Conversation key → the family that minted its thinking signatures.
    Pins: Map<uint64, Pin>
    PinCount: int
}

/// Something worth a log line or a metric, produced by a transition (never by I/O).
[<RequireQualifiedAccess>]
type RelayEffect =
    | BreakerOpened of Provider: string * Until: TimeSpan
    | BreakerHalfOpened of Provider: string
    | BreakerClosed of Provider: string
    | BreakerDisabled of Provider: string
    | BreakerEnabled of Provider: string
    | KeyCooledDown of Provider: string * KeyId: string * Until: TimeSpan
    | KeyRevoked of Provider: string * KeyId: string
    | KeyLimitsLearned of Provider: string * KeyId: string * Limits: KeyLimits
    /// A conversation was pinned to a family it was not pinned to (thinking-signature affinity; shared, docs/scale-out.md).
    | ConversationPinned of ConversationKey: uint64 * Family: string

/// A new runtime, a value the caller asked for, and the effects to log after the swap.
[<Struct>]
type Transition<'Value> = {
    Runtime: RelayRuntime
    Value: 'Value
    Effects: RelayEffect list
}

/// Creating and reconciling runtimes.
[<RequireQualifiedAccess>]
module RelayRuntime =

    /// Pins older than this are forgotten (the Go project's signature-cache TTL).
    let pinLifetime: TimeSpan = TimeSpan.FromHours 3.0

    /// At most this many conversations are pinned; the oldest go first.
    let maxPins: int = 10_000

    /// A pin to the same family is refreshed at most this often.
    let private repinAfter: TimeSpan = TimeSpan.FromMinutes 1.0

    let private freshLatency: Latency = {
        EwmaMs = 0.0
        Samples = 0
        SampledAt = TimeSpan.MinValue
        ExploredAt = TimeSpan.MinValue
    }

    let private freshProvider (now: TimeSpan) (provider: ProviderPolicy) : ProviderState = {
        Name = provider.Name
        Breaker = CircuitBreaker.closed
        Keys = provider.Keys |> Array.map (KeyPool.initial now)
        KeyCursor = 0
        InFlight = 0
        Latency = freshLatency
        Last429Key = ""
        Last429At = TimeSpan.MinValue
        ProbedAt = TimeSpan.MinValue
        ProbeSucceeded = ValueNone
    }

    let private freshRouting (providers: int) : RoutingState = {
        Counter = 0L
        WrrCurrent = Array.zeroCreate providers
        Deck = [||]
        Dealt = [||]
    }

    /// A runtime for a first config (its price tables compiled: `ProviderPrices.compile config.Providers`):
    /// every breaker closed, every key full.
    let create (now: TimeSpan) (prices: ProviderPrices) (config: RelayConfig) : RelayRuntime =
        let policy = RelayPolicy.compile 1L prices config

        {
            Policy = policy
            Providers = policy.Providers |> Array.map (freshProvider now)
            Routing = freshRouting policy.Providers.Length
            Pins = Map.empty
            PinCount = 0
        }

    /// The runtime for a reloaded config. Providers that remain (by name) keep their breaker, in-flight
    /// count, latency and key cursor; keys that remain (by id) keep their buckets and cooldowns, and their
    /// learned limits unless the configured ones changed; a revoked key is usable again. New providers and
    /// keys start fresh; removed ones are dropped. Routing cursors are kept where they still mean something.
    let reconcile (now: TimeSpan) (prices: ProviderPrices) (config: RelayConfig) (old: RelayRuntime) : RelayRuntime =
        let policy = RelayPolicy.compile (old.Policy.Version + 1L) prices config

        let oldByName = old.Providers |> Array.map (fun p -> p.Name, p) |> dict

        let providers =
            policy.Providers
            |> Array.map (fun p ->
                match oldByName.TryGetValue p.Name with
                | true, survivor ->
                    let oldKeys = survivor.Keys |> Array.map (fun k -> k.Id, k) |> dict

                    {
                        survivor with
                            Keys =
                                p.Keys
                                |> Array.map (fun k ->
                                    match oldKeys.TryGetValue k.Id with
                                    | true, state -> KeyPool.carryOver now k state
                                    | _ -> KeyPool.initial now k)
                    }
                | _ -> freshProvider now p)

        let wrr =
            policy.Providers
            |> Array.map (fun p ->
                match RelayPolicy.indexOf old.Policy p.Name with
                | -1 -> 0
                | i when i < old.Routing.WrrCurrent.Length -> old.Routing.WrrCurrent[i]
                | _ -> 0)

        {
            Policy = policy
            Providers = providers
            Routing = {
                freshRouting policy.Providers.Length with
                    Counter = old.Routing.Counter
                    WrrCurrent = wrr
            }
            Pins = old.Pins
            PinCount = old.PinCount
        }

    /// The effects of a breaker change: the operator's switch flipping, and a new state (none when its
    /// generation did not move).
    let breakerEffects
        (name: string)
        (before: CircuitBreaker.Breaker)
        (after: CircuitBreaker.Breaker)
        : RelayEffect list =
        let switched =
            match before.OperatorDisabled, after.OperatorDisabled with
            | false, true -> [ RelayEffect.BreakerDisabled name ]
            | true, false -> [ RelayEffect.BreakerEnabled name ]
            | _ -> []

        if before.Generation = after.Generation then
            switched
        else
            switched
            @ (match after.State with
               | CircuitBreaker.Open until -> [ RelayEffect.BreakerOpened(name, until) ]
               | CircuitBreaker.HalfOpen _ -> [ RelayEffect.BreakerHalfOpened name ]
               | CircuitBreaker.Closed _ -> [ RelayEffect.BreakerClosed name ])

    /// The runtime with one provider's state replaced.
    let withProvider (index: int) (state: ProviderState) (runtime: RelayRuntime) : RelayRuntime =
        let providers = Array.copy runtime.Providers
        providers[index] <- state
        { runtime with Providers = providers }

    /// Pins `key` to `family`; refreshes at most once a minute, and forgets the oldest pins beyond `maxPins`.
    let pin (now: TimeSpan) (key: uint64) (family: string) (runtime: RelayRuntime) : RelayRuntime =
        match runtime.Pins.TryFind key with
        | Some p when p.Family = family && Time.before (now - p.At) repinAfter -> runtime
        | existing ->
            let pins = runtime.Pins.Add(key, { Family = family; At = now })

            let count =
                if existing.IsSome then
                    runtime.PinCount
                else
                    runtime.PinCount + 1

            if count <= maxPins then
                {
                    runtime with
                        Pins = pins
                        PinCount = count
                }
            else
                // Rare: drop the expired, then the older half.
                let alive = pins |> Map.filter (fun _ p -> Time.before (now - p.At) pinLifetime)

                let kept =
                    if alive.Count <= maxPins then
                        alive
                    else
                        alive
                        |> Map.toArray
                        |> Array.sortByDescending (fun (_, p) -> p.At)
                        |> Array.truncate (maxPins / 2)
                        |> Map.ofArray

                {
                    runtime with
                        Pins = kept
                        PinCount = kept.Count
                }

    /// The family a conversation is pinned to, when the pin is still alive.
    let pinnedFamily (now: TimeSpan) (key: uint64) (runtime: RelayRuntime) : string voption =
        if key = 0UL then
            ValueNone
        else
            match runtime.Pins.TryFind key with
            | Some p when Time.before (now - p.At) pinLifetime -> ValueSome p.Family
            | _ -> ValueNone
