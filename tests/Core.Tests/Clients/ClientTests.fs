/// `clients[]` and `ledger`: decoding, client keys, limits, budgets and their calendar (docs/teams.md).
module CcRelay.Core.Tests.ClientTests

open System
open System.Security.Cryptography
open System.Text
open CcRelay.Core
open Xunit

let private env (vars: (string * string) list) (name: string) : string option =
    vars |> List.tryFind (fst >> (=) name) |> Option.map snd

let private loadWith (vars: (string * string) list) (toml: string) : ConfigLoad =
    match Toml.parse toml with
    | Ok node -> ConfigDecode.decode (env vars) node
    | Error e -> failwith e.Message

let private load = loadWith [ "ALICE_KEY", "alice-relay-key-0123456789" ]

let private loaded (result: ConfigLoad) : RelayConfig =
    match result with
    | Loaded(config, _) -> config
    | Invalid(errors, _) -> failwith (errors |> List.map string |> String.concat "\n")

let private errors (result: ConfigLoad) : ConfigIssue list =
    match result with
    | Invalid(errors, _) -> errors
    | Loaded _ -> failwith "expected errors"

let private providers =
    """
[[providers]]
name = "anthropic"
type = "anthropic"
"""

let private sha (text: string) : string =
    Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes text))

// ---------------------------
// Decoding
// ---------------------------

[<Fact>]
let ``a client decodes with its key hashed, limits, budgets per period and per model family, metadata`` () =
    let config =
        load (
            providers
            + """
[[clients]]
name = "alice"
key = "${ALICE_KEY}"
expires = 2027-01-31T00:00:00Z
providers = ["anthropic"]
models = ["claude-sonnet-*", "claude-haiku-*"]
stages = ["background"]
rpm_limit = 60
itpm_limit = 100000
otpm_limit = 20000
max_concurrent = 4
metadata = { team = "platform", owner = "alice@example.test" }

[clients.budget]
daily_usd = 10
monthly_usd = 150.5

[[clients.budget.by_model]]
models = "claude-opus-*"
weekly_usd = 20
"""
        )
        |> loaded

    let alice = Assert.Single config.Clients
    Assert.Equal("alice", alice.Name)
    Assert.Equal(sha "alice-relay-key-0123456789", Convert.ToHexStringLower alice.KeyDigest)
    Assert.Equal((sha "alice-relay-key-0123456789").Substring(0, 8), alice.KeyId)
    Assert.Equal(Some(DateTimeOffset(2027, 1, 31, 0, 0, 0, TimeSpan.Zero)), alice.ExpiresAt)
    Assert.Equal<string list>([ "anthropic" ], alice.Providers)
    Assert.Equal<string list>([ "claude-sonnet-*"; "claude-haiku-*" ], alice.Models)
    Assert.Equal<string list>([ "background" ], alice.Stages)
    Assert.Equal((60, 100000, 20000, 4), (alice.RpmLimit, alice.ItpmLimit, alice.OtpmLimit, alice.MaxConcurrent))

    Assert.Equal<Budget list>(
        [
            {
                Period = BudgetPeriod.Day
                LimitUsd = 10m
                Models = None
            }
            {
                Period = BudgetPeriod.Month
                LimitUsd = 150.5m
                Models = None
            }
            {
                Period = BudgetPeriod.Week
                LimitUsd = 20m
                Models = Some "claude-opus-*"
            }
        ],
        alice.Budgets
    )

    Assert.Equal<(string * string) list>([ "team", "platform"; "owner", "alice@example.test" ], alice.Metadata)

[<Fact>]
let ``key_sha256 stands for the key: the same digest and id`` () =
    let digest = (sha "alice-relay-key-0123456789").ToUpperInvariant()

    let config =
        load (providers + "[[clients]]\nname = \"ci\"\nkey_sha256 = \"" + digest + "\"\n")
        |> loaded

    Assert.Equal(sha "alice-relay-key-0123456789", Convert.ToHexStringLower (Assert.Single config.Clients).KeyDigest)

let private problems =
    """
[[clients]]
name = "bob"
key = "${SHORT}"
providers = ["anthropc"]
stages = ["backgruond"]

[[clients]]
name = "bad name!"
key_sha256 = "abc"
expires = "next tuesday"
rpm_limit = -1

[[clients]]
key = "a-long-enough-relay-key-1"
key_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"

[[clients]]
name = "bob"
key = "a-long-enough-relay-key-2"
budget = { weekly_usd = 0 }
"""

