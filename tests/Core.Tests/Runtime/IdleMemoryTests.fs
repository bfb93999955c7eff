/// When an idle relay returns the garbage of a burst to the system (`IdleMemory`): only after real work, only on a
/// quiet tick with nothing in flight, once per burst.
module CcRelay.Core.Tests.IdleMemoryTests

open Xunit
open CcRelay.Core

let private mb (n: int64) = n * 1_048_576L

/// Runs the looks in order from the start: whether each returned memory.
let private run (readings: (int64 * int64) list) : bool list =
    readings
    |> List.mapFold
        (fun state (allocated, inFlight) ->
            let struct (next, now) =
                IdleMemory.look state {
                    Allocated = allocated
                    InFlight = inFlight
                }

            now, next)
        IdleMemory.start
    |> fst

[<Fact>]
let ``a burst then a quiet tick returns memory once, and not again while nothing new is allocated`` () =
    // start-up (2 MB), a burst (to 40 MB), then quiet ticks that allocate a few KB each
    let returned =
        run [
            mb 2L, 0L
            mb 20L, 3L
            mb 40L, 1L
            mb 40L + 4_096L, 0L
            mb 40L + 8_192L, 0L
            mb 40L + 9_000L, 0L
        ]

    Assert.Equal<bool list>([ false; false; false; true; false; false ], returned)

[<Fact>]
let ``nothing is returned while a request is in flight, however quiet the tick`` () =
    // a slow stream stays open after the burst: the collection's pause would delay its events
    let returned = run [ mb 1L, 0L; mb 30L, 1L; mb 30L, 1L; mb 30L, 1L; mb 30L, 0L ]

    Assert.Equal<bool list>([ false; false; false; false; true ], returned)

[<Fact>]
let ``a busy tick is not quiet: the relay waits for a tick that allocated at most QuietBytes`` () =
    let busy = IdleMemory.QuietBytes + 1L

    let returned =
        run [
            0L, 0L
            mb 30L, 0L
            mb 30L + busy, 0L
            mb 30L + busy + IdleMemory.QuietBytes, 0L
        ]

    Assert.Equal<bool list>([ false; false; false; true ], returned)

[<Fact>]
let ``less than WorthBytes allocated since the last return is not worth a collection`` () =
    let small = IdleMemory.WorthBytes - 1L
    let returned = run [ 0L, 0L; small, 0L; small, 0L; small, 0L ]
    Assert.Equal<bool list>([ false; false; false; false ], returned)

[<Fact>]
let ``start-up garbage counts: a relay that starts big and idles returns it once`` () =
    let returned = run [ mb 12L, 0L; mb 12L, 0L; mb 12L, 0L ]
    Assert.Equal<bool list>([ false; true; false ], returned)

[<Fact>]
let ``the C# surface gives the same answers`` () =
    let struct (first, firstNow) = IdleMemoryState.Start.Look(mb 9L, 0L)
    let struct (_, secondNow) = first.Look(mb 9L, 0L)
    Assert.False firstNow
    Assert.True secondNow
