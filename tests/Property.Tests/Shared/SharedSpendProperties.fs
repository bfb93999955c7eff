/// Budgets shared by several relays (docs/scale-out.md): the overshoot bound over any interleaving across N
/// relays, and the delta merge (commutative, idempotent per flush id).
module CcRelay.Core.Properties.SharedSpendProperties

open System
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core

let private models = [| "claude-opus-4-5"; "claude-sonnet-4-5" |]

let private wall = DateTimeOffset(2026, 12, 7, 12, 0, 0, TimeSpan.Zero)

let private client (allCap: int) (opusCap: int) : ClientConfig = {
    Name = "c"
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
        {
            Period = BudgetPeriod.Total
            LimitUsd = decimal allCap / 100m
            Models = None
        }
        {
            Period = BudgetPeriod.Total
            LimitUsd = decimal opusCap / 100m
            Models = Some "claude-opus-*"
        }
    ]
    Metadata = []
}

/// One step on one relay: admit a request (its estimate, and its real cost as a share of it: the estimate is
/// an upper bound here, so only the sharing can overshoot), settle a request in flight, flush what is pending
/// to the store, or take the next flush from the store (`Again`: the last one taken, a second time).
type private Op =
    | Admit of Relay: int * Model: int * EstimateCents: int * ActualPercent: int
    | Settle of Relay: int * Index: int
    | Flush of Relay: int
    | Deliver of Relay: int
    | Again of Relay: int

let private op (relays: int) : Gen<Op> =
    let relay = Gen.choose (0, relays - 1)

    Gen.frequency [
        6,
        gen {
            let! r = relay
            let! model = Gen.choose (0, 1)
            let! cents = Gen.choose (0, 200)
            let! percent = Gen.choose (0, 100)
            return Admit(r, model, cents, percent)
        }
        4, Gen.map2 (fun r i -> Settle(r, i)) relay (Gen.choose (0, 20))
        2, Gen.map Flush relay
        3, Gen.map Deliver relay
        1, Gen.map Again relay
    ]

let private scenario =
    gen {
        let! relays = Gen.choose (1, 4)
        let! allCap = Gen.choose (1, 1500)
        let! opusCap = Gen.choose (1, 1500)
        let! ops = Gen.listOf (op relays) |> Gen.resize 120
        return relays, allCap, opusCap, ops
    }
    |> Check.arb

/// One relay of the model: its cell, what it has not flushed, what it merged, its requests in flight (ticket,
/// real cost), and the estimates it admitted since its last flush (per budget).
type private Node = {
    mutable State: ClientState
    mutable Pending: SpendPending
    mutable View: SpendView
    mutable InFlight: (ClientTicket * decimal) list
    mutable Unflushed: decimal array
    /// How far into the store's log this relay has read, and the last flush it took.
    mutable Cursor: int
    mutable Last: SpendFlush option
}