[<Fact>]
let ``every client problem is reported at its path, and no message shows a key`` () =
    let result = loadWith [ "SHORT", "short-key" ] (providers + problems)

    let shown = errors result |> List.map (fun e -> e.Path, e.Message)

    let paths = shown |> List.map fst |> Set.ofList

    for path in
        [
            "clients[0].key"
            "clients[0].providers[0]"
            "clients[0].stages[0]"
            "clients[1].name"
            "clients[1].key_sha256"
            "clients[1].expires"
            "clients[1].rpm_limit"
            "clients[2].name"
            "clients[2].key_sha256"
            "clients[3].budget.weekly_usd"
        ] do
        Assert.True(paths.Contains path, $"%s{path} not in %A{shown}")

    Assert.Contains(
        shown,
        fun (path, message) ->
            path = "clients[0].providers[0]"
            && message.Contains "did you mean \"anthropic\""
    )

    Assert.Contains(
        shown,
        fun (path, message) -> path = "clients[0].stages[0]" && message.Contains "did you mean \"background\""
    )

    for _, message in shown do
        Assert.DoesNotContain("short-key", message)
        Assert.DoesNotContain("a-long-enough-relay-key", message)

[<Fact>]
let ``two clients with one name or one key are an error at the second`` () =
    let twice =
        providers
        + "[[clients]]\nname = \"a\"\nkey = \"${ALICE_KEY}\"\n"
        + "[[clients]]\nname = \"a\"\nkey = \"another-relay-key-0123\"\n"
        + "[[clients]]\nname = \"b\"\nkey = \"${ALICE_KEY}\"\n"

    let shown = load twice |> errors |> List.map (fun e -> e.Path, e.Message)

    Assert.Equal<(string * string) list>(
        [
            "clients[1]", "has the same name as clients[0]"
            "clients[2]", "has the same key as clients[0]"
        ],
        shown
    )

[<Fact>]
let ``ledger: defaults, and an IANA time zone; an unknown one is an error`` () =
    let defaults = (load providers |> loaded).Ledger
    Assert.Equal(Config.defaultLedger, defaults)

    let berlin =
        load (
            providers
            + """
[ledger]
path = "/var/lib/cc-relay/ledger.db"
flush_interval_ms = 250
time_zone = "Europe/Berlin"
"""
        )
        |> loaded

    Assert.Equal(Some "/var/lib/cc-relay/ledger.db", berlin.Ledger.Path)
    Assert.Equal(250, berlin.Ledger.FlushIntervalMs)
    Assert.Equal("Europe/Berlin", berlin.Ledger.TimeZone.Id)

    let error =
        load (providers + "[ledger]\ntime_zone = \"Mars/Olympus\"\n")
        |> errors
        |> Assert.Single

    Assert.Equal("ledger.time_zone", error.Path)

// ---------------------------
// Client keys and server.auth
// ---------------------------

let private client (name: string) (key: string) : ClientConfig = {
    Name = name
    KeyDigest = ClientKeys.digest key
    KeyId = Convert.ToHexStringLower(ClientKeys.digest key).Substring(0, 8)
    ExpiresAt = None
    Providers = []
    Models = []
    Stages = []
    RpmLimit = 0
    ItpmLimit = 0
    OtpmLimit = 0
    MaxConcurrent = 0
    Budgets = []
    Metadata = []
}

let private openAuth =
    Auth.compile {
        ApiKey = None
        AllowBearer = false
        BearerSecret = None
    }

let private keyedAuth =
    Auth.compile {
        ApiKey = Some "operator-secret"
        AllowBearer = true
        BearerSecret = Some "operator-secret"
    }

let private noon = DateTimeOffset(2026, 12, 7, 12, 0, 0, TimeSpan.Zero)

