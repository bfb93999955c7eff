module CcRelay.Core.Tests.CircuitBreakerTests

open System
open Xunit
open CcRelay.Core
open CcRelay.Core.Tests.Fixtures

type private B = CircuitBreaker.Breaker

let private policy: CircuitBreaker.Policy = {
    FailureThreshold = 3
    Window = at 10.0
    OpenDuration = at 30.0
    HalfOpenProbes = 2
}

let private fail (now: float) (breaker: B) : B =
    CircuitBreaker.record policy (at now) breaker.Generation CircuitBreaker.Outcome.Failure breaker

let private succeed (now: float) (breaker: B) : B =
    CircuitBreaker.record policy (at now) breaker.Generation CircuitBreaker.Outcome.Success breaker

let private admit (now: float) (breaker: B) : CircuitBreaker.Admission * B =
    let struct (admission, breaker) = CircuitBreaker.admit policy (at now) breaker
    admission, breaker

let private isOpen (breaker: B) =
    match breaker.State with
    | CircuitBreaker.Open _ -> true
    | _ -> false

let private opened () : B =
    CircuitBreaker.closed |> fail 1.0 |> fail 2.0 |> fail 3.0

[<Fact>]
let ``the threshold of failures within the window opens the circuit`` () =
    let breaker = opened ()
    Assert.Equal(CircuitBreaker.Open(at 33.0), breaker.State)

[<Fact>]
let ``failures spread wider than the window do not open it`` () =
    let breaker = CircuitBreaker.closed |> fail 1.0 |> fail 6.0 |> fail 12.0
    Assert.False(isOpen breaker)
    Assert.True(isOpen (breaker |> fail 13.0))

[<Fact>]
let ``successes in closed do not reset the failure count`` () =
    let breaker =
        CircuitBreaker.closed
        |> fail 1.0
        |> succeed 1.5
        |> fail 2.0
        |> succeed 2.5
        |> fail 3.0

    Assert.True(isOpen breaker)

[<Fact>]
let ``open refuses until the break is over, saying how long`` () =
    let admission, _ = admit 10.0 (opened ())
    Assert.Equal(CircuitBreaker.Refused(ValueSome(at 23.0)), admission)

[<Fact>]
let ``after the break the next admit goes half-open and admits the probes only`` () =
    let breaker = opened ()
    let first, breaker = admit 33.0 breaker

    match first, breaker.State with
    | CircuitBreaker.Admitted g, CircuitBreaker.HalfOpen(1, 0, _) -> Assert.Equal(breaker.Generation, g)
    | other -> failwith $"unexpected %A{other}"

    let second, breaker = admit 34.0 breaker
    let third, _ = admit 35.0 breaker
    Assert.Equal(CircuitBreaker.Admitted breaker.Generation, second)
    Assert.Equal(CircuitBreaker.Refused(ValueSome(at 28.0)), third)

[<Fact>]
let ``half-open closes after its probes succeed and reopens on a failure`` () =
    let _, breaker = admit 33.0 (opened ())
    let _, breaker = admit 33.0 breaker
    let closed = breaker |> succeed 34.0 |> succeed 35.0
    Assert.Equal(CircuitBreaker.Closed [||], closed.State)

    let reopened = breaker |> succeed 34.0 |> fail 35.0
    Assert.Equal(CircuitBreaker.Open(at 65.0), reopened.State)

[<Fact>]
let ``an outcome from an earlier generation changes nothing`` () =
    let breaker = opened ()
    let _, halfOpen = admit 33.0 breaker
    // A slow call admitted while closed fails now.
    let late =
        CircuitBreaker.record policy (at 34.0) 0 CircuitBreaker.Outcome.Failure halfOpen

    Assert.Equal(halfOpen, late)

[<Fact>]
let ``outcomes while open change nothing`` () =
    let breaker = opened ()
    Assert.Equal(breaker, breaker |> fail 4.0)
    Assert.Equal(breaker, breaker |> succeed 4.0)

[<Fact>]
let ``abandoned changes nothing`` () =
    let breaker = CircuitBreaker.closed |> fail 1.0

    Assert.Equal(
        breaker,
        CircuitBreaker.record policy (at 2.0) breaker.Generation CircuitBreaker.Outcome.Abandoned breaker
    )

[<Fact>]
let ``lost probes are given up after the break duration`` () =
    let _, breaker = admit 33.0 (opened ())
    let _, breaker = admit 33.0 breaker
    let refused, _ = admit 40.0 breaker
    Assert.Equal(CircuitBreaker.Refused(ValueSome(at 23.0)), refused)
    let again, _ = admit 63.0 breaker
    Assert.Equal(CircuitBreaker.Admitted breaker.Generation, again)

[<Fact>]
let ``disabled refuses with no retry time until enabled`` () =
    let breaker = CircuitBreaker.disable CircuitBreaker.closed
    Assert.Equal(CircuitBreaker.Refused ValueNone, fst (admit 1.0 breaker))
    Assert.Equal(CircuitBreaker.Refused ValueNone, CircuitBreaker.peek policy (at 1.0) breaker)
    Assert.Equal(breaker, snd (admit 1.0 breaker))
    let enabled = CircuitBreaker.enable breaker
    Assert.Equal(CircuitBreaker.Admitted enabled.Generation, fst (admit 3.0 enabled))

