namespace CcRelay.Core

open System

/// What a runtime change of the client keys did.
[<RequireQualifiedAccess>]
type ClientKeyChangeKind =
    /// A new client (not in the config file) with its first key.
    | Added
    /// One key stopped working for good.
    | Revoked
    /// A client's key replaced by a new one; the old one may work on for a grace period.
    | Rotated

    /// The stored and audited spelling: `added`, `revoked`, `rotated`.
    member this.WireName: string =
        match this with
        | Added -> "added"
        | Revoked -> "revoked"
        | Rotated -> "rotated"

    /// The kind a stored spelling names.
    static member TryParse(name: string) : ClientKeyChangeKind option =
        match name with
        | "added" -> Some Added
        | "revoked" -> Some Revoked
        | "rotated" -> Some Rotated
        | _ -> None

/// One runtime change of the client keys (the management API, `cc-relay clients`), as it is stored and replayed:
/// never a key, only SHA-256 digests (64 lower-case hex digits).
type ClientKeyChange = {
    /// When it was made (UTC).
    At: DateTimeOffset
    Kind: ClientKeyChangeKind
    /// The client's name.
    Client: string
    /// `Added`, `Rotated`: the new key's SHA-256. `Revoked`: the revoked key's SHA-256.
    KeySha256: string
    /// `Rotated`: the SHA-256 of the key it replaced (the rotation holds only while that is the client's key).
    /// Empty otherwise.
    PreviousSha256: string
    /// `Rotated`: until when the replaced key still works (None: it stopped at once).
    GraceUntil: DateTimeOffset option
    /// `Added`: when the new client's key expires (None: never).
    ExpiresAt: DateTimeOffset option
    /// `Added`: the config client whose providers, models, stages, limits, budgets and metadata the new client
    /// follows (None: a client with no restrictions).
    Like: string option
    /// Who made it (for the audit log): the management token's id, `cli`, …; never a secret.
    Actor: string
} with

    /// A change as a store reads it back (C#: null for what a change of its kind does not have).
    static member Create
        (
            at: DateTimeOffset,
            kind: ClientKeyChangeKind,
            client: string,
            keySha256: string,
            previousSha256: string,
            graceUntil: Nullable<DateTimeOffset>,
            expiresAt: Nullable<DateTimeOffset>,
            like: string | null,
            actor: string
        ) : ClientKeyChange = {
        At = at
        Kind = kind
        Client = client
        KeySha256 = keySha256
        PreviousSha256 = previousSha256
        GraceUntil = Option.ofNullable graceUntil
        ExpiresAt = Option.ofNullable expiresAt
        Like = Option.ofObj like
        Actor = actor
    }

/// Why a runtime change is refused.
[<RequireQualifiedAccess>]
type ClientKeyError =
    /// A bad argument (name, digest, expiry, grace): what, and what is allowed.
    | Invalid of string
    /// No such client (or it has no key left).
    | NotFound of string
    /// The change conflicts with what exists (a name in use, a key in use or revoked).
    | Conflict of string

    /// What is wrong, and what is allowed (never a key).
    member this.Message: string =
        match this with
        | Invalid m
        | NotFound m
        | Conflict m -> m

/// One client as `cc-relay clients list` shows it: where it comes from and the state of its keys.
type ClientKeyView = {
    Name: string
    /// `config` (the file's `clients[]`) or `runtime` (added through the API).
    Source: string
    /// The id of the client's current key (empty when it has none).
    KeyId: string
    /// `active`, `expired`, `revoked` (no key works), `shadowed` (a runtime client whose name the config file now
    /// has: the file wins) or `template_missing` (a runtime client whose `Like` left the config: it is refused).
    State: string
    ExpiresAt: DateTimeOffset option
    /// The ids of replaced keys that still work, with until when.
    Grace: (string * DateTimeOffset) list
    /// A runtime client's template (`Like`).
    Like: string option
    /// Whether a runtime change applies to the client (a rotation, a revocation, or it was added at run time).
    Changed: bool
}