[<Fact>]
let ``a client key in x-api-key or as a bearer token is that client, and is never forwarded`` () =
    let alice = client "alice" "alice-relay-key-0123456789"
    let bob = client "bob" "bob-relay-key-0123456789ab"

    match
        ClientKeys.authenticate [ alice; bob ] openAuth noon "bob-relay-key-0123456789ab" "Bearer user-oauth-token"
    with
    | Admitted(Some c, forward) ->
        Assert.Equal("bob", c.Name)
        Assert.Equal<Credential list>([ BearerToken "user-oauth-token" ], forward)
    | other -> failwith $"%A{other}"

    match ClientKeys.authenticate [ alice; bob ] openAuth noon null "Bearer alice-relay-key-0123456789" with
    | Admitted(Some c, forward) ->
        Assert.Equal("alice", c.Name)
        Assert.Empty forward
    | other -> failwith $"%A{other}"

[<Fact>]
let ``server.auth keeps working beside clients, as no client; an open relay with clients admits client keys only`` () =
    let alice = client "alice" "alice-relay-key-0123456789"

    match ClientKeys.authenticate [ alice ] keyedAuth noon "operator-secret" null with
    | Admitted(None, []) -> ()
    | other -> failwith $"%A{other}"

    match ClientKeys.authenticate [ alice ] keyedAuth noon "wrong" null with
    | Refused _ -> ()
    | other -> failwith $"%A{other}"

    match ClientKeys.authenticate [ alice ] openAuth noon "someone-else" null with
    | Refused reason -> Assert.Equal("invalid client key", reason)
    | other -> failwith $"%A{other}"

    match ClientKeys.authenticate [ alice ] openAuth noon null null with
    | Refused reason -> Assert.Contains("x-api-key", reason)
    | other -> failwith $"%A{other}"

    // without clients an open relay stays open
    match ClientKeys.authenticate [] openAuth noon "anything" null with
    | Admitted(None, [ ApiKey "anything" ]) -> ()
    | other -> failwith $"%A{other}"

[<Fact>]
let ``an expired key is refused with its id, not its secret`` () =
    let alice = {
        client "alice" "alice-relay-key-0123456789" with
            ExpiresAt = Some(noon.AddSeconds -1.0)
    }

    match ClientKeys.authenticate [ alice ] openAuth noon "alice-relay-key-0123456789" null with
    | Refused reason ->
        Assert.Contains(alice.KeyId, reason)
        Assert.Contains("expired", reason)
        Assert.DoesNotContain("alice-relay-key", reason)
    | other -> failwith $"%A{other}"

[<Fact>]
let ``allowed models, providers and stages`` () =
    let alice = {
        client "alice" "alice-relay-key-0123456789" with
            Models = [ "claude-sonnet-*" ]
            Providers = [ "anthropic" ]
            Stages = [ "review" ]
    }

    Assert.True(ClientKeys.allowsModel alice "claude-sonnet-4-5")
    Assert.False(ClientKeys.allowsModel alice "claude-opus-4-5")
    Assert.True(ClientKeys.allowsProvider alice "anthropic")
    Assert.False(ClientKeys.allowsProvider alice "bedrock")
    Assert.True(ClientKeys.allowsStage alice None)
    Assert.True(ClientKeys.allowsStage alice (Some "review"))
    Assert.False(ClientKeys.allowsStage alice (Some "plan"))
    Assert.True(ClientKeys.allowsModel (client "bob" "bob-relay-key-0123456789ab") "anything")

[<Fact>]
let ``a client with stages is refused another stage, naming it and the allowed ones`` () =
    let bg = {
        client "bg" "bg-relay-key-0123456789abcd" with
            Stages = [ "background"; "subagent" ]
    }

    Assert.Equal(Ok(), ClientAdmission.admitStage bg Stage.Background)
    Assert.Equal(Ok(), ClientAdmission.admitStage (client "bob" "bob-relay-key-0123456789ab") Stage.Think)

    match ClientAdmission.admitStage bg Stage.Think with
    | Error denial ->
        Assert.Equal(ErrorType.InvalidRequest, denial.Type)
        Assert.Equal("stage", denial.Reason)
        Assert.Contains("stage think", denial.Message)
        Assert.Contains("allowed stages: background, subagent", denial.Message)
        Assert.DoesNotContain("bg-relay-key", denial.Message)
    | Ok() -> failwith "a think request passed a background-only client"

// ---------------------------
// Limits and budgets
// ---------------------------

let private utc = TimeZoneInfo.Utc
let private t0 = TimeSpan.FromSeconds 100.0

