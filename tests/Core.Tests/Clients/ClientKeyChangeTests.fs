/// Runtime client keys (`ClientKeyChanges`): add, revoke and rotate laid over `clients[]`, and who wins when the
/// config file and a runtime change disagree (docs/teams.md, "Runtime key management").
module CcRelay.Core.Tests.ClientKeyChangeTests

open System
open CcRelay.Core
open Xunit

let private sha (key: string) : string =
    ClientKeyChanges.sha256Hex (ClientKeys.digest key)

let private client (name: string) (key: string) : ClientConfig = {
    Name = name
    KeyDigest = ClientKeys.digest key
    KeyId = (sha key).Substring(0, 8)
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

let private noon = DateTimeOffset(2026, 12, 7, 12, 0, 0, TimeSpan.Zero)

let private openAuth =
    Auth.compile {
        ApiKey = None
        AllowBearer = false
        BearerSecret = None
    }

let private alice = {
    client "alice" "alice-relay-key-0123456789" with
        RpmLimit = 60
        Models = [ "claude-sonnet-*" ]
}

let private ok (result: Result<'a, ClientKeyError>) : 'a =
    match result with
    | Ok value -> value
    | Error e -> failwith e.Message

/// Who `key` authenticates as at `at` among `clients` (None: refused).
let private who (clients: ClientConfig list) (at: DateTimeOffset) (key: string) : string option =
    match ClientKeys.authenticate clients openAuth at key null with
    | Admitted(Some c, _) -> Some c.Name
    | _ -> None

[<Fact>]
let ``no changes: the effective clients are the config's`` () =
    Assert.Equal<ClientConfig list>([ alice ], ClientKeyChanges.overlay [ alice ] [])

[<Fact>]
let ``add: a runtime client follows its template's limits and allowances, with its own name, key and expiry`` () =
    let expires = noon.AddDays 30.0

    let add =
        ClientKeyChanges.add
            [ alice ]
            []
            noon
            "cli"
            "carol"
            (sha "ccr_carol-key-000000000000")
            (Some expires)
            (Some "alice")
        |> ok

    let effective = ClientKeyChanges.overlay [ alice ] [ add ]
    let carol = effective |> List.find (fun c -> c.Name = "carol")
    Assert.Equal(60, carol.RpmLimit)
    Assert.Equal<string list>([ "claude-sonnet-*" ], carol.Models)
    Assert.Equal(Some expires, carol.ExpiresAt)
    Assert.Equal((sha "ccr_carol-key-000000000000").Substring(0, 8), carol.KeyId)
    Assert.Equal(Some "carol", who effective noon "ccr_carol-key-000000000000")
    Assert.Equal(Some "alice", who effective noon "alice-relay-key-0123456789")

[<Fact>]
let ``add: refused for a config name, a live runtime name, a used key, a bad digest, a past expiry, an unknown template``
    ()
    =
    let carolKey = sha "ccr_carol-key-000000000000"

    let add =
        ClientKeyChanges.add [ alice ] [] noon "cli" "carol" carolKey None None |> ok

    let refused (result: Result<ClientKeyChange, ClientKeyError>) =
        match result with
        | Error e -> e
        | Ok _ -> failwith "expected a refusal"

    Assert.True(
        (ClientKeyChanges.add [ alice ] [] noon "cli" "alice" (sha "k2-0000000000000000") None None
         |> refused)
            .IsConflict
    )

    Assert.True(
        (ClientKeyChanges.add [ alice ] [ add ] noon "cli" "carol" (sha "k3-0000000000000000") None None
         |> refused)
            .IsConflict
    )

    Assert.True(
        (ClientKeyChanges.add [ alice ] [ add ] noon "cli" "dave" carolKey None None
         |> refused)
            .IsConflict
    )

    Assert.True(
        (ClientKeyChanges.add [ alice ] [] noon "cli" "dave" (sha "alice-relay-key-0123456789") None None
         |> refused)
            .IsConflict
    )

    Assert.True(
        (ClientKeyChanges.add [ alice ] [] noon "cli" "dave" "not-a-digest" None None
         |> refused)
            .IsInvalid
    )

    Assert.True(
        (ClientKeyChanges.add [ alice ] [] noon "cli" "bad name!" carolKey None None
         |> refused)
            .IsInvalid
    )

    Assert.True(
        (ClientKeyChanges.add [ alice ] [] noon "cli" "dave" carolKey (Some(noon.AddSeconds -1.0)) None
         |> refused)
            .IsInvalid
    )

    let unknown =
        ClientKeyChanges.add [ alice ] [] noon "cli" "dave" carolKey None (Some "zed")
        |> refused

    Assert.True unknown.IsNotFound
    Assert.Contains("alice", unknown.Message)

[<Fact>]
let ``revoke: a config client's key stops at once and for good, even while the file still names it`` () =
    let revoked = ClientKeyChanges.revoke [ alice ] [] noon "cli" "alice" |> ok
    let effective = ClientKeyChanges.overlay [ alice ] revoked
    Assert.Equal(None, who effective noon "alice-relay-key-0123456789")

    // a reload of the same file does not bring it back
    Assert.Equal(None, who (ClientKeyChanges.overlay [ alice ] revoked) noon "alice-relay-key-0123456789")
    let view = ClientKeyChanges.view [ alice ] revoked noon |> List.exactlyOne
    Assert.Equal("revoked", view.State)

    // a new key in the file is a new issue: it works
    let reissued = client "alice" "alice-new-key-in-the-file-000"
    Assert.Equal(Some "alice", who (ClientKeyChanges.overlay [ reissued ] revoked) noon "alice-new-key-in-the-file-000")

    // nothing left to revoke
    match ClientKeyChanges.revoke [ alice ] revoked noon "cli" "alice" with
    | Error e -> Assert.True e.IsNotFound
    | Ok _ -> failwith "revoked twice"

[<Fact>]
let ``rotate with grace: both keys work until the grace ends, as the same client; then only the new one`` () =
    let rotated =
        ClientKeyChanges.rotate
            [ alice ]
            []
            noon
            "cli"
            "alice"
            (sha "ccr_alice-new-000000000000")
            (TimeSpan.FromHours 1.0)
        |> ok

    Assert.Equal(Some(noon.AddHours 1.0), rotated.GraceUntil)
    let effective = ClientKeyChanges.overlay [ alice ] [ rotated ]
    Assert.Equal(Some "alice", who effective noon "alice-relay-key-0123456789")
    Assert.Equal(Some "alice", who effective noon "ccr_alice-new-000000000000")
    Assert.True(effective |> List.forall (fun c -> c.RpmLimit = 60))
    let later = noon.AddHours 1.0
    Assert.Equal(None, who effective later "alice-relay-key-0123456789")
    Assert.Equal(Some "alice", who effective later "ccr_alice-new-000000000000")
    let view = ClientKeyChanges.view [ alice ] [ rotated ] noon |> List.exactlyOne
    Assert.Equal((sha "ccr_alice-new-000000000000").Substring(0, 8), view.KeyId)
    Assert.Equal<(string * DateTimeOffset) list>([ alice.KeyId, noon.AddHours 1.0 ], view.Grace)

[<Fact>]
let ``rotate without grace: the old key stops at once; revoke after a rotation revokes the grace key too`` () =
    let atOnce =
        ClientKeyChanges.rotate [ alice ] [] noon "cli" "alice" (sha "ccr_alice-new-000000000000") TimeSpan.Zero
        |> ok

    Assert.Equal(None, who (ClientKeyChanges.overlay [ alice ] [ atOnce ]) noon "alice-relay-key-0123456789")

    let graceful =
        ClientKeyChanges.rotate
            [ alice ]
            []
            noon
            "cli"
            "alice"
            (sha "ccr_alice-new-000000000000")
            (TimeSpan.FromDays 1.0)
        |> ok

    let revoked =
        ClientKeyChanges.revoke [ alice ] [ graceful ] noon "cli" "alice" |> ok

    Assert.Equal(2, revoked.Length)
    let effective = ClientKeyChanges.overlay [ alice ] (graceful :: revoked)
    Assert.Equal(None, who effective noon "alice-relay-key-0123456789")
    Assert.Equal(None, who effective noon "ccr_alice-new-000000000000")

[<Fact>]
let ``rotate: a grace beyond 30 days or a used key is refused`` () =
    match
        ClientKeyChanges.rotate [ alice ] [] noon "cli" "alice" (sha "ccr_x-0000000000000000") (TimeSpan.FromDays 31.0)
    with
    | Error e -> Assert.True e.IsInvalid
    | Ok _ -> failwith "31 days of grace"

    match ClientKeyChanges.rotate [ alice ] [] noon "cli" "alice" (sha "alice-relay-key-0123456789") TimeSpan.Zero with
    | Error e -> Assert.True e.IsConflict
    | Ok _ -> failwith "rotated to the same key"

[<Fact>]
let ``the file wins: a rotation lapses when the file changes that client's key; settings are always the file's`` () =
    let rotated =
        ClientKeyChanges.rotate [ alice ] [] noon "cli" "alice" (sha "ccr_alice-new-000000000000") TimeSpan.Zero
        |> ok

    // the file changes alice's limits only: the runtime key stays, with the new limits
    let relimited = { alice with RpmLimit = 5 }
    let effective = ClientKeyChanges.overlay [ relimited ] [ rotated ]
    Assert.Equal(Some "alice", who effective noon "ccr_alice-new-000000000000")
    Assert.Equal(5, (List.exactlyOne effective).RpmLimit)

    // the file gives alice another key: the file's key wins, the rotated one lapses
    let fileKey = client "alice" "alice-edited-in-the-file-0001"
    let effective = ClientKeyChanges.overlay [ fileKey ] [ rotated ]
    Assert.Equal(Some "alice", who effective noon "alice-edited-in-the-file-0001")
    Assert.Equal(None, who effective noon "ccr_alice-new-000000000000")

[<Fact>]
let ``the file wins: a runtime client whose name the file gets is shadowed; without its template it is refused`` () =
    let add =
        ClientKeyChanges.add [ alice ] [] noon "cli" "carol" (sha "ccr_carol-key-000000000000") None (Some "alice")
        |> ok

    let fileCarol = client "carol" "carol-in-the-file-0000000000"
    let effective = ClientKeyChanges.overlay [ alice; fileCarol ] [ add ]
    Assert.Equal(None, who effective noon "ccr_carol-key-000000000000")
    Assert.Equal(Some "carol", who effective noon "carol-in-the-file-0000000000")

    Assert.Contains(
        ClientKeyChanges.view [ alice; fileCarol ] [ add ] noon,
        fun v -> v.Name = "carol" && v.State = "shadowed"
    )

    // the template left the file: fail closed
    let effective = ClientKeyChanges.overlay [] [ add ]
    Assert.Empty effective
    Assert.Equal("template_missing", (ClientKeyChanges.view [] [ add ] noon |> List.exactlyOne).State)

[<Fact>]
let ``a revoked runtime client's name can be added again, with a new key`` () =
    let first =
        ClientKeyChanges.add [] [] noon "cli" "carol" (sha "ccr_carol-key-000000000000") None None
        |> ok

    let revoked = ClientKeyChanges.revoke [] [ first ] noon "cli" "carol" |> ok

    let again =
        ClientKeyChanges.add [] (first :: revoked) noon "cli" "carol" (sha "ccr_carol-key-111111111111") None None
        |> ok

    let effective = ClientKeyChanges.overlay [] (first :: revoked @ [ again ])
    Assert.Equal(Some "carol", who effective noon "ccr_carol-key-111111111111")
    Assert.Equal(None, who effective noon "ccr_carol-key-000000000000")

[<Fact>]
let ``grace and expiry spellings`` () =
    Assert.Equal(Ok TimeSpan.Zero, ClientKeyChanges.parseGrace "0")
    Assert.Equal(Ok(TimeSpan.FromHours 24.0), ClientKeyChanges.parseGrace "24h")
    Assert.True((ClientKeyChanges.parseGrace "31d").IsError)
    Assert.True((ClientKeyChanges.parseGrace "soon").IsError)
    Assert.Equal(Ok(noon.AddDays 30.0), ClientKeyChanges.parseExpiry noon "30d")

    Assert.Equal(
        Ok(DateTimeOffset(2027, 1, 31, 0, 0, 0, TimeSpan.Zero)),
        ClientKeyChanges.parseExpiry noon "2027-01-31"
    )

    Assert.True((ClientKeyChanges.parseExpiry noon "2026-01-01").IsError)

// ---------------------------
// Settlement after a reload reordered the budgets
// ---------------------------

[<Fact>]
let ``a settlement finds its budgets by identity, after a reload that reordered them`` () =
    let utc = TimeZoneInfo.Utc
    let t0 = TimeSpan.FromSeconds 10.0

    let day = {
        Period = BudgetPeriod.Day
        LimitUsd = 10m
        Models = None
    }

    let opusWeek = {
        Period = BudgetPeriod.Week
        LimitUsd = 5m
        Models = Some "claude-opus-*"
    }

    let before = {
        alice with
            Budgets = [ day; opusWeek ]
    }

    let after = {
        alice with
            Budgets = [ opusWeek; day ]
    }

    let demand = {
        Model = "claude-sonnet-4-6"
        InputTokens = 10L
        OutputTokens = 10L
        CostUsd = 1m
    }

    let state = ClientLimits.fresh utc before t0 noon

    let ticket, state =
        match ClientLimits.admit utc before t0 noon demand state with
        | Ok ticket, state -> ticket, state
        | Error r, _ -> failwith $"%A{r}"

    // a reload reorders the budgets while the request is in flight
    let state = ClientLimits.relimit utc before after t0 noon state
    let state = ClientLimits.settle utc after t0 noon ticket None (Some 0.25m) state

    // the day budget (now second) got the cost; the Opus week (now first) was never reserved and is untouched
    Assert.Equal(0.25m, state.Spend[1].Spent)
    Assert.Equal(0m, state.Spend[1].Reserved)
    Assert.Equal(0m, state.Spend[0].Spent)
    Assert.Equal(0m, state.Spend[0].Reserved)
