/// Compaction of the shared spend and the shared-state loop's decisions (docs/scale-out.md), by example.
module CcRelay.Core.Tests.SharedCompactionTests

open System
open CcRelay.Core
open Xunit

let private wall = DateTimeOffset(2026, 12, 7, 12, 0, 0, TimeSpan.Zero)
let private utc = TimeZoneInfo.Utc

let private entry (client: string) (bucket: DateTimeOffset) (usd: decimal) : SpendEntry = {
    Client = client
    Model = "claude-opus-4-5"
    Bucket = bucket
    CostUsd = usd
}

let private level (client: string) (usd: decimal) : ReservedLevel = {
    Client = client
    Model = "claude-opus-4-5"
    Usd = usd
}

let private row (seq: int64) (relay: string) (spent: SpendEntry list) (reserved: ReservedLevel list) : SpendFlush = {
    FlushId = Guid(int seq, 0s, 0s, Array.zeroCreate 8)
    Relay = relay
    Seq = seq
    Spent = spent
    Reserved = reserved
}

let private mark (relay: string) (seenAgo: TimeSpan) (readSeq: int64) : RelayReadMark = {
    Relay = relay
    SeenAt = wall - seenAgo
    ReadSeq = readSeq
}

let private today = DateTimeOffset(2026, 12, 7, 0, 0, 0, TimeSpan.Zero)

[<Fact>]
let ``the cutoff is the lowest read position of the relays seen within the horizon; none: nothing`` () =
    let relays = [
        mark "a" (TimeSpan.FromSeconds 1.0) 40L
        mark "b" (TimeSpan.FromHours 23.0) 12L
        mark "gone" (TimeSpan.FromHours 25.0) 3L
    ]

    Assert.Equal(12L, SharedCompaction.cutoff wall relays)
    Assert.True(SharedCompaction.isCounted wall relays "b")
    Assert.False(SharedCompaction.isCounted wall relays "gone")
    Assert.False(SharedCompaction.isCounted wall relays "never-seen")
    Assert.Equal(0L, SharedCompaction.cutoff wall [])
    Assert.Equal(0L, SharedCompaction.cutoff wall [ mark "gone" (TimeSpan.FromDays 2.0) 99L ])

[<Fact>]
let ``old buckets fold into the last one before every current period; recent ones into their day's start`` () =
    // a day back from 7 Dec 2026 (a Monday) is Sunday 6 Dec: its week began on Monday 30 Nov, its month on 1 Dec
    let before = SharedCompaction.foldBefore utc wall
    Assert.Equal(DateTimeOffset(2026, 11, 30, 0, 0, 0, TimeSpan.Zero), before)

    Assert.Equal(
        before.AddMinutes -15.0,
        SharedCompaction.foldBucket utc before (DateTimeOffset(2026, 10, 2, 9, 45, 0, TimeSpan.Zero))
    )

    Assert.Equal(today, SharedCompaction.foldBucket utc before (today.AddHours 11.75))
    // Kathmandu is UTC+5:45: its day starts at 18:15 UTC the day before
    let kathmandu = TimeZoneInfo.FindSystemTimeZoneById "Asia/Kathmandu"

    Assert.Equal(
        DateTimeOffset(2026, 12, 6, 18, 15, 0, TimeSpan.Zero),
        SharedCompaction.foldBucket kathmandu before (DateTimeOffset(2026, 12, 7, 11, 30, 0, TimeSpan.Zero))
    )

[<Fact>]
let ``each relay's rows at or below the cutoff fold into its oldest one; rows above are left; the forgotten share one``
    ()
    =
    let old = DateTimeOffset(2026, 9, 1, 10, 0, 0, TimeSpan.Zero)

    let rows = [
        row 1L "a" [ entry "alice" old 1m ] [ level "alice" 0.5m ]
        row 2L "b" [ entry "alice" (today.AddHours 1.0) 2m ] []
        row 3L "a" [ entry "alice" (old.AddDays 3.0) 4m; entry "bob" (today.AddHours 2.0) 8m ] [ level "alice" 0.25m ]
        row 4L "x" [ entry "bob" (today.AddHours 3.0) 16m ] [ level "bob" 1m ]
        row 5L "y" [ entry "bob" (today.AddHours 4.0) 32m ] []
        row 6L "a" [ entry "alice" (today.AddHours 5.0) 64m ] []
    ]

    let before = SharedCompaction.foldBefore utc wall
    let plan = SharedCompaction.plan utc before (fun r -> r = "a" || r = "b") 5L rows
    let after = SharedCompaction.carryOut plan rows

    Assert.Equal<int64 list>([ 3L; 5L ], plan.Delete)
    Assert.Equal<int64 list>([ 1L; 2L; 4L; 6L ], after |> List.map (fun f -> f.Seq))
    let a = after |> List.find (fun f -> f.Seq = 1L)
    Assert.Equal("a", a.Relay)
    // two old buckets into one; the newest level of the run
    Assert.Equal<SpendEntry list>([ entry "alice" (before.AddMinutes -15.0) 5m; entry "bob" today 8m ], a.Spent)
    Assert.Equal<ReservedLevel list>([ level "alice" 0.25m ], a.Reserved)
    // relays x and y are no longer counted: one row, no levels (their reservations are released anyway)
    let forgotten = after |> List.find (fun f -> f.Seq = 4L)
    Assert.Equal(SharedCompaction.forgotten, forgotten.Relay)
    Assert.Equal(48m, forgotten.Spent |> List.sumBy (fun e -> e.CostUsd))
    Assert.Empty forgotten.Reserved
    // above the cutoff: as it was
    Assert.Equal(rows[5], after |> List.find (fun f -> f.Seq = 6L))
    // b's single row is rewritten only for its bucket (its day's start), and a second run changes nothing
    Assert.Equal<SpendEntry list>([ entry "alice" today 2m ], (after |> List.find (fun f -> f.Seq = 2L)).Spent)
    Assert.True((SharedCompaction.plan utc before (fun r -> r = "a" || r = "b") 5L after).IsEmpty)