[<Fact>]
let ``N relays never hold more than cap + the estimates the others admitted within one flush interval`` () =
    Check.quick
        500
        (Prop.forAll scenario (fun (relays, allCap, opusCap, ops) ->
            let zone = TimeZoneInfo.Utc
            let client = client allCap opusCap
            let budgets = Array.ofList client.Budgets
            let now = TimeSpan.FromHours 1.0

            let nodes =
                Array.init relays (fun _ -> {
                    State = ClientLimits.fresh zone client now wall
                    Pending = SharedSpend.empty
                    View = SharedSpend.emptyView
                    InFlight = []
                    Unflushed = Array.zeroCreate budgets.Length
                    Cursor = 0
                    Last = None
                })

            // the store's log: each flush with the estimates its relay admitted in its interval (per budget)
            let log = ResizeArray<SpendFlush * decimal array>()
            // the truth per budget: settled real costs plus estimates in flight, over every relay
            let truth = Array.zeroCreate<decimal> budgets.Length
            // the largest allowance any admission had: what the other relays admitted that it could not see
            let allowance = Array.zeroCreate<decimal> budgets.Length
            let mutable ok = true

            let deliver (i: int) (flush: SpendFlush) =
                let node = nodes[i]
                let view, change = SharedSpend.merge flush node.View
                node.View <- view
                node.State <- SharedSpend.apply zone client wall change.Spent change.Reserved node.State

            for step in ops do
                match step with
                | Admit(i, model, cents, percent) ->
                    let node = nodes[i]
                    let estimate = decimal cents / 100m

                    let demand = {
                        Model = models[model]
                        InputTokens = 1L
                        OutputTokens = 1L
                        CostUsd = estimate
                    }

                    // what relay i cannot see: the others' unflushed admissions, and the flushes it has not read
                    let unseen =
                        Array.init budgets.Length (fun b ->
                            let unflushed =
                                nodes
                                |> Array.indexed
                                |> Array.sumBy (fun (j, n) -> if j = i then 0m else n.Unflushed[b])

                            let unread =
                                [ node.Cursor .. log.Count - 1 ]
                                |> List.sumBy (fun k ->
                                    let flush, admitted = log[k]
                                    if flush.Relay = string i then 0m else admitted[b])

                            unflushed + unread)

                    match ClientLimits.admit zone client now wall demand node.State with
                    | Ok ticket, next ->
                        node.State <- next
                        node.Pending <- SharedSpend.admitted client.Name ticket node.Pending
                        node.InFlight <- node.InFlight @ [ ticket, estimate * decimal percent / 100m ]

                        for id in ticket.Reserved do
                            let b = budgets |> Array.findIndex (fun x -> ClientLimits.identity x = id)
                            node.Unflushed[b] <- node.Unflushed[b] + estimate
                            truth[b] <- truth[b] + estimate
                            allowance[b] <- max allowance[b] unseen[b]
                    | Error _, next -> node.State <- next
                | Settle(i, index) when not nodes[i].InFlight.IsEmpty ->
                    let node = nodes[i]
                    let index = index % node.InFlight.Length
                    let ticket, actual = node.InFlight[index]
                    node.InFlight <- node.InFlight |> List.removeAt index
                    node.State <- ClientLimits.settle zone client now wall ticket None (Some actual) node.State
                    node.Pending <- SharedSpend.settled client.Name ticket (Some actual) wall node.Pending

                    for id in ticket.Reserved do
                        let b = budgets |> Array.findIndex (fun x -> ClientLimits.identity x = id)
                        truth[b] <- truth[b] - ticket.Demand.CostUsd + actual
                | Settle _ -> ()
                | Flush i ->
                    let node = nodes[i]
                    let flush, rest = SharedSpend.take (Guid.NewGuid()) (string i) node.Pending

                    log.Add({ flush with Seq = int64 log.Count }, Array.copy node.Unflushed)
                    node.Pending <- rest
                    node.Unflushed <- Array.zeroCreate budgets.Length
                | Deliver i ->
                    let node = nodes[i]

                    if node.Cursor < log.Count then
                        let flush, _ = log[node.Cursor]
                        node.Cursor <- node.Cursor + 1

                        if flush.Relay <> string i then
                            deliver i flush
                            node.Last <- Some flush
                | Again i -> nodes[i].Last |> Option.iter (deliver i)

                for b in 0 .. budgets.Length - 1 do
                    if truth[b] > budgets[b].LimitUsd + allowance[b] then
                        ok <- false

            // and every relay's view of a budget, once everything is flushed and read, is the truth
            for i in 0 .. relays - 1 do
                let flush, rest = SharedSpend.take (Guid.NewGuid()) (string i) nodes[i].Pending
                log.Add({ flush with Seq = int64 log.Count }, Array.zeroCreate budgets.Length)
                nodes[i].Pending <- rest

            for i in 0 .. relays - 1 do
                while nodes[i].Cursor < log.Count do
                    let flush, _ = log[nodes[i].Cursor]
                    nodes[i].Cursor <- nodes[i].Cursor + 1

                    if flush.Relay <> string i then
                        deliver i flush

                for b in 0 .. budgets.Length - 1 do
                    let s = nodes[i].State.Spend[b]

                    if s.Spent + s.Reserved <> truth[b] then
                        ok <- false

            ok))

