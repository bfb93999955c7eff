module CcRelay.Core.Properties.PluginPoolProperties

open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Check

let private slotGen: Gen<PluginSlot> =
    gen {
        let! running = Gen.elements [ false; true ]
        let! outstanding = Gen.frequency [ 2, Gen.constant 0; 1, Gen.choose (1, 5) ]
        let! streams = Gen.frequency [ 2, Gen.constant 0; 1, Gen.choose (1, 5) ]

        return {
            Running = running
            Outstanding = outstanding
            Streams = streams
        }
    }

/// A pool of 1 to 8 slots in any state, and how long starts are held back (0: they are not).
let private poolGen: Gen<PluginSlot array * int64> =
    gen {
        let! slots =
            Gen.arrayOf slotGen |> Gen.resize 8 |> Gen.filter (fun a -> a.Length > 0)

        let! heldBack =
            Gen.frequency [ 2, Gen.constant 0L; 1, Gen.choose (1, 5000) |> Gen.map int64 ]

        return slots, heldBack
    }

let private eligible heldBack (slot: PluginSlot) = slot.Running || heldBack = 0L

let private choices (slots: PluginSlot array) heldBack = [
    PluginPool.place slots heldBack
    PluginPool.bind slots heldBack
    for bound in -1 .. slots.Length do
        PluginPool.follow slots bound heldBack
]

[<Fact>]
let ``a call goes to a slot that can take it whenever one exists, and nowhere (saying for how long) otherwise`` () =
    property (
        Prop.forAll (arb poolGen) (fun (slots, heldBack) ->
            let any = slots |> Array.exists (eligible heldBack)

            choices slots heldBack
            |> List.forall (fun choice ->
                match choice with
                | PoolChoice.Slot i -> i >= 0 && i < slots.Length && eligible heldBack slots[i]
                | PoolChoice.HeldBack retry -> not any && retry >= 1L && retry >= heldBack))
    )

[<Fact>]
let ``a call never waits or starts a process while an idle process is running, and waits only behind the least loaded``
    ()
    =
    property (
        Prop.forAll (arb poolGen) (fun (slots, heldBack) ->
            match PluginPool.place slots heldBack with
            | PoolChoice.HeldBack _ -> true
            | PoolChoice.Slot i ->
                let chosen = slots[i]
                let idleRunning = slots |> Array.exists (fun s -> s.Running && s.Outstanding = 0)

                let startable =
                    slots |> Array.exists (fun s -> s.Outstanding = 0 && eligible heldBack s)

                let leastLoaded =
                    slots
                    |> Array.filter (eligible heldBack)
                    |> Array.forall (fun s -> s.Outstanding >= chosen.Outstanding)

                (not idleRunning || (chosen.Running && chosen.Outstanding = 0))
                && (not startable || chosen.Outstanding = 0)
                && leastLoaded)
    )

[<Fact>]
let ``a bound stream stays on its slot while that slot can take calls`` () =
    property (
        Prop.forAll (arb poolGen) (fun (slots, heldBack) ->
            [ 0 .. slots.Length - 1 ]
            |> List.forall (fun bound ->
                not (eligible heldBack slots[bound])
                || PluginPool.follow slots bound heldBack = PoolChoice.Slot bound))
    )

/// Places `k` calls that are all in flight at once on a fresh pool of `n` slots (each call's process then runs).
let private spread (n: int) (k: int) (choose: PluginSlot array -> int64 -> PoolChoice) (streams: bool) =
    let slots =
        Array.create n {
            Running = false
            Outstanding = 0
            Streams = 0
        }

    for _ in 1..k do
        match choose slots 0L with
        | PoolChoice.Slot i ->
            slots[i] <- {
                Running = true
                Outstanding = slots[i].Outstanding + (if streams then 0 else 1)
                Streams = slots[i].Streams + (if streams then 1 else 0)
            }
        | PoolChoice.HeldBack _ -> failwith "held back"

    slots

[<Fact>]
let ``calls and streams in flight at once spread evenly: no process holds two more than another`` () =
    property (
        Prop.forAll (arb (Gen.zip (Gen.choose (1, 8)) (Gen.choose (0, 40)))) (fun (n, k) ->
            let calls = spread n k PluginPool.place false |> Array.map _.Outstanding
            let streams = spread n k PluginPool.bind true |> Array.map _.Streams
            // up to n at once: each on its own process
            let distinct (counts: int array) =
                k > n || Array.forall (fun c -> c <= 1) counts

            Array.max calls - Array.min calls <= 1
            && Array.max streams - Array.min streams <= 1
            && distinct calls
            && distinct streams)
    )

[<Fact>]
let ``the hold-back never shrinks with more losses, is 0 below the threshold, never over the cap, and ends`` () =
    property (
        Prop.forAll
            (arb (Gen.zip3 (Gen.choose (0, 200)) (Gen.choose (0, 100_000)) (Gen.choose (0, 100_000))))
            (fun (losses, last, since) ->
                // the clock never runs back: now is at or after the last loss
                let now = last + since
                let b = PluginPool.backoffMs losses
                let held = PluginPool.heldBackFor losses (int64 last) (int64 now)

                PluginPool.backoffMs (losses + 1) >= b
                && (losses >= PluginPool.LossesBeforeBackoff || b = 0L)
                && b <= PluginPool.MaxBackoffMs
                && held >= 0L
                && held <= b
                && (int64 now < int64 last + b || held = 0L))
    )

[<Fact>]
let ``a pool has drained exactly when no slot holds a call or a stream`` () =
    property (
        Prop.forAll (arb poolGen) (fun (slots, _) ->
            PluginPool.drained slots = (slots |> Array.forall (fun s -> s.Outstanding = 0 && s.Streams = 0))
            && PluginPool.drained (slots |> Array.map (fun s -> { s with Outstanding = 0; Streams = 0 })))
    )
