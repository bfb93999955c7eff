/// Runtime client keys over any sequence of add, revoke, rotate and config edits (docs/teams.md), and
/// settlements by budget identity across reloads that reorder budgets.
module CcRelay.Core.Properties.ClientKeyChangeProperties

open System
open FsCheck
open FsCheck.FSharp
open CcRelay.Core
open Xunit

/// One step: an operator's change, a config edit, or time passing.
type private Op =
    | Add of Name: int * Like: bool
    | Revoke of Name: int
    | Rotate of Name: int * GraceMinutes: int
    | EditConfigKey of Name: int
    | Wait of Minutes: int

let private names = [| "alice"; "bob"; "carol"; "dave" |]

let private op: Gen<Op> =
    Gen.frequency [
        3, Gen.map2 (fun n l -> Add(n, l)) (Gen.choose (0, 3)) (Gen.elements [ true; false ])
        2, Gen.choose (0, 3) |> Gen.map Revoke
        3, Gen.map2 (fun n g -> Rotate(n, g)) (Gen.choose (0, 3)) (Gen.elements [ 0; 0; 5; 60 ])
        1, Gen.choose (0, 1) |> Gen.map EditConfigKey
        2, Gen.choose (0, 90) |> Gen.map Wait
    ]

let private start = DateTimeOffset(2026, 12, 7, 12, 0, 0, TimeSpan.Zero)

