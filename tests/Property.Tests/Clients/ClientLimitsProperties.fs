/// Client limits and budgets over any interleaving of admissions and settlements (docs/teams.md).
module CcRelay.Core.Properties.ClientLimitsProperties

open System
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core

/// One step: admit a request (its estimate and, once settled, its real cost as a multiple of the estimate in
/// percent), settle the request in flight at an index, or let time pass.
type private Op =
    | Admit of Model: int * EstimateCents: int * ActualPercent: int * Known: bool
    | Settle of Index: int
    | Wait of Seconds: int

let private models = [| "claude-opus-4-5"; "claude-sonnet-4-5" |]

/// A client with five budgets (day, weekly Opus, month, total, daily Sonnet) of the given caps in cents, no other limit.
let private fiveBudgetClient (caps: int list) : ClientConfig =
    let budget period cents models = {
        Period = period
        LimitUsd = decimal cents / 100m
        Models = models
    }

    {
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
            budget BudgetPeriod.Day caps[0] None
            budget BudgetPeriod.Week caps[1] (Some "claude-opus-*")
            budget BudgetPeriod.Month caps[2] None
            budget BudgetPeriod.Total (caps[3] * 10) None
            budget BudgetPeriod.Day caps[4] (Some "claude-sonnet-4-5")
        ]
        Metadata = []
    }

let private op: Gen<Op> =
    Gen.frequency [
        5,
        gen {
            let! model = Gen.choose (0, 1)
            let! cents = Gen.choose (0, 300)
            // real costs from nothing to twice the estimate: underestimates happen (the input side is a guess)
            let! percent = Gen.frequency [ 4, Gen.choose (0, 100); 1, Gen.choose (100, 200) ]
            let! known = Gen.frequency [ 5, Gen.constant true; 1, Gen.constant false ]
            return Admit(model, cents, percent, known)
        }
        3, Gen.choose (0, 20) |> Gen.map Settle
        1,
        Gen.frequency [ 3, Gen.choose (0, 30); 1, Gen.choose (0, 3 * 86_400) ]
        |> Gen.map Wait
    ]

let private client: Gen<ClientConfig> =
    gen {
        let! rpm = Gen.choose (0, 10)
        let! concurrent = Gen.choose (0, 5)
        let! dayCap = Gen.choose (1, 1000)
        let! opusWeekCap = Gen.choose (1, 1000)

        return {
            Name = "c"
            KeyDigest = Array.zeroCreate 32
            KeyId = "00000000"
            ExpiresAt = None
            Providers = []
            Models = []
            Stages = []
            RpmLimit = rpm
            ItpmLimit = 0
            OtpmLimit = 0
            MaxConcurrent = concurrent
            Budgets = [
                {
                    Period = BudgetPeriod.Day
                    LimitUsd = decimal dayCap / 100m
                    Models = None
                }
                {
                    Period = BudgetPeriod.Week
                    LimitUsd = decimal opusWeekCap / 100m
                    Models = Some "claude-opus-*"
                }
            ]
            Metadata = []
        }
    }

let private scenario =
    gen {
        let! client = client
        let! ops = Gen.listOf op |> Gen.resize 80
        // start anywhere in a week, in UTC or a zone with daylight saving
        let! startMinute = Gen.choose (0, 7 * 24 * 60)
        let! zone = Gen.elements [ "UTC"; "Europe/Berlin"; "America/New_York" ]
        return client, ops, startMinute, zone
    }
    |> Check.arb

/// What the model of the property tracks per budget and period: what was settled, and the overshoot allowed
/// (the real cost beyond the estimate of every request settled in the period).
type private Ledger = Map<int * DateTimeOffset, decimal * decimal>