/// Flushes from three relays, each with increasing seqs and its own levels.
let private flushes =
    gen {
        let! count = Gen.choose (0, 12)

        let! items =
            Gen.listOfLength
                count
                (gen {
                    let! relay = Gen.choose (0, 2)

                    let! spent =
                        Gen.listOf (Gen.map2 (fun m c -> m, c) (Gen.choose (0, 1)) (Gen.choose (0, 500)))

                    let! levels =
                        Gen.listOf (Gen.map2 (fun m c -> m, c) (Gen.choose (0, 1)) (Gen.choose (0, 500)))

                    return relay, spent, levels
                })

        return
            items
            |> List.mapi (fun seq (relay, spent, levels) -> {
                FlushId = Guid.NewGuid()
                Relay = string relay
                Seq = int64 seq
                Spent = [
                    for m, c in spent ->
                        {
                            Client = "c"
                            Model = models[m]
                            Bucket = wall
                            CostUsd = decimal c / 100m
                        }
                ]
                Reserved =
                    levels
                    |> List.distinctBy fst
                    |> List.map (fun (m, c) -> {
                        Client = "c"
                        Model = models[m]
                        Usd = decimal c / 100m
                    })
            })
    }

/// Merges flushes in the given order and sums what they change: (spent per model, reserved per model, view).
let private mergeAll (order: SpendFlush list) =
    let mutable view = SharedSpend.emptyView
    let mutable spent = Map.empty
    let mutable reserved = Map.empty

    let add (map: Map<string, decimal>) (model: string) (usd: decimal) =
        map.Add(model, (map.TryFind model |> Option.defaultValue 0m) + usd)

    for flush in order do
        let next, change = SharedSpend.merge flush view
        view <- next

        for e in change.Spent do
            spent <- add spent e.Model e.CostUsd

        for r in change.Reserved do
            reserved <- add reserved r.Model r.Usd

    spent |> Map.filter (fun _ v -> v <> 0m),
    reserved |> Map.filter (fun _ v -> v <> 0m),
    view.Levels,
    view.Applied |> Map.keys |> Set.ofSeq

[<Fact>]
let ``merging flushes in any order, each any number of times, ends where merging each once in order does`` () =
    let gen =
        gen {
            let! flushes = flushes
            // every flush at least once, some again, all shuffled
            let! extra = Gen.subListOf flushes
            let! shuffled = Gen.shuffle (flushes @ extra)
            return flushes, List.ofArray shuffled
        }
        |> Check.arb

    Check.quick
        500
        (Prop.forAll gen (fun (flushes, shuffled) ->
            let spentA, reservedA, levelsA, appliedA = mergeAll flushes
            let spentB, reservedB, levelsB, appliedB = mergeAll shuffled
            // the reserved changes sum to the newest level of each relay and model
            let newest =
                flushes
                |> List.collect (fun f -> f.Reserved |> List.map (fun r -> (f.Relay, r.Model), (f.Seq, r.Usd)))
                |> List.groupBy fst
                |> List.map (fun (_, versions) -> versions |> List.map snd |> List.maxBy fst |> snd)
                |> List.sum

            spentA = spentB
            && reservedA = reservedB
            && levelsA = levelsB
            && appliedA = appliedB
            && (reservedB |> Map.values |> Seq.sum) = newest))

