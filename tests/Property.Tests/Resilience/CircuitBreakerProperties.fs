module CcRelay.Core.Properties.CircuitBreakerProperties

open System
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core

type private B = CircuitBreaker.Breaker

/// What happens to a breaker, after `Step` ms.
type private Event =
    | Admit
    /// An outcome reported with the current generation (`Late = false`) or an older one.
    | Report of Outcome: CircuitBreaker.Outcome * Late: bool
    | ProbeSucceeded
    | Disable
    | Enable

let private policy: Gen<CircuitBreaker.Policy> =
    gen {
        let! threshold = Gen.choose (1, 5)
        let! window = Gen.choose (100, 5_000)
        let! openFor = Gen.choose (100, 5_000)
        let! probes = Gen.choose (1, 4)

        return {
            FailureThreshold = threshold
            Window = TimeSpan.FromMilliseconds(float window)
            OpenDuration = TimeSpan.FromMilliseconds(float openFor)
            HalfOpenProbes = probes
        }
    }

let private event: Gen<Event> =
    Gen.frequency [
        6, Gen.constant Admit
        4, Gen.constant (Report(CircuitBreaker.Outcome.Failure, false))
        3, Gen.constant (Report(CircuitBreaker.Outcome.Success, false))
        1, Gen.constant (Report(CircuitBreaker.Outcome.Abandoned, false))
        1,
        Gen.elements [ CircuitBreaker.Outcome.Failure; CircuitBreaker.Outcome.Success ]
        |> Gen.map (fun o -> Report(o, true))
        1, Gen.constant ProbeSucceeded
        1, Gen.elements [ Disable; Enable ]
    ]

let private history =
    gen {
        let! policy = policy

        let! events =
            Gen.listOfLength 200 (Gen.zip (Gen.frequency [ 3, Gen.choose (0, 300); 1, Gen.choose (0, 6_000) ]) event)

        return policy, events
    }
    |> Check.arb

/// Folds a history, calling `check policy now before event after admission` at every step.
let private run
    (policy: CircuitBreaker.Policy)
    (events: (int * Event) list)
    (check: TimeSpan -> B -> Event -> B -> CircuitBreaker.Admission voption -> unit)
    : unit =
    let mutable now = TimeSpan.FromSeconds 1.0
    let mutable breaker = CircuitBreaker.closed

    for step, e in events do
        now <- now + TimeSpan.FromMilliseconds(float step)
        let before = breaker

        let after, admission =
            match e with
            | Admit ->
                let struct (admission, after) = CircuitBreaker.admit policy now before
                after, ValueSome admission
            | Report(outcome, late) ->
                let generation = if late then before.Generation - 1 else before.Generation
                CircuitBreaker.record policy now generation outcome before, ValueNone
            | ProbeSucceeded -> CircuitBreaker.probeSucceeded now before, ValueNone
            | Disable -> CircuitBreaker.disable before, ValueNone
            | Enable -> CircuitBreaker.enable before, ValueNone

        check now before e after admission
        breaker <- after

[<Fact>]
let ``open never admits before its time`` () =
    Check.quick
        200
        (Prop.forAll history (fun (policy, events) ->
            run policy events (fun now before _ after admission ->
                match before.State, admission with
                | _, ValueSome admitted when before.OperatorDisabled ->
                    Assert.Equal(CircuitBreaker.Refused ValueNone, admitted)
                    Assert.Equal(before, after)
                | CircuitBreaker.Open until, ValueSome(CircuitBreaker.Admitted _) -> Assert.True(now >= until)
                | _ -> ())))

[<Fact>]
let ``late outcomes, outcomes while open, and abandoned change nothing`` () =
    Check.quick
        200
        (Prop.forAll history (fun (policy, events) ->
            run policy events (fun _ before e after _ ->
                match before.State, e with
                | _, Report(_, true)
                | _, Report(CircuitBreaker.Outcome.Abandoned, _)
                | CircuitBreaker.Open _, Report _ -> Assert.Equal(before, after)
                | _ -> ())))

[<Fact>]
let ``half-open admits at most half_open_probes per probe window`` () =
    Check.quick
        200
        (Prop.forAll history (fun (policy, events) ->
            let admits = Collections.Generic.Dictionary<struct (int * TimeSpan), int>()

            run policy events (fun _ _ _ after admission ->
                match after.State, admission with
                | CircuitBreaker.HalfOpen(admitted, _, since), ValueSome(CircuitBreaker.Admitted _) ->
                    let window = struct (after.Generation, since)

                    let count =
                        (match admits.TryGetValue window with
                         | true, n -> n
                         | _ -> 0)
                        + 1

                    admits[window] <- count
                    Assert.True(admitted <= policy.HalfOpenProbes)
                    Assert.True(count <= policy.HalfOpenProbes, $"%d{count} admits in one window")
                | _ -> ())))

