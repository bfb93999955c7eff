/// Compaction of the shared spend (docs/scale-out.md): folding rows below the lowest seq every relay has read never
/// changes any relay's budget view, nor that of a relay that starts later; a second run changes nothing; runs
/// serialised by the advisory lock (each planning on what the one before left) never count anything twice.
module CcRelay.Core.Properties.SharedCompactionProperties

open System
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core

/// The compactor's clock (the database's `now()`), and the relays' (which may run up to a day behind it).
let private wall = DateTimeOffset(2026, 12, 7, 12, 0, 0, TimeSpan.Zero)

let private models = [| "claude-opus-4-5"; "claude-sonnet-4-5" |]
let private clients = [| "alice"; "bob" |]
let private zones = [| "UTC"; "America/New_York"; "Asia/Kathmandu"; "Pacific/Chatham" |]

/// A client with a budget of each period on every model, and one on Opus only (large caps: only the view matters).
let private client (name: string) : ClientConfig = {
    Name = name
    KeyDigest = Array.zeroCreate 32
    KeyId = "00000000"
    ExpiresAt = None
    Providers = []
    Models = []
    Stages = []
    RpmLimit = 0
    ItpmLimit = 0
    OtpmLimit = 0
    MaxConcurrent = 0
    Budgets = [
        for period in [ BudgetPeriod.Day; BudgetPeriod.Week; BudgetPeriod.Month; BudgetPeriod.Total ] do
            {
                Period = period
                LimitUsd = 1_000_000m
                Models = None
            }
        {
            Period = BudgetPeriod.Week
            LimitUsd = 1_000_000m
            Models = Some "claude-opus-*"
        }
    ]
    Metadata = []
}

/// One relay's flush content: spend in buckets from 70 days before `wall` to `wall`, and reserved levels.
let private flushBody =
    gen {
        let! spent =
            Gen.listOf (
                gen {
                    let! c = Gen.choose (0, clients.Length - 1)
                    let! m = Gen.choose (0, models.Length - 1)
                    let! quarterHoursBack = Gen.choose (0, 70 * 96)
                    let! cents = Gen.choose (1, 500)

                    return {
                        Client = clients[c]
                        Model = models[m]
                        Bucket = SharedSpend.bucketOf (wall - TimeSpan.FromMinutes(15.0 * float quarterHoursBack))
                        CostUsd = decimal cents / 100m
                    }
                }
            )
            |> Gen.resize 6

        let! reserved =
            Gen.listOf (
                gen {
                    let! c = Gen.choose (0, clients.Length - 1)
                    let! m = Gen.choose (0, models.Length - 1)
                    let! cents = Gen.choose (0, 300)

                    return {
                        Client = clients[c]
                        Model = models[m]
                        Usd = decimal cents / 100m
                    }
                }
            )
            |> Gen.resize 3

        return spent, reserved
    }

/// What a relay holds of every client's budgets at `at` after merging `rows` (in seq order) from nothing; `own`
/// relay's rows are its own spend (counted as settled, its levels are its own cells').
let private viewOf (zone: TimeZoneInfo) (at: DateTimeOffset) (own: string option) (rows: SpendFlush seq) =
    let mutable view = SharedSpend.emptyView

    let mutable states =
        clients
        |> Array.map (fun name -> ClientLimits.fresh zone (client name) TimeSpan.Zero at)

    for row in rows |> Seq.sortBy (fun f -> f.Seq) do
        let spent, reserved =
            if Some row.Relay = own then
                row.Spent, []
            else
                let next, change = SharedSpend.merge row view
                view <- next
                change.Spent, change.Reserved

        states <-
            clients
            |> Array.mapi (fun i name ->
                SharedSpend.apply
                    zone
                    (client name)
                    at
                    (spent |> List.filter (fun e -> e.Client = name))
                    (reserved |> List.filter (fun r -> r.Client = name))
                    states[i])

    states |> Array.map (fun s -> s.Spend)

/// The relays' clocks the views are taken at: the compactor's, a day behind it, and a month later.
let private clocks = [ wall; wall - SharedCompaction.margin; wall.AddDays 31.0 ]

type private Op =
    /// Relay r writes a flush.
    | Write of Relay: int * Spent: SpendEntry list * Reserved: ReservedLevel list
    /// Relay r reads what it has not read (it publishes how far with its next heartbeat).
    | Read of Relay: int
    /// Relay r publishes its heartbeat with its read position (without reading).
    | Heartbeat of Relay: int
    /// A compaction run, by whichever relay takes the lock (it plans on the table as it is then).
    | Compact

let private op (relays: int) : Gen<Op> =
    let relay = Gen.choose (0, relays - 1)

    Gen.frequency [
        5,
        gen {
            let! r = relay
            let! spent, reserved = flushBody
            return Write(r, spent, reserved)
        }
        3, Gen.map Read relay
        1, Gen.map Heartbeat relay
        2, Gen.constant Compact
    ]

let private scenario =
    gen {
        let! zone = Gen.elements zones
        let! relays = Gen.choose (1, 3)
        let! ops = Gen.listOf (op relays) |> Gen.resize 60
        return zone, relays, ops
    }
    |> Check.arb