let private demand (model: string) (cost: decimal) : ClientDemand = {
    Model = model
    InputTokens = 1000L
    OutputTokens = 500L
    CostUsd = cost
}

let private admitOk client now wall d state =
    match ClientLimits.admit utc client now wall d state with
    | Ok ticket, state -> ticket, state
    | Error refusal, _ -> failwith $"refused: %A{refusal}"

[<Fact>]
let ``rpm: the limit admits that many, then refuses with the wait until a request's worth refills`` () =
    let alice = {
        client "alice" "alice-relay-key-0123456789" with
            RpmLimit = 2
    }

    let state = ClientLimits.fresh utc alice t0 noon
    let _, state = admitOk alice t0 noon (demand "m" 0m) state
    let _, state = admitOk alice t0 noon (demand "m" 0m) state

    match ClientLimits.admit utc alice t0 noon (demand "m" 0m) state with
    | Error(ClientRefusal.RateLimited("rpm", wait) as refusal), _ ->
        Assert.Equal(TimeSpan.FromSeconds 30.0, wait)
        Assert.Equal(Some 30L, ClientLimits.retryAfter noon refusal)
    | other -> failwith $"%A{other}"

    let _, _ = admitOk alice (t0 + TimeSpan.FromSeconds 30.0) noon (demand "m" 0m) state
    ()

[<Fact>]
let ``max_concurrent: a slot frees when a request is settled`` () =
    let alice = {
        client "alice" "alice-relay-key-0123456789" with
            MaxConcurrent = 1
    }

    let state = ClientLimits.fresh utc alice t0 noon
    let ticket, state = admitOk alice t0 noon (demand "m" 0m) state

    match ClientLimits.admit utc alice t0 noon (demand "m" 0m) state with
    | Error(ClientRefusal.RateLimited("max_concurrent", _)), _ -> ()
    | other -> failwith $"%A{other}"

    let state = ClientLimits.settle utc alice t0 noon ticket None None state
    admitOk alice t0 noon (demand "m" 0m) state |> ignore

[<Fact>]
let ``itpm: a request larger than the limit is refused as too large, not to be retried`` () =
    let alice = {
        client "alice" "alice-relay-key-0123456789" with
            ItpmLimit = 999
    }

    match ClientLimits.admit utc alice t0 noon (demand "m" 0m) (ClientLimits.fresh utc alice t0 noon) with
    | Error(ClientRefusal.TooLarge("itpm", 1000L, 999) as refusal), _ ->
        Assert.Equal(None, ClientLimits.retryAfter noon refusal)
    | other -> failwith $"%A{other}"

[<Fact>]
let ``a budget reserves estimates, settles real costs, and refuses what would not fit until the period rolls`` () =
    let alice = {
        client "alice" "alice-relay-key-0123456789" with
            Budgets = [
                {
                    Period = BudgetPeriod.Day
                    LimitUsd = 1m
                    Models = None
                }
            ]
    }

    let state = ClientLimits.fresh utc alice t0 noon
    let a, state = admitOk alice t0 noon (demand "m" 0.6m) state

    // 0.6 reserved: another 0.6 does not fit
    match ClientLimits.admit utc alice t0 noon (demand "m" 0.6m) state with
    | Error(ClientRefusal.OverBudget(_, spent, estimate, Some resets) as refusal), _ ->
        Assert.Equal(0m, spent)
        Assert.Equal(0.6m, estimate)
        Assert.Equal(DateTimeOffset(2026, 12, 8, 0, 0, 0, TimeSpan.Zero), resets)
        Assert.Equal(Some 43200L, ClientLimits.retryAfter noon refusal)
        Assert.Contains("resets at 2026-12-08T00:00:00Z", ClientLimits.describe alice refusal)
    | other -> failwith $"%A{other}"

    // the real cost was 0.1: room again
    let state = ClientLimits.settle utc alice t0 noon a None (Some 0.1m) state
    Assert.Equal(0.1m, state.Spend[0].Spent)
    Assert.Equal(0m, state.Spend[0].Reserved)
    let b, state = admitOk alice t0 noon (demand "m" 0.6m) state

    // the next day starts with nothing spent, but with the estimate of the request still in flight: it is
    // charged to the day it ends in
    let tomorrow = noon.AddDays 1.0
    let _, state = admitOk alice t0 tomorrow (demand "m" 0.4m) state
    Assert.Equal((0m, 1m), (state.Spend[0].Spent, state.Spend[0].Reserved))
    let state = ClientLimits.settle utc alice t0 tomorrow b None (Some 0.5m) state
    Assert.Equal((0.5m, 0.4m), (state.Spend[0].Spent, state.Spend[0].Reserved))

