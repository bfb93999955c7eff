namespace CcRelay.Core

open System

/// What one budget of a client has used in its current period.
[<Struct>]
type Spend = {
    /// The start (UTC) of the period these amounts belong to (`BudgetPeriods.startOf`).
    PeriodStart: DateTimeOffset
    /// Settled cost of requests that ended in the period, USD.
    Spent: decimal
    /// Estimated cost of requests admitted in the period and still in flight, USD.
    Reserved: decimal
    /// When the period ends (UTC; `DateTimeOffset.MaxValue` for a total budget): until then a request finds its
    /// period without a time-zone conversion.
    PeriodEnd: DateTimeOffset
}

/// One client's live limits: its rate buckets, its requests in flight, its spend per budget (in the order of
/// `ClientConfig.Budgets`).
type ClientState = {
    Rpm: TokenBucket.Bucket
    Itpm: TokenBucket.Bucket
    Otpm: TokenBucket.Bucket
    InFlight: int
    Spend: Spend array
}

/// What a request asks of its client's limits, estimated before the call.
[<Struct>]
type ClientDemand = {
    /// The requested model (budgets per model family match it).
    Model: string
    /// The input estimate (`RequestFacts.EstimatedInputTokens`).
    InputTokens: int64
    /// The most output the request may produce (`max_tokens`).
    OutputTokens: int64
    /// The cost estimate (`ClientLimits.estimate`), USD.
    CostUsd: decimal
}

/// Which budget of a client: its period and its models (None: every model), as a reload matches budgets.
type BudgetIdentity = BudgetPeriod * string option

/// What an admitted request holds until it is settled.
type ClientTicket = {
    Demand: ClientDemand
    /// The budgets the estimate was reserved in, by identity (not by index: a reload between the admission and the
    /// settlement may reorder, add or remove budgets; the settlement finds them in the config it settles under).
    Reserved: BudgetIdentity list
}

/// Why a client's request is refused before routing.
[<RequireQualifiedAccess>]
type ClientRefusal =
    /// A per-minute limit (`rpm`, `itpm`, `otpm`) or `max_concurrent` is reached; waiting `RetryAfter` helps.
    | RateLimited of Limit: string * RetryAfter: TimeSpan
    /// The request alone needs more than a per-minute limit allows: waiting never helps.
    | TooLarge of Limit: string * Needed: int64 * Capacity: int
    /// A budget has no room for the request's estimate. `ResetsAt`: when its period rolls over (None: a total budget).
    | OverBudget of Budget: Budget * SpentUsd: decimal * EstimateUsd: decimal * ResetsAt: DateTimeOffset option

