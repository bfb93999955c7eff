namespace CcRelay.Core

open System

/// A thinking-affinity pin as the shared table `ccrelay_pins` keeps it (one row per conversation, the newest).
type StoredPin = {
    Key: uint64
    Family: string
    /// When it was pinned, by the database's clock.
    PinnedAt: DateTimeOffset
}

/// The pins a relay learns when it (re)connects: those made by the others before it joined (docs/scale-out.md).
/// Pins spread at once by NOTIFY; the table is for the relay that was not listening then.
[<RequireQualifiedAccess>]
module SharedPins =

    /// The stored pins worth restoring at `wall`: alive (younger than `RelayRuntime.pinLifetime`), one per
    /// conversation (the newest), at most `RelayRuntime.maxPins` of them (the newest), oldest first.
    let toRestore (wall: DateTimeOffset) (pins: StoredPin seq) : StoredPin list =
        pins
        |> Seq.filter (fun p -> p.Key <> 0UL && wall - p.PinnedAt < RelayRuntime.pinLifetime)
        |> Seq.groupBy _.Key
        |> Seq.map (fun (_, same) -> same |> Seq.maxBy _.PinnedAt)
        |> Seq.sortByDescending _.PinnedAt
        |> Seq.truncate RelayRuntime.maxPins
        |> Seq.rev
        |> List.ofSeq

    /// The runtime with the stored pins restored at their own age (a pin made 2 h ago lives 1 h more here, as
    /// everywhere); a pin this relay holds already and that is as new or newer is kept.
    let restore (now: TimeSpan) (wall: DateTimeOffset) (pins: StoredPin seq) (runtime: RelayRuntime) : RelayRuntime =
        toRestore wall pins
        |> List.fold
            (fun (runtime: RelayRuntime) pin ->
                let at = SharedEvents.toMonotonic now wall pin.PinnedAt

                match runtime.Pins.TryFind pin.Key with
                | Some held when held.At >= at -> runtime
                | _ -> RelayRuntime.pin at pin.Key pin.Family runtime)
            runtime

    /// How long a pin lives (`RelayRuntime.pinLifetime`): older rows are neither restored nor kept in the table.
    let lifetime: TimeSpan = RelayRuntime.pinLifetime

    /// The most pins a relay restores (`RelayRuntime.maxPins`).
    let maxRestored: int = RelayRuntime.maxPins

    /// The family `key` is pinned to at `now`, null when none (the C# face of `RelayRuntime.pinnedFamily`).
    let familyOf (now: TimeSpan) (key: uint64) (runtime: RelayRuntime) : string | null =
        match RelayRuntime.pinnedFamily now key runtime with
        | ValueSome family -> family
        | ValueNone -> null