[<Fact>]
let ``a wall clock stepped back across midnight keeps the day's spend: periods never go back`` () =
    let alice = {
        client "alice" "alice-relay-key-0123456789" with
            Budgets = [
                {
                    Period = BudgetPeriod.Day
                    LimitUsd = 1m
                    Models = None
                }
            ]
    }

    let midnight = DateTimeOffset(2026, 12, 8, 0, 0, 0, TimeSpan.Zero)
    let after = midnight.AddMinutes 1.0
    let before = midnight.AddMinutes -2.0
    let state = ClientLimits.fresh utc alice t0 after
    let a, state = admitOk alice t0 after (demand "m" 0.9m) state
    let state = ClientLimits.settle utc alice t0 after a None (Some 0.9m) state

    // NTP steps the clock back to 23:58 of the day before: the day spent 0.9 still (it used to start the 7th
    // again with nothing spent, and the 8th again at midnight)
    match ClientLimits.admit utc alice t0 before (demand "m" 0.2m) state with
    | Error(ClientRefusal.OverBudget(_, spent, _, Some resets)), state ->
        Assert.Equal(0.9m, spent)
        Assert.Equal(midnight.AddDays 1.0, resets)
        Assert.Equal(midnight, state.Spend[0].PeriodStart)
    | other -> failwith $"%A{other}"

    // what settles while the clock is behind is charged to the later day; past midnight again nothing resets
    let b, state = admitOk alice t0 before (demand "m" 0.05m) state
    let state = ClientLimits.settle utc alice t0 before b None (Some 0.05m) state
    let state = ClientLimits.rollAll utc alice (midnight.AddMinutes 3.0) state
    Assert.Equal((midnight, 0.95m), (state.Spend[0].PeriodStart, state.Spend[0].Spent))

[<Fact>]
let ``a per-family budget counts only its models`` () =
    let alice = {
        client "alice" "alice-relay-key-0123456789" with
            Budgets = [
                {
                    Period = BudgetPeriod.Week
                    LimitUsd = 1m
                    Models = Some "claude-opus-*"
                }
            ]
    }

    let state = ClientLimits.fresh utc alice t0 noon
    let _, state = admitOk alice t0 noon (demand "claude-opus-4-5" 1m) state
    let _, state = admitOk alice t0 noon (demand "claude-sonnet-4-5" 5m) state

    match ClientLimits.admit utc alice t0 noon (demand "claude-opus-4-5" 0.01m) state with
    | Error(ClientRefusal.OverBudget _), _ -> ()
    | other -> failwith $"%A{other}"

[<Fact>]
let ``restore rebuilds spend from ledger rows of the current period only`` () =
    let alice = {
        client "alice" "alice-relay-key-0123456789" with
            Budgets = [
                {
                    Period = BudgetPeriod.Day
                    LimitUsd = 1m
                    Models = None
                }
                {
                    Period = BudgetPeriod.Total
                    LimitUsd = 100m
                    Models = None
                }
            ]
    }

    let state =
        ClientLimits.fresh utc alice t0 noon
        |> ClientLimits.restore utc alice noon "m" (noon.AddDays -1.0) 2m
        |> ClientLimits.restore utc alice noon "m" (noon.AddHours -1.0) 0.25m

    Assert.Equal(0.25m, state.Spend[0].Spent)
    Assert.Equal(2.25m, state.Spend[1].Spent)

[<Fact>]
let ``the estimate prices input at the dearer of input and cache write, output at max_tokens; unpriced is zero`` () =
    let price = Pricing.tryFind Pricing.builtIn "claude-sonnet-4-5"
    // 1M input × 3.75 + 1M output × 15
    Assert.Equal(18.75m, ClientLimits.estimate price 1_000_000L 1_000_000L)
    Assert.Equal(0m, ClientLimits.estimate None 1_000_000L 1_000_000L)

