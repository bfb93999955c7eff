namespace CcRelay.Core

open System

/// A relay as the compactor sees it in `ccrelay_relays`: when it was last seen (by the database's clock) and the
/// highest `seq` of `ccrelay_spend` it has read (published with its heartbeat).
[<Struct>]
type RelayReadMark = {
    Relay: string
    SeenAt: DateTimeOffset
    ReadSeq: int64
}

/// What one compaction run does to `ccrelay_spend`: rows rewritten in place (each keeps its `seq` and flush id) and
/// rows deleted; nothing above `Through` is touched.
type CompactionPlan = {
    /// The rows whose body (and owner) change: the oldest row of each owner's run, holding the whole run.
    Rewrite: SpendFlush list
    /// The rows folded into a rewritten one.
    Delete: int64 list
    /// The highest seq the run was allowed to touch (the cutoff).
    Through: int64
} with

    /// Whether the run changes anything.
    member this.IsEmpty = this.Rewrite.IsEmpty && this.Delete.IsEmpty

/// Compaction of the shared spend (`ccrelay_spend`, docs/scale-out.md): without it the table grows by a row per flush
/// per relay forever and a relay that (re)starts re-reads all of it.
///
/// Rows are folded only at or below the **cutoff**: the lowest `seq` every counted relay has read (each publishes
/// its read position with its heartbeat; a relay counts while it was seen within `horizon`). A relay that has read
/// past a row never reads it again, so folding it cannot change that relay's view; a relay that starts later reads
/// the folded rows once. The rows of one relay (its run) become one row: the run's oldest row, rewritten in place —
/// its seq and flush id kept, its spend the run's spend summed per client, model and bucket, its reserved levels the
/// newest of the run per client and model. Rows of relays no longer counted (gone longer than `horizon`) fold into
/// one row owned by `forgotten`, without reserved levels (such a relay's reservations are released anyway).
///
/// Buckets older than `foldBefore` — before every day, week and month period still current a day ago in the
/// budgets' time zone — are folded into one bucket (`foldBefore − 15 min`): they count only in `total` budgets,
/// where the bucket does not matter. Newer buckets fold to the start of their day (every period starts at one), so
/// a folded row holds at most clients × models × ~33 entries. The plan is a function of the rows it is given, and a second run over its
/// result changes nothing (idempotent); runs are serialised by an advisory lock and read the rows under it.
[<RequireQualifiedAccess>]
module SharedCompaction =

    /// The owner of the folded rows of relays no longer counted (no relay has this id: ids are host-pid-random).
    let forgotten: string = "(forgotten)"

    /// How long a relay's read position holds compaction back after it was last seen. A relay away longer (a
    /// database outage of a day) may find rows it had not read folded into ones it had (`rejoinedBehind`).
    let horizon: TimeSpan = TimeSpan.FromHours 24.0

    /// How far back the periods are taken for `foldBefore`: relays' clocks and period roll-overs may differ by this.
    let margin: TimeSpan = TimeSpan.FromDays 1.0

    /// The most rows one run reads (bounded work: the transaction, its locks and its memory stay small).
    let maxRows: int = 5000

    /// How often a relay tries a run (whichever relay takes the advisory lock runs it; the others skip).
    let interval: TimeSpan = TimeSpan.FromMinutes 1.0

    /// The lowest seq every relay seen within `horizon` of `wall` has read; 0 (fold nothing) when none is.
    let cutoff (wall: DateTimeOffset) (relays: RelayReadMark seq) : int64 =
        let counted =
            relays |> Seq.filter (fun r -> wall - r.SeenAt <= horizon) |> Seq.toList

        if counted.IsEmpty then
            0L
        else
            counted |> List.map (fun r -> max 0L r.ReadSeq) |> List.min

    /// The relays whose rows fold into `forgotten`: those not seen within `horizon` of `wall` (or not listed).
    let isCounted (wall: DateTimeOffset) (relays: RelayReadMark seq) : string -> bool =
        let counted =
            relays
            |> Seq.filter (fun r -> wall - r.SeenAt <= horizon)
            |> Seq.map (fun r -> r.Relay)
            |> Set.ofSeq

        counted.Contains

    /// Buckets before this fold into one: the earliest start of a day, week or month period current at
    /// `wall − margin` in `zone`. Every relay whose clock reads at least `wall − margin` has all of them before the
    /// start of each of its current periods, so they count in `total` budgets only.
    let foldBefore (zone: TimeZoneInfo) (wall: DateTimeOffset) : DateTimeOffset =
        [ BudgetPeriod.Day; BudgetPeriod.Week; BudgetPeriod.Month ]
        |> List.map (fun period -> BudgetPeriods.startOf zone period (wall - margin))
        |> List.min
        |> SharedSpend.bucketOf

    /// The bucket a bucket folds to: the last bucket before `before` when it is older, else the start of its day in
    /// `zone`. Every budget period starts at a day's start, so a bucket and its day's start are in the same period of
    /// every kind, on every relay (they share the time zone).
    let foldBucket (zone: TimeZoneInfo) (before: DateTimeOffset) (bucket: DateTimeOffset) : DateTimeOffset =
        if bucket < before then
            before - SharedSpend.bucketWidth
        else
            BudgetPeriods.startOf zone BudgetPeriod.Day bucket

    /// The run of one owner folded into one row (the oldest's seq and flush id).
    let private foldRun
        (zone: TimeZoneInfo)
        (before: DateTimeOffset)
        (owner: string)
        (keepLevels: bool)
        (run: SpendFlush list)
        =
        let ordered = run |> List.sortBy (fun f -> f.Seq)
        let oldest = List.head ordered

        let spent =
            ordered
            |> List.collect (fun f -> f.Spent)
            |> List.map (fun e -> {
                e with
                    Bucket = foldBucket zone before e.Bucket
            })
            |> List.groupBy (fun e -> struct (e.Client, e.Model, e.Bucket))
            |> List.map (fun (_, entries) -> {
                List.head entries with
                    CostUsd = entries |> List.sumBy (fun e -> e.CostUsd)
            })
            |> List.filter (fun e -> e.CostUsd <> 0m)
            |> List.sortBy (fun e -> struct (e.Client, e.Model, e.Bucket))

        let reserved =
            if not keepLevels then
                []
            else
                // the newest level per client and model (a later flush's level replaced the earlier one)
                ordered
                |> List.collect (fun f -> f.Reserved)
                |> List.fold
                    (fun (levels: Map<struct (string * string), ReservedLevel>) level ->
                        levels.Add(struct (level.Client, level.Model), level))
                    Map.empty
                |> Map.toList
                |> List.map snd
                |> List.filter (fun level -> level.Usd <> 0m)

        {
            oldest with
                Relay = owner
                Spent = spent
                Reserved = reserved
        },
        ordered |> List.tail |> List.map (fun f -> f.Seq)

    /// What a run does with `rows` (those it read, oldest first or not): the rows at or below `through` fold per
    /// owner (`counted` relays own theirs; the others' go to `forgotten`); buckets before `before` fold into one.
    let plan
        (zone: TimeZoneInfo)
        (before: DateTimeOffset)
        (counted: string -> bool)
        (through: int64)
        (rows: SpendFlush seq)
        : CompactionPlan =
        let runs =
            rows
            |> Seq.filter (fun f -> f.Seq <= through)
            |> Seq.toList
            |> List.groupBy (fun f -> if counted f.Relay then f.Relay else forgotten)

        let folded =
            runs
            |> List.map (fun (owner, run) ->
                let row, deleted = foldRun zone before owner (owner <> forgotten) run
                let oldest = run |> List.minBy (fun f -> f.Seq)
                // a run of one row already in its folded shape is left alone (a second run changes nothing)
                let unchanged = deleted.IsEmpty && row = oldest
                (if unchanged then None else Some row), deleted)

        {
            Rewrite = folded |> List.choose fst |> List.sortBy (fun f -> f.Seq)
            Delete = folded |> List.collect snd |> List.sort
            Through = through
        }

    /// The rows after `plan` is carried out on `rows`.
    let carryOut (plan: CompactionPlan) (rows: SpendFlush seq) : SpendFlush list =
        let deleted = Set.ofList plan.Delete
        let rewritten = plan.Rewrite |> List.map (fun f -> f.Seq, f) |> Map.ofList

        rows
        |> Seq.filter (fun f -> not (deleted.Contains f.Seq))
        |> Seq.map (fun f -> rewritten.TryFind f.Seq |> Option.defaultValue f)
        |> Seq.sortBy (fun f -> f.Seq)
        |> Seq.toList

    /// Whether a relay that has read up to `lastSeq` (and has read before: `readBefore`) finds rows past its position
    /// folded by a run through `compactedThrough`: it was away longer than `horizon`, and its view of the others'
    /// spend may be off by what was folded across its position (reported; a restart rebuilds it exactly).
    let rejoinedBehind (readBefore: bool) (lastSeq: int64) (compactedThrough: int64) : bool =
        readBefore && lastSeq < compactedThrough

    /// A `/health` body with `"spend_compaction": {"status": "failing", "detail": problem}` added (a byte edit; the
    /// member is there only while something is wrong).
    let addToHealth (health: byte array) (problem: string) : byte array =
        use stream = new IO.MemoryStream()

        using (new Text.Json.Utf8JsonWriter(stream)) (fun writer ->
            writer.WriteStartObject()
            writer.WriteString("status", "failing")
            writer.WriteString("detail", problem)
            writer.WriteEndObject())

        match JsonSpans.set (ReadOnlySpan health) "spend_compaction" (stream.ToArray()) with
        | Ok edited -> edited
        | Error _ -> health

/// The C#-facing surface of `SharedCompaction` for the host's compactor.
[<AbstractClass; Sealed>]
type SpendCompaction =

    /// `SharedCompaction.plan` for the rows read under the lock, with the cutoff and the counted relays from `relays`
    /// (by the database's clock `wall`), folding buckets before `SharedCompaction.foldBefore zone wall`.
    static member Plan
        (zone: TimeZoneInfo, wall: DateTimeOffset, relays: RelayReadMark seq, rows: SpendFlush seq)
        : CompactionPlan =
        let relays = Seq.toList relays

        SharedCompaction.plan
            zone
            (SharedCompaction.foldBefore zone wall)
            (SharedCompaction.isCounted wall relays)
            (SharedCompaction.cutoff wall relays)
            rows

    /// `SharedCompaction.cutoff`.
    static member Cutoff(wall: DateTimeOffset, relays: RelayReadMark seq) : int64 = SharedCompaction.cutoff wall relays
