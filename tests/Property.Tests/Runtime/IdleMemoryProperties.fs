/// `IdleMemory.look` over any sequence of ticks: memory is returned exactly on the ticks a plain model says
/// (nothing in flight, a quiet tick, at least `WorthBytes` allocated since the last return or the start).
module CcRelay.Core.Properties.IdleMemoryProperties

open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core

/// One tick: what it allocated (often nothing, sometimes a quiet trickle, sometimes a burst) and what was in flight.
let private tick: Gen<int64 * int64> =
    Gen.zip
        (Gen.frequency [
            3, Gen.constant 0L
            3, Gen.choose (0, int IdleMemory.QuietBytes) |> Gen.map int64
            2, Gen.choose (int IdleMemory.QuietBytes + 1, 40_000_000) |> Gen.map int64
        ])
        (Gen.frequency [ 4, Gen.constant 0L; 1, Gen.choose (1, 3) |> Gen.map int64 ])

[<Fact>]
let ``memory is returned exactly when nothing is in flight, the tick was quiet and enough was allocated`` () =
    Check.property (
        Prop.forAll (Check.arb (Gen.zip (Gen.choose (0, 20_000_000)) (Gen.listOf tick))) (fun (startup, ticks) ->
            // the model, kept apart from the code: a running total, the total at the last return
            let mutable total = int64 startup
            let mutable atReturn = 0L
            let mutable state = IdleMemory.start

            let struct (first, firstNow) =
                IdleMemory.look state { Allocated = total; InFlight = 0L }

            state <- first

            let agrees =
                ticks
                |> List.forall (fun (allocated, inFlight) ->
                    total <- total + allocated

                    let expected =
                        inFlight = 0L
                        && allocated <= IdleMemory.QuietBytes
                        && total - atReturn >= IdleMemory.WorthBytes

                    if expected then
                        atReturn <- total

                    let struct (next, now) =
                        IdleMemory.look state {
                            Allocated = total
                            InFlight = inFlight
                        }

                    state <- next
                    now = expected)

            not firstNow && agrees)
    )
