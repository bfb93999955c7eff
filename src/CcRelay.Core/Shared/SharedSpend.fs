namespace CcRelay.Core

open System

/// One additive piece of shared spend: what `Client` settled on `Model` in the 15-minute bucket from `Bucket`.
[<Struct>]
type SpendEntry = {
    Client: string
    Model: string
    /// The start (UTC) of the 15-minute bucket the settlements ended in (`SharedSpend.bucketOf`).
    Bucket: DateTimeOffset
    CostUsd: decimal
}

/// One relay's estimates in flight for a client's model: a level (the newest one replaces the one before).
[<Struct>]
type ReservedLevel = {
    Client: string
    Model: string
    Usd: decimal
}

/// What a relay publishes at one flush: the spend settled since its last flush (additive deltas, identified by
/// `FlushId`: applying a flush twice is a no-op) and the reserved levels that changed since then.
type SpendFlush = {
    FlushId: Guid
    /// The relay that published it (a relay never merges its own flushes).
    Relay: string
    /// The store's order of flushes (assigned when written); a newer level replaces an older one.
    Seq: int64
    Spent: SpendEntry list
    Reserved: ReservedLevel list
}

/// What this relay has settled and reserved and not published yet.
type SpendPending = {
    Spent: Map<struct (string * string * DateTimeOffset), decimal>
    /// This relay's estimates in flight per client and model (entries at zero are dropped once published).
    Reserved: Map<struct (string * string), decimal>
    /// The reserved levels changed since the last flush.
    Changed: Set<struct (string * string)>
}

/// What this relay has merged from the others: the flushes applied, and each relay's newest reserved levels.
type SpendView = {
    /// Flush id → its seq (bounded: the oldest are forgotten, and the store never hands an old flush again).
    Applied: Map<Guid, int64>
    /// (relay, client, model) → (level, seq of the flush it came in).
    Levels: Map<struct (string * string * string), struct (decimal * int64)>
}

/// What merging changes in the local client cells: spend to add, and changes of reserved estimates.
type SpendChange = {
    Spent: SpendEntry list
    /// `Usd` is the change of the reserved amount (may be negative).
    Reserved: ReservedLevel list
}

/// One admission or settlement of a client's request as the request path records it (a struct appended to a
/// list: no map update, no allocation, no lock held long), folded into the pending spend off the request path
/// (`SharedSpend.fold`, at each flush). Every step is an addition, so the order they are folded in changes nothing.
[<Struct>]
type SpendStep = {
    Client: string
    Ticket: ClientTicket
    /// false: the admission (its estimate in flight); true: the settlement.
    IsSettlement: bool
    /// The settlement's cost (ValueNone: the estimate stands).
    CostUsd: decimal voption
    /// When it was settled (the admission's is unused).
    Wall: DateTimeOffset
} with

    /// A request of `client` admitted with `ticket`.
    static member Admission(client: string, ticket: ClientTicket) : SpendStep = {
        Client = client
        Ticket = ticket
        IsSettlement = false
        CostUsd = ValueNone
        Wall = DateTimeOffset.MinValue
    }

    /// A request of `client` admitted with `ticket`, settled at `wall` for `costUsd` (null: its estimate).
    static member Settlement
        (client: string, ticket: ClientTicket, costUsd: Nullable<decimal>, wall: DateTimeOffset)
        : SpendStep = {
        Client = client
        Ticket = ticket
        IsSettlement = true
        CostUsd = ValueOption.ofNullable costUsd
        Wall = wall
    }

