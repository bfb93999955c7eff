namespace CcRelay.Core

open System

/// A provider's state as `/health` and the debug headers show it.
type ProviderStatus = {
    Name: string
    /// `closed`, `open`, `half-open` or `disabled`.
    Circuit: string
    Keys: int
    /// Keys that could take a request now.
    KeysReady: int
    InFlight: int
    /// Smoothed time to first byte, when measured.
    LatencyMs: float voption
}

/// One key's remaining capacity at a scrape.
type KeyGauge = {
    /// The key's short hash id (never the key).
    KeyId: string
    /// `KeyPool.capacity`: 0 (exhausted, cooling down or revoked) to 1 (unused or unlimited).
    Ratio: float
}

/// One provider's live state as the Prometheus gauges show it (`ccrelay_provider_up`,
/// `ccrelay_circuit_state`, `ccrelay_key_capacity_ratio`).
type ProviderGauges = {
    Name: string
    /// Its breaker would admit a request now: the same rule as `/health`'s `up`.
    Up: bool
    /// One of `RelayHealth.circuitStates`.
    Circuit: string
    /// Its keys, config order (none for a provider without keys or with `enabled: false`).
    Keys: KeyGauge array
}

/// A health-check probe to send to a provider whose circuit is open.
type Probe = {
    /// The upstream request a real request to the provider would get (URL, credentials, signing).
    Plan: UpstreamPlan
    Method: string
    /// The JSON body (a token count), or empty for a GET.
    Body: byte array
} with

    /// The provider probed.
    member this.Provider: ProviderConfig = this.Plan.Provider

