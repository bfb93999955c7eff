module CcRelay.Core.Properties.UpstreamWaitProperties

open System
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core

// ---------------------------
// Oracle and generators
// ---------------------------

/// The length of the union of intervals, computed independently: sort by start, merge, add up.
let private unionLength (intervals: (int64 * int64) list) : int64 =
    intervals
    |> List.sortBy fst
    |> List.fold
        (fun (total, current) (s, e) ->
            match current with
            | Some(cs, ce) when s <= ce -> total, Some(cs, max ce e)
            | Some(cs, ce) -> total + (ce - cs), Some(s, e)
            | None -> total, Some(s, e))
        (0L, None)
    |> fun (total, current) ->
        match current with
        | Some(cs, ce) -> total + (ce - cs)
        | None -> total

/// Attempts' waits as (start, end) in ms; several may overlap (hedges), some share an instant.
let private intervals: Arbitrary<(int64 * int64) list> =
    gen {
        let! count = Gen.choose (0, 6)

        return!
            Gen.listOfLength
                count
                (gen {
                    let! start = Gen.choose (0, 2000)
                    let! length = Gen.frequency [ 1, Gen.constant 0; 6, Gen.choose (1, 1500) ]
                    return int64 start, int64 (start + length)
                })
    }
    |> Check.arb

/// Replays the waits as start/stop calls in time order (starts first at the same instant, so that a wait of
/// no length starts before it stops; touching waits merge either way).
let private replay (waits: (int64 * int64) list) : UpstreamWait =
    waits
    |> List.collect (fun (s, e) -> [ s, 0, true; e, 1, false ])
    |> List.sortBy (fun (t, order, _) -> t, order)
    |> List.fold
        (fun wait (t, _, starts) ->
            let now = TimeSpan.FromMilliseconds(float t)

            if starts then
                UpstreamWait.start now wait
            else
                UpstreamWait.stop now wait)
        UpstreamWait.none

// ---------------------------
// Properties
// ---------------------------

[<Fact>]
let ``the time waited is the length of the union of the attempts' waits`` () =
    Check.property (
        Prop.forAll intervals (fun waits ->
            let wait = replay waits
            Assert.Equal(0, wait.Waiting)

            Assert.Equal(
                TimeSpan.FromMilliseconds(float (unionLength waits)),
                UpstreamWait.total (TimeSpan.FromSeconds 10.0) wait
            ))
    )

[<Fact>]
let ``never more than the sum of the waits, never less than the longest`` () =
    Check.property (
        Prop.forAll intervals (fun waits ->
            let total =
                (UpstreamWait.total (TimeSpan.FromSeconds 10.0) (replay waits)).TotalMilliseconds

            let lengths = waits |> List.map (fun (s, e) -> float (e - s))
            Assert.InRange(total, List.fold max 0.0 lengths, List.sum lengths))
    )

[<Fact>]
let ``an open wait grows with the clock and stops growing when every attempt is done`` () =
    Check.property (
        Prop.forAll intervals (fun waits ->
            let late = TimeSpan.FromSeconds 5.0
            let still = replay waits |> UpstreamWait.start late
            let at (seconds: float) = TimeSpan.FromSeconds seconds
            Assert.Equal(UpstreamWait.total (at 6.0) still - UpstreamWait.total (at 5.5) still, at 0.5)
            let finished = still |> UpstreamWait.stop (at 6.0)
            Assert.Equal(UpstreamWait.total (at 6.0) finished, UpstreamWait.total (at 9.0) finished))
    )