/// Client keys changed at run time, laid over the config file's `clients[]` (docs/teams.md, "Runtime key
/// management"). The runtime changes are an append-only log of `ClientKeyChange`s; the effective clients are
/// always recomputed from the config's clients and the whole log, so a reload or a restart gives the same answer.
///
/// What wins when the file and a runtime change disagree:
/// - a **revocation is per key** and permanent: a revoked key never authenticates again, whoever names it (the
///   file included). A client whose every key is revoked is gone until the file gives it a new key;
/// - a **rotation** replaces the key it names (`PreviousSha256`) and holds while that is still the client's key:
///   when the file changes that client's key (to anything else), the file's key wins and the rotation lapses;
///   every other setting (providers, models, limits, budgets, expiry) is always the file's;
/// - an **added** client's name must not be in the file; if the file later gets a client of that name, the file
///   wins (the runtime client is `shadowed`, its key refused) and the runtime one is back when the file drops it.
///   An added client follows its template (`Like`) live; without its template it is refused (fail closed).
[<RequireQualifiedAccess>]
module ClientKeyChanges =

    /// The longest grace period a rotation may give the replaced key.
    let maxGrace: TimeSpan = TimeSpan.FromDays 30.0

    /// The SHA-256 of a key, as changes store it (64 lower-case hex digits).
    let sha256Hex (digest: byte array) : string = Convert.ToHexStringLower digest

    /// The key id of a stored digest: its first 8 hex digits (as `ClientConfig.KeyId`).
    let keyIdOfHex (sha256: string) : string =
        if sha256.Length >= 8 then
            sha256.Substring(0, 8)
        else
            sha256

    /// Whether `text` is a SHA-256 as changes store it: 64 hex digits (either case).
    let isSha256 (text: string) : bool =
        text.Length = 64 && text |> Seq.forall Uri.IsHexDigit

    /// One client's keys after the log: its settings, where it comes from, its current key and grace keys.
    type private Chain = {
        Name: string
        /// The settings: the config client (None: a runtime client whose template is missing).
        Settings: ClientConfig option
        FromConfig: bool
        Like: string option
        ExpiresAt: DateTimeOffset option
        Current: string
        /// Replaced keys with their grace ends, newest first.
        Grace: (string * DateTimeOffset) list
        Shadowed: bool
        Changed: bool
    }

    let private applyRotations (changes: ClientKeyChange list) (chain: Chain) : Chain =
        changes
        |> List.fold
            (fun (c: Chain) change ->
                if
                    change.Kind = ClientKeyChangeKind.Rotated
                    && change.Client = c.Name
                    && String.Equals(change.PreviousSha256, c.Current, StringComparison.OrdinalIgnoreCase)
                then
                    let grace =
                        match change.GraceUntil with
                        | Some until -> (c.Current, until) :: c.Grace
                        | None -> c.Grace

                    {
                        c with
                            Current = change.KeySha256.ToLowerInvariant()
                            Grace = grace
                            Changed = true
                    }
                else
                    c)
            chain

    /// The changes after the last `Added` of `name` (a later add of a revoked name starts a new client).
    let private since (name: string) (changes: ClientKeyChange list) : ClientKeyChange list =
        let rec go (rest: ClientKeyChange list) (acc: ClientKeyChange list) =
            match rest with
            | [] -> List.rev acc
            | c :: tail when c.Kind = ClientKeyChangeKind.Added && c.Client = name -> go tail []
            | c :: tail -> go tail (c :: acc)

        go changes []

    let private chains (config: ClientConfig list) (changes: ClientKeyChange list) : Chain list =
        let configured =
            config
            |> List.map (fun client ->
                applyRotations changes {
                    Name = client.Name
                    Settings = Some client
                    FromConfig = true
                    Like = None
                    ExpiresAt = client.ExpiresAt
                    Current = sha256Hex client.KeyDigest
                    Grace = []
                    Shadowed = false
                    Changed = false
                })

        let names = config |> List.map _.Name |> Set.ofList

        // the last add of each name, in the order names were first added
        let added =
            changes
            |> List.filter (fun c -> c.Kind = ClientKeyChangeKind.Added)
            |> List.map _.Client
            |> List.distinct
            |> List.map (fun name ->
                let add =
                    changes
                    |> List.findBack (fun c -> c.Kind = ClientKeyChangeKind.Added && c.Client = name)

                let template =
                    match add.Like with
                    | None -> None
                    | Some like -> config |> List.tryFind (fun c -> c.Name = like)

                let settings =
                    match add.Like, template with
                    | None, _ ->
                        Some {
                            Name = name
                            KeyDigest = [||]
                            KeyId = ""
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
                    | Some _, Some t -> Some { t with Name = name }
                    | Some _, None -> None

                applyRotations (since name changes) {
                    Name = name
                    Settings = settings
                    FromConfig = false
                    Like = add.Like
                    ExpiresAt = add.ExpiresAt
                    Current = add.KeySha256.ToLowerInvariant()
                    Grace = []
                    Shadowed = names.Contains name
                    Changed = true
                })

        configured @ added

    let private revokedKeys (changes: ClientKeyChange list) : Set<string> =
        changes
        |> List.filter (fun c -> c.Kind = ClientKeyChangeKind.Revoked)
        |> List.map _.KeySha256.ToLowerInvariant()
        |> Set.ofList

    let private withKey (sha256: string) (expires: DateTimeOffset option) (settings: ClientConfig) : ClientConfig = {
        settings with
            KeyDigest = Convert.FromHexString sha256
            KeyId = keyIdOfHex sha256
            ExpiresAt = expires
    }

    let private earlier (a: DateTimeOffset option) (b: DateTimeOffset) : DateTimeOffset option =
        match a with
        | Some a when a < b -> Some a
        | _ -> Some b

    /// The effective clients: the config's (with rotated keys), then the runtime-added ones; a replaced key in its
    /// grace period is one more entry of the same client (same name, so the same limits and budgets) that expires
    /// when the grace ends. Revoked keys, shadowed and template-less runtime clients are left out.
    let overlay (config: ClientConfig list) (changes: ClientKeyChange list) : ClientConfig list =
        if changes.IsEmpty then
            config
        else
            let revoked = revokedKeys changes

            chains config changes
            |> List.collect (fun chain ->
                match chain.Settings with
                | None -> []
                | Some _ when chain.Shadowed -> []
                | Some settings ->
                    let current =
                        if revoked.Contains chain.Current then
                            []
                        else
                            [ withKey chain.Current chain.ExpiresAt settings ]

                    let grace =
                        chain.Grace
                        |> List.filter (fun (key, _) -> not (revoked.Contains key) && key <> chain.Current)
                        |> List.map (fun (key, until) -> withKey key (earlier chain.ExpiresAt until) settings)

                    current @ grace)

    /// Every client with the state of its keys at `now` (`cc-relay clients list`).
    let view (config: ClientConfig list) (changes: ClientKeyChange list) (now: DateTimeOffset) : ClientKeyView list =
        let revoked = revokedKeys changes

        chains config changes
        |> List.map (fun chain ->
            let grace =
                chain.Grace
                |> List.filter (fun (key, until) -> not (revoked.Contains key) && until > now && key <> chain.Current)
                |> List.map (fun (key, until) -> keyIdOfHex key, until)

            let state =
                if chain.Shadowed then
                    "shadowed"
                elif chain.Settings.IsNone then
                    "template_missing"
                elif revoked.Contains chain.Current then
                    "revoked"
                elif chain.ExpiresAt |> Option.exists (fun at -> now >= at) then
                    "expired"
                else
                    "active"

            {
                Name = chain.Name
                Source = if chain.FromConfig then "config" else "runtime"
                KeyId =
                    if revoked.Contains chain.Current then
                        ""
                    else
                        keyIdOfHex chain.Current
                State = state
                ExpiresAt = chain.ExpiresAt
                Grace = grace
                Like = chain.Like
                Changed = chain.Changed || revoked.Contains chain.Current
            })

    /// Every key digest the config or the log has ever used (no new key may be one of them).
    let private knownKeys (config: ClientConfig list) (changes: ClientKeyChange list) : Set<string> =
        Set.union
            (config |> List.map (fun c -> sha256Hex c.KeyDigest) |> Set.ofList)
            (changes |> List.map _.KeySha256.ToLowerInvariant() |> Set.ofList)

    let private checkNewKey (config: ClientConfig list) (changes: ClientKeyChange list) (sha256: string) =
        if not (isSha256 sha256) then
            Error(ClientKeyError.Invalid "key_sha256: expected the new key's SHA-256 as 64 hex digits")
        elif (knownKeys config changes).Contains(sha256.ToLowerInvariant()) then
            Error(
                ClientKeyError.Conflict
                    "this key is or was already a client key (keys are never reused): generate a new one"
            )
        else
            Ok(sha256.ToLowerInvariant())

    /// A client that has a key that works (or that merely expired): one that can be rotated or revoked.
    let private live (config: ClientConfig list) (changes: ClientKeyChange list) (name: string) : Chain option =
        let revoked = revokedKeys changes

        chains config changes
        |> List.tryFind (fun c ->
            c.Name = name
            && not c.Shadowed
            && (not (revoked.Contains c.Current)
                || c.Grace |> List.exists (fun (key, _) -> not (revoked.Contains key))))

    /// Decides `clients add`: a new runtime client `name` with the key whose SHA-256 is `sha256`, expiring at
    /// `expires`, following the config client `like`. Refused: a bad name or digest, an expiry not in the future,
    /// a name the config file has or a runtime client that still has a key, a key already used, an unknown template.
    let add
        (config: ClientConfig list)
        (changes: ClientKeyChange list)
        (now: DateTimeOffset)
        (actor: string)
        (name: string)
        (sha256: string)
        (expires: DateTimeOffset option)
        (like: string option)
        : Result<ClientKeyChange, ClientKeyError> =
        if not (ConfigClients.validName name) then
            Error(
                ClientKeyError.Invalid
                    "name: 1 to 64 letters, digits, '-', '_', '.' or '@', starting with a letter or digit"
            )
        elif config |> List.exists (fun c -> c.Name = name) then
            Error(
                ClientKeyError.Conflict
                    $"client %s{name} is in the config file: rotate its key (clients rotate %s{name}), or edit the file"
            )
        elif (live config changes name).IsSome then
            Error(
                ClientKeyError.Conflict
                    $"client %s{name} was already added at run time and has a key: rotate or revoke it first"
            )
        elif expires |> Option.exists (fun at -> at <= now) then
            Error(ClientKeyError.Invalid "expires: must be in the future")
        else
            match like with
            | Some t when not (config |> List.exists (fun c -> c.Name = t)) ->
                let names = config |> List.map _.Name |> String.concat ", "

                Error(
                    ClientKeyError.NotFound
                        $"""like: no client named %s{t} in the config file (its clients: %s{if names = "" then "none" else names})"""
                )
            | _ ->
                checkNewKey config changes sha256
                |> Result.map (fun key -> {
                    At = now
                    Kind = ClientKeyChangeKind.Added
                    Client = name
                    KeySha256 = key
                    PreviousSha256 = ""
                    GraceUntil = None
                    ExpiresAt = expires
                    Like = like
                    Actor = actor
                })

    /// Decides `clients revoke`: every key of `name` that still works (its current key and any in a grace period)
    /// is revoked, one change per key. Refused for an unknown client or one with no key left.
    let revoke
        (config: ClientConfig list)
        (changes: ClientKeyChange list)
        (now: DateTimeOffset)
        (actor: string)
        (name: string)
        : Result<ClientKeyChange list, ClientKeyError> =
        match live config changes name with
        | None ->
            Error(ClientKeyError.NotFound $"no client named %s{name} has a key to revoke (clients list shows them)")
        | Some chain ->
            let revoked = revokedKeys changes

            chain.Current :: (chain.Grace |> List.map fst)
            |> List.distinct
            |> List.filter (fun key -> not (revoked.Contains key))
            |> List.map (fun key -> {
                At = now
                Kind = ClientKeyChangeKind.Revoked
                Client = name
                KeySha256 = key
                PreviousSha256 = ""
                GraceUntil = None
                ExpiresAt = None
                Like = None
                Actor = actor
            })
            |> Ok

    /// Decides `clients rotate`: `name`'s current key is replaced by the key whose SHA-256 is `sha256`; the old key
    /// works on for `grace` (zero: it stops at once; at most `maxGrace`). Refused for an unknown or revoked client,
    /// a bad or used digest, a negative or too long grace.
    let rotate
        (config: ClientConfig list)
        (changes: ClientKeyChange list)
        (now: DateTimeOffset)
        (actor: string)
        (name: string)
        (sha256: string)
        (grace: TimeSpan)
        : Result<ClientKeyChange, ClientKeyError> =
        let revoked = revokedKeys changes

        match live config changes name with
        | Some chain when not (revoked.Contains chain.Current) ->
            if grace < TimeSpan.Zero || grace > maxGrace then
                Error(ClientKeyError.Invalid "grace: from 0 (the old key stops at once) to 30 days")
            else
                checkNewKey config changes sha256
                |> Result.map (fun key -> {
                    At = now
                    Kind = ClientKeyChangeKind.Rotated
                    Client = name
                    KeySha256 = key
                    PreviousSha256 = chain.Current
                    GraceUntil = if grace > TimeSpan.Zero then Some(now + grace) else None
                    ExpiresAt = None
                    Like = None
                    Actor = actor
                })
        | _ ->
            Error(
                ClientKeyError.NotFound
                    $"no client named %s{name} has a current key to rotate (clients list shows them)"
            )

    /// A span such as `30m`, `24h`, `7d` or `2w` (None: not one).
    let private span (text: string) : TimeSpan option =
        let text = text.Trim()

        if text.Length < 2 then
            None
        else
            match
                Int32.TryParse(
                    text.AsSpan(0, text.Length - 1),
                    Globalization.NumberStyles.None,
                    Globalization.CultureInfo.InvariantCulture
                )
            with
            | true, n ->
                match text[text.Length - 1] with
                | 'm' -> Some(TimeSpan.FromMinutes(float n))
                | 'h' -> Some(TimeSpan.FromHours(float n))
                | 'd' -> Some(TimeSpan.FromDays(float n))
                | 'w' -> Some(TimeSpan.FromDays(float (7 * n)))
                | _ -> None
            | _ -> None

    /// `clients rotate --grace`: `0` (the old key stops at once) or a span (`30m`, `24h`, `7d`, `2w`) up to 30 days.
    let parseGrace (text: string) : Result<TimeSpan, string> =
        match text.Trim() with
        | "0" -> Ok TimeSpan.Zero
        | trimmed ->
            match span trimmed with
            | Some grace when grace <= maxGrace -> Ok grace
            | Some _ -> Error $"--grace: at most 30 days, got \"%s{trimmed}\""
            | None ->
                Error $"--grace: expected 0 or a span such as 30m, 24h or 7d (at most 30 days), got \"%s{trimmed}\""

    /// `clients add --expires`: a span from `now` (`30d`), a date (midnight UTC) or a date-time; in the future.
    let parseExpiry (now: DateTimeOffset) (text: string) : Result<DateTimeOffset, string> =
        let trimmed = text.Trim()

        let parsed =
            match span trimmed with
            | Some s -> Ok(now + s)
            | None ->
                BudgetPeriods.parseSince TimeZoneInfo.Utc now trimmed
                |> Result.mapError (fun _ ->
                    $"--expires: expected a span such as 30d or 12w, a date (2027-01-31, midnight UTC) or a date-time (2027-01-31T18:00:00Z), got \"%s{trimmed}\"")

        match parsed with
        | Ok at when at <= now -> Error $"--expires: %s{trimmed} is not in the future"
        | other -> other

/// A runtime client-key change decided (add, revoke, rotate), as C# reads it: the changes made (to be stored and
/// applied), or why none was.
[<Sealed>]
type ClientKeyDecision private (changes: ClientKeyChange list, error: ClientKeyError voption) =

    /// Whether the change was made.
    member _.IsOk: bool = error.IsNone

    /// The changes made, oldest first (empty when refused).
    member _.Changes: Collections.Generic.IReadOnlyList<ClientKeyChange> = changes

    /// Why it was refused (only when not `IsOk`).
    member _.Error: ClientKeyError =
        match error with
        | ValueSome e -> e
        | ValueNone -> invalidOp "the change was made: there is no error"

    /// A decision of several changes.
    static member Of(result: Result<ClientKeyChange list, ClientKeyError>) : ClientKeyDecision =
        match result with
        | Ok changes -> ClientKeyDecision(changes, ValueNone)
        | Error e -> ClientKeyDecision([], ValueSome e)

    /// A decision of one change.
    static member Of(result: Result<ClientKeyChange, ClientKeyError>) : ClientKeyDecision =
        match result with
        | Ok change -> ClientKeyDecision([ change ], ValueNone)
        | Error e -> ClientKeyDecision([], ValueSome e)

/// The C#-facing surface of `ClientKeyChanges`: the host holds the change log and the effective clients as
/// read-only lists, and passes "none" as null.
[<AbstractClass; Sealed>]
type RuntimeClientKeys =

    /// `ClientKeyChanges.overlay`: the effective clients.
    static member Overlay
        (config: ClientConfig list, changes: Collections.Generic.IReadOnlyList<ClientKeyChange>)
        : Collections.Generic.IReadOnlyList<ClientConfig> =
        ClientKeyChanges.overlay config (List.ofSeq changes)

    /// `ClientKeyChanges.view`: every client and the state of its keys at `now`.
    static member View
        (config: ClientConfig list, changes: Collections.Generic.IReadOnlyList<ClientKeyChange>, now: DateTimeOffset)
        : Collections.Generic.IReadOnlyList<ClientKeyView> =
        ClientKeyChanges.view config (List.ofSeq changes) now

    /// `ClientKeyChanges.add` (`expires`, `like`: null for none; an empty `like` is none).
    static member Add
        (
            config: ClientConfig list,
            changes: Collections.Generic.IReadOnlyList<ClientKeyChange>,
            now: DateTimeOffset,
            actor: string,
            name: string,
            sha256: string,
            expires: Nullable<DateTimeOffset>,
            like: string | null
        ) : ClientKeyDecision =
        let like =
            match like with
            | null
            | "" -> None
            | like -> Some like

        ClientKeyDecision.Of(
            ClientKeyChanges.add config (List.ofSeq changes) now actor name sha256 (Option.ofNullable expires) like
        )

    /// `ClientKeyChanges.revoke`.
    static member Revoke
        (
            config: ClientConfig list,
            changes: Collections.Generic.IReadOnlyList<ClientKeyChange>,
            now: DateTimeOffset,
            actor: string,
            name: string
        ) : ClientKeyDecision =
        ClientKeyDecision.Of(ClientKeyChanges.revoke config (List.ofSeq changes) now actor name)

    /// `ClientKeyChanges.rotate`.
    static member Rotate
        (
            config: ClientConfig list,
            changes: Collections.Generic.IReadOnlyList<ClientKeyChange>,
            now: DateTimeOffset,
            actor: string,
            name: string,
            sha256: string,
            grace: TimeSpan
        ) : ClientKeyDecision =
        ClientKeyDecision.Of(ClientKeyChanges.rotate config (List.ofSeq changes) now actor name sha256 grace)