[<Fact>]
let ``enabling restores the breaker's own state, not a fresh one`` () =
    // open: still open after enabling, until its break ends
    let breaker = opened ()
    let enabled = breaker |> CircuitBreaker.disable |> CircuitBreaker.enable
    Assert.Equal(breaker, enabled)
    Assert.Equal(CircuitBreaker.Refused(ValueSome(at 23.0)), fst (admit 10.0 enabled))

    // the break ran out while disabled: enabling finds it over (the next call is a half-open probe)
    let disabled = CircuitBreaker.disable breaker
    Assert.Equal(CircuitBreaker.Refused ValueNone, fst (admit 40.0 disabled))
    Assert.Equal("disabled", CircuitBreaker.stateNameAt (at 40.0) disabled)
    let enabled = CircuitBreaker.enable disabled
    Assert.Equal("half-open", CircuitBreaker.stateNameAt (at 40.0) enabled)

    // closed with recent failures: they still count after enabling
    let twice = CircuitBreaker.closed |> fail 1.0 |> fail 2.0
    let enabled = twice |> CircuitBreaker.disable |> CircuitBreaker.enable
    Assert.True(isOpen (enabled |> fail 3.0))

[<Fact>]
let ``a call admitted before the operator disabled the breaker still reports into it`` () =
    let breaker = CircuitBreaker.closed |> fail 1.0 |> fail 2.0
    let disabled = CircuitBreaker.disable breaker
    let reported = disabled |> fail 3.0
    Assert.True(isOpen reported)
    Assert.True(reported.OperatorDisabled)
    Assert.Equal(CircuitBreaker.Refused ValueNone, fst (admit 40.0 reported))

[<Fact>]
let ``a successful probe ends the break now`` () =
    let breaker = CircuitBreaker.probeSucceeded (at 10.0) (opened ())
    Assert.Equal(CircuitBreaker.Open(at 10.0), breaker.State)
    Assert.Equal(CircuitBreaker.Admitted(breaker.Generation + 1), CircuitBreaker.peek policy (at 10.0) breaker)

[<Fact>]
let ``the state names are those of the Go project, plus disabled`` () =
    Assert.Equal("closed", CircuitBreaker.stateName CircuitBreaker.closed)
    Assert.Equal("open", CircuitBreaker.stateName (opened ()))
    Assert.Equal("half-open", CircuitBreaker.stateName (snd (admit 33.0 (opened ()))))
    Assert.Equal("disabled", CircuitBreaker.stateName (CircuitBreaker.disable CircuitBreaker.closed))

[<Fact>]
let ``after its break an open breaker is observed half-open: its next call is a probe`` () =
    let breaker = opened ()

    let until =
        match breaker.State with
        | CircuitBreaker.Open until -> until
        | state -> failwith $"not open: %A{state}"

    Assert.Equal("open", CircuitBreaker.stateNameAt (until - TimeSpan.FromMilliseconds 1.0) breaker)
    Assert.Equal("half-open", CircuitBreaker.stateNameAt until breaker)
    Assert.Equal("open", CircuitBreaker.stateName breaker)
    Assert.Equal(CircuitBreaker.HalfOpen(0, 0, until), CircuitBreaker.observe until breaker)
    // the operator's switch is beside the state: observing looks at the state only, the name shows the switch
    Assert.Equal(CircuitBreaker.HalfOpen(0, 0, until), CircuitBreaker.observe until (CircuitBreaker.disable breaker))
    Assert.Equal("disabled", CircuitBreaker.stateNameAt until (CircuitBreaker.disable breaker))

[<Fact>]
let ``a call that never reached the provider gives back the half-open probe it took, and nothing else`` () =
    // the break is over: the first call after it is admitted as a probe (half_open_probes = 2)
    let admission, probing = admit 33.0 (opened ())

    let generation =
        match admission with
        | CircuitBreaker.Admitted g -> g
        | refused -> failwith $"not admitted: %A{refused}"

    Assert.Equal(CircuitBreaker.HalfOpen(1, 0, at 33.0), probing.State)

    // the relay answered it itself: the slot is back, the circuit still half-open and in the same generation
    let unused = CircuitBreaker.unused generation probing
    Assert.Equal(CircuitBreaker.HalfOpen(0, 0, at 33.0), unused.State)
    Assert.Equal(probing.Generation, unused.Generation)

    // two real probes are still needed to close it
    let _, once = admit 34.0 unused
    let _, twice = admit 34.0 once
    let closed = twice |> succeed 35.0 |> succeed 35.0
    Assert.Equal("half-open", CircuitBreaker.stateName (twice |> succeed 35.0))
    Assert.Equal("closed", CircuitBreaker.stateName closed)

[<Fact>]
let ``an unused call changes nothing in closed or open, nor in another generation`` () =
    let closed = CircuitBreaker.closed |> fail 1.0
    Assert.Equal(closed, CircuitBreaker.unused closed.Generation closed)
    let opened = opened ()
    Assert.Equal(opened, CircuitBreaker.unused opened.Generation opened)
    let _, probing = admit 33.0 (opened)
    Assert.Equal(probing, CircuitBreaker.unused (probing.Generation - 1) probing)