// ---------------------------
// The calendar
// ---------------------------

[<Fact>]
let ``periods: UTC day, Monday weeks, months; total never ends`` () =
    // 2026-12-09 is a Wednesday
    let wednesday = DateTimeOffset(2026, 12, 9, 15, 30, 0, TimeSpan.Zero)

    Assert.Equal(
        DateTimeOffset(2026, 12, 9, 0, 0, 0, TimeSpan.Zero),
        BudgetPeriods.startOf utc BudgetPeriod.Day wednesday
    )

    Assert.Equal(
        DateTimeOffset(2026, 12, 7, 0, 0, 0, TimeSpan.Zero),
        BudgetPeriods.startOf utc BudgetPeriod.Week wednesday
    )

    Assert.Equal(
        Some(DateTimeOffset(2026, 12, 14, 0, 0, 0, TimeSpan.Zero)),
        BudgetPeriods.endOf utc BudgetPeriod.Week wednesday
    )

    Assert.Equal(
        DateTimeOffset(2026, 12, 1, 0, 0, 0, TimeSpan.Zero),
        BudgetPeriods.startOf utc BudgetPeriod.Month wednesday
    )

    Assert.Equal(
        Some(DateTimeOffset(2027, 1, 1, 0, 0, 0, TimeSpan.Zero)),
        BudgetPeriods.endOf utc BudgetPeriod.Month wednesday
    )

    Assert.Equal(None, BudgetPeriods.endOf utc BudgetPeriod.Total wednesday)

    // a Sunday belongs to the week that started on the Monday before
    let sunday = DateTimeOffset(2026, 12, 13, 23, 59, 59, TimeSpan.Zero)

    Assert.Equal(
        DateTimeOffset(2026, 12, 7, 0, 0, 0, TimeSpan.Zero),
        BudgetPeriods.startOf utc BudgetPeriod.Week sunday
    )

[<Fact>]
let ``periods in a time zone end at its midnight, across a daylight-saving change`` () =
    let berlin = TimeZoneInfo.FindSystemTimeZoneById "Europe/Berlin"
    // 23:30 UTC on 2026-03-28 is already the 29th in Berlin (UTC+1); the 29th has 23 hours (DST starts)
    let late = DateTimeOffset(2026, 3, 28, 23, 30, 0, TimeSpan.Zero)

    Assert.Equal(
        DateTimeOffset(2026, 3, 28, 23, 0, 0, TimeSpan.Zero),
        BudgetPeriods.startOf berlin BudgetPeriod.Day late
    )

    Assert.Equal(
        Some(DateTimeOffset(2026, 3, 29, 22, 0, 0, TimeSpan.Zero)),
        BudgetPeriods.endOf berlin BudgetPeriod.Day late
    )

    Assert.Equal("2026-03-29", BudgetPeriods.dayOf berlin late)

[<Fact>]
let ``a midnight a daylight-saving change repeats starts its day at its first occurrence`` () =
    // Havana falls back from 01:00 CDT (UTC-4) to 00:00 CST (UTC-5) on 2026-11-01: local midnight happens at 04:00
    // and again at 05:00 UTC. The hour between is already the 1st there, so the 1st starts at 04:00 UTC: every
    // instant of a day lies in [startOf, endOf), and the day before ends where it starts.
    let havana = TimeZoneInfo.FindSystemTimeZoneById "America/Havana"
    let firstPass = DateTimeOffset(2026, 11, 1, 4, 30, 0, TimeSpan.Zero)
    let midnight = DateTimeOffset(2026, 11, 1, 4, 0, 0, TimeSpan.Zero)

    Assert.Equal("2026-11-01", BudgetPeriods.dayOf havana firstPass)
    Assert.Equal(midnight, BudgetPeriods.startOf havana BudgetPeriod.Day firstPass)
    Assert.Equal(Some midnight, BudgetPeriods.endOf havana BudgetPeriod.Day (firstPass.AddHours -5.0))
    // the 1st is a Sunday: its week started on Monday 26 October (no change then), its month at this midnight
    Assert.Equal(midnight, BudgetPeriods.startOf havana BudgetPeriod.Month firstPass)

