namespace CcRelay.Core

/// One process slot of a plugin's pool as the host sees it when it places a call (docs/plugins.md, "Processes").
[<Struct>]
type PluginSlot = {
    /// A process is running in it (started, and not known to have died or been cut off).
    Running: bool
    /// Calls placed on it and not finished: the one its process is answering and those waiting behind it.
    Outstanding: int
    /// Streams bound to it and not ended: every event of a bound stream goes to this slot, in order.
    Streams: int
}

/// A plugin pool's state for `/health`, the metrics and the management API.
[<Struct>]
type PluginPoolCounts = {
    /// Processes running.
    Running: int
    /// Processes answering a call.
    Busy: int
    /// Calls waiting for a busy process.
    Waiting: int
    /// Streams bound to a process.
    Streams: int
}

/// Where a plugin call goes.
[<RequireQualifiedAccess>]
type PoolChoice =
    /// To slot `Index` (its process is started first when none is running there).
    | Slot of Index: int
    /// Nowhere: no process is running that could take it and starting one is held back after repeated losses
    /// (`PluginPool.backoffMs`) for `RetryInMs` more; the call fails at once.
    | HeldBack of RetryInMs: int64

/// What a plugin call is, for `PluginPool.choose`.
[<RequireQualifiedAccess>]
type PoolCall =
    /// A one-shot call: a request, a whole answer.
    | Call
    /// A stream's event; `Bound`: the slot its stream is bound to (-1: the stream's first event, not bound yet).
    | Event of Bound: int