let private configClient (name: string) (key: string) (rpm: int) : ClientConfig = {
    Name = name
    KeyDigest = ClientKeys.digest key
    KeyId = (ClientKeyChanges.sha256Hex (ClientKeys.digest key)).Substring(0, 8)
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

let private openAuth =
    Auth.compile {
        ApiKey = None
        AllowBearer = false
        BearerSecret = None
    }

/// The world after a run: the config (alice and bob are the file's), the log, every key ever issued, the clock.
type private World = {
    Config: ClientConfig list
    Log: ClientKeyChange list
    Keys: (string * string) list
    Revoked: Set<string>
    Now: DateTimeOffset
    Counter: int
}

let private run (ops: Op list) : World =
    let initial = {
        Config = [ configClient "alice" "alice-key-0" 60; configClient "bob" "bob-key-0" 30 ]
        Log = []
        Keys = [ "alice", "alice-key-0"; "bob", "bob-key-0" ]
        Revoked = Set.empty
        Now = start
        Counter = 1
    }

    ops
    |> List.fold
        (fun w op ->
            let fresh = $"key-%d{w.Counter}"
            let w = { w with Counter = w.Counter + 1 }
            let digest = ClientKeyChanges.sha256Hex (ClientKeys.digest fresh)

            match op with
            | Add(n, like) ->
                match
                    ClientKeyChanges.add
                        w.Config
                        w.Log
                        w.Now
                        "p"
                        names[n]
                        digest
                        None
                        (if like then Some "alice" else None)
                with
                | Ok change -> {
                    w with
                        Log = w.Log @ [ change ]
                        Keys = (names[n], fresh) :: w.Keys
                  }
                | Error _ -> w
            | Revoke n ->
                match ClientKeyChanges.revoke w.Config w.Log w.Now "p" names[n] with
                | Ok changes -> {
                    w with
                        Log = w.Log @ changes
                        Revoked = changes |> List.fold (fun s c -> Set.add c.KeySha256 s) w.Revoked
                  }
                | Error _ -> w
            | Rotate(n, grace) ->
                match
                    ClientKeyChanges.rotate
                        w.Config
                        w.Log
                        w.Now
                        "p"
                        names[n]
                        digest
                        (TimeSpan.FromMinutes(float grace))
                with
                | Ok change -> {
                    w with
                        Log = w.Log @ [ change ]
                        Keys = (names[n], fresh) :: w.Keys
                  }
                | Error _ -> w
            | EditConfigKey n ->
                let name = names[n]

                {
                    w with
                        Config =
                            w.Config
                            |> List.map (fun c ->
                                if c.Name = name then
                                    configClient name fresh c.RpmLimit
                                else
                                    c)
                        Keys = (name, fresh) :: w.Keys
                }
            | Wait minutes -> {
                w with
                    Now = w.Now.AddMinutes(float minutes)
              })
        initial

let private ops = Gen.listOf op |> Gen.resize 30 |> Check.arb

[<Fact>]
let ``a revoked key never authenticates, whatever changes and config edits follow`` () =
    Check.property (
        Prop.forAll ops (fun ops ->
            let w = run ops
            let effective = ClientKeyChanges.overlay w.Config w.Log

            w.Keys
            |> List.forall (fun (_, key) ->
                let digest = ClientKeyChanges.sha256Hex (ClientKeys.digest key)

                not (w.Revoked.Contains digest)
                || (match ClientKeys.authenticate effective openAuth w.Now key null with
                    | Admitted(Some _, _) -> false
                    | _ -> true)))
    )

[<Fact>]
let ``a key authenticates only as the client it was issued to, with the file's limits for a file client`` () =
    Check.property (
        Prop.forAll ops (fun ops ->
            let w = run ops
            let effective = ClientKeyChanges.overlay w.Config w.Log

            w.Keys
            |> List.forall (fun (name, key) ->
                match ClientKeys.authenticate effective openAuth w.Now key null with
                | Admitted(Some c, _) ->
                    c.Name = name
                    && (match w.Config |> List.tryFind (fun f -> f.Name = name) with
                        | Some file -> c.RpmLimit = file.RpmLimit
                        | None -> c.RpmLimit = 0 || c.RpmLimit = 60)
                | _ -> true))
    )

[<Fact>]
let ``each client has at most one current key: only the newest issued key of a name or grace keys work`` () =
    Check.property (
        Prop.forAll ops (fun ops ->
            let w = run ops
            let effective = ClientKeyChanges.overlay w.Config w.Log

            // entries without an end are current keys: one per name at most
            effective
            |> List.filter (fun c -> c.ExpiresAt.IsNone)
            |> List.countBy _.Name
            |> List.forall (fun (_, n) -> n = 1))
    )

[<Fact>]
let ``the effective clients are a function of the config and the log: replaying gives the same answer`` () =
    Check.property (
        Prop.forAll ops (fun ops ->
            let w = run ops
            ClientKeyChanges.overlay w.Config w.Log = ClientKeyChanges.overlay w.Config w.Log)
    )

[<Fact>]
let ``a settlement under reordered budgets charges the same budgets as under the admission's order`` () =
    let budgets = [
        {
            Period = BudgetPeriod.Day
            LimitUsd = 100m
            Models = None
        }
        {
            Period = BudgetPeriod.Week
            LimitUsd = 100m
            Models = Some "claude-opus-*"
        }
        {
            Period = BudgetPeriod.Month
            LimitUsd = 100m
            Models = Some "claude-sonnet-*"
        }
    ]

    let gen =
        gen {
            let! order = Gen.shuffle (Array.ofList budgets)
            let! model = Gen.elements [ "claude-opus-4-5"; "claude-sonnet-4-5"; "other" ]
            let! cents = Gen.choose (0, 500)
            return List.ofArray order, model, decimal cents / 100m
        }

    Check.property (
        Prop.forAll (Check.arb gen) (fun (reordered, model, cost) ->
            let utc = TimeZoneInfo.Utc
            let t0 = TimeSpan.FromSeconds 1.0

            let before = {
                configClient "c" "k" 0 with
                    Budgets = budgets
            }

            let after = { before with Budgets = reordered }

            let demand = {
                Model = model
                InputTokens = 1L
                OutputTokens = 1L
                CostUsd = 1m
            }

            match ClientLimits.admit utc before t0 start demand (ClientLimits.fresh utc before t0 start) with
            | Ok ticket, admitted ->
                let spentOf (client: ClientConfig) (state: ClientState) =
                    List.zip (client.Budgets |> List.map ClientLimits.identity) (List.ofArray state.Spend)
                    |> List.map (fun (id, s) -> id, (s.Spent, s.Reserved))
                    |> Map.ofList

                let straight =
                    ClientLimits.settle utc before t0 start ticket None (Some cost) admitted

                let moved =
                    ClientLimits.relimit utc before after t0 start admitted
                    |> ClientLimits.settle utc after t0 start ticket None (Some cost)

                spentOf before straight = spentOf after moved
            | Error _, _ -> false)
    )
