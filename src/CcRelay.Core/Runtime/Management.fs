namespace CcRelay.Core

open System
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