[<Fact>]
let ``compaction below every relay's read position never changes a relay's budget view, nor a late relay's`` () =
    Check.quick
        300
        (Prop.forAll scenario (fun (zoneId, relays, ops) ->
            let zone = TimeZoneInfo.FindSystemTimeZoneById zoneId
            let name (r: int) = $"relay-{r}"
            // the table, each relay's read position (and the one it last published), and its view of the others
            let mutable table: SpendFlush list = []
            let mutable nextSeq = 1L
            let read = Array.zeroCreate<int64> relays
            let published = Array.zeroCreate<int64> relays
            let views = Array.init relays (fun _ -> SharedSpend.emptyView)
            let merged = Array.init relays (fun _ -> ResizeArray<SpendFlush>())
            let written = ResizeArray<SpendFlush>()
            let mutable ok = true

            let marks () = [
                for r in 0 .. relays - 1 ->
                    {
                        Relay = name r
                        SeenAt = wall
                        ReadSeq = published[r]
                    }
            ]

            for step in ops do
                match step with
                | Write(r, spent, reserved) ->
                    let flush = {
                        FlushId = Guid.NewGuid()
                        Relay = name r
                        Seq = nextSeq
                        Spent = spent
                        Reserved = reserved
                    }

                    nextSeq <- nextSeq + 1L
                    table <- table @ [ flush ]
                    written.Add flush
                | Read r ->
                    for row in table |> List.filter (fun f -> f.Seq > read[r]) do
                        if row.Relay <> name r then
                            let view, _ = SharedSpend.merge row views[r]
                            views[r] <- view
                            merged[r].Add row

                        read[r] <- row.Seq
                | Heartbeat r -> published[r] <- read[r]
                | Compact ->
                    let plan = SpendCompaction.Plan(zone, wall, marks (), table)
                    let after = SharedCompaction.carryOut plan table

                    // nothing above the cutoff is touched, and nothing at or above any relay's read position
                    let lowest = published |> Array.min

                    let untouched (rows: SpendFlush list) =
                        rows |> List.filter (fun f -> f.Seq > lowest)

                    if untouched after <> untouched table then
                        ok <- false

                    // a relay starting now sees the same budgets before and after, at any clock it may have
                    for at in clocks do
                        if viewOf zone at None table <> viewOf zone at None after then
                            ok <- false

                    table <- after

            // every relay reads to the end: its view (its own flushes plus what it merged) is the truth, and so is
            // a late relay's from the compacted table
            for r in 0 .. relays - 1 do
                for row in table |> List.filter (fun f -> f.Seq > read[r]) do
                    if row.Relay <> name r then
                        merged[r].Add row

            for at in clocks do
                let truth = viewOf zone at None written

                let spentOnly (spend: Spend array array) =
                    spend |> Array.map (Array.map (fun s -> s.Spent))

                for r in 0 .. relays - 1 do
                    let own = written |> Seq.filter (fun f -> f.Relay = name r)
                    let mine = viewOf zone at (Some(name r)) (Seq.append own merged[r])

                    if spentOnly mine <> spentOnly truth then
                        ok <- false

                if viewOf zone at None table <> truth then
                    ok <- false

            ok))

/// Rows of up to four relays (some of them no longer counted), any cutoff.
let private rowsAndCutoff =
    gen {
        let! zone = Gen.elements zones
        let! bodies = Gen.listOf (Gen.zip (Gen.choose (0, 3)) flushBody) |> Gen.resize 30
        let! counted = Gen.listOfLength 4 (Gen.elements [ true; false ])
        let! cut = Gen.choose (0, 32)

        let rows = [
            for i, (r, (spent, reserved)) in List.indexed bodies ->
                {
                    FlushId = Guid.NewGuid()
                    Relay = $"relay-{r}"
                    Seq = int64 (i + 1)
                    Spent = spent
                    Reserved = reserved
                }
        ]

        return zone, rows, counted, int64 cut
    }
    |> Check.arb

let private runOn (zoneId: string) (counted: bool list) (cut: int64) (rows: SpendFlush list) =
    let zone = TimeZoneInfo.FindSystemTimeZoneById zoneId

    let isCounted (relay: string) =
        [ 0..3 ] |> List.exists (fun i -> counted[i] && relay = $"relay-{i}")

    let plan =
        SharedCompaction.plan zone (SharedCompaction.foldBefore zone wall) isCounted cut rows

    zone, plan, SharedCompaction.carryOut plan rows

[<Fact>]
let ``a second compaction run changes nothing; the same plan carried out twice leaves what once does`` () =
    Check.quick
        500
        (Prop.forAll rowsAndCutoff (fun (zoneId, rows, counted, cut) ->
            let _, plan, once = runOn zoneId counted cut rows
            let _, again, _ = runOn zoneId counted cut once
            // a run whose commit was not known, carried out again (the same rewrites and deletes): no double count
            let twice = SharedCompaction.carryOut plan once
            again.IsEmpty && twice = once))

[<Fact>]
let ``runs serialised by the lock at growing cutoffs count everything once, and a late relay's spend is the same`` () =
    Check.quick
        500
        (Prop.forAll rowsAndCutoff (fun (zoneId, rows, counted, cut) ->
            let zone, _, first = runOn zoneId counted cut rows
            let _, _, second = runOn zoneId counted (cut + 7L) first

            let spentOf (rows: SpendFlush list) =
                clocks
                |> List.map (fun at -> viewOf zone at None rows |> Array.map (Array.map (fun s -> s.Spent)))

            // the reserved levels of the relays no longer counted are dropped (they are released anyway); the
            // spend is all there, once
            spentOf second = spentOf rows
            && second.Length <= rows.Length
            && second
               |> List.forall (fun f ->
                   f.Seq > cut + 7L
                   || f.Relay = SharedCompaction.forgotten
                   || counted[int (f.Relay.Substring 6)])))