[<Fact>]
let ``budgets never hold more than cap + what settled requests cost beyond their estimates, over any interleaving`` () =
    Check.property (
        Prop.forAll scenario (fun (client, ops, startMinute, zoneId) ->
            let zone = TimeZoneInfo.FindSystemTimeZoneById zoneId

            let start =
                DateTimeOffset(2026, 12, 7, 0, 0, 0, TimeSpan.Zero).AddMinutes(float startMinute)

            let budgets = Array.ofList client.Budgets
            let mutable now = TimeSpan.FromHours 1.0
            let mutable wall = start
            let mutable state = ClientLimits.fresh zone client now wall
            let mutable inFlight: (ClientTicket * decimal option) list = []
            let mutable excess: Ledger = Map.empty
            let mutable ok = true

            let check () =
                for i in 0 .. budgets.Length - 1 do
                    let s = state.Spend[i]

                    let allowed =
                        excess.TryFind(i, s.PeriodStart) |> Option.map snd |> Option.defaultValue 0m

                    if s.Spent + s.Reserved > budgets[i].LimitUsd + allowed || s.Reserved < 0m then
                        ok <- false

                if client.MaxConcurrent > 0 && state.InFlight > client.MaxConcurrent then
                    ok <- false

            for step in ops do
                match step with
                | Wait seconds ->
                    now <- now + TimeSpan.FromSeconds(float seconds)
                    wall <- wall.AddSeconds(float seconds)
                | Admit(model, cents, percent, known) ->
                    let estimate = decimal cents / 100m

                    let demand = {
                        Model = models[model]
                        InputTokens = 100L
                        OutputTokens = 100L
                        CostUsd = estimate
                    }

                    match ClientLimits.admit zone client now wall demand state with
                    | Ok ticket, next ->
                        state <- next

                        let actual =
                            if known then
                                Some(estimate * decimal percent / 100m)
                            else
                                None

                        inFlight <- inFlight @ [ ticket, actual ]
                    | Error _, next -> state <- next
                | Settle index when not inFlight.IsEmpty ->
                    let index = index % inFlight.Length
                    let ticket, actual = inFlight[index]
                    inFlight <- inFlight |> List.removeAt index
                    state <- ClientLimits.settle zone client now wall ticket None actual state

                    // the overshoot this settlement may add to each budget it is charged to (the period it ends in)
                    let beyond =
                        max 0m ((actual |> Option.defaultValue ticket.Demand.CostUsd) - ticket.Demand.CostUsd)

                    for i in 0 .. budgets.Length - 1 do
                        if ClientLimits.applies budgets[i] ticket.Demand.Model then
                            let key = i, state.Spend[i].PeriodStart
                            let settled, allowed = excess.TryFind key |> Option.defaultValue (0m, 0m)
                            excess <- excess.Add(key, (settled, allowed + beyond))
                | Settle _ -> ()

                check ()

            ok)
    )

