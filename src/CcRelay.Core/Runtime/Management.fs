namespace CcRelay.Core

open System
open System.Collections.Generic
open System.Security.Cryptography
open System.Text

/// One key of a live pool as the management API shows it: its id, never the secret.
type KeyView = {
    Provider: string
    /// `KeyId.ofSecret`.
    KeyId: string
    Priority: int
    Weight: int
    /// The per-minute limits in effect (configured, or learned from the upstream's headers); 0 = unlimited.
    Limits: KeyLimits
    /// What each bucket holds now: requests, input tokens, output tokens (-1 where unlimited).
    RpmRemaining: int64
    InputTokensRemaining: int64
    OutputTokensRemaining: int64
    /// `KeyPool.capacity`: 0 (exhausted, cooling down or revoked) to 1.
    Capacity: float
    /// Time left on a 429 cooldown; zero when none.
    CooldownRemaining: TimeSpan
    /// Refused with 401/403: unused until a reload.
    Revoked: bool
}

/// One configured provider as the management API shows it.
type ProviderView = {
    Name: string
    /// `ProviderType.wireName`.
    Type: string
    BaseUrl: string
    /// `providers[].enabled` (and its keys resolved): a provider disabled in the config has no live state.
    EnabledInConfig: bool
    /// An operator disabled it (`Management.setEnabled`): never planned, never probed.
    OperatorDisabled: bool
    /// `closed`, `half_open`, `open`, `disabled` (by the operator) or `config_disabled`.
    Circuit: string
    /// When the circuit changes by itself (an open circuit's break ends); ValueNone when it waits for traffic,
    /// a probe or the operator.
    CircuitChangesIn: TimeSpan voption
    /// The last health-check probe: ValueSome true (2xx), ValueSome false, ValueNone (none answered yet).
    ProbeSucceeded: bool voption
    /// How long ago a probe was last sent; ValueNone when never.
    ProbedAgo: TimeSpan voption
    /// Its breaker would admit a request now.
    Up: bool
    InFlight: int
    /// Smoothed time to first byte, when measured.
    LatencyEwmaMs: float voption
    Keys: KeyView list
}

/// What `Management.setEnabled` did.
[<RequireQualifiedAccess>]
type OperatorChange =
    /// The provider is now in the asked state (`Changed = false`: it already was).
    | Done of Changed: bool
    /// No configured provider has that name.
    | UnknownProvider
    /// The config disables it (`enabled: false`, or no usable key): only a config change enables it.
    | DisabledInConfig