[<Fact>]
let ``a budget's cached span rolls it exactly where finding the period anew would, across a repeated midnight`` () =
    let havana = TimeZoneInfo.FindSystemTimeZoneById "America/Havana"

    let c = {
        client "alice" "alice-relay-key-0123456789" with
            Budgets = [
                {
                    Period = BudgetPeriod.Day
                    LimitUsd = 100m
                    Models = None
                }
            ]
    }

    let demand = {
        Model = "claude-sonnet-4-6"
        InputTokens = 10L
        OutputTokens = 10L
        CostUsd = 1m
    }

    let spend (at: DateTimeOffset) (state: ClientState) =
        match ClientLimits.admit havana c TimeSpan.Zero at demand state with
        | Ok ticket, state -> ClientLimits.settle havana c TimeSpan.Zero at ticket None (Some 2m) state
        | Error e, _ -> failwith $"%A{e}"

    // 31 October, 23:30 local (03:30 UTC): two dollars on the 31st
    let evening = DateTimeOffset(2026, 11, 1, 3, 30, 0, TimeSpan.Zero)
    let state = ClientLimits.fresh havana c TimeSpan.Zero evening |> spend evening
    Assert.Equal(2m, state.Spend[0].Spent)
    // 00:30 CDT on the 1st (04:30 UTC): a new day, whose spend starts from nothing
    let state = spend (DateTimeOffset(2026, 11, 1, 4, 30, 0, TimeSpan.Zero)) state
    Assert.Equal(DateTimeOffset(2026, 11, 1, 4, 0, 0, TimeSpan.Zero), state.Spend[0].PeriodStart)
    Assert.Equal(2m, state.Spend[0].Spent)
    // 00:30 CST (05:30 UTC): the same day
    let state = spend (DateTimeOffset(2026, 11, 1, 5, 30, 0, TimeSpan.Zero)) state
    Assert.Equal(4m, state.Spend[0].Spent)
    Assert.Equal(DateTimeOffset(2026, 11, 2, 5, 0, 0, TimeSpan.Zero), state.Spend[0].PeriodEnd)

[<Fact>]
let ``a snapshot's key index remembers an admitted key, and decides as hashing does`` () =
    let alice = client "alice" "alice-relay-key-0123456789"
    let bob = client "bob" "bob-relay-key-0123456789ab"

    let expired = {
        client "carol" "carol-relay-key-0123456789" with
            ExpiresAt = Some(noon.AddSeconds -1.0)
    }

    let index = ClientKeyIndex [ alice; bob; expired ]

    let name verdict =
        match verdict with
        | Admitted(Some c, _) -> c.Name
        | Admitted(None, _) -> "none"
        | Refused reason -> reason

    // nothing remembered before a key is admitted; a wrong key is never remembered
    Assert.StartsWith(
        "invalid",
        ClientKeys.authenticateWith index openAuth noon "bob-relay-key-0123456789aX" null
        |> name
    )

    Assert.False(index.Remembers 0 || index.Remembers 1 || index.Remembers 2)

    Assert.Equal(
        "bob",
        ClientKeys.authenticateWith index openAuth noon "bob-relay-key-0123456789ab" null
        |> name
    )

    Assert.True(index.Remembers 1)
    Assert.False(index.Remembers 0)
    // a remembered key is found again; one differing in its last character is not, nor a prefix of it
    Assert.Equal(
        "bob",
        ClientKeys.authenticateWith index openAuth noon "bob-relay-key-0123456789ab" null
        |> name
    )

    Assert.Equal(
        "invalid client key",
        ClientKeys.authenticateWith index openAuth noon "bob-relay-key-0123456789aX" null
        |> name
    )

    Assert.Equal(
        "invalid client key",
        ClientKeys.authenticateWith index openAuth noon "bob-relay-key-0123456789a" null
        |> name
    )
    // the same key as a bearer token is the same client
    Assert.Equal(
        "bob",
        ClientKeys.authenticateWith index openAuth noon null "Bearer bob-relay-key-0123456789ab"
        |> name
    )
    // an expired key is refused at every request, and never remembered
    for _ in 1..2 do
        Assert.Contains(
            "expired",
            ClientKeys.authenticateWith index openAuth noon "carol-relay-key-0123456789" null
            |> name
        )

    Assert.False(index.Remembers 2)
    // a remembered key whose expiry passes is refused from then on
    let later =
        ClientKeyIndex [
            {
                alice with
                    ExpiresAt = Some(noon.AddHours 1.0)
            }
        ]

    Assert.Equal(
        "alice",
        ClientKeys.authenticateWith later openAuth noon "alice-relay-key-0123456789" null
        |> name
    )

    Assert.True(later.Remembers 0)

    Assert.Contains(
        "expired",
        ClientKeys.authenticateWith later openAuth (noon.AddHours 1.0) "alice-relay-key-0123456789" null
        |> name
    )
    // a new index (a new snapshot: the key revoked) knows nothing of the old one's keys
    Assert.Equal(
        "invalid client key",
        ClientKeys.authenticateWith (ClientKeyIndex [ alice ]) openAuth noon "bob-relay-key-0123456789ab" null
        |> name
    )