[<Fact>]
let ``rpm: no window of a minute admits more than twice the limit (a full bucket plus a minute's refill)`` () =
    let gen =
        gen {
            let! rpm = Gen.choose (1, 20)

            let! gaps =
                Gen.listOf (Gen.frequency [ 4, Gen.constant 0; 3, Gen.choose (0, 5_000); 1, Gen.choose (0, 60_000) ])

            return rpm, gaps
        }
        |> Check.arb

    Check.property (
        Prop.forAll gen (fun (rpm, gaps) ->
            let client = {
                Name = "c"
                KeyDigest = Array.zeroCreate 32
                KeyId = "00000000"
                ExpiresAt = None
                Providers = []
                Models = []
                Stages = []
                RpmLimit = rpm
                ItpmLimit = 0
                OtpmLimit = 0
                MaxConcurrent = 0
                Budgets = []
                Metadata = []
            }

            let wall = DateTimeOffset(2026, 12, 7, 0, 0, 0, TimeSpan.Zero)
            let mutable now = TimeSpan.FromHours 1.0
            let mutable state = ClientLimits.fresh TimeZoneInfo.Utc client now wall
            let mutable admitted = []

            for gap in gaps do
                now <- now + TimeSpan.FromMilliseconds(float gap)

                let demand = {
                    Model = "m"
                    InputTokens = 0L
                    OutputTokens = 0L
                    CostUsd = 0m
                }

                match ClientLimits.admit TimeZoneInfo.Utc client now wall demand state with
                | Ok _, next ->
                    state <- next
                    admitted <- now :: admitted
                | Error(ClientRefusal.RateLimited(_, wait)), next ->
                    state <- next
                    // the promise: after the wait, one request is admitted (nothing else spends meanwhile)
                    match ClientLimits.admit TimeZoneInfo.Utc client (now + wait) wall demand state with
                    | Ok _, _ -> ()
                    | Error e, _ -> failwith $"retry-after broke its promise: %A{e}"
                | Error e, _ -> failwith $"%A{e}"

            admitted
            |> List.forall (fun t ->
                admitted
                |> List.filter (fun u -> u >= t && u < t + TimeSpan.FromMinutes 1.0)
                |> List.length
                <= 2 * rpm))
    )

[<Fact>]
let ``period roll-over: every instant lies in [startOf, endOf), and endOf is the next period's start`` () =
    let gen =
        gen {
            let! minutes = Gen.choose (0, 3 * 366 * 24 * 60)

            let! period =
                Gen.elements [ BudgetPeriod.Day; BudgetPeriod.Week; BudgetPeriod.Month ]

            let! zone =
                Gen.elements [
                    "UTC"
                    "Europe/Berlin"
                    "America/New_York"
                    "Asia/Kolkata"
                    "Australia/Lord_Howe"
                ]

            return minutes, period, zone
        }
        |> Check.arb

    Check.quick
        1000
        (Prop.forAll gen (fun (minutes, period, zoneId) ->
            let zone = TimeZoneInfo.FindSystemTimeZoneById zoneId

            let now =
                DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero).AddMinutes(float minutes)

            let start = BudgetPeriods.startOf zone period now
            let finish = (BudgetPeriods.endOf zone period now).Value
            let local = TimeZoneInfo.ConvertTime(start, zone)

            start <= now
            && now < finish
            && BudgetPeriods.startOf zone period finish = finish
            && BudgetPeriods.startOf zone period (finish.AddTicks -1L) = start
            && (period <> BudgetPeriod.Week || local.DayOfWeek = DayOfWeek.Monday)
            && (period <> BudgetPeriod.Month || local.Day = 1)))

/// A step of the cache property: spend (admit a request of a model, its real cost a percentage of its estimate),
/// finish the request in flight at an index, or move the wall clock (forward, or back a little).
type private Step =
    | Spend of Model: int * Cents: int * Percent: int
    | Finish of Index: int
    | Move of Seconds: int

/// Zones with and without daylight saving, among them zones whose midnight a change skips (Santiago, Gaza,
/// Havana in spring) or repeats (Havana and Gaza in autumn), and a half-hour change (Lord Howe).
let private zoneIds = [|
    "UTC"
    "Asia/Kolkata"
    "Europe/Berlin"
    "America/New_York"
    "America/Havana"
    "Asia/Gaza"
    "America/Santiago"
    "Australia/Lord_Howe"
|]

/// The instants (to the hour) at which each zone's offset changes, 2025–2027; none: month starts in 2026.
let private changes =
    zoneIds
    |> Array.map (fun id ->
        let zone = TimeZoneInfo.FindSystemTimeZoneById id
        let from = DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero)

        let found = [|
            for h in 0 .. 3 * 365 * 24 - 1 do
                let at = from.AddHours(float h)

                if zone.GetUtcOffset at <> zone.GetUtcOffset(at.AddHours 1.0) then
                    yield at.AddHours 1.0
        |]

        if found.Length > 0 then
            found
        else
            Array.init 12 (fun m -> DateTimeOffset(2026, m + 1, 1, 0, 0, 0, TimeSpan.Zero)))