/// Operator switches, health-check probes and status, over one `RelayRuntime` (see `Relay` for the
/// request path). Pure, like `Relay`: the host swaps the runtime and logs the effects.
[<RequireQualifiedAccess>]
module RelayHealth =

    // ---------------------------
    // Operator and health checks
    // ---------------------------

    let private withBreaker
        (runtime: RelayRuntime)
        (name: string)
        (change: CircuitBreaker.Breaker -> CircuitBreaker.Breaker)
        : Transition<bool> =
        match RelayPolicy.indexOf runtime.Policy name with
        | -1 -> {
            Runtime = runtime
            Value = false
            Effects = []
          }
        | p ->
            let state = runtime.Providers[p]
            let breaker = change state.Breaker

            {
                Runtime = RelayRuntime.withProvider p { state with Breaker = breaker } runtime
                Value = true
                Effects = RelayRuntime.breakerEffects name state.Breaker breaker
            }

    /// Operator: stop routing to a provider until `enable`. False when no enabled provider has that name.
    let disable (runtime: RelayRuntime) (name: string) : Transition<bool> =
        withBreaker runtime name CircuitBreaker.disable

    /// Operator: route to a disabled provider again, from the state its breaker is in (an open circuit stays
    /// open until its break ends; see `CircuitBreaker.enable`).
    let enable (runtime: RelayRuntime) (name: string) : Transition<bool> =
        withBreaker runtime name CircuitBreaker.enable

    let private probeFor (kind: ProbeKind) (provider: ProviderConfig) : Probe =
        let plan, method, body = Dialect.probe kind provider

        {
            Plan = plan
            Method = method
            Body = body
        }

    /// The health-check probes due now: one per provider whose circuit is open and that was not probed
    /// within `health.health_check.interval_ms` (none when health checks are off). Marks them probed.
    let probesDue (runtime: RelayRuntime) (now: TimeSpan) : Transition<Probe list> =
        let policy = runtime.Policy
        let check = policy.Config.Health.HealthCheck

        let due =
            if not check.Enabled then
                []
            else
                runtime.Providers
                |> Array.indexed
                |> Array.filter (fun (_, state) ->
                    match state.Breaker.State with
                    | _ when state.Breaker.OperatorDisabled -> false
                    | CircuitBreaker.Open until ->
                        until > now
                        && (state.ProbedAt = TimeSpan.MinValue
                            || now - state.ProbedAt >= policy.HealthCheckInterval)
                    | _ -> false)
                |> Array.map fst
                |> List.ofArray

        let runtime =
            due
            |> List.fold
                (fun (rt: RelayRuntime) p -> RelayRuntime.withProvider p { rt.Providers[p] with ProbedAt = now } rt)
                runtime

        {
            Runtime = runtime
            Value = due |> List.map (fun p -> probeFor check.Probe policy.Providers[p].Config)
            Effects = []
        }

    /// A probe's result: a 2xx ends the provider's break now (its next request is a half-open probe);
    /// anything else leaves the breaker as it is. Either way the result is kept (`ProbeSucceeded`) for operators.
    let probed (runtime: RelayRuntime) (now: TimeSpan) (provider: string) (succeeded: bool) : Transition<unit> =
        let changed =
            if succeeded then
                withBreaker runtime provider (CircuitBreaker.probeSucceeded now)
            else
                {
                    Runtime = runtime
                    Value = true
                    Effects = []
                }

        let runtime =
            match RelayPolicy.indexOf changed.Runtime.Policy provider with
            | -1 -> changed.Runtime
            | p ->
                RelayRuntime.withProvider
                    p
                    {
                        changed.Runtime.Providers[p] with
                            ProbeSucceeded = ValueSome succeeded
                    }
                    changed.Runtime

        {
            Runtime = runtime
            Value = ()
            Effects = changed.Effects
        }

    let private keysReady (now: TimeSpan) (keys: KeyState array) : int =
        let mutable ready = 0

        for key in keys do
            if KeyPool.readyIn now 1 key = TimeSpan.Zero then
                ready <- ready + 1

        ready

    /// One enabled provider's keys: how many could take a request now, and how many it has. Reads that
    /// provider only and allocates nothing (it runs for every delivered answer's headers).
    let keys (runtime: RelayRuntime) (now: TimeSpan) (provider: string) : struct (int * int) voption =
        match RelayPolicy.indexOf runtime.Policy provider with
        | -1 -> ValueNone
        | p ->
            let state = runtime.Providers[p]
            ValueSome(struct (keysReady now state.Keys, state.Keys.Length))

    /// Every enabled provider's state, in config order.
    let status (runtime: RelayRuntime) (now: TimeSpan) : ProviderStatus list =
        runtime.Providers
        |> Array.map (fun state -> {
            Name = state.Name
            Circuit = CircuitBreaker.stateNameAt now state.Breaker
            Keys = state.Keys.Length
            KeysReady = keysReady now state.Keys
            InFlight = state.InFlight
            LatencyMs =
                if state.Latency.Samples > 0 then
                    ValueSome state.Latency.EwmaMs
                else
                    ValueNone
        })
        |> List.ofArray

    let private admissible (runtime: RelayRuntime) (now: TimeSpan) (state: ProviderState) : bool =
        match CircuitBreaker.peek runtime.Policy.Breaker now state.Breaker with
        | CircuitBreaker.Admitted _ -> true
        | CircuitBreaker.Refused _ -> false

    /// The values of the `state` label of `ccrelay_circuit_state`: `closed`, `half_open`, `open` and
    /// `isolated` (an operator disabled the provider, or its config says `enabled: false`).
    let circuitStates: string list = [ "closed"; "half_open"; "open"; "isolated" ]

    /// The breaker as a caller finds it at `now` (`CircuitBreaker.stateNameAt`), named as in `circuitStates`.
    let private circuitLabel (now: TimeSpan) (breaker: CircuitBreaker.Breaker) : string =
        match CircuitBreaker.observe now breaker with
        | _ when breaker.OperatorDisabled -> "isolated"
        | CircuitBreaker.Closed _ -> "closed"
        | CircuitBreaker.HalfOpen _ -> "half_open"
        | CircuitBreaker.Open _ -> "open"

    /// Every configured provider's gauges at a scrape, in config order, from the live runtime (its policy's
    /// config, so a reload shows up as one consistent change). The circuit is the breaker's state as `status` shows it, named as in
    /// `circuitStates`: after its break an `open` circuit is `half_open` (and `Up`), as the next request
    /// probes it. A provider with `enabled: false` is down and `isolated`, with no keys.
    let gauges (runtime: RelayRuntime) (now: TimeSpan) : ProviderGauges list =
        runtime.Policy.Config.Providers
        |> List.map (fun p ->
            match RelayPolicy.indexOf runtime.Policy p.Name with
            | -1 -> {
                Name = p.Name
                Up = false
                Circuit = "isolated"
                Keys = [||]
              }
            | i ->
                let state = runtime.Providers[i]

                {
                    Name = state.Name
                    Up = admissible runtime now state
                    Circuit = circuitLabel now state.Breaker
                    Keys =
                        state.Keys
                        |> Array.map (fun k -> {
                            KeyId = k.Id
                            Ratio = KeyPool.capacity now k
                        })
                })

    /// The `/health` report: every configured provider, with the circuit, key capacity and load of the
    /// enabled ones. A provider is `up` while its breaker would admit a request now (closed, half-open
    /// with a probe to spare, or open with its break over), `down` otherwise. The providers are those of the
    /// runtime's own config (its policy's), so a report made during a reload is all old or all new.
    let report (version: string) (runtime: RelayRuntime) (now: TimeSpan) : HealthReport =
        let statuses = status runtime now

        runtime.Policy.Config.Providers
        |> List.map (fun p ->
            match runtime.Providers |> Array.tryFindIndex (fun s -> s.Name = p.Name) with
            | Some i when p.Enabled ->
                let state = runtime.Providers[i]
                let line = statuses[i]

                {
                    Health.provider p with
                        Status =
                            if admissible runtime now state then "up"
                            elif line.Circuit = "disabled" then "disabled"
                            else "down"
                        Circuit = line.Circuit
                        KeysAvailable = line.KeysReady
                        InFlight = line.InFlight
                }
            | _ -> Health.provider p)
        |> Health.ofProviders version
