module CcRelay.Core.Tests.UpstreamWaitTests

open System
open Xunit
open CcRelay.Core
open CcRelay.Core.Tests.Fixtures

[<Fact>]
let ``one attempt's wait counts in full, and an open one up to now`` () =
    let waiting = UpstreamWait.none |> UpstreamWait.start (at 1.0)
    Assert.Equal(at 2.0, UpstreamWait.total (at 3.0) waiting)
    let waited = waiting |> UpstreamWait.stop (at 4.0)
    Assert.Equal(at 3.0, UpstreamWait.total (at 10.0) waited)

/// Starts (true) and stops (false) at these seconds, in order.
let private waits (steps: (float * bool) list) : UpstreamWait =
    steps
    |> List.fold
        (fun wait (seconds, starts) ->
            if starts then
                UpstreamWait.start (at seconds) wait
            else
                UpstreamWait.stop (at seconds) wait)
        UpstreamWait.none

[<Fact>]
let ``a hedge that overlaps the attempt it races counts once`` () =
    // attempt 1 from 0 s, the hedge from 0.1 s; the hedge answers at 20.1 s, attempt 1 lets go at 20.2 s
    let wait = waits [ 0.0, true; 0.1, true; 20.1, false; 20.2, false ]
    Assert.Equal(at 20.2, UpstreamWait.total (at 30.0) wait)

[<Fact>]
let ``waits apart add up, and the time between them is the relay's`` () =
    // attempt 1 fails after 2 s; a back-off of 1 s; attempt 2 answers after 3 s
    let wait = waits [ 0.0, true; 2.0, false; 3.0, true; 6.0, false ]
    Assert.Equal(at 5.0, UpstreamWait.total (at 7.0) wait)

[<Fact>]
let ``an unmatched stop changes nothing`` () =
    Assert.Equal(UpstreamWait.none, UpstreamWait.stop (at 5.0) UpstreamWait.none)
    Assert.Equal(TimeSpan.Zero, UpstreamWait.total (at 5.0) UpstreamWait.none)
