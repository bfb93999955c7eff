namespace CcRelay.Core

open System

/// What a flush step does (`SharedLoop.flushAction`).
[<RequireQualifiedAccess>]
type FlushAction =
    /// Write the flush whose commit is not known again, with the same id (a retry of one that did commit adds nothing).
    | Retry
    /// Take what is pending into a new flush and write it (with the heartbeat).
    | TakeNew
    /// Nothing to write, but the heartbeat is due: write it alone.
    | HeartbeatOnly
    /// Nothing to write and the heartbeat not due: no round trip at all.
    | Skip

/// What one turn of the loop does after its wait, in this order: flush (`FlushDue`), read the others' flushes
/// (`ReadSpend`), the periodic checks (`Check`: read spend anyway, release relays gone silent, config agreement),
/// a compaction run (`Compact`).
[<Struct>]
type LoopTurn = {
    FlushDue: bool
    ReadSpend: bool
    Check: bool
    Compact: bool
}

/// What the loop does when its link changes: the new link, and what the log says once.
[<RequireQualifiedAccess>]
type LinkReport =
    /// First connection: "connected as relay …".
    | Connected
    /// Back after an outage that began at `Since`.
    | Recovered of Since: DateTimeOffset
    /// The database was lost (said once per outage, not per retry).
    | Lost
    /// Nothing to say (a further failed attempt).
    | Quiet

/// The shared-state loop's decisions (docs/scale-out.md), pure and given the time: the host's
/// `SharedStateService` waits, reads, writes and logs what these say.
[<RequireQualifiedAccess>]
module SharedLoop =

    /// How often an idle relay tells the others it is alive (a busy one does with every flush).
    let heartbeatInterval: TimeSpan = TimeSpan.FromSeconds 1.0

    /// How often the others' flushes are read even without a NOTIFY (one lost with a connection), relays gone
    /// silent released and the config agreement checked.
    let checkInterval: TimeSpan = TimeSpan.FromSeconds 5.0

    /// How long to wait for a NOTIFY before the next flush is due: None when it is due now; else whole milliseconds,
    /// at least one (Npgsql takes a wait of 0 ms as "wait forever").
    let waitBeforeFlush (flushInterval: TimeSpan) (sinceFlush: TimeSpan) : TimeSpan option =
        let left = flushInterval - sinceFlush

        if left <= TimeSpan.Zero then
            None
        else
            Some(TimeSpan.FromMilliseconds(max 1.0 (Math.Ceiling left.TotalMilliseconds)))

    /// The flush step: a flush not known to have committed is written again before anything new is taken (its id
    /// and content kept, so nothing is counted twice and the seqs stay in commit order); else what is pending
    /// becomes a new flush; else a heartbeat when one is due; else nothing.
    let flushAction (unconfirmed: bool) (hasPending: bool) (sinceHeartbeat: TimeSpan) : FlushAction =
        if unconfirmed then
            FlushAction.Retry
        elif hasPending then
            FlushAction.TakeNew
        elif sinceHeartbeat >= heartbeatInterval then
            FlushAction.HeartbeatOnly
        else
            FlushAction.Skip

    /// One turn after the wait: flush on schedule only (a NOTIFY — this relay's own flush announcement included —
    /// ends the wait early: flushing on every wake-up would make each flush's NOTIFY the next flush, a round trip
    /// per request); read the others' flushes when one was announced; the periodic checks every `checkInterval`;
    /// a compaction run every `SharedCompaction.interval`.
    let turn
        (flushInterval: TimeSpan)
        (spendNotified: bool)
        (sinceFlush: TimeSpan)
        (sinceCheck: TimeSpan)
        (sinceCompaction: TimeSpan)
        : LoopTurn = {
        FlushDue = sinceFlush >= flushInterval
        ReadSpend = spendNotified
        Check = sinceCheck >= checkInterval
        Compact = sinceCompaction >= SharedCompaction.interval
    }

    /// The link once a (re)connection has published, re-read and caught up: connected, and what to say.
    let connected (before: SharedLink) : SharedLink * LinkReport =
        match before with
        | SharedLink.Degraded(since, _, _) -> SharedLink.Connected, LinkReport.Recovered since
        | SharedLink.Connected -> SharedLink.Connected, LinkReport.Quiet
        | SharedLink.Off
        | SharedLink.Connecting -> SharedLink.Connected, LinkReport.Connected

    /// The link after a failure at `wall`, what to say, and how long to wait before the next attempt (`jitter`
    /// 0..1: `SharedHealth.backoff`).
    let failed
        (wall: DateTimeOffset)
        (problem: string)
        (jitter: float)
        (before: SharedLink)
        : SharedLink * LinkReport * TimeSpan =
        let next = SharedHealth.failed wall problem before

        let attempt =
            match next with
            | SharedLink.Degraded(_, attempt, _) -> attempt
            | _ -> 1

        let report =
            match before with
            | SharedLink.Degraded _ -> LinkReport.Quiet
            | _ -> LinkReport.Lost

        next, report, SharedHealth.backoff attempt jitter

/// The C#-facing surface of `SharedLoop`.
type LinkStep = {
    Link: SharedLink
    Report: LinkReport
    /// The wait before the next attempt (zero after a success).
    Backoff: TimeSpan
} with

    /// `SharedLoop.connected`.
    static member Connected(before: SharedLink) : LinkStep =
        let link, report = SharedLoop.connected before

        {
            Link = link
            Report = report
            Backoff = TimeSpan.Zero
        }

    /// `SharedLoop.failed`.
    static member Failed(wall: DateTimeOffset, problem: string, jitter: float, before: SharedLink) : LinkStep =
        let link, report, backoff = SharedLoop.failed wall problem jitter before

        {
            Link = link
            Report = report
            Backoff = backoff
        }

/// `SharedLoop.waitBeforeFlush` for C# (`TimeSpan.Zero`: due now).
[<AbstractClass; Sealed>]
type LoopClock =

    /// `SharedLoop.waitBeforeFlush`, zero when the flush is due now.
    static member WaitBeforeFlush(flushInterval: TimeSpan, sinceFlush: TimeSpan) : TimeSpan =
        SharedLoop.waitBeforeFlush flushInterval sinceFlush
        |> Option.defaultValue TimeSpan.Zero