/// Budgets shared by several relays (docs/scale-out.md), as pure functions: what a relay accumulates between
/// flushes, what a flush carries, how another relay's flush is merged, and how merged spend enters a client's
/// state (`ClientLimits`).
///
/// The overshoot bound (checked by properties over every interleaving of admissions, settlements and flushes
/// across N relays): each relay admits against its own settled and reserved spend plus everything the others
/// have flushed, so what it cannot see is what the others admitted since their last flush. A budget's spend
/// (settled plus in flight) therefore exceeds its cap by at most the estimates the other relays admitted within
/// one flush interval (`state.flush_interval_ms`), on top of the single-relay bound (`ClientLimits`: what the
/// input estimate missed). While the database is unreachable that window is the whole outage.
[<RequireQualifiedAccess>]
module SharedSpend =

    /// The bucket width: every budget period starts on a 15-minute boundary in every time zone.
    let bucketWidth: TimeSpan = TimeSpan.FromMinutes 15.0

    /// The start (UTC) of the 15-minute bucket holding `wall`.
    let bucketOf (wall: DateTimeOffset) : DateTimeOffset =
        let utc = wall.UtcTicks
        DateTimeOffset(utc - utc % bucketWidth.Ticks, TimeSpan.Zero)

    /// Nothing pending.
    let empty: SpendPending = {
        Spent = Map.empty
        Reserved = Map.empty
        Changed = Set.empty
    }

    /// Nothing merged.
    let emptyView: SpendView = {
        Applied = Map.empty
        Levels = Map.empty
    }

    /// The most flush ids remembered.
    let maxApplied: int = 100_000

    let private reserve (client: string) (model: string) (usd: decimal) (pending: SpendPending) : SpendPending =
        let key = struct (client, model)
        let level = (pending.Reserved.TryFind key |> Option.defaultValue 0m) + usd

        {
            pending with
                Reserved = pending.Reserved.Add(key, level)
                Changed = pending.Changed.Add key
        }

    /// A request of `client` was admitted with `ticket`: its estimate is in flight (nothing when no budget
    /// counts it).
    let admitted (client: string) (ticket: ClientTicket) (pending: SpendPending) : SpendPending =
        if ticket.Reserved.IsEmpty then
            pending
        else
            reserve client ticket.Demand.Model ticket.Demand.CostUsd pending

    /// The cost a settlement charges, as `ClientLimits.settle` charges it (None: the estimate stands).
    let settledCost (ticket: ClientTicket) (costUsd: decimal option) : decimal =
        costUsd |> Option.defaultValue ticket.Demand.CostUsd |> max 0m

    /// A request of `client` admitted with `ticket` was settled at `wall` for `costUsd` (None: its estimate).
    let settled
        (client: string)
        (ticket: ClientTicket)
        (costUsd: decimal option)
        (wall: DateTimeOffset)
        (pending: SpendPending)
        : SpendPending =
        if ticket.Reserved.IsEmpty then
            pending
        else
            let pending = reserve client ticket.Demand.Model (-ticket.Demand.CostUsd) pending
            let cost = settledCost ticket costUsd

            if cost = 0m then
                pending
            else
                let key = struct (client, ticket.Demand.Model, bucketOf wall)

                {
                    pending with
                        Spent = pending.Spent.Add(key, (pending.Spent.TryFind key |> Option.defaultValue 0m) + cost)
                }

    /// The steps recorded on the request path, folded into `pending` (`admitted`, `settled`); in any order, with the
    /// same result.
    let fold (steps: SpendStep seq) (pending: SpendPending) : SpendPending =
        let mutable pending = pending

        for step in steps do
            pending <-
                if step.IsSettlement then
                    settled step.Client step.Ticket (ValueOption.toOption step.CostUsd) step.Wall pending
                else
                    admitted step.Client step.Ticket pending

        pending

    /// Whether a flush would carry anything.
    let hasPending (pending: SpendPending) : bool =
        not pending.Spent.IsEmpty || not pending.Changed.IsEmpty

    /// The flush of what is pending (its seq is the store's to assign), and what stays pending: the reserved
    /// levels (a level is state, not a delta), without those at zero.
    let take (flushId: Guid) (relay: string) (pending: SpendPending) : SpendFlush * SpendPending =
        let flush = {
            FlushId = flushId
            Relay = relay
            Seq = 0L
            Spent = [
                for KeyValue(struct (client, model, bucket), cost) in pending.Spent ->
                    {
                        Client = client
                        Model = model
                        Bucket = bucket
                        CostUsd = cost
                    }
            ]
            Reserved = [
                for struct (client, model) as key in pending.Changed ->
                    {
                        Client = client
                        Model = model
                        Usd = pending.Reserved.TryFind key |> Option.defaultValue 0m
                    }
            ]
        }

        flush,
        {
            Spent = Map.empty
            Reserved = pending.Reserved |> Map.filter (fun _ level -> level <> 0m)
            Changed = Set.empty
        }

    let private remember (flush: SpendFlush) (applied: Map<Guid, int64>) : Map<Guid, int64> =
        let applied = applied.Add(flush.FlushId, flush.Seq)

        if applied.Count <= maxApplied then
            applied
        else
            // rare: keep the newer half (the store hands flushes in seq order, an old one never comes again)
            applied
            |> Map.toArray
            |> Array.sortByDescending snd
            |> Array.truncate (maxApplied / 2)
            |> Map.ofArray

    /// Merges another relay's flush: its spend is added once (a flush id seen before changes nothing), and
    /// each of its reserved levels replaces an older one of the same relay, client and model (an older level
    /// arriving late changes nothing). The view reached is the same in whatever order flushes arrive, however
    /// often each does.
    let merge (flush: SpendFlush) (view: SpendView) : SpendView * SpendChange =
        if view.Applied.ContainsKey flush.FlushId then
            view, { Spent = []; Reserved = [] }
        else
            let mutable levels = view.Levels
            let changes = ResizeArray()

            for level in flush.Reserved do
                let key = struct (flush.Relay, level.Client, level.Model)

                match levels.TryFind key with
                | Some(struct (_, seq)) when seq > flush.Seq -> ()
                | known ->
                    let before =
                        match known with
                        | Some(struct (usd, _)) -> usd
                        | None -> 0m

                    levels <- levels.Add(key, struct (level.Usd, flush.Seq))

                    if level.Usd <> before then
                        changes.Add { level with Usd = level.Usd - before }

            {
                Applied = remember flush view.Applied
                Levels = levels
            },
            {
                Spent = flush.Spent
                Reserved = List.ofSeq changes
            }

    /// Releases the reservations of a relay that stopped publishing (`SharedHealth.isStale`): its requests in
    /// flight are no longer counted here (their settlements, if it comes back, arrive as spend).
    let forget (relay: string) (view: SpendView) : SpendView * SpendChange =
        let gone, kept = view.Levels |> Map.partition (fun struct (r, _, _) _ -> r = relay)

        { view with Levels = kept },
        {
            Spent = []
            Reserved = [
                for KeyValue(struct (_, client, model), struct (usd, _)) in gone do
                    if usd <> 0m then
                        {
                            Client = client
                            Model = model
                            Usd = -usd
                        }
            ]
        }

    /// The total reserved per (client, model) over every relay in the view (what the cells hold from others).
    let reservedOf (view: SpendView) : Map<struct (string * string), decimal> =
        view.Levels
        |> Map.fold
            (fun totals (struct (_, client, model)) (struct (usd, _)) ->
                let key = struct (client, model)
                totals.Add(key, (totals.TryFind key |> Option.defaultValue 0m) + usd))
            Map.empty

    /// A client's state with merged spend added: settled cost into the budgets its bucket falls in (as the
    /// ledger's rows are restored), reserved changes into every budget counting the model.
    let apply
        (zone: TimeZoneInfo)
        (client: ClientConfig)
        (wall: DateTimeOffset)
        (spent: SpendEntry seq)
        (reserved: ReservedLevel seq)
        (state: ClientState)
        : ClientState =
        let state =
            spent
            |> Seq.fold
                (fun state entry -> ClientLimits.restore zone client wall entry.Model entry.Bucket entry.CostUsd state)
                (ClientLimits.rollAll zone client wall state)

        let budgets = Array.ofList client.Budgets
        let spend = Array.copy state.Spend

        for change in reserved do
            for i in 0 .. min budgets.Length spend.Length - 1 do
                if ClientLimits.applies budgets[i] change.Model then
                    spend[i] <- {
                        spend[i] with
                            Reserved = spend[i].Reserved + change.Usd
                    }

        { state with Spend = spend }

