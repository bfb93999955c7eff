namespace CcRelay.Core

open System

/// A per-provider circuit breaker: pure transitions, no timers.
///
/// ```
///            failure_threshold failures within window
///   Closed ─────────────────────────────────────────────► Open(until)
///     ▲                                                    │ now >= until: the next admit (lazy)
///     │ half_open_probes successes                         ▼
///     └──────────────────────────────────────────────── HalfOpen ── any failure ──► Open(now + open_duration)
///   Disabled: set and cleared only by the operator.
/// ```
///
/// Rules learned from Polly (style.md §1.2): Open → HalfOpen happens lazily on the next admit; outcomes
/// that arrive while Open never extend the break; a client disconnect (Abandoned) says nothing. On top,
/// every state change bumps `Generation`, and an outcome only counts in the generation that admitted its
/// call: a slow failure from before a break cannot reopen a half-open circuit.
[<RequireQualifiedAccess>]
module CircuitBreaker =

    /// Validated once (`FailureThreshold >= 1`, `HalfOpenProbes >= 1`, durations > 0).
    type Policy = {
        FailureThreshold: int
        Window: TimeSpan
        OpenDuration: TimeSpan
        HalfOpenProbes: int
    }

    /// The state proper.
    type State =
        /// Recent failure times, oldest first (only those that can still count: at most threshold - 1).
        | Closed of Failures: TimeSpan array
        | Open of Until: TimeSpan
        /// `Admitted` probes let through since `Since`, `Succeeded` of them reported a success.
        | HalfOpen of Admitted: int * Succeeded: int * Since: TimeSpan
        /// Operator override: refuses everything until enabled.
        | Disabled

    /// A breaker: its state and the generation of that state.
    type Breaker = { State: State; Generation: int }

    /// What a call's result says about the provider.
    [<RequireQualifiedAccess>]
    type Outcome =
        | Success
        | Failure
        /// The client went away: counts neither way.
        | Abandoned

    /// Whether a call may go out now.
    [<Struct>]
    type Admission =
        /// Go; report the outcome with this generation.
        | Admitted of Generation: int
        /// Not now; `RetryAfter` is when the breaker may admit again (None: only the operator can help).
        | Refused of RetryAfter: TimeSpan voption

    /// The policy for a `health.circuit_breaker` section.
    let policyOf (config: CircuitBreakerConfig) : Policy = {
        FailureThreshold = max 1 config.FailureThreshold
        Window = TimeSpan.FromMilliseconds(float (max 1 config.WindowMs))
        OpenDuration = TimeSpan.FromMilliseconds(float (max 1 config.OpenDurationMs))
        HalfOpenProbes = max 1 config.HalfOpenProbes
    }

    let private noFailures: TimeSpan array = [||]

    /// A closed breaker with no failures.
    let closed: Breaker = {
        State = Closed noFailures
        Generation = 0
    }

    let private moveTo (state: State) (breaker: Breaker) : Breaker = {
        State = state
        Generation = breaker.Generation + 1
    }

    /// The half-open probe window has run out: probes admitted but never reported count as lost.
    let private probesLost (policy: Policy) (now: TimeSpan) (since: TimeSpan) : bool =
        Time.notBefore (now - since) policy.OpenDuration

    /// What `admit` would answer, without changing anything (for planning).
    let peek (policy: Policy) (now: TimeSpan) (breaker: Breaker) : Admission =
        match breaker.State with
        | Closed _ -> Admitted breaker.Generation
        | Open until when Time.notBefore now until -> Admitted(breaker.Generation + 1)
        | Open until -> Refused(ValueSome(until - now))
        | HalfOpen(admitted, _, since) ->
            if admitted < policy.HalfOpenProbes || probesLost policy now since then
                Admitted breaker.Generation
            else
                Refused(ValueSome(since + policy.OpenDuration - now))
        | Disabled -> Refused ValueNone

    /// Before a call. After the break, the first callers become the half-open probes.
    let admit (policy: Policy) (now: TimeSpan) (breaker: Breaker) : struct (Admission * Breaker) =
        match breaker.State with
        | Closed _ -> struct (Admitted breaker.Generation, breaker)
        | Open until when Time.notBefore now until ->
            let next = moveTo (HalfOpen(1, 0, now)) breaker
            struct (Admitted next.Generation, next)
        | Open until -> struct (Refused(ValueSome(until - now)), breaker)
        | HalfOpen(admitted, succeeded, since) ->
            if probesLost policy now since then
                // A new probe window: the unreported probes are given up on (a probe never gets stuck).
                struct (Admitted breaker.Generation,
                        {
                            breaker with
                                State = HalfOpen(succeeded + 1, succeeded, now)
                        })
            elif admitted < policy.HalfOpenProbes then
                struct (Admitted breaker.Generation,
                        {
                            breaker with
                                State = HalfOpen(admitted + 1, succeeded, since)
                        })
            else
                struct (Refused(ValueSome(since + policy.OpenDuration - now)), breaker)
        | Disabled -> struct (Refused ValueNone, breaker)

    /// After a call admitted in `generation`. Outcomes of another generation, and any outcome while Open or
    /// Disabled, change nothing.
    let record (policy: Policy) (now: TimeSpan) (generation: int) (outcome: Outcome) (breaker: Breaker) : Breaker =
        if generation <> breaker.Generation then
            breaker
        else
            match breaker.State, outcome with
            | _, Outcome.Abandoned -> breaker
            | Closed _, Outcome.Success -> breaker
            | Closed failures, Outcome.Failure ->
                let recent =
                    failures
                    |> Array.filter (fun at -> Time.before (now - at) policy.Window)
                    |> fun kept -> Array.append kept [| now |]

                if recent.Length >= policy.FailureThreshold then
                    moveTo (Open(now + policy.OpenDuration)) breaker
                else
                    // Only the newest threshold - 1 can still take part in a trip.
                    let keep = policy.FailureThreshold - 1

                    let recent =
                        if recent.Length > keep then
                            recent[recent.Length - keep ..]
                        else
                            recent

                    { breaker with State = Closed recent }
            | HalfOpen(admitted, succeeded, since), Outcome.Success ->
                if succeeded + 1 >= policy.HalfOpenProbes then
                    moveTo (Closed noFailures) breaker
                else
                    {
                        breaker with
                            State = HalfOpen(admitted, succeeded + 1, since)
                    }
            | HalfOpen _, Outcome.Failure -> moveTo (Open(now + policy.OpenDuration)) breaker
            | (Open _ | Disabled), _ -> breaker

    /// A successful health-check probe while Open: the break ends now (the next admit goes half-open).
    let probeSucceeded (now: TimeSpan) (breaker: Breaker) : Breaker =
        match breaker.State with
        | Open until when Time.before now until -> { breaker with State = Open now }
        | _ -> breaker

    /// Operator: refuse every call until `enable`.
    let disable (breaker: Breaker) : Breaker =
        match breaker.State with
        | Disabled -> breaker
        | _ -> moveTo Disabled breaker

    /// Operator: back to Closed, failures forgotten.
    let enable (breaker: Breaker) : Breaker =
        match breaker.State with
        | Disabled -> moveTo (Closed noFailures) breaker
        | _ -> breaker

    let private nameOf (state: State) : string =
        match state with
        | Closed _ -> "closed"
        | Open _ -> "open"
        | HalfOpen _ -> "half-open"
        | Disabled -> "disabled"

    /// The state's name: `closed`, `open`, `half-open` or `disabled`.
    let stateName (breaker: Breaker) : string = nameOf breaker.State

    /// The state as a caller finds the breaker at `now`: an `Open` breaker whose break is over admits its next
    /// call as a half-open probe, so it is `HalfOpen` with no probe let through yet (the state itself moves on
    /// that call, in `admit`). What operators are shown: never `Open` on a provider that takes requests.
    let observe (now: TimeSpan) (breaker: Breaker) : State =
        match breaker.State with
        | Open until when Time.notBefore now until -> HalfOpen(0, 0, now)
        | state -> state

    /// The name of the state a caller finds at `now` (`observe`), as `/health` and the debug header show it.
    let stateNameAt (now: TimeSpan) (breaker: Breaker) : string = nameOf (observe now breaker)
