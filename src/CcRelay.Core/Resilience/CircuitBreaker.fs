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
///
///   beside the state: OperatorDisabled, set and cleared only by the operator
/// ```
///
/// Rules learned from Polly (style.md §1.2): Open → HalfOpen happens lazily on the next admit; outcomes
/// that arrive while Open never extend the break; a client disconnect (Abandoned) says nothing. On top,
/// every state change bumps `Generation`, and an outcome only counts in the generation that admitted its
/// call: a slow failure from before a break cannot reopen a half-open circuit.
///
/// The operator's switch is a flag beside the state, not a state: while it is set every admission is refused
/// (no retry time: only the operator can help) and nothing else changes. The state keeps its own course —
/// an open break still runs out, a call admitted before the switch still reports into its generation — so
/// enabling again finds exactly the breaker the provider's own traffic made, not a fresh one.
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

    /// A breaker: its state, the generation of that state, and the operator's switch beside it.
    type Breaker = {
        State: State
        Generation: int
        /// Set by `disable`, cleared by `enable`: refuses every call; the state is left as it is.
        OperatorDisabled: bool
    }

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
        OperatorDisabled = false
    }

    let private moveTo (state: State) (breaker: Breaker) : Breaker = {
        breaker with
            State = state
            Generation = breaker.Generation + 1
    }

    /// The half-open probe window has run out: probes admitted but never reported count as lost.
    let private probesLost (policy: Policy) (now: TimeSpan) (since: TimeSpan) : bool =
        Time.notBefore (now - since) policy.OpenDuration

    /// What `admit` would answer, without changing anything (for planning).
    let peek (policy: Policy) (now: TimeSpan) (breaker: Breaker) : Admission =
        match breaker.State with
        | _ when breaker.OperatorDisabled -> Refused ValueNone
        | Closed _ -> Admitted breaker.Generation
        | Open until when Time.notBefore now until -> Admitted(breaker.Generation + 1)
        | Open until -> Refused(ValueSome(until - now))
        | HalfOpen(admitted, _, since) ->
            if admitted < policy.HalfOpenProbes || probesLost policy now since then
                Admitted breaker.Generation
            else
                Refused(ValueSome(since + policy.OpenDuration - now))

    /// Before a call. After the break, the first callers become the half-open probes.
    let admit (policy: Policy) (now: TimeSpan) (breaker: Breaker) : struct (Admission * Breaker) =
        match breaker.State with
        | _ when breaker.OperatorDisabled -> struct (Refused ValueNone, breaker)
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

    /// After a call admitted in `generation`. Outcomes of another generation, and any outcome while Open,
    /// change nothing. The operator's switch does not matter here: a call admitted before it was set still
    /// tells the breaker about the provider.
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
            | Open _, _ -> breaker

    /// After a call admitted in `generation` that never reached the provider (the relay answered it itself): it
    /// says nothing about the provider, so nothing is recorded, and a half-open probe slot it took is given back
    /// for a call that does reach the provider. Another generation's call changes nothing.
    let unused (generation: int) (breaker: Breaker) : Breaker =
        if generation <> breaker.Generation then
            breaker
        else
            match breaker.State with
            | HalfOpen(admitted, succeeded, since) when admitted > 0 -> {
                breaker with
                    State = HalfOpen(admitted - 1, succeeded, since)
              }
            | _ -> breaker

    /// A successful health-check probe while Open: the break ends now (the next admit goes half-open).
    let probeSucceeded (now: TimeSpan) (breaker: Breaker) : Breaker =
        match breaker.State with
        | Open until when Time.before now until -> { breaker with State = Open now }
        | _ -> breaker

    /// Operator: refuse every call until `enable`. The state and its generation are left as they are.
    let disable (breaker: Breaker) : Breaker =
        if breaker.OperatorDisabled then
            breaker
        else
            { breaker with OperatorDisabled = true }

    /// Operator: admit calls again, from the state the breaker is in (`enable (disable b) = b`): an open
    /// circuit stays open until its break ends, a closed one keeps its recent failures.
    let enable (breaker: Breaker) : Breaker =
        if breaker.OperatorDisabled then
            {
                breaker with
                    OperatorDisabled = false
            }
        else
            breaker

    let private nameOf (state: State) : string =
        match state with
        | Closed _ -> "closed"
        | Open _ -> "open"
        | HalfOpen _ -> "half-open"

    /// The name: `disabled` while the operator's switch is set, else the state's: `closed`, `open` or `half-open`.
    let stateName (breaker: Breaker) : string =
        if breaker.OperatorDisabled then
            "disabled"
        else
            nameOf breaker.State

    /// The state as a caller finds the breaker at `now`: an `Open` breaker whose break is over admits its next
    /// call as a half-open probe, so it is `HalfOpen` with no probe let through yet (the state itself moves on
    /// that call, in `admit`). What operators are shown: never `Open` on a provider that takes requests.
    let observe (now: TimeSpan) (breaker: Breaker) : State =
        match breaker.State with
        | Open until when Time.notBefore now until -> HalfOpen(0, 0, now)
        | state -> state

    /// The name of the state a caller finds at `now` (`observe`), as `/health` and the debug header show it;
    /// `disabled` while the operator's switch is set.
    let stateNameAt (now: TimeSpan) (breaker: Breaker) : string =
        if breaker.OperatorDisabled then
            "disabled"
        else
            nameOf (observe now breaker)