[<Fact>]
let ``cached period spans roll exactly as periods found anew, over any sequence of instants`` () =
    let gen =
        gen {
            let! zone = Gen.choose (0, zoneIds.Length - 1)
            let! change = Gen.elements changes[zone]
            // from three days before a change (or a month start) to a day after it
            let! offset = Gen.choose (-3 * 24 * 60, 24 * 60)
            let! caps = Gen.listOfLength 5 (Gen.choose (1, 2000))

            let step =
                Gen.frequency [
                    4,
                    gen {
                        let! model = Gen.choose (0, 1)
                        let! cents = Gen.choose (0, 300)
                        let! percent = Gen.choose (0, 200)
                        return Spend(model, cents, percent)
                    }
                    3, Gen.choose (0, 20) |> Gen.map Finish
                    6, Gen.choose (0, 1800) |> Gen.map Move
                    2, Gen.choose (0, 6 * 3600) |> Gen.map Move
                    1, Gen.choose (0, 3 * 86_400) |> Gen.map Move
                    // the clock set back a little (NTP), sometimes across a period's start
                    1, Gen.choose (-300, 0) |> Gen.map Move
                ]

            let! steps = Gen.listOfLength 120 step
            return zone, change.AddMinutes(float offset), caps, steps
        }
        |> Check.arb

    Check.quick
        500
        (Prop.forAll gen (fun (zoneIndex, start, caps, steps) ->
            let zone = TimeZoneInfo.FindSystemTimeZoneById zoneIds[zoneIndex]

            let client = fiveBudgetClient caps

            // "anew": every cached span forgotten before each step, so every budget's period is found from the
            // calendar (`BudgetPeriods.startOf`) as if nothing were cached
            let forget (state: ClientState) = {
                state with
                    Spend =
                        state.Spend
                        |> Array.map (fun s -> {
                            s with
                                PeriodEnd = DateTimeOffset.MinValue
                        })
            }

            let same (a: ClientState) (b: ClientState) =
                a.InFlight = b.InFlight
                && a.Rpm = b.Rpm
                && a.Itpm = b.Itpm
                && a.Otpm = b.Otpm
                && Array.forall2
                    (fun (x: Spend) (y: Spend) ->
                        x.PeriodStart = y.PeriodStart && x.Spent = y.Spent && x.Reserved = y.Reserved)
                    a.Spend
                    b.Spend

            let now = TimeSpan.FromHours 1.0
            let mutable wall = start
            // the latest instant a transition read: a budget stays in its period when the clock is set back
            let mutable latest = start
            let mutable cached = ClientLimits.fresh zone client now wall
            let mutable anew = cached
            let mutable inFlight: (ClientTicket * decimal) list = []
            let mutable failure = None

            for step in steps do
                if failure.IsNone then
                    match step with
                    | Move seconds -> wall <- wall.AddSeconds(float seconds)
                    | Spend(model, cents, percent) ->
                        latest <- if wall > latest then wall else latest

                        let demand = {
                            Model = models[model]
                            InputTokens = 10L
                            OutputTokens = 10L
                            CostUsd = decimal cents / 100m
                        }

                        let a, nextCached = ClientLimits.admit zone client now wall demand cached
                        let b, nextAnew = ClientLimits.admit zone client now wall demand (forget anew)
                        cached <- nextCached
                        anew <- nextAnew

                        if a <> b then
                            failure <- Some $"admit at %O{wall}: %A{a} <> %A{b}"

                        match a with
                        | Ok ticket -> inFlight <- inFlight @ [ ticket, demand.CostUsd * decimal percent / 100m ]
                        | Error _ -> ()
                    | Finish index when not inFlight.IsEmpty ->
                        latest <- if wall > latest then wall else latest
                        let ticket, cost = inFlight[index % inFlight.Length]
                        inFlight <- inFlight |> List.removeAt (index % inFlight.Length)
                        cached <- ClientLimits.settle zone client now wall ticket None (Some cost) cached
                        anew <- ClientLimits.settle zone client now wall ticket None (Some cost) (forget anew)
                    | Finish _ -> ()

                    // both agree, and each budget's period is the calendar's period holding the latest instant the
                    // clock has read (the wall clock itself unless it was set back across a period's start)
                    let rolled = ClientLimits.rollAll zone client wall cached
                    let latest = if wall > latest then wall else latest

                    if failure.IsNone && not (same cached anew) then
                        failure <- Some $"state after %A{step} at %O{wall}: %A{cached.Spend} <> %A{anew.Spend}"

                    client.Budgets
                    |> List.iteri (fun i b ->
                        let s = rolled.Spend[i]

                        if
                            failure.IsNone
                            && (s.PeriodStart <> BudgetPeriods.startOf zone b.Period latest
                                || latest < s.PeriodStart
                                || latest >= s.PeriodEnd)
                        then
                            failure <- Some $"budget %d{i} at %O{wall}: %A{s}")

            match failure with
            | None -> true
            | Some message -> failwith message))

