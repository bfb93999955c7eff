namespace CcRelay.Core

open System
open System.Buffers
open System.Text
open System.Text.Json

/// A change one relay makes that every other relay must follow at once (PostgreSQL `NOTIFY`, and a table
/// per kind for a relay that (re)connects later). Deadlines travel as wall-clock times: each relay's
/// monotonic clock is its own.
[<RequireQualifiedAccess>]
type SharedEvent =
    /// A circuit opened: the provider is refused everywhere until `Until`.
    | CircuitOpened of Provider: string * Until: DateTimeOffset
    /// The operator disabled (or enabled again) a provider.
    | ProviderSwitched of Provider: string * Disabled: bool
    /// A key got a 429: it rests everywhere until `Until`.
    | KeyCooledDown of Provider: string * KeyId: string * Until: DateTimeOffset
    /// A key's limits were learned from its upstream's rate-limit headers.
    | KeyLimitsLearned of Provider: string * KeyId: string * Limits: KeyLimits
    /// A client key was revoked: refused everywhere from now on.
    | ClientKeyRevoked of KeyId: string
    /// A conversation was pinned to a provider family (thinking-signature affinity).
    | ConversationPinned of ConversationKey: uint64 * Family: string

/// Which local changes are published, and how a published one is applied by the other relays, as pure
/// functions of the runtime, the monotonic `now` and the wall clock `wall` (read together).
[<RequireQualifiedAccess>]
module SharedEvents =

    /// A monotonic deadline as a wall-clock time.
    let toWall (now: TimeSpan) (wall: DateTimeOffset) (deadline: TimeSpan) : DateTimeOffset = wall + (deadline - now)

    /// A wall-clock time as a monotonic deadline.
    let toMonotonic (now: TimeSpan) (wall: DateTimeOffset) (at: DateTimeOffset) : TimeSpan = now + (at - wall)

    /// The event a local effect publishes; None for what stays local (half-open probes and closing are
    /// each relay's own traffic's to decide; a key refused with 401/403 is revoked locally until a reload).
    let ofEffect (now: TimeSpan) (wall: DateTimeOffset) (effect: RelayEffect) : SharedEvent option =
        match effect with
        | RelayEffect.BreakerOpened(provider, until) -> Some(SharedEvent.CircuitOpened(provider, toWall now wall until))
        | RelayEffect.BreakerDisabled provider -> Some(SharedEvent.ProviderSwitched(provider, true))
        | RelayEffect.BreakerEnabled provider -> Some(SharedEvent.ProviderSwitched(provider, false))
        | RelayEffect.KeyCooledDown(provider, keyId, until) ->
            Some(SharedEvent.KeyCooledDown(provider, keyId, toWall now wall until))
        | RelayEffect.KeyLimitsLearned(provider, keyId, limits) ->
            Some(SharedEvent.KeyLimitsLearned(provider, keyId, limits))
        | RelayEffect.ConversationPinned(key, family) -> Some(SharedEvent.ConversationPinned(key, family))
        | RelayEffect.BreakerHalfOpened _
        | RelayEffect.BreakerClosed _
        | RelayEffect.KeyRevoked _ -> None

    let private withKey
        (provider: string)
        (keyId: string)
        (change: KeyState -> KeyState)
        (runtime: RelayRuntime)
        : RelayRuntime =
        match RelayPolicy.indexOf runtime.Policy provider with
        | -1 -> runtime
        | p ->
            let state = runtime.Providers[p]

            match state.Keys |> Array.tryFindIndex (fun k -> k.Id = keyId) with
            | None -> runtime
            | Some k ->
                let keys = Array.copy state.Keys
                keys[k] <- change keys[k]
                RelayRuntime.withProvider p { state with Keys = keys } runtime

    /// A breaker opened until `until` by another relay: open here too until then, unless it already is
    /// for longer (a new generation: outcomes of calls admitted before count no more, as after a local trip).
    let openUntil (until: TimeSpan) (breaker: CircuitBreaker.Breaker) : CircuitBreaker.Breaker =
        match breaker.State with
        | CircuitBreaker.Open current when Time.notBefore current until -> breaker
        | _ -> {
            breaker with
                State = CircuitBreaker.Open until
                Generation = breaker.Generation + 1
          }

    /// Limits learned elsewhere, applied as the headers that taught them would be (a limit known, nothing
    /// said about what remains: capacity changes, the level is never raised).
    let adoptLimits (now: TimeSpan) (limits: KeyLimits) (state: KeyState) : KeyState =
        let window (limit: int) : RateLimitWindow = {
            RateLimitHeaders.emptyWindow with
                Limit = if limit > 0 then Some(int64 limit) else None
        }

        KeyPool.learn
            now
            {
                RateLimitHeaders.empty with
                    Requests = window limits.Rpm
                    InputTokens = window limits.Itpm
                    OutputTokens = window limits.Otpm
            }
            state

    /// Applies another relay's event; a provider or key this relay does not have, or a deadline already
    /// past, changes nothing. Produces no effect (it is not published again).
    let apply (now: TimeSpan) (wall: DateTimeOffset) (event: SharedEvent) (runtime: RelayRuntime) : RelayRuntime =
        match event with
        | SharedEvent.CircuitOpened(provider, until) ->
            match RelayPolicy.indexOf runtime.Policy provider with
            | -1 -> runtime
            | _ when until <= wall -> runtime
            | p ->
                let state = runtime.Providers[p]
                let breaker = openUntil (toMonotonic now wall until) state.Breaker

                if obj.ReferenceEquals(breaker, state.Breaker) then
                    runtime
                else
                    RelayRuntime.withProvider p { state with Breaker = breaker } runtime
        | SharedEvent.ProviderSwitched(provider, disabled) ->
            (Management.setEnabled runtime provider (not disabled)).Runtime
        | SharedEvent.KeyCooledDown(provider, keyId, until) ->
            if until <= wall then
                runtime
            else
                withKey provider keyId (KeyPool.coolDown (toMonotonic now wall until)) runtime
        | SharedEvent.KeyLimitsLearned(provider, keyId, limits) ->
            withKey
                provider
                keyId
                (fun key ->
                    if key.Limits = limits then
                        key
                    else
                        adoptLimits now limits key)
                runtime
        | SharedEvent.ConversationPinned(key, family) -> RelayRuntime.pin now key family runtime
        | SharedEvent.ClientKeyRevoked _ -> runtime

    /// The most a NOTIFY payload holds (PostgreSQL: 8000 bytes).
    [<Literal>]
    let MaxPayload = 7900

    /// The NOTIFY payload of an event published by `relay`: a small JSON object.
    let encode (relay: string) (event: SharedEvent) : string =
        let buffer = ArrayBufferWriter<byte>()

        using (new Utf8JsonWriter(buffer)) (fun w ->
            w.WriteStartObject()
            w.WriteString("relay", relay)

            match event with
            | SharedEvent.CircuitOpened(provider, until) ->
                w.WriteString("kind", "circuit_opened")
                w.WriteString("provider", provider)
                w.WriteNumber("until_ms", until.ToUnixTimeMilliseconds())
            | SharedEvent.ProviderSwitched(provider, disabled) ->
                w.WriteString("kind", "provider_switched")
                w.WriteString("provider", provider)
                w.WriteBoolean("disabled", disabled)
            | SharedEvent.KeyCooledDown(provider, keyId, until) ->
                w.WriteString("kind", "key_cooled_down")
                w.WriteString("provider", provider)
                w.WriteString("key_id", keyId)
                w.WriteNumber("until_ms", until.ToUnixTimeMilliseconds())
            | SharedEvent.KeyLimitsLearned(provider, keyId, limits) ->
                w.WriteString("kind", "key_limits_learned")
                w.WriteString("provider", provider)
                w.WriteString("key_id", keyId)
                w.WriteNumber("rpm", limits.Rpm)
                w.WriteNumber("itpm", limits.Itpm)
                w.WriteNumber("otpm", limits.Otpm)
            | SharedEvent.ClientKeyRevoked keyId ->
                w.WriteString("kind", "client_key_revoked")
                w.WriteString("key_id", keyId)
            | SharedEvent.ConversationPinned(key, family) ->
                w.WriteString("kind", "conversation_pinned")
                w.WriteNumber("conversation", key)
                w.WriteString("family", family)

            w.WriteEndObject())

        Encoding.UTF8.GetString buffer.WrittenSpan

    /// Reads a payload `encode` wrote: the publishing relay and its event, or what is wrong with it.
    let decode (payload: string) : Result<string * SharedEvent, string> =
        try
            use document = JsonDocument.Parse payload
            let root = document.RootElement

            let text (name: string) =
                match root.TryGetProperty name with
                | true, v when v.ValueKind = JsonValueKind.String -> v.GetString() |> Option.ofObj
                | _ -> None

            let number (name: string) =
                match root.TryGetProperty name with
                | true, v when v.ValueKind = JsonValueKind.Number -> Some(v.GetInt64())
                | _ -> None

            let at (name: string) =
                number name |> Option.map DateTimeOffset.FromUnixTimeMilliseconds

            let event =
                match text "kind", text "provider", text "key_id" with
                | Some "circuit_opened", Some provider, _ ->
                    at "until_ms"
                    |> Option.map (fun until -> SharedEvent.CircuitOpened(provider, until))
                | Some "provider_switched", Some provider, _ ->
                    match root.TryGetProperty "disabled" with
                    | true, v when v.ValueKind = JsonValueKind.True ->
                        Some(SharedEvent.ProviderSwitched(provider, true))
                    | true, v when v.ValueKind = JsonValueKind.False ->
                        Some(SharedEvent.ProviderSwitched(provider, false))
                    | _ -> None
                | Some "key_cooled_down", Some provider, Some keyId ->
                    at "until_ms"
                    |> Option.map (fun until -> SharedEvent.KeyCooledDown(provider, keyId, until))
                | Some "key_limits_learned", Some provider, Some keyId ->
                    match number "rpm", number "itpm", number "otpm" with
                    | Some rpm, Some itpm, Some otpm ->
                        Some(
                            SharedEvent.KeyLimitsLearned(
                                provider,
                                keyId,
                                {
                                    Rpm = int rpm
                                    Itpm = int itpm
                                    Otpm = int otpm
                                }
                            )
                        )
                    | _ -> None
                | Some "client_key_revoked", _, Some keyId -> Some(SharedEvent.ClientKeyRevoked keyId)
                | Some "conversation_pinned", _, _ ->
                    match root.TryGetProperty "conversation", text "family" with
                    | (true, v), Some family when v.ValueKind = JsonValueKind.Number ->
                        match v.TryGetUInt64() with
                        | true, key -> Some(SharedEvent.ConversationPinned(key, family))
                        | _ -> None
                    | _ -> None
                | _ -> None

            match text "relay", event with
            | Some relay, Some event -> Ok(relay, event)
            | None, _ -> Error "the event names no relay"
            | _, None -> Error "the event's kind or fields are not known"
        with :? JsonException as e ->
            Error $"the event is not JSON: %s{e.Message}"