/// The limits and budgets of `clients[]` as pure transitions (docs/teams.md), beside the key pools:
/// `admit` before routing, `settle` once after the request ends. Two clocks come in: `now` (monotonic) for the
/// per-minute buckets, `wall` (UTC) for the budgets' calendar.
///
/// The overshoot bound (checked by properties): a budget admits a request only while its settled spend plus
/// the estimates in flight plus this request's estimate fit under the cap, so spend exceeds the cap by at most
/// what the requests in flight cost beyond their estimates. The output side of an estimate is `max_tokens`, an
/// upper bound; the input side is an estimate from the body's size (priced at the dearer of input and cache
/// write), so the overshoot is what the input estimate missed.
[<RequireQualifiedAccess>]
module ClientLimits =

    let private limitsOf (capacity: int) : TokenBucket.Limits = TokenBucket.perMinute (max 1 capacity)

    let private periodEnd (zone: TimeZoneInfo) (period: BudgetPeriod) (wall: DateTimeOffset) : DateTimeOffset =
        BudgetPeriods.endOf zone period wall
        |> Option.defaultValue DateTimeOffset.MaxValue

    /// A client's state with nothing used, as of `now` and `wall`.
    let fresh (zone: TimeZoneInfo) (client: ClientConfig) (now: TimeSpan) (wall: DateTimeOffset) : ClientState = {
        Rpm = TokenBucket.full (limitsOf client.RpmLimit) now
        Itpm = TokenBucket.full (limitsOf client.ItpmLimit) now
        Otpm = TokenBucket.full (limitsOf client.OtpmLimit) now
        InFlight = 0
        Spend =
            client.Budgets
            |> List.map (fun b -> {
                PeriodStart = BudgetPeriods.startOf zone b.Period wall
                Spent = 0m
                Reserved = 0m
                PeriodEnd = periodEnd zone b.Period wall
            })
            |> Array.ofList
    }

    /// The cost estimate of a request before the call, USD: input at the dearer of the input and cache-write
    /// prices, output at `max_tokens`. Zero when the model has no price (such a request cannot be budgeted).
    let estimate (price: ModelPrice option) (inputTokens: int64) (outputTokens: int64) : decimal =
        match price with
        | None -> 0m
        | Some p ->
            (decimal inputTokens * max p.Input p.CacheWrite + decimal outputTokens * p.Output)
            / 1_000_000m

    /// A budget's identity: what a reload and a settlement find it by.
    let identity (budget: Budget) : BudgetIdentity = budget.Period, budget.Models

    /// Whether a budget counts requests for `model`.
    let applies (budget: Budget) (model: string) : bool =
        match budget.Models with
        | None -> true
        | Some pattern -> ModelPattern.matches pattern model

    /// Whether `wall` lies before the end of the span `[PeriodStart, PeriodEnd)` a budget's spend was last rolled
    /// into: then the budget stays in that period — the one holding `wall` (`BudgetPeriods`: a period is exactly
    /// the instants from its start to the next one's), or, when the wall clock was stepped back before its start, a
    /// later one (periods never go back: see `roll`) — found by one comparison, without a time-zone conversion.
    /// Ticks, not F#'s `<`, which compares a `DateTimeOffset` generically (boxing both).
    let private inPeriod (wall: DateTimeOffset) (spend: Spend) : bool =
        wall.UtcTicks < spend.PeriodEnd.UtcTicks

    /// The spend moved into the period holding `wall`: a new period starts with nothing spent, and with the
    /// estimates of the requests still in flight, which will be charged to the period they end in. Periods only
    /// move forward: a wall clock stepped back (NTP, a VM resumed, an operator) before the current period's start
    /// leaves the budget in that period — going back would start the earlier day again with nothing spent, and
    /// coming forward past midnight again would lose the day's spend a second time; what settles meanwhile is
    /// charged to the later period, the one the ledger's rows of the current period are in. The same as finding
    /// the period anew (`BudgetPeriods.startOf`) of the latest instant seen, at every call, which the property
    /// `cached period spans roll exactly as periods found anew` checks over any sequence of instants.
    let private roll (zone: TimeZoneInfo) (budget: Budget) (wall: DateTimeOffset) (spend: Spend) : Spend =
        if inPeriod wall spend then
            // the common case, without a time-zone conversion
            spend
        elif wall.UtcTicks < spend.PeriodStart.UtcTicks then
            // the clock stepped back before the period's start (and its span's end was never set): the period stays
            {
                spend with
                    PeriodEnd = periodEnd zone budget.Period spend.PeriodStart
            }
        else
            // the clock passed the span's end, or the span was never set
            let start = BudgetPeriods.startOf zone budget.Period wall

            if start.UtcTicks = spend.PeriodStart.UtcTicks then
                {
                    spend with
                        PeriodEnd = periodEnd zone budget.Period wall
                }
            else
                {
                    PeriodStart = start
                    Spent = 0m
                    Reserved = spend.Reserved
                    PeriodEnd = periodEnd zone budget.Period wall
                }

    /// Rolls every budget into the period holding `wall` (or keeps it in a later one: `roll`). While every
    /// budget's cached span holds `wall` (every request but the first of a period), the state itself is returned:
    /// one comparison per budget, nothing allocated, no time-zone conversion.
    let rollAll (zone: TimeZoneInfo) (client: ClientConfig) (wall: DateTimeOffset) (state: ClientState) : ClientState =
        let spend = state.Spend
        let mutable current = true
        let mutable i = 0

        while current && i < spend.Length do
            current <- inPeriod wall spend[i]
            i <- i + 1

        if current then
            state
        else
            let rolled = Array.copy spend
            let mutable budgets = client.Budgets
            let mutable i = 0

            while i < rolled.Length && not budgets.IsEmpty do
                rolled[i] <- roll zone budgets.Head wall rolled[i]
                budgets <- budgets.Tail
                i <- i + 1

            { state with Spend = rolled }

    /// When the period a refusal's budget is in rolls over: its cached span's end (None: a total budget).
    let private resetsAt (spend: Spend) : DateTimeOffset option =
        if spend.PeriodEnd.UtcTicks = DateTimeOffset.MaxValue.UtcTicks then
            None
        else
            Some spend.PeriodEnd

    /// Whether `identity` names `budget` (a hand-written equality: F#'s `=` on the tuple compares generically).
    let private isBudget (budget: Budget) (identity: BudgetIdentity) : bool =
        let period, models = identity

        let samePeriod =
            match budget.Period, period with
            | BudgetPeriod.Day, BudgetPeriod.Day
            | BudgetPeriod.Week, BudgetPeriod.Week
            | BudgetPeriod.Month, BudgetPeriod.Month
            | BudgetPeriod.Total, BudgetPeriod.Total -> true
            | _ -> false

        samePeriod
        && match budget.Models, models with
           | None, None -> true
           | Some a, Some b -> String.Equals(a, b, StringComparison.Ordinal)
           | _ -> false

    /// Whether a ticket reserved its estimate in `budget`.
    let private reservedIn (reserved: BudgetIdentity list) (budget: Budget) : bool =
        let mutable rest = reserved
        let mutable found = false

        while not found && not rest.IsEmpty do
            found <- isBudget budget rest.Head
            rest <- rest.Tail

        found

    /// Takes `cost` from a bucket whose limit is `capacity` (0: unlimited).
    let private take
        (name: string)
        (capacity: int)
        (now: TimeSpan)
        (cost: int64)
        (bucket: TokenBucket.Bucket)
        : Result<TokenBucket.Bucket, ClientRefusal> =
        if capacity <= 0 then
            Ok bucket
        else
            match TokenBucket.tryTake (limitsOf capacity) now cost bucket with
            | struct (TokenBucket.Granted, bucket) -> Ok bucket
            | struct (TokenBucket.Denied wait, _) -> Error(ClientRefusal.RateLimited(name, wait))
            | struct (TokenBucket.NeverSatisfiable, _) -> Error(ClientRefusal.TooLarge(name, cost, capacity))

    /// Admits a request or says why not. Admitted, it holds a request slot, its tokens and its estimate until
    /// `settle`. The state is unchanged by a refusal (other than budgets rolled into the current period).
    let admit
        (zone: TimeZoneInfo)
        (client: ClientConfig)
        (now: TimeSpan)
        (wall: DateTimeOffset)
        (demand: ClientDemand)
        (state: ClientState)
        : Result<ClientTicket, ClientRefusal> * ClientState =
        let state = rollAll zone client wall state
        let spend = state.Spend

        // the first budget (in config order) without room for the estimate; loops, not pipelines of closures and
        // tuples: this runs on every request of a client
        let mutable overBudget = None
        let mutable budgets = client.Budgets
        let mutable i = 0

        while overBudget.IsNone && i < spend.Length && not budgets.IsEmpty do
            let b = budgets.Head
            let s = spend[i]
            let committed = s.Spent + s.Reserved

            if
                applies b demand.Model
                && (committed >= b.LimitUsd || committed + demand.CostUsd > b.LimitUsd)
            then
                overBudget <- Some(ClientRefusal.OverBudget(b, s.Spent, demand.CostUsd, resetsAt s))

            budgets <- budgets.Tail
            i <- i + 1

        let refused =
            match overBudget with
            | Some _ -> overBudget
            | None when client.MaxConcurrent > 0 && state.InFlight >= client.MaxConcurrent ->
                // a slot frees when a request ends: no clock says when, so a short wait
                Some(ClientRefusal.RateLimited("max_concurrent", TimeSpan.FromSeconds 1.0))
            | None -> None

        match refused with
        | Some refusal -> Error refusal, state
        | None ->
            match take "rpm" client.RpmLimit now 1L state.Rpm with
            | Error refusal -> Error refusal, state
            | Ok rpm ->
                match take "itpm" client.ItpmLimit now demand.InputTokens state.Itpm with
                | Error refusal -> Error refusal, state
                | Ok itpm ->
                    match take "otpm" client.OtpmLimit now demand.OutputTokens state.Otpm with
                    | Error refusal -> Error refusal, state
                    | Ok otpm ->
                        let spend = Array.copy spend

                        let mutable reserved =
                            Microsoft.FSharp.Core.CompilerServices.ListCollector<BudgetIdentity>()

                        let mutable budgets = client.Budgets
                        let mutable i = 0

                        while i < spend.Length && not budgets.IsEmpty do
                            let b = budgets.Head

                            if applies b demand.Model then
                                spend[i] <- {
                                    spend[i] with
                                        Reserved = spend[i].Reserved + demand.CostUsd
                                }

                                reserved.Add(identity b)

                            budgets <- budgets.Tail
                            i <- i + 1

                        Ok {
                            Demand = demand
                            Reserved = reserved.Close()
                        },
                        {
                            Rpm = rpm
                            Itpm = itpm
                            Otpm = otpm
                            InFlight = state.InFlight + 1
                            Spend = spend
                        }

    /// Settles an admitted request once it ended: its slot is freed, the token estimates are corrected by the
    /// real usage (refunded or charged late; None: the estimate stands), and its cost replaces its estimate in
    /// the budgets (None: the estimate is kept as its cost). A request that ends in a later period than it was
    /// admitted in is charged to the period it ended in, as the ledger (which records its end) counts it; its
    /// estimate was carried into that period when it rolled over. `client` is the config the state is under now
    /// (a reload since the admission may have reordered its budgets): the ticket's budgets are found by identity.
    let settle
        (zone: TimeZoneInfo)
        (client: ClientConfig)
        (now: TimeSpan)
        (wall: DateTimeOffset)
        (ticket: ClientTicket)
        (usage: Usage option)
        (costUsd: decimal option)
        (state: ClientState)
        : ClientState =
        let state = rollAll zone client wall state
        let demand = ticket.Demand

        let correct (capacity: int) (estimated: int64) (actual: int64) (bucket: TokenBucket.Bucket) =
            if capacity <= 0 then
                bucket
            else
                TokenBucket.adjust (limitsOf capacity) now (estimated - actual) bucket

        let itpm, otpm =
            match usage with
            | Some u ->
                correct client.ItpmLimit demand.InputTokens (Usage.promptTokens u) state.Itpm,
                correct client.OtpmLimit demand.OutputTokens u.OutputTokens state.Otpm
            | None -> state.Itpm, state.Otpm

        let cost =
            match costUsd with
            | Some c when c > 0m -> c
            | Some _ -> 0m
            | None -> max 0m demand.CostUsd

        let spend = Array.copy state.Spend
        let mutable budgets = client.Budgets
        let mutable i = 0

        while i < spend.Length && not budgets.IsEmpty do
            // by identity: a budget a reload removed is gone, one it added was not reserved in
            if reservedIn ticket.Reserved budgets.Head then
                spend[i] <- {
                    spend[i] with
                        Reserved = max 0m (spend[i].Reserved - demand.CostUsd)
                        Spent = spend[i].Spent + cost
                }

            budgets <- budgets.Tail
            i <- i + 1

        {
            state with
                Itpm = itpm
                Otpm = otpm
                InFlight = max 0 (state.InFlight - 1)
                Spend = spend
        }

    /// Adds spend recorded before the relay started (the ledger's rows) to the budgets it falls in: a row of
    /// `model` that ended at `at` and cost `costUsd`. Rows from before a budget's current period count nothing.
    let restore
        (zone: TimeZoneInfo)
        (client: ClientConfig)
        (wall: DateTimeOffset)
        (model: string)
        (at: DateTimeOffset)
        (costUsd: decimal)
        (state: ClientState)
        : ClientState =
        let state = rollAll zone client wall state
        let budgets = Array.ofList client.Budgets
        let spend = Array.copy state.Spend

        for i in 0 .. budgets.Length - 1 do
            if applies budgets[i] model && at >= spend[i].PeriodStart && costUsd > 0m then
                spend[i] <- {
                    spend[i] with
                        Spent = spend[i].Spent + costUsd
                }

        { state with Spend = spend }

    /// Whether two configs of a client have the same limits and budgets (whatever their keys, expiry or
    /// allowances): a new key (a rotation, a grace-period key) leaves the client's state as it is.
    let sameLimits (a: ClientConfig) (b: ClientConfig) : bool =
        a.RpmLimit = b.RpmLimit
        && a.ItpmLimit = b.ItpmLimit
        && a.OtpmLimit = b.OtpmLimit
        && a.MaxConcurrent = b.MaxConcurrent
        && a.Budgets = b.Budgets

    /// The state under a reloaded config of the same client: rate buckets and requests in flight kept, spend
    /// kept for budgets that did not change (matched by period and models), new budgets start from nothing.
    let relimit
        (zone: TimeZoneInfo)
        (before: ClientConfig)
        (after: ClientConfig)
        (now: TimeSpan)
        (wall: DateTimeOffset)
        (state: ClientState)
        : ClientState =
        let fresh = fresh zone after now wall
        let old = List.zip before.Budgets (List.ofArray state.Spend)

        let keep
            (capacityBefore: int)
            (capacityAfter: int)
            (bucket: TokenBucket.Bucket)
            (freshBucket: TokenBucket.Bucket)
            =
            if capacityBefore = capacityAfter then
                bucket
            else
                TokenBucket.relimit (limitsOf capacityBefore) (limitsOf capacityAfter) now bucket
                |> fun b -> if capacityBefore <= 0 then freshBucket else b

        {
            Rpm = keep before.RpmLimit after.RpmLimit state.Rpm fresh.Rpm
            Itpm = keep before.ItpmLimit after.ItpmLimit state.Itpm fresh.Itpm
            Otpm = keep before.OtpmLimit after.OtpmLimit state.Otpm fresh.Otpm
            InFlight = state.InFlight
            Spend =
                after.Budgets
                |> List.mapi (fun i b ->
                    old
                    |> List.tryFind (fun (o, _) -> identity o = identity b)
                    |> Option.map snd
                    |> Option.defaultValue fresh.Spend[i])
                |> Array.ofList
        }

    /// The cost a finished request settles with: its answer's cost when the answer reported usage (None when
    /// its model has no price: the estimate stands); nothing when no upstream answered it or it failed without
    /// usage (providers do not bill errors); else (a stream cut before its usage) the estimate stands.
    let settledCost (attempted: bool) (status: int) (usageKnown: bool) (costUsd: decimal option) : decimal option =
        if usageKnown then
            costUsd
        elif not attempted || status >= 400 || status = 0 then
            Some 0m
        else
            None

    /// The Anthropic error a refusal is answered with, chosen by what the real Claude Code CLI (2.1.197) does with
    /// each (docs/teams.md): 429 `rate_limit_error` whenever waiting helps — a limit, or a budget whose period
    /// rolls over (with `retry-after`: Claude Code retries by itself up to a minute, and shows "Request rejected
    /// (429) · <message>" at once for a longer wait); 400 `invalid_request_error` when waiting never helps (a spent
    /// `total_usd`, a request larger than a per-minute limit). Not 403: Claude Code prefixes every 403 with
    /// "Failed to authenticate", which would send the user to their key.
    let errorType (refusal: ClientRefusal) : ErrorType =
        match refusal with
        | ClientRefusal.RateLimited _
        | ClientRefusal.OverBudget(_, _, _, Some _) -> ErrorType.RateLimit
        | ClientRefusal.TooLarge _
        | ClientRefusal.OverBudget(_, _, _, None) -> ErrorType.InvalidRequest

    /// The short reason for metrics and the ledger: `rpm`, `itpm`, `otpm`, `max_concurrent`, `too_large`, `budget`.
    let reason (refusal: ClientRefusal) : string =
        match refusal with
        | ClientRefusal.RateLimited(limit, _) -> limit
        | ClientRefusal.TooLarge _ -> "too_large"
        | ClientRefusal.OverBudget _ -> "budget"

    /// The budget a refusal is for, for the audit log: its period's wire name (`day`, `week`, `month`, `total`),
    /// with `:<pattern>` for a `by_model` cap (`week:claude-opus-*`); None when the refusal is not a budget's.
    let budgetOf (refusal: ClientRefusal) : string option =
        match refusal with
        | ClientRefusal.OverBudget(budget, _, _, _) ->
            match budget.Models with
            | Some pattern -> Some $"%s{budget.Period.WireName}:%s{pattern}"
            | None -> Some budget.Period.WireName
        | ClientRefusal.RateLimited _
        | ClientRefusal.TooLarge _ -> None

    /// The `retry-after` of a refusal, in whole seconds rounded up (at least 1); None when waiting never helps.
    let retryAfter (wall: DateTimeOffset) (refusal: ClientRefusal) : int64 option =
        let seconds (wait: TimeSpan) =
            max 1L (int64 (Math.Ceiling wait.TotalSeconds))

        match refusal with
        | ClientRefusal.RateLimited(_, wait) -> Some(seconds wait)
        | ClientRefusal.TooLarge _ -> None
        | ClientRefusal.OverBudget(_, _, _, Some resetsAt) -> Some(seconds (resetsAt - wall))
        | ClientRefusal.OverBudget(_, _, _, None) -> None

    /// What the client is told (no secret, no other client's figures).
    let describe (client: ClientConfig) (refusal: ClientRefusal) : string =
        let money (d: decimal) =
            d.ToString("0.00##", Globalization.CultureInfo.InvariantCulture)

        match refusal with
        | ClientRefusal.RateLimited("max_concurrent", _) ->
            $"client %s{client.Name} has %d{client.MaxConcurrent} requests in flight, its max_concurrent limit; retry when one ends"
        | ClientRefusal.RateLimited(limit, wait) ->
            $"client %s{client.Name} reached its %s{limit}_limit; retry in %d{max 1L (int64 (Math.Ceiling wait.TotalSeconds))} s"
        | ClientRefusal.TooLarge(limit, needed, capacity) ->
            $"this request needs %d{needed} tokens, more than client %s{client.Name}'s %s{limit}_limit of %d{capacity} per minute allows"
        | ClientRefusal.OverBudget(budget, spent, estimate, resetsAt) ->
            let scope =
                match budget.Models with
                | Some pattern -> $" for models %s{pattern}"
                | None -> ""

            let resets =
                match resetsAt with
                | Some at ->
                    let shown =
                        at.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", Globalization.CultureInfo.InvariantCulture)

                    $"; it resets at %s{shown}"
                | None -> "; it does not reset: ask the relay's operator"

            $"client %s{client.Name} has used USD %s{money spent} of its %s{budget.Period.WireName} budget of USD %s{money budget.LimitUsd}%s{scope} (this request may cost up to USD %s{money estimate})%s{resets}"

/// The C#-facing surface of `ClientState`.
type ClientState with

    /// Settles an admitted request (`ClientLimits.settle`): `usage` null and `costUsd` without a value when unknown.
    member this.Settle
        (
            zone: TimeZoneInfo,
            client: ClientConfig,
            now: TimeSpan,
            wall: DateTimeOffset,
            ticket: ClientTicket,
            usage: Usage | null,
            costUsd: Nullable<decimal>
        ) : ClientState =
        ClientLimits.settle zone client now wall ticket (Option.ofObj usage) (Option.ofNullable costUsd) this