/// What the management API reads from and does to the live runtime: views of providers and keys, and the
/// operator's switch. Pure: the host passes the runtime and the monotonic now, and swaps what comes back.
///
/// The operator state is a switch beside the provider's breaker state (`Breaker.OperatorDisabled`): a
/// disabled provider is never planned (`Routing.order` admits nothing a breaker refuses) and never probed
/// (`RelayHealth.probesDue` skips it); enabling it finds the breaker in the state its own traffic left it.
/// It survives a config reload while the provider keeps its name (`RelayRuntime.reconcile` keeps a
/// survivor's breaker), and ends with the process.
[<RequireQualifiedAccess>]
module Management =

    /// Whether a call's `authorization` metadata (null or empty when absent) carries the management token:
    /// always true without a token; compared as SHA-256 digests in constant time (no length or prefix leaks).
    let authorize (token: string option) (authorization: string | null) : bool =
        match token with
        | None -> true
        | Some token ->
            let presented = Headers.tryBearer authorization |> Option.defaultValue ""
            let expected = SHA256.HashData(Encoding.UTF8.GetBytes token)
            let actual = SHA256.HashData(Encoding.UTF8.GetBytes presented)
            // both digests are always compared, so a missing token takes as long as a wrong one
            CryptographicOperations.FixedTimeEquals(ReadOnlySpan expected, ReadOnlySpan actual)
            && presented.Length > 0

    let private remaining (now: TimeSpan) (capacity: int) (bucket: TokenBucket.Bucket) : int64 =
        if capacity > 0 then
            let limits = TokenBucket.perMinute capacity
            TokenBucket.tokens limits (TokenBucket.refill limits now bucket)
        else
            -1L

    let private keyView (now: TimeSpan) (provider: string) (policy: KeyPolicy) (state: KeyState) : KeyView = {
        Provider = provider
        KeyId = state.Id
        Priority = policy.Priority
        Weight = policy.Weight
        Limits = state.Limits
        RpmRemaining = remaining now state.Limits.Rpm state.Rpm
        InputTokensRemaining = remaining now state.Limits.Itpm state.Itpm
        OutputTokensRemaining = remaining now state.Limits.Otpm state.Otpm
        Capacity = KeyPool.capacity now state
        CooldownRemaining =
            if Time.before now state.CooldownUntil then
                state.CooldownUntil - now
            else
                TimeSpan.Zero
        Revoked = state.Revoked
    }

    let private circuit (now: TimeSpan) (breaker: CircuitBreaker.Breaker) : string * TimeSpan voption =
        match CircuitBreaker.observe now breaker with
        | _ when breaker.OperatorDisabled -> "disabled", ValueNone
        | CircuitBreaker.Closed _ -> "closed", ValueNone
        | CircuitBreaker.HalfOpen _ -> "half_open", ValueNone
        | CircuitBreaker.Open until -> "open", ValueSome(until - now)

    /// Every configured provider, in config order, from the runtime's own config (a view made during a
    /// reload is all old or all new).
    let providers (runtime: RelayRuntime) (now: TimeSpan) : ProviderView list =
        runtime.Policy.Config.Providers
        |> List.map (fun config ->
            let basic = {
                Name = config.Name
                Type = ProviderType.wireName config.Type
                BaseUrl = config.BaseUrl.OriginalString
                EnabledInConfig = false
                OperatorDisabled = false
                Circuit = "config_disabled"
                CircuitChangesIn = ValueNone
                ProbeSucceeded = ValueNone
                ProbedAgo = ValueNone
                Up = false
                InFlight = 0
                LatencyEwmaMs = ValueNone
                Keys = []
            }

            match RelayPolicy.indexOf runtime.Policy config.Name with
            | -1 -> basic
            | i ->
                let state = runtime.Providers[i]
                let policy = runtime.Policy.Providers[i]
                let name, changesIn = circuit now state.Breaker

                {
                    basic with
                        EnabledInConfig = true
                        OperatorDisabled = state.Breaker.OperatorDisabled
                        Circuit = name
                        CircuitChangesIn = changesIn
                        ProbeSucceeded = state.ProbeSucceeded
                        ProbedAgo =
                            if state.ProbedAt = TimeSpan.MinValue then
                                ValueNone
                            else
                                ValueSome(now - state.ProbedAt)
                        Up =
                            (match CircuitBreaker.peek runtime.Policy.Breaker now state.Breaker with
                             | CircuitBreaker.Admitted _ -> true
                             | CircuitBreaker.Refused _ -> false)
                        InFlight = state.InFlight
                        LatencyEwmaMs =
                            if state.Latency.Samples > 0 then
                                ValueSome state.Latency.EwmaMs
                            else
                                ValueNone
                        Keys = Array.map2 (keyView now config.Name) policy.Keys state.Keys |> List.ofArray
                })

    /// The keys of the live pools: one provider's (by name), or every provider's when `provider` is empty.
    let keys (runtime: RelayRuntime) (now: TimeSpan) (provider: string) : KeyView list =
        providers runtime now
        |> List.filter (fun p -> provider = "" || p.Name = provider)
        |> List.collect _.Keys

    /// Operator: enable or disable a provider. Disabling sets its breaker's operator switch; enabling clears
    /// it, leaving the breaker's own state as it is. Asking for the state it is in changes nothing.
    let setEnabled (runtime: RelayRuntime) (name: string) (enabled: bool) : Transition<OperatorChange> =
        let unchanged (value: OperatorChange) : Transition<OperatorChange> = {
            Runtime = runtime
            Value = value
            Effects = []
        }

        match RelayPolicy.indexOf runtime.Policy name with
        | -1 when runtime.Policy.Config.Providers |> List.exists (fun p -> p.Name = name) ->
            unchanged OperatorChange.DisabledInConfig
        | -1 -> unchanged OperatorChange.UnknownProvider
        | i ->
            let disabled = runtime.Providers[i].Breaker.OperatorDisabled

            if disabled = not enabled then
                unchanged (OperatorChange.Done false)
            else
                let change =
                    if enabled then
                        RelayHealth.enable runtime name
                    else
                        RelayHealth.disable runtime name

                {
                    Runtime = change.Runtime
                    Value = OperatorChange.Done true
                    Effects = change.Effects
                }