[<Fact>]
let ``what a relay takes is what the others merge: spend summed, levels as pending`` () =
    let gen =
        gen {
            let! steps =
                Gen.listOf (
                    Gen.map3
                        (fun a m c -> a, m, c)
                        (Gen.elements [ true; false ])
                        (Gen.choose (0, 1))
                        (Gen.choose (0, 300))
                )

            return steps
        }
        |> Check.arb

    Check.property (
        Prop.forAll gen (fun steps ->
            let mutable pending = SharedSpend.empty
            let mutable inFlight: ClientTicket list = []
            let mutable settledTotal = 0m

            for admit, m, cents in steps do
                if admit || inFlight.IsEmpty then
                    let ticket = {
                        Demand = {
                            Model = models[m]
                            InputTokens = 1L
                            OutputTokens = 1L
                            CostUsd = decimal cents / 100m
                        }
                        Reserved = [ BudgetPeriod.Total, None ]
                    }

                    inFlight <- ticket :: inFlight
                    pending <- SharedSpend.admitted "c" ticket pending
                else
                    let ticket = inFlight.Head
                    inFlight <- inFlight.Tail
                    settledTotal <- settledTotal + ticket.Demand.CostUsd
                    pending <- SharedSpend.settled "c" ticket None wall pending

            let flush, _ = SharedSpend.take (Guid.NewGuid()) "r" pending
            let _, change = SharedSpend.merge flush SharedSpend.emptyView
            let inFlightTotal = inFlight |> List.sumBy _.Demand.CostUsd

            (change.Spent |> List.sumBy _.CostUsd) = settledTotal
            && (change.Reserved |> List.sumBy _.Usd) = inFlightTotal)
    )

[<Fact>]
let ``steps recorded on the request path, folded in any order and any batches, leave what applying each at once leaves``
    ()
    =
    let gen =
        gen {
            let! steps =
                Gen.listOf (
                    Gen.map4
                        (fun a m c cost -> a, m, c, cost)
                        (Gen.elements [ true; false ])
                        (Gen.choose (0, 1))
                        (Gen.choose (0, 300))
                        (Gen.choose (-1, 300))
                )

            let! order = Gen.shuffle [| 0 .. steps.Length * 2 |]
            let! cuts = Gen.listOf (Gen.choose (0, steps.Length * 2 + 1))
            return steps, order, cuts
        }
        |> Check.arb

    Check.property (
        Prop.forAll gen (fun (steps, order, cuts) ->
            // one by one, as the request path applied them before: every admission, then its settlement
            let mutable direct = SharedSpend.empty
            let recorded = ResizeArray<SpendStep>()
            let mutable inFlight: ClientTicket list = []

            for admit, m, cents, cost in steps do
                if admit || inFlight.IsEmpty then
                    let ticket = {
                        Demand = {
                            Model = models[m]
                            InputTokens = 1L
                            OutputTokens = 1L
                            CostUsd = decimal cents / 100m
                        }
                        Reserved = [ BudgetPeriod.Total, None ]
                    }

                    inFlight <- ticket :: inFlight
                    direct <- SharedSpend.admitted "c" ticket direct
                    recorded.Add(SpendStep.Admission("c", ticket))
                else
                    let ticket = inFlight.Head
                    inFlight <- inFlight.Tail

                    let actual =
                        if cost < 0 then
                            Nullable()
                        else
                            Nullable(decimal cost / 100m)

                    let at = wall.AddMinutes(float cents)
                    direct <- SharedSpend.settled "c" ticket (Option.ofNullable actual) at direct
                    recorded.Add(SpendStep.Settlement("c", ticket, actual, at))

            // recorded, then folded in a shuffled order, cut into batches
            let shuffled =
                order
                |> Array.filter (fun i -> i < recorded.Count)
                |> Array.map (fun i -> recorded[i])

            let bounds =
                (0 :: cuts @ [ shuffled.Length ])
                |> List.map (fun c -> min c shuffled.Length)
                |> List.distinct
                |> List.sort

            let folded =
                bounds
                |> List.pairwise
                |> List.fold (fun pending (a, b) -> SharedSpend.fold shuffled[a .. b - 1] pending) SharedSpend.empty

            folded.Spent = direct.Spent
            && folded.Reserved = direct.Reserved
            && folded.Changed = direct.Changed)
    )