/// The C#-facing surface of `SharedSpend` for the shared-state loop.
type SpendPending with

    /// `SharedSpend.fold`: these steps folded in.
    member this.Fold(steps: SpendStep seq) : SpendPending = SharedSpend.fold steps this

/// A flush's body as the store keeps it (a JSON document; the id, relay and seq are columns beside it).
[<RequireQualifiedAccess>]
module SpendFlushJson =

    open System.Text.Json
    open System.Globalization

    /// `{"spent":[{"client","model","bucket_ms","usd"}],"reserved":[{"client","model","usd"}]}`; amounts as
    /// invariant decimal text (exact).
    let write (flush: SpendFlush) : string =
        use stream = new IO.MemoryStream()

        using (new Utf8JsonWriter(stream)) (fun w ->
            w.WriteStartObject()
            w.WriteStartArray "spent"

            for e in flush.Spent do
                w.WriteStartObject()
                w.WriteString("client", e.Client)
                w.WriteString("model", e.Model)
                w.WriteNumber("bucket_ms", e.Bucket.ToUnixTimeMilliseconds())
                w.WriteString("usd", e.CostUsd.ToString(CultureInfo.InvariantCulture))
                w.WriteEndObject()

            w.WriteEndArray()
            w.WriteStartArray "reserved"

            for r in flush.Reserved do
                w.WriteStartObject()
                w.WriteString("client", r.Client)
                w.WriteString("model", r.Model)
                w.WriteString("usd", r.Usd.ToString(CultureInfo.InvariantCulture))
                w.WriteEndObject()

            w.WriteEndArray()
            w.WriteEndObject())

        Text.Encoding.UTF8.GetString(stream.ToArray())

    /// Reads a body `write` wrote into the flush `flushId` of `relay` at `seq`; Error names what is wrong.
    let read (flushId: Guid) (relay: string) (seq: int64) (body: string) : Result<SpendFlush, string> =
        try
            use document = JsonDocument.Parse body
            let root = document.RootElement

            let items (name: string) =
                match root.TryGetProperty name with
                | true, v when v.ValueKind = JsonValueKind.Array -> v.EnumerateArray() |> Seq.toList
                | _ -> []

            let text (e: JsonElement) (name: string) =
                e.GetProperty(name).GetString() |> string

            let usd (e: JsonElement) =
                Decimal.Parse(text e "usd", CultureInfo.InvariantCulture)

            Ok {
                FlushId = flushId
                Relay = relay
                Seq = seq
                Spent = [
                    for e in items "spent" ->
                        {
                            Client = text e "client"
                            Model = text e "model"
                            Bucket = DateTimeOffset.FromUnixTimeMilliseconds(e.GetProperty("bucket_ms").GetInt64())
                            CostUsd = usd e
                        }
                ]
                Reserved = [
                    for e in items "reserved" ->
                        {
                            Client = text e "client"
                            Model = text e "model"
                            Usd = usd e
                        }
                ]
            }
        with
        | :? JsonException
        | :? FormatException
        | :? Collections.Generic.KeyNotFoundException
        | :? InvalidOperationException as e ->
            Error $"flush %O{flushId} of relay %s{relay} is unreadable: %s{e.Message}"