/// Client keys revoked through the shared store, consulted from memory on every request.
[<RequireQualifiedAccess>]
module SharedClientKeys =

    /// The auth verdict with a revoked client key refused: a client whose key id is in `revoked` gets a 401
    /// naming the key id (never the key) and what to do.
    let refuseRevoked (revoked: Set<string>) (verdict: ClientVerdict) : ClientVerdict =
        match verdict with
        | Admitted(Some client, _) when not revoked.IsEmpty && revoked.Contains client.KeyId ->
            Refused $"client key %s{client.KeyId} was revoked; ask the relay's operator for a new one"
        | verdict -> verdict

/// Runtime client-key changes (`cc-relay clients add|revoke|rotate`) replicated between a relay's own store and the
/// shared one: each side gets the changes it lacks, matched by what a change is (when, what, whose, which key).
[<RequireQualifiedAccess>]
module SharedKeyChanges =

    let private identity (change: ClientKeyChange) =
        struct (change.At.ToUnixTimeMilliseconds(), change.Kind.WireName, change.Client, change.KeySha256)

    /// The changes only `local` has (to write to the shared store) and those only `shared` has (to append to the
    /// local store, oldest first), each in its own order. Once both are written, both sides hold the same changes.
    let missing
        (local: ClientKeyChange list)
        (shared: ClientKeyChange list)
        : ClientKeyChange list * ClientKeyChange list =
        let localIds = local |> List.map identity |> Set.ofList
        let sharedIds = shared |> List.map identity |> Set.ofList

        local |> List.filter (fun c -> not (sharedIds.Contains(identity c))),
        shared
        |> List.filter (fun c -> not (localIds.Contains(identity c)))
        |> List.sortBy _.At

