namespace CcRelay.Core

open System

/// Per-minute limits of one key; 0 means unlimited.
[<Struct>]
type KeyLimits = { Rpm: int; Itpm: int; Otpm: int }

/// One configured key, compiled: its id (never the secret), limits, tier and weight.
type KeyPolicy = {
    Index: int
    /// `KeyId.ofSecret`: the only form in which a key is shown.
    Id: string
    Config: KeyConfig
    Limits: KeyLimits
    Priority: int
    /// >= 1.
    Weight: int
}

/// The live state of one key: its three buckets, the limits in effect (configured, or learned from the
/// upstream's headers), a 429 cooldown, and whether a 401/403 made it unusable.
type KeyState = {
    Id: string
    /// The configured limits this state was made under (a reload that changes them takes the new ones).
    Configured: KeyLimits
    /// The limits in effect.
    Limits: KeyLimits
    Rpm: TokenBucket.Bucket
    Itpm: TokenBucket.Bucket
    Otpm: TokenBucket.Bucket
    CooldownUntil: TimeSpan
    /// Refused with 401/403: not used again until the config is reloaded.
    Revoked: bool
}

/// Key pools: which key of a provider a request uses, and what using it costs. Every function is pure;
/// `now` is the caller's monotonic clock.
///
/// A key is *ready* when it is not revoked, its cooldown is over, and its buckets can pay: 1 request,
/// the input-token estimate, and at least 1 output token (output is charged when known). An estimate above
/// a key's ITPM capacity is charged as a full bucket, so a big request waits for a full key instead of
/// never going out.
[<RequireQualifiedAccess>]
module KeyPool =

    /// A key whose tightest bucket is below this fraction is used only when no other key of its tier is
    /// ready: the pool steers away before the upstream says 429.
    let lowWater: float = 0.1

    /// The limits of a `keys[]` entry: the deprecated `tpm_limit` is split 50/50 into ITPM and OTPM when
    /// both are 0.
    let limitsOf (key: KeyConfig) : KeyLimits =
        let itpm, otpm =
            if key.ItpmLimit = 0 && key.OtpmLimit = 0 && key.TpmLimit > 0 then
                key.TpmLimit - key.TpmLimit / 2, key.TpmLimit / 2
            else
                key.ItpmLimit, key.OtpmLimit

        {
            Rpm = key.RpmLimit
            Itpm = itpm
            Otpm = otpm
        }

    /// Compiles a provider's keys (config order).
    let compile (keys: KeyConfig list) : KeyPolicy array =
        keys
        |> List.mapi (fun i k -> {
            Index = i
            Id = KeyId.ofSecret k.Key
            Config = k
            Limits = limitsOf k
            Priority = k.Priority
            Weight = max 1 k.Weight
        })
        |> Array.ofList

    /// Key indexes grouped by priority tier, highest tier first, config order within a tier.
    let tiers (keys: KeyPolicy array) : int array array =
        keys
        |> Array.groupBy _.Priority
        |> Array.sortByDescending fst
        |> Array.map (fun (_, ks) -> ks |> Array.map _.Index)

    let private limits (capacity: int) : TokenBucket.Limits = TokenBucket.perMinute capacity

    /// A fresh key: full buckets.
    let initial (now: TimeSpan) (key: KeyPolicy) : KeyState =
        let bucket (capacity: int) =
            if capacity > 0 then
                TokenBucket.full (limits capacity) now
            else
                { Units = 0L; At = now }

        {
            Id = key.Id
            Configured = key.Limits
            Limits = key.Limits
            Rpm = bucket key.Limits.Rpm
            Itpm = bucket key.Limits.Itpm
            Otpm = bucket key.Limits.Otpm
            CooldownUntil = TimeSpan.MinValue
            Revoked = false
        }

    /// The input tokens a request is charged on a key: the estimate, at most a full bucket.
    let inputCost (state: KeyState) (estimate: int) : int64 =
        if state.Limits.Itpm > 0 then
            int64 (min estimate state.Limits.Itpm)
        else
            int64 estimate

    let private dimensionReadyIn (capacity: int) (now: TimeSpan) (cost: int64) (bucket: TokenBucket.Bucket) =
        if capacity > 0 then
            TokenBucket.readyIn (limits capacity) now (min cost (int64 capacity)) bucket
        else
            TimeSpan.Zero

    /// How long until the key can take a request with `estimate` input tokens: zero when it can now,
    /// `TimeSpan.MaxValue` when it never will (revoked).
    let readyIn (now: TimeSpan) (estimate: int) (state: KeyState) : TimeSpan =
        if state.Revoked then
            TimeSpan.MaxValue
        else
            let cooldown =
                if Time.before now state.CooldownUntil then
                    state.CooldownUntil - now
                else
                    TimeSpan.Zero

            cooldown
            |> Time.later (dimensionReadyIn state.Limits.Rpm now 1L state.Rpm)
            |> Time.later (dimensionReadyIn state.Limits.Itpm now (int64 estimate) state.Itpm)
            |> Time.later (dimensionReadyIn state.Limits.Otpm now 1L state.Otpm)

    let private fractionLeft (now: TimeSpan) (capacity: int) (bucket: TokenBucket.Bucket) : float =
        if capacity > 0 then
            let l = limits capacity
            TokenBucket.fraction l (TokenBucket.refill l now bucket)
        else
            1.0

    /// The fraction left in the key's tightest bucket, in [0, 1] (1 when unlimited).
    let headroom (now: TimeSpan) (state: KeyState) : float =
        min
            (fractionLeft now state.Limits.Rpm state.Rpm)
            (min (fractionLeft now state.Limits.Itpm state.Itpm) (fractionLeft now state.Limits.Otpm state.Otpm))

    /// What remains of a key now, in [0, 1]: 0 while it is revoked or cooling down after a 429, else its
    /// `headroom` (the tightest bucket; 1 when it has no limits). The `ccrelay_key_capacity_ratio` gauge.
    let capacity (now: TimeSpan) (state: KeyState) : float =
        if state.Revoked || Time.before now state.CooldownUntil then
            0.0
        else
            headroom now state

    /// What a pick needs to know about a provider's keys.
    [<Struct>]
    type Pick =
        /// Use this key (an index into the provider's keys).
        | Chosen of Index: int
        /// No key is ready; the earliest is ready in `ReadyIn` (`TimeSpan.MaxValue`: never).
        | NoneReady of ReadyIn: TimeSpan

    let private candidate (now: TimeSpan) (estimate: int) (healthyOnly: bool) (state: KeyState) : bool =
        (readyIn now estimate state).Ticks = 0L
        && (not healthyOnly || headroom now state >= lowWater)

    /// One strategy's choice within one tier; -1 when no key qualifies.
    let private choose
        (strategy: KeyStrategy)
        (tier: int array)
        (keys: KeyPolicy array)
        (states: KeyState array)
        (cursor: int)
        (now: TimeSpan)
        (estimate: int)
        (random: uint64)
        (healthyOnly: bool)
        : int =
        let mutable chosen = -1

        match strategy with
        | KeyStrategy.LeastLoaded ->
            let mutable best = -1.0

            for k in tier do
                if candidate now estimate healthyOnly states[k] then
                    let h = headroom now states[k]

                    if h > best then
                        best <- h
                        chosen <- k
        | KeyStrategy.RoundRobin ->
            let start = (cursor &&& Int32.MaxValue) % tier.Length
            let mutable i = 0

            while chosen < 0 && i < tier.Length do
                let k = tier[(start + i) % tier.Length]

                if candidate now estimate healthyOnly states[k] then
                    chosen <- k

                i <- i + 1
        | KeyStrategy.Random
        | KeyStrategy.Weighted ->
            let weighted = strategy = KeyStrategy.Weighted
            let mutable total = 0

            for k in tier do
                if candidate now estimate healthyOnly states[k] then
                    total <- total + (if weighted then keys[k].Weight else 1)

            if total > 0 then
                let mutable r = Rng.below random total
                let mutable i = 0

                while chosen < 0 && i < tier.Length do
                    let k = tier[i]

                    if candidate now estimate healthyOnly states[k] then
                        r <- r - (if weighted then keys[k].Weight else 1)

                        if r < 0 then
                            chosen <- k

                    i <- i + 1

        chosen

    /// Picks a key for a request with `estimate` input tokens. Tiers are tried highest first; within a
    /// tier, keys above `lowWater` are preferred, and `strategy` chooses among the ready ones. `cursor` is
    /// the provider's round-robin position; `random` a caller-supplied random value. Allocates nothing.
    let pick
        (strategy: KeyStrategy)
        (tiers: int array array)
        (keys: KeyPolicy array)
        (states: KeyState array)
        (cursor: int)
        (now: TimeSpan)
        (estimate: int)
        (random: uint64)
        : Pick =
        let mutable earliest = TimeSpan.MaxValue
        let mutable chosen = -1
        let mutable t = 0

        while chosen < 0 && t < tiers.Length do
            let tier = tiers[t]
            // The most headroom wins under least_loaded anyway, so it needs no low-water pass.
            let mutable pass = if strategy = KeyStrategy.LeastLoaded then 1 else 0

            while chosen < 0 && pass < 2 do
                chosen <- choose strategy tier keys states cursor now estimate random (pass = 0)
                pass <- pass + 1

            if chosen < 0 then
                for k in tier do
                    earliest <- Time.earlier earliest (readyIn now estimate states[k])

            t <- t + 1

        if chosen >= 0 then Chosen chosen else NoneReady earliest

    let private charge (now: TimeSpan) (capacity: int) (cost: int64) (bucket: TokenBucket.Bucket) : TokenBucket.Bucket =
        if capacity > 0 then
            TokenBucket.adjust (limits capacity) now (-cost) bucket
        else
            bucket

    /// Charges one request and `inputTokens` (already clamped by `inputCost`) to the key.
    let take (now: TimeSpan) (inputTokens: int64) (state: KeyState) : KeyState = {
        state with
            Rpm = charge now state.Limits.Rpm 1L state.Rpm
            Itpm = charge now state.Limits.Itpm inputTokens state.Itpm
    }

    /// Reconciles a finished request: the input charge is corrected from `charged` to the real input
    /// (a refund when the estimate was high) and the output tokens are charged.
    let settle
        (now: TimeSpan)
        (charged: int64)
        (inputTokens: int64)
        (outputTokens: int64)
        (state: KeyState)
        : KeyState =
        let adjust (capacity: int) (delta: int64) (bucket: TokenBucket.Bucket) =
            if capacity > 0 && delta <> 0L then
                TokenBucket.adjust (limits capacity) now delta bucket
            else
                bucket

        {
            state with
                Itpm = adjust state.Limits.Itpm (charged - inputTokens) state.Itpm
                Otpm = adjust state.Limits.Otpm (-outputTokens) state.Otpm
        }

    /// Gives back what `take` charged (one request, `charged` input tokens): for a call that does not count
    /// against the key's message limits (a token count).
    let refund (now: TimeSpan) (charged: int64) (state: KeyState) : KeyState =
        let adjust (capacity: int) (delta: int64) (bucket: TokenBucket.Bucket) =
            if capacity > 0 && delta <> 0L then
                TokenBucket.adjust (limits capacity) now delta bucket
            else
                bucket

        {
            state with
                Rpm = adjust state.Limits.Rpm 1L state.Rpm
                Itpm = adjust state.Limits.Itpm charged state.Itpm
        }

    /// Puts the key in cooldown until `until`; an earlier deadline never shortens a later one.
    let coolDown (until: TimeSpan) (state: KeyState) : KeyState =
        if Time.before state.CooldownUntil until then
            { state with CooldownUntil = until }
        else
            state

    /// Marks the key unusable (401/403) until the config is reloaded.
    let revoke (state: KeyState) : KeyState =
        if state.Revoked then
            state
        else
            { state with Revoked = true }

    /// Applies one window of rate-limit headers to one dimension: a new limit changes the capacity
    /// (never refilling), a remaining count lowers the level (never raising it).
    let private learnDimension
        (now: TimeSpan)
        (window: RateLimitWindow)
        (capacity: int)
        (bucket: TokenBucket.Bucket)
        : struct (int * TokenBucket.Bucket) =
        let learned =
            match window.Limit with
            | Some limit -> int (min limit (int64 Int32.MaxValue))
            | None -> capacity

        let bucket =
            if learned = capacity then
                if capacity > 0 then
                    TokenBucket.refill (limits capacity) now bucket
                else
                    bucket
            elif capacity = 0 then
                // Was unlimited: the bucket starts at what the upstream says remains (full if unsaid).
                TokenBucket.withTokens (limits learned) now (window.Remaining |> Option.defaultValue (int64 learned))
            else
                TokenBucket.relimit (limits capacity) (limits learned) now bucket

        let bucket =
            match window.Remaining with
            | Some remaining when learned > 0 -> TokenBucket.capAt (limits learned) now remaining bucket
            | _ -> bucket

        struct (learned, bucket)

    /// Learns from a response's rate-limit headers. `anthropic-ratelimit-tokens-*` (the most restrictive
    /// token limit) stands in for the input-token headers when those are absent.
    let learn (now: TimeSpan) (headers: RateLimitHeaders) (state: KeyState) : KeyState =
        let input =
            if headers.InputTokens = RateLimitHeaders.emptyWindow then
                headers.Tokens
            else
                headers.InputTokens

        let struct (rpm, rpmBucket) =
            learnDimension now headers.Requests state.Limits.Rpm state.Rpm

        let struct (itpm, itpmBucket) =
            learnDimension now input state.Limits.Itpm state.Itpm

        let struct (otpm, otpmBucket) =
            learnDimension now headers.OutputTokens state.Limits.Otpm state.Otpm

        {
            state with
                Limits = { Rpm = rpm; Itpm = itpm; Otpm = otpm }
                Rpm = rpmBucket
                Itpm = itpmBucket
                Otpm = otpmBucket
        }

    /// A key's state carried across a config reload: buckets and cooldown kept; limits learned from headers
    /// kept unless the configured limits changed; a revocation cleared (the operator reloaded).
    let carryOver (now: TimeSpan) (key: KeyPolicy) (old: KeyState) : KeyState =
        if old.Configured = key.Limits then
            { old with Revoked = false }
        else
            let fresh = initial now key

            let carry
                (oldCapacity: int)
                (newCapacity: int)
                (oldBucket: TokenBucket.Bucket)
                (freshBucket: TokenBucket.Bucket)
                =
                if oldCapacity > 0 && newCapacity > 0 then
                    TokenBucket.relimit (limits oldCapacity) (limits newCapacity) now oldBucket
                else
                    freshBucket

            {
                fresh with
                    Rpm = carry old.Limits.Rpm key.Limits.Rpm old.Rpm fresh.Rpm
                    Itpm = carry old.Limits.Itpm key.Limits.Itpm old.Itpm fresh.Itpm
                    Otpm = carry old.Limits.Otpm key.Limits.Otpm old.Otpm fresh.Otpm
                    CooldownUntil = old.CooldownUntil
            }
