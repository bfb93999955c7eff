namespace CcRelay.Core

/// One look at the process, taken by the standalone relay's idle-memory timer once a tick.
[<Struct>]
type MemoryReading = {
    /// Bytes the process has allocated since it started (the GC's running total): it grows with every request.
    Allocated: int64
    /// Requests being relayed at the look (streams included).
    InFlight: int64
}

/// What the idle-memory timer keeps between looks.
[<Struct>]
type IdleMemoryState = {
    /// `Allocated` at the previous look; negative before the first.
    Previous: int64
    /// `Allocated` when memory was last returned (the first look counts as one).
    AtReturn: int64
}

/// When an idle relay hands its garbage back to the system (docs/relay.md#idle-memory). During a burst the GC lets
/// garbage pile up to its allocation budget (tens of MB on a large-cache machine) before collecting, and the pages
/// it touched stay resident after the burst: an idle relay kept ~25 MB of committed heap for ~8 MB of live objects.
/// The host collects once, fully and returning free memory, when the relay has gone quiet after real work: no
/// request in flight (a stream is never paused) and almost nothing allocated during the tick that just ended, after
/// at least `worthBytes` allocated since memory was last returned. Pure: the host takes the readings and acts.
[<RequireQualifiedAccess>]
module IdleMemory =

    /// What a quiet tick may still allocate: the relay's own timers, a health probe, a metrics scrape.
    [<Literal>]
    let QuietBytes = 262_144L

    /// Allocated since the last return below which a full collection is not worth its pause (a few ms): about
    /// 500 requests of the benchmark's Claude Code request, or the GC's smallest gen0 budgets.
    [<Literal>]
    let WorthBytes = 8_388_608L

    /// Before the first look.
    let start: IdleMemoryState = { Previous = -1L; AtReturn = 0L }

    /// The state after `reading`, and whether to return memory now. The first look only takes note: what start-up
    /// allocated counts toward `WorthBytes`, so a relay that starts and idles returns its start-up garbage once.
    let look (state: IdleMemoryState) (reading: MemoryReading) : struct (IdleMemoryState * bool) =
        if state.Previous < 0L then
            struct ({
                        state with
                            Previous = reading.Allocated
                    },
                    false)
        else
            let quiet =
                reading.InFlight = 0L && reading.Allocated - state.Previous <= QuietBytes

            let worth = reading.Allocated - state.AtReturn >= WorthBytes

            if quiet && worth then
                struct ({
                            Previous = reading.Allocated
                            AtReturn = reading.Allocated
                        },
                        true)
            else
                struct ({
                            state with
                                Previous = reading.Allocated
                        },
                        false)

/// The C#-facing surface of `IdleMemory`.
type IdleMemoryState with

    /// Before the first look.
    static member Start = IdleMemory.start

    /// See `IdleMemory.look`: the next state, and whether to return memory now.
    member state.Look(allocated: int64, inFlight: int64) : struct (IdleMemoryState * bool) =
        IdleMemory.look state {
            Allocated = allocated
            InFlight = inFlight
        }