/// The client keys revoked through the shared store's own table (written by earlier versions' `cc-relay state
/// revoke-client-key`; a revocation stays), as the host holds them: an immutable set swapped whole.
[<Sealed>]
type RevokedClientKeys private (keys: Set<string>) =

    /// None revoked.
    static member val Empty: RevokedClientKeys = RevokedClientKeys(Set.empty)

    /// With `keyId` revoked too.
    member this.Add(keyId: string) : RevokedClientKeys =
        if keys.Contains keyId then
            this
        else
            RevokedClientKeys(keys.Add keyId)

    /// How many are revoked.
    member _.Count: int = keys.Count

    /// The verdict with these keys refused (`SharedClientKeys.refuseRevoked`).
    member _.Check(verdict: ClientVerdict) : ClientVerdict =
        SharedClientKeys.refuseRevoked keys verdict

/// The C#-facing surface of `SharedKeyChanges`.
[<AbstractClass; Sealed>]
type SharedKeyReplication =

    /// `SharedKeyChanges.missing`: (to write to the shared store, to append to the own store).
    static member Missing
        (local: ClientKeyChange seq, shared: ClientKeyChange seq)
        : struct (
            Collections.Generic.IReadOnlyList<ClientKeyChange> * Collections.Generic.IReadOnlyList<ClientKeyChange>
        )
        =
        let toShared, toLocal =
            SharedKeyChanges.missing (List.ofSeq local) (List.ofSeq shared)

        struct (toShared, toLocal)