/// A plugin's process pool (`plugins.<name>.processes`): which process takes a call, when a lost process may be
/// started again, and when a pool replaced by a reload has drained. Pure: the host passes the slots' state and
/// the time, and acts on the answer.
///
/// - A call goes to an idle running process; else to a slot with no process (one is started: processes start
///   only when a call finds every running one busy); else it waits behind the least loaded one.
/// - A stream is bound to one slot by its first event (the slot with the fewest streams bound, then as a call):
///   its events stay in order, on one process, so a plugin may keep per-stream state. It leaves its slot only
///   when that slot's process is gone and cannot be started again yet.
/// - A process lost (it died, hung past its deadline, or answered garbage) is started again on the next call that
///   needs it; after `LossesBeforeBackoff` losses in a row with no call answered in between, starts are held back
///   for `backoffMs` after the last loss.
[<RequireQualifiedAccess>]
module PluginPool =

    /// The default of `processes`. Processes start on demand (a call that finds every running one busy), so
    /// a relay that never has two calls at once still runs one; four covers a Claude Code session's concurrency
    /// (the main loop, a few subagents and side requests) while bounding the memory to 4 × `memory_mb`.
    [<Literal>]
    let DefaultProcesses = 4

    /// Losses in a row (no call answered in between) from which a start is held back: one or two (a hang, a
    /// crash on one bad input) restart at once; a third in a row looks like a plugin that cannot run.
    [<Literal>]
    let LossesBeforeBackoff = 3

    /// The first hold-back, doubled at each further loss in a row, up to `MaxBackoffMs`.
    [<Literal>]
    let BaseBackoffMs = 250L

    [<Literal>]
    let MaxBackoffMs = 30_000L

    /// How long after the last of `losses` losses in a row a start waits: 0 below `LossesBeforeBackoff`, then
    /// `BaseBackoffMs` doubling per loss up to `MaxBackoffMs`.
    let backoffMs (losses: int) : int64 =
        if losses < LossesBeforeBackoff then
            0L
        else
            let doublings = min (losses - LossesBeforeBackoff) 20
            min MaxBackoffMs (BaseBackoffMs <<< doublings)

    /// How much longer a start is held back at `nowMs` after `losses` losses in a row, the last at `lastLossMs`
    /// (0: a process may be started).
    let heldBackFor (losses: int) (lastLossMs: int64) (nowMs: int64) : int64 =
        max 0L (lastLossMs + backoffMs losses - nowMs)

    /// A slot's rank for a call, lower first: an idle running process (0), a slot with no process and nothing
    /// waiting on it (1: a start), then busy slots by how many calls they hold.
    let private load (slot: PluginSlot) : int =
        if slot.Outstanding = 0 then
            (if slot.Running then 0 else 1)
        else
            1 + slot.Outstanding

    let private eligible (mayStart: bool) (slot: PluginSlot) = slot.Running || mayStart

    /// The eligible slot with the lowest key (the first of equals), as a choice; `HeldBack` when none is eligible.
    let private best (slots: PluginSlot array) (heldBackMs: int64) (key: PluginSlot -> struct (int * int)) =
        let mutable found = -1
        let mutable foundKey = struct (0, 0)

        for i in 0 .. slots.Length - 1 do
            let slot = slots[i]

            if eligible (heldBackMs = 0L) slot then
                let k = key slot

                if found < 0 || k < foundKey then
                    found <- i
                    foundKey <- k

        if found >= 0 then
            PoolChoice.Slot found
        else
            PoolChoice.HeldBack(max 1L heldBackMs)

    /// The slot for one call (a request, a whole answer): the least loaded (`load`), then the one with the fewest
    /// streams bound, then the first. `heldBackMs` > 0: no process may be started (`heldBackFor`).
    let place (slots: PluginSlot array) (heldBackMs: int64) : PoolChoice =
        best slots heldBackMs (fun slot -> struct (load slot, slot.Streams))

    /// The slot a stream's first event binds it to: the fewest streams bound, then as `place`.
    let bind (slots: PluginSlot array) (heldBackMs: int64) : PoolChoice =
        best slots heldBackMs (fun slot -> struct (slot.Streams, load slot))

    /// The slot for the next event of a stream bound to `bound`: that slot while its process runs or may be
    /// started again; else the stream is bound anew (`bind`, among the others).
    let follow (slots: PluginSlot array) (bound: int) (heldBackMs: int64) : PoolChoice =
        if bound >= 0 && bound < slots.Length && eligible (heldBackMs = 0L) slots[bound] then
            PoolChoice.Slot bound
        else
            bind slots heldBackMs

    /// Where a call goes, whatever it is: a one-shot call is placed (`place`), a stream's first event binds its
    /// stream (`bind`), its next events follow the binding (`follow`). The host asks this alone.
    let choose (slots: PluginSlot array) (call: PoolCall) (heldBackMs: int64) : PoolChoice =
        match call with
        | PoolCall.Call -> place slots heldBackMs
        | PoolCall.Event bound when bound < 0 -> bind slots heldBackMs
        | PoolCall.Event bound -> follow slots bound heldBackMs

    /// The plugins whose pools an applied reload leaves without their settings — removed from `configured`, or
    /// configured with other settings (a pool's processes run with the settings they were started with) — by
    /// name, in `running`'s order. The host retires them at once: they finish what they were given, then stop,
    /// instead of keeping idle processes until the next call or the relay's stop.
    let replaced (configured: PluginConfig array) (running: PluginConfig array) : string array =
        running
        |> Array.filter (fun pool -> not (Array.contains pool configured))
        |> Array.map _.Name

    /// Whether a pool holds nothing more: no call placed and not finished, no stream bound. A pool replaced by a
    /// reload stops its processes then (never before: that would drop a call in flight).
    let drained (slots: PluginSlot array) : bool =
        slots |> Array.forall (fun s -> s.Outstanding = 0 && s.Streams = 0)

    /// The counts of a pool's slots, for `/health`, the metrics and the management API.
    let counts (slots: PluginSlot array) : PluginPoolCounts = {
        Running = slots |> Array.sumBy (fun s -> if s.Running then 1 else 0)
        Busy = slots |> Array.sumBy (fun s -> if s.Outstanding > 0 then 1 else 0)
        Waiting = slots |> Array.sumBy (fun s -> max 0 (s.Outstanding - 1))
        Streams = slots |> Array.sumBy _.Streams
    }
