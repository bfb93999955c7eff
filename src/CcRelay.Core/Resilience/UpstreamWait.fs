namespace CcRelay.Core

open System

/// How long a request has waited on its upstreams: the length of the union of its attempts' waits. Attempts
/// that overlap (a hedge racing the attempt it hedges) count once, so the relay's own time
/// (`x-cc-relay-overhead-ms` = elapsed − upstream wait) is neither understated by a double count nor
/// overstated by the hedge delay (the first attempt's wait before the hedge is upstream time too).
///
/// ```
///   attempt 1  ├────────────────────────────┤        (the loser: until it lets go)
///   attempt 2            ├───────────────┤            (hedged after hedge_after_ms)
///   waited     ├────────────────────────────┤        once, not 1 + 2
/// ```
[<Struct>]
type UpstreamWait = {
    /// Attempts waiting now.
    Waiting: int
    /// When the current stretch of waiting began (meaningless while `Waiting = 0`).
    Since: TimeSpan
    /// The length of the finished stretches.
    Done: TimeSpan
}

/// Starting and ending attempts' waits; `now` is the request's monotonic clock, and calls come in time order.
[<RequireQualifiedAccess>]
module UpstreamWait =

    /// Nothing waited yet.
    let none: UpstreamWait = {
        Waiting = 0
        Since = TimeSpan.Zero
        Done = TimeSpan.Zero
    }

    /// An attempt starts waiting for its upstream (it is about to be sent).
    let start (now: TimeSpan) (wait: UpstreamWait) : UpstreamWait =
        if wait.Waiting = 0 then
            { wait with Waiting = 1; Since = now }
        else
            { wait with Waiting = wait.Waiting + 1 }

    /// An attempt stops waiting (its answer is in, or it failed or was given up). An unmatched stop changes
    /// nothing.
    let stop (now: TimeSpan) (wait: UpstreamWait) : UpstreamWait =
        match wait.Waiting with
        | 0 -> wait
        | 1 -> {
            Waiting = 0
            Since = now
            Done = wait.Done + Time.later TimeSpan.Zero (now - wait.Since)
          }
        | n -> { wait with Waiting = n - 1 }

    /// The time waited up to `now`, a stretch still open counted up to `now`.
    let total (now: TimeSpan) (wait: UpstreamWait) : TimeSpan =
        if wait.Waiting > 0 then
            wait.Done + Time.later TimeSpan.Zero (now - wait.Since)
        else
            wait.Done

/// The C#-facing surface: the host's request timing calls these.
type UpstreamWait with

    /// Nothing waited yet (`UpstreamWait.none`).
    static member None: UpstreamWait = UpstreamWait.none

    /// An attempt starts waiting (`UpstreamWait.start`).
    member this.Start(now: TimeSpan) : UpstreamWait = UpstreamWait.start now this

    /// An attempt stops waiting (`UpstreamWait.stop`).
    member this.Stop(now: TimeSpan) : UpstreamWait = UpstreamWait.stop now this

    /// The time waited up to `now` (`UpstreamWait.total`).
    member this.Total(now: TimeSpan) : TimeSpan = UpstreamWait.total now this