/// A key to add through the management API: the secret and the settings a `keys[]` entry has.
type NewKey = {
    Secret: string
    RpmLimit: int
    ItpmLimit: int
    OtpmLimit: int
    Priority: int
    Weight: int
}

/// What `KeyEdit.add` or `KeyEdit.remove` made of a config.
[<RequireQualifiedAccess>]
type KeyEditResult =
    /// The config with the change applied, and the key's id (the only form in which it is shown).
    | Changed of Config: RelayConfig * KeyId: string
    /// No configured provider has that name.
    | UnknownProvider
    /// The config disables the provider (`enabled: false`, or no usable key): change the config instead.
    | DisabledInConfig
    /// Add: the provider already has this key. Remove: the provider has no key with this id.
    | AlreadyThere of KeyId: string
    | NoSuchKey
    /// The request is not a valid key (the message names the field; it never quotes the secret).
    | Invalid of Message: string

/// Keys added to and removed from the live pools (management API `AddKey` / `RemoveKey`). A change is made to
/// the running config, which the host then applies as a reload applies a file (`RelayRuntime.reconcile`): the
/// other keys keep their buckets, cooldowns and learned limits by key id, and the config generation grows.
/// The config file is not written: the next reload makes the pools the file's again (keys added here are
/// dropped, keys removed here come back), and a restart starts from the file.
[<RequireQualifiedAccess>]
module KeyEdit =

    let private find (config: RelayConfig) (provider: string) : Result<ProviderConfig, KeyEditResult> =
        match config.Providers |> List.tryFind (fun p -> p.Name = provider) with
        | None -> Error KeyEditResult.UnknownProvider
        | Some p when not p.Enabled -> Error KeyEditResult.DisabledInConfig
        | Some p -> Ok p

    let private replace (config: RelayConfig) (provider: ProviderConfig) : RelayConfig = {
        config with
            Providers =
                config.Providers
                |> List.map (fun p -> if p.Name = provider.Name then provider else p)
    }

    /// Adds `key` at the end of `provider`'s keys. Limits and weight must not be negative; the secret must not
    /// be empty or contain white space or control characters (it goes into a header as it is).
    let add (config: RelayConfig) (provider: string) (key: NewKey) : KeyEditResult =
        let invalid =
            if String.IsNullOrEmpty key.Secret then
                Some "key: must not be empty"
            elif key.Secret |> Seq.exists (fun c -> Char.IsWhiteSpace c || Char.IsControl c) then
                Some "key: must not contain white space or control characters"
            elif key.RpmLimit < 0 then
                Some $"rpm_limit: must be 0 (unlimited) or more, got %d{key.RpmLimit}"
            elif key.ItpmLimit < 0 then
                Some $"itpm_limit: must be 0 (unlimited) or more, got %d{key.ItpmLimit}"
            elif key.OtpmLimit < 0 then
                Some $"otpm_limit: must be 0 (unlimited) or more, got %d{key.OtpmLimit}"
            elif key.Weight < 0 then
                Some $"weight: must be 0 or more, got %d{key.Weight}"
            else
                None

        match invalid, find config provider with
        | Some message, _ -> KeyEditResult.Invalid message
        | None, Error result -> result
        | None, Ok p ->
            let id = KeyId.ofSecret key.Secret

            if p.Keys |> List.exists (fun k -> k.Key = key.Secret) then
                KeyEditResult.AlreadyThere id
            else
                let entry: KeyConfig = {
                    Key = key.Secret
                    RpmLimit = key.RpmLimit
                    ItpmLimit = key.ItpmLimit
                    OtpmLimit = key.OtpmLimit
                    TpmLimit = 0
                    Priority = key.Priority
                    Weight = key.Weight
                    Aws = None
                }

                KeyEditResult.Changed(replace config { p with Keys = p.Keys @ [ entry ] }, id)

    /// Removes the key with id `keyId` from `provider`'s keys (every entry with that id: they are one key).
    /// The last key of a provider that needs one cannot be removed: disable the provider instead.
    let remove (config: RelayConfig) (provider: string) (keyId: string) : KeyEditResult =
        match find config provider with
        | Error result -> result
        | Ok p ->
            let kept, removed =
                p.Keys |> List.partition (fun k -> KeyId.ofSecret k.Key <> keyId)

            if removed.IsEmpty then
                KeyEditResult.NoSuchKey
            elif kept.IsEmpty && not p.Keys.IsEmpty then
                KeyEditResult.Invalid
                    $"key_id: %s{keyId} is the last key of provider %s{provider}; disable the provider instead"
            else
                KeyEditResult.Changed(replace config { p with Keys = kept }, keyId)

    /// The runtime for a config changed by `add` or `remove`: `RelayRuntime.reconcile` (every other key keeps
    /// its buckets, cooldowns and learned limits by key id), except that a key revoked by a 401/403 stays
    /// revoked — a key edit is not a reload, and nobody changed that key.
    let reconcile
        (now: TimeSpan)
        (prices: ProviderPrices)
        (config: RelayConfig)
        (runtime: RelayRuntime)
        : RelayRuntime =
        let next = RelayRuntime.reconcile now prices config runtime

        let revoked =
            runtime.Providers
            |> Seq.collect (fun p -> p.Keys |> Seq.filter _.Revoked |> Seq.map (fun k -> p.Name, k.Id))
            |> Set.ofSeq

        if revoked.IsEmpty then
            next
        else
            {
                next with
                    Providers =
                        next.Providers
                        |> Array.map (fun p -> {
                            p with
                                Keys =
                                    p.Keys
                                    |> Array.map (fun k ->
                                        if revoked.Contains(p.Name, k.Id) then
                                            { k with Revoked = true }
                                        else
                                            k)
                        })
            }

/// One provider's models as `cc-relay models` shows them.
type ProviderModels = {
    Provider: string
    /// `ProviderType.wireName`.
    Type: string
    EnabledInConfig: bool
    /// `models`: what it lists in `/v1/models`.
    Models: string list
    /// `model_mapping`: the model a client asks for → the model sent upstream.
    Mapping: (string * string) list
}

/// What each provider offers, from a config (the running relay's or a file's).
[<RequireQualifiedAccess>]
module ProviderModels =

    /// Every configured provider in config order.
    let ofConfig (config: RelayConfig) : ProviderModels list =
        config.Providers
        |> List.map (fun p -> {
            Provider = p.Name
            Type = ProviderType.wireName p.Type
            EnabledInConfig = p.Enabled
            Models = p.Models
            Mapping = p.ModelMapping |> Map.toList
        })

/// The C#-facing surface of `ProviderModels`.
type ProviderModels with

    /// Every configured provider in config order (`ProviderModels.ofConfig`).
    static member OfConfig(config: RelayConfig) : IReadOnlyList<ProviderModels> =
        ProviderModels.ofConfig config :> IReadOnlyList<_>