[<Fact>]
let ``a wall clock set back, even across a period's start, admits and charges as the latest instant it read`` () =
    let gen =
        gen {
            let! zone = Gen.choose (0, zoneIds.Length - 1)
            // from a little before a local midnight (a day, and sometimes a week or month, starts there) onwards
            let! day = Gen.choose (0, 3 * 365)
            let! offset = Gen.choose (-90, 30)
            let! caps = Gen.listOfLength 5 (Gen.choose (1, 2000))

            let step =
                Gen.frequency [
                    4,
                    gen {
                        let! model = Gen.choose (0, 1)
                        let! cents = Gen.choose (0, 300)
                        let! percent = Gen.choose (0, 200)
                        return Spend(model, cents, percent)
                    }
                    3, Gen.choose (0, 20) |> Gen.map Finish
                    4, Gen.choose (0, 900) |> Gen.map Move
                    1, Gen.choose (0, 86_400) |> Gen.map Move
                    // set back: NTP (seconds to minutes), a VM's clock restored (hours, a day)
                    2, Gen.choose (-600, 0) |> Gen.map Move
                    1, Gen.choose (-2 * 86_400, 0) |> Gen.map Move
                ]

            let! steps = Gen.listOfLength 80 step
            return zone, day, offset, caps, steps
        }
        |> Check.arb

    Check.quick
        500
        (Prop.forAll gen (fun (zoneIndex, day, offset, caps, steps) ->
            let zone = TimeZoneInfo.FindSystemTimeZoneById zoneIds[zoneIndex]

            let start =
                (BudgetPeriods.startOf
                    zone
                    BudgetPeriod.Day
                    (DateTimeOffset(2025, 1, 1, 12, 0, 0, TimeSpan.Zero).AddDays(float day)))
                    .AddMinutes(float offset)

            let client = fiveBudgetClient caps

            let same (a: ClientState) (b: ClientState) =
                a.InFlight = b.InFlight
                && Array.forall2
                    (fun (x: Spend) (y: Spend) ->
                        x.PeriodStart = y.PeriodStart
                        && x.PeriodEnd = y.PeriodEnd
                        && x.Spent = y.Spent
                        && x.Reserved = y.Reserved)
                    a.Spend
                    b.Spend

            // one relay whose clock is set back, one whose clock holds at the latest instant a transition read
            let now = TimeSpan.FromHours 1.0
            let mutable wall = start
            let mutable latest = start
            let mutable back = ClientLimits.fresh zone client now wall
            let mutable held = back
            let mutable inFlight: (ClientTicket * ClientTicket * decimal) list = []
            let mutable failure = None

            for step in steps do
                if failure.IsNone then
                    match step with
                    | Move seconds -> wall <- wall.AddSeconds(float seconds)
                    | Spend(model, cents, percent) ->
                        latest <- if wall > latest then wall else latest

                        let demand = {
                            Model = models[model]
                            InputTokens = 10L
                            OutputTokens = 10L
                            CostUsd = decimal cents / 100m
                        }

                        let a, nextBack = ClientLimits.admit zone client now wall demand back
                        let b, nextHeld = ClientLimits.admit zone client now latest demand held
                        back <- nextBack
                        held <- nextHeld

                        match a, b with
                        | Ok ta, Ok tb -> inFlight <- inFlight @ [ ta, tb, demand.CostUsd * decimal percent / 100m ]
                        | Error ra, Error rb when ra = rb -> ()
                        | _ -> failure <- Some $"admit at %O{wall} (latest %O{latest}): %A{a} <> %A{b}"
                    | Finish index when not inFlight.IsEmpty ->
                        latest <- if wall > latest then wall else latest
                        let ta, tb, cost = inFlight[index % inFlight.Length]
                        inFlight <- inFlight |> List.removeAt (index % inFlight.Length)
                        back <- ClientLimits.settle zone client now wall ta None (Some cost) back
                        held <- ClientLimits.settle zone client now latest tb None (Some cost) held
                    | Finish _ -> ()

                    if failure.IsNone && not (same back held) then
                        failure <-
                            Some
                                $"state after %A{step} at %O{wall} (latest %O{latest}): %A{back.Spend} <> %A{held.Spend}"

            match failure with
            | None -> true
            | Some message -> failwith message))