[<Fact>]
let ``the trip decision equals a naive recount of the window`` () =
    Check.quick
        200
        (Prop.forAll history (fun (policy, events) ->
            // Failure times counted in the current closed generation.
            let mutable failures: TimeSpan list = []
            let mutable generation = -1

            run policy events (fun now before e after _ ->
                match before.State, e with
                | CircuitBreaker.Closed _, Report(CircuitBreaker.Outcome.Failure, false) ->
                    if before.Generation <> generation then
                        generation <- before.Generation
                        failures <- []

                    failures <- now :: failures
                    let recent = failures |> List.filter (fun at -> now - at < policy.Window)
                    let shouldOpen = recent.Length >= policy.FailureThreshold

                    match after.State with
                    | CircuitBreaker.Open until ->
                        Assert.True(shouldOpen)
                        Assert.Equal(now + policy.OpenDuration, until)
                    | _ -> Assert.False(shouldOpen)
                | _ -> ())))

[<Fact>]
let ``a closed breaker always admits, and every state change bumps the generation`` () =
    Check.quick
        200
        (Prop.forAll history (fun (policy, events) ->
            run policy events (fun _ before _ after admission ->
                match before.State, admission with
                | CircuitBreaker.Closed _, ValueSome admitted when not before.OperatorDisabled ->
                    Assert.Equal(CircuitBreaker.Admitted before.Generation, admitted)
                | _ -> ()

                let kind (b: B) =
                    match b.State with
                    | CircuitBreaker.Closed _ -> 0
                    | CircuitBreaker.Open _ -> 1
                    | CircuitBreaker.HalfOpen _ -> 2

                if kind before <> kind after then
                    Assert.Equal(before.Generation + 1, after.Generation))))

[<Fact>]
let ``the observed state is open exactly while an open breaker refuses, and is what the next admission finds`` () =
    Check.quick
        200
        (Prop.forAll history (fun (policy, events) ->
            run policy events (fun now before e after admission ->
                let observed = CircuitBreaker.observe now before

                let isOpen =
                    match observed with
                    | CircuitBreaker.Open _ -> true
                    | _ -> false

                let refusedWhileOpen =
                    match before.State, CircuitBreaker.peek policy now { before with OperatorDisabled = false } with
                    | CircuitBreaker.Open _, CircuitBreaker.Refused _ -> true
                    | _ -> false

                Assert.Equal(refusedWhileOpen, isOpen)

                Assert.Equal(
                    CircuitBreaker.stateName { before with State = observed },
                    CircuitBreaker.stateNameAt now before
                )

                if before.OperatorDisabled then
                    Assert.Equal("disabled", CircuitBreaker.stateNameAt now before)

                // an admission moves the breaker to the state it was observed in (a half-open break is taken up)
                match e, admission, observed, after.State with
                | Admit, _, _, _ when before.OperatorDisabled -> ()
                | Admit, ValueSome(CircuitBreaker.Admitted _), CircuitBreaker.HalfOpen _, CircuitBreaker.HalfOpen _
                | Admit, ValueSome(CircuitBreaker.Admitted _), CircuitBreaker.Closed _, CircuitBreaker.Closed _
                | Admit, ValueSome(CircuitBreaker.Refused _), _, _
                | (Report _ | ProbeSucceeded | Disable | Enable), _, _, _ -> ()
                | _ -> failwith $"admitted in observed state %A{observed}, moved to %A{after.State}")))

[<Fact>]
let ``the operator's switch only refuses: enabling restores the state the breaker's own course reached`` () =
    Check.quick
        200
        (Prop.forAll history (fun (policy, events) ->
            // A shadow breaker sees the same history with every Disable/Enable and every admission refused by the
            // switch left out: the switched breaker's state must always be the shadow's.
            let mutable shadow = CircuitBreaker.closed

            run policy events (fun now before e after _ ->
                Assert.Equal(CircuitBreaker.enable (CircuitBreaker.disable before), CircuitBreaker.enable before)

                shadow <-
                    match e with
                    | Admit when before.OperatorDisabled -> shadow
                    | Admit ->
                        let struct (_, next) = CircuitBreaker.admit policy now shadow
                        next
                    | Report(outcome, late) ->
                        let generation = if late then shadow.Generation - 1 else shadow.Generation
                        CircuitBreaker.record policy now generation outcome shadow
                    | ProbeSucceeded -> CircuitBreaker.probeSucceeded now shadow
                    | Disable
                    | Enable -> shadow

                Assert.Equal(shadow, { after with OperatorDisabled = false }))))

[<Fact>]
let ``a call the relay answered itself gives back what its admission took: the breaker admits as before`` () =
    Check.quick
        200
        (Prop.forAll history (fun (policy, events) ->
            run policy events (fun now before _ _ _ ->
                match CircuitBreaker.admit policy now before with
                | struct (CircuitBreaker.Admitted generation, admitted) ->
                    let unused = CircuitBreaker.unused generation admitted
                    Assert.True((CircuitBreaker.peek policy now unused).IsAdmitted)
                    Assert.Equal(before.OperatorDisabled, unused.OperatorDisabled)

                    match before.State with
                    // a probe window that ran out starts a new one on admission: the old window is gone either way
                    | CircuitBreaker.HalfOpen(_, _, since) when now - since >= policy.OpenDuration -> ()
                    | _ -> Assert.Equal(CircuitBreaker.observe now before, CircuitBreaker.observe now unused)
                | _ -> ())))