// ---------------------------
// config show
// ---------------------------

[<Fact>]
let ``config show renders clients by key id, never the key nor its digest, and the ledger`` () =
    let config =
        load (
            providers
            + """
[[clients]]
name = "alice"
key = "${ALICE_KEY}"
models = ["claude-sonnet-*"]
budget = { weekly_usd = 20 }

[ledger]
time_zone = "Europe/Berlin"
"""
        )
        |> loaded

    let yaml = ConfigRender.toYaml config
    let alice = config.Clients.Head
    Assert.Contains($"key_id: \"%s{alice.KeyId}\"", yaml)
    Assert.Contains("      - period: week\n        usd: 20", yaml)
    Assert.Contains("time_zone: \"Europe/Berlin\"", yaml)
    Assert.DoesNotContain("alice-relay-key", yaml)
    Assert.DoesNotContain(Convert.ToHexStringLower alice.KeyDigest, yaml)

// ---------------------------
// Routing a client
// ---------------------------

[<Fact>]
let ``a client limited to some providers is planned on those only`` () =
    let config =
        Fixtures.relay RoutingStrategy.Failover [
            Fixtures.provider "a" []
            Fixtures.provider "b" []
            Fixtures.provider "c" []
        ]

    let runtime =
        Relay.createWith TimeSpan.Zero (ProviderPrices.compile config.Providers) config

    let dispatch = (Relay.plan runtime TimeSpan.Zero (Fixtures.request "m")).Value

    let names (d: Dispatch) =
        d.Order |> Array.map (fun p -> d.Policy.Providers[p].Name) |> List.ofArray

    Assert.Equal<string list>([ "a"; "b"; "c" ], names dispatch)
    Assert.Equal<string list>([ "c"; "a" ], names (Relay.restrictTo [ "c"; "a" ] dispatch) |> List.sortDescending)
    Assert.Equal<string list>([ "a"; "b"; "c" ], names (Relay.restrictTo [] dispatch))

[<Fact>]
let ``refusals: 429 when waiting helps (limits, budgets that roll over), 400 when it never does`` () =
    let budget period = {
        Period = period
        LimitUsd = 1m
        Models = None
    }

    let resets = Some(noon.AddHours 12.0)

    Assert.Equal(
        ErrorType.RateLimit,
        ClientLimits.errorType (ClientRefusal.RateLimited("rpm", TimeSpan.FromSeconds 3.0))
    )

    Assert.Equal(
        ErrorType.RateLimit,
        ClientLimits.errorType (ClientRefusal.OverBudget(budget BudgetPeriod.Day, 1m, 0.1m, resets))
    )

    Assert.Equal(
        ErrorType.InvalidRequest,
        ClientLimits.errorType (ClientRefusal.OverBudget(budget BudgetPeriod.Total, 1m, 0.1m, None))
    )

    Assert.Equal(ErrorType.InvalidRequest, ClientLimits.errorType (ClientRefusal.TooLarge("itpm", 10L, 5)))

    Assert.Equal(
        Some 43200L,
        ClientLimits.retryAfter noon (ClientRefusal.OverBudget(budget BudgetPeriod.Day, 1m, 0.1m, resets))
    )

    Assert.Equal(
        None,
        ClientLimits.retryAfter noon (ClientRefusal.OverBudget(budget BudgetPeriod.Total, 1m, 0.1m, None))
    )