[<Fact>]
let ``nothing at or below a cutoff of zero is folded`` () =
    let rows = [
        row 1L "a" [ entry "alice" today 1m ] []
        row 2L "a" [ entry "alice" today 1m ] []
    ]

    Assert.True((SharedCompaction.plan utc (SharedCompaction.foldBefore utc wall) (fun _ -> true) 0L rows).IsEmpty)

[<Fact>]
let ``a relay that finds a run past its read position is behind; a first read is not`` () =
    Assert.True(SharedCompaction.rejoinedBehind true 10L 50L)
    Assert.False(SharedCompaction.rejoinedBehind true 50L 50L)
    Assert.False(SharedCompaction.rejoinedBehind false 0L 50L)

[<Fact>]
let ``a flush not known to have committed goes first; then what is pending; then a heartbeat once a second`` () =
    let second = TimeSpan.FromSeconds 1.0
    Assert.Equal(FlushAction.Retry, SharedLoop.flushAction true true TimeSpan.Zero)
    Assert.Equal(FlushAction.Retry, SharedLoop.flushAction true false TimeSpan.Zero)
    Assert.Equal(FlushAction.TakeNew, SharedLoop.flushAction false true TimeSpan.Zero)
    Assert.Equal(FlushAction.HeartbeatOnly, SharedLoop.flushAction false false second)
    Assert.Equal(FlushAction.Skip, SharedLoop.flushAction false false (second - TimeSpan.FromTicks 1L))

[<Fact>]
let ``a turn flushes on schedule only, reads on a NOTIFY, checks every 5 s and compacts every minute`` () =
    let interval = TimeSpan.FromMilliseconds 250.0

    let early =
        SharedLoop.turn interval true (TimeSpan.FromMilliseconds 10.0) TimeSpan.Zero TimeSpan.Zero

    Assert.False early.FlushDue
    Assert.True early.ReadSpend
    Assert.False early.Check
    Assert.False early.Compact

    let late =
        SharedLoop.turn interval false interval (TimeSpan.FromSeconds 5.0) (TimeSpan.FromMinutes 1.0)

    Assert.True late.FlushDue
    Assert.False late.ReadSpend
    Assert.True late.Check
    Assert.True late.Compact
    // the wait: whole milliseconds, at least one (0 ms would be "forever"), none once due
    Assert.Equal(
        Some(TimeSpan.FromMilliseconds 1.0),
        SharedLoop.waitBeforeFlush interval (TimeSpan.FromMilliseconds 249.9)
    )

    Assert.Equal(
        Some(TimeSpan.FromMilliseconds 240.0),
        SharedLoop.waitBeforeFlush interval (TimeSpan.FromMilliseconds 10.0)
    )

    Assert.Equal(None, SharedLoop.waitBeforeFlush interval interval)

[<Fact>]
let ``a lost database is said once; the backoff grows; a reconnection says recovered or connected`` () =
    let lost, report, wait = SharedLoop.failed wall "refused" 0.0 SharedLink.Connected
    Assert.Equal(LinkReport.Lost, report)
    Assert.Equal(SharedHealth.firstBackoff, wait)

    let again, report2, wait2 =
        SharedLoop.failed (wall.AddSeconds 1.0) "refused" 0.0 lost

    Assert.Equal(LinkReport.Quiet, report2)
    Assert.Equal(TimeSpan.FromMilliseconds 500.0, wait2)

    match again with
    | SharedLink.Degraded(since, attempt, _) ->
        Assert.Equal(wall, since)
        Assert.Equal(2, attempt)
    | other -> failwith $"%A{other}"

    Assert.Equal((SharedLink.Connected, LinkReport.Recovered wall), SharedLoop.connected again)
    Assert.Equal((SharedLink.Connected, LinkReport.Connected), SharedLoop.connected SharedLink.Connecting)
    let _, first, _ = SharedLoop.failed wall "refused" 0.0 SharedLink.Connecting
    Assert.Equal(LinkReport.Lost, first)
