namespace CcRelay.Core

open System
open System.Globalization
open System.Security.Cryptography
open System.Text

/// Decodes `clients[]` and `ledger` (docs/teams.md). A client key is a secret: no message shows one, and only
/// its SHA-256 is kept.
[<RequireQualifiedAccess>]
module internal ConfigClients =

    let private clientKeys: string list = [
        "name"
        "key"
        "key_sha256"
        "expires"
        "providers"
        "models"
        "stages"
        "rpm_limit"
        "itpm_limit"
        "otpm_limit"
        "max_concurrent"
        "budget"
        "metadata"
    ]

    let private periodKeys: (string * BudgetPeriod) list = [
        "daily_usd", BudgetPeriod.Day
        "weekly_usd", BudgetPeriod.Week
        "monthly_usd", BudgetPeriod.Month
        "total_usd", BudgetPeriod.Total
    ]

    let private budgetKeys: string list = (periodKeys |> List.map fst) @ [ "by_model" ]

    let private modelBudgetKeys: string list = "models" :: (periodKeys |> List.map fst)

    let private ledgerKeys: string list = [ "enabled"; "path"; "flush_interval_ms"; "queue_capacity"; "time_zone" ]

    /// The shortest client key accepted: a relay key guards money, and a short one can be guessed.
    [<Literal>]
    let MinimumKeyLength = 16

    /// The key id of a digest: its first 8 hex digits.
    let keyIdOf (digest: byte array) : string =
        Convert.ToHexStringLower(digest).Substring(0, 8)

    let internal validName (name: string) : bool =
        name.Length >= 1
        && name.Length <= 64
        && Char.IsAsciiLetterOrDigit name[0]
        && name
           |> Seq.forall (fun c -> Char.IsAsciiLetterOrDigit c || c = '-' || c = '_' || c = '.' || c = '@')

    let private clientName: Read<string option> =
        fun cursor node ->
            ConfigRead.nonEmptyString cursor node
            |> Decoded.bind (fun name ->
                if validName name then
                    Decoded.ok (Some name)
                else
                    ConfigRead.fail
                        cursor
                        (ConfigNode.position node)
                        $"%s{ConfigRead.quote name} is not a client name: 1 to 64 letters, digits, '-', '_', '.' or '@', starting with a letter or digit")

    /// The provider names a `clients[]` entry lists, with where each is, read from the node itself so that they
    /// are checked even when the entry has other problems.
    let private mentionsOf (cursor: Cursor) (node: ConfigNode) : (string * Cursor * Position) list =
        match node with
        | Mapping(entries, _) ->
            match entries |> List.tryFind (fun e -> e.Key = "providers") with
            | Some { Value = Sequence(items, _) } ->
                items
                |> List.mapi (fun i item ->
                    match item with
                    | Scalar((ScalarValue.Plain name | ScalarValue.String name), at) when
                        name.Length > 0 && not (name.Contains "${")
                        ->
                        Some(name, (cursor.Child "providers").Item i, at)
                    | _ -> None)
                |> List.choose id
            | _ -> []
        | _ -> []

    /// `expires`: an RFC 3339 date-time with an offset (`2027-01-31T00:00:00Z`), or a date (midnight UTC).
    let private expires: Read<DateTimeOffset option> =
        fun cursor node ->
            let parse (text: string) (at: Position) =
                let styles = DateTimeStyles.AssumeUniversal ||| DateTimeStyles.AdjustToUniversal

                match
                    DateTimeOffset.TryParseExact(
                        text,
                        [| "yyyy-MM-dd'T'HH:mm:ssK"; "yyyy-MM-dd'T'HH:mm:ss.FFFFFFFK"; "yyyy-MM-dd" |],
                        CultureInfo.InvariantCulture,
                        styles
                    )
                with
                | true, value -> Decoded.ok (Some value)
                | _ ->
                    ConfigRead.fail
                        cursor
                        at
                        $"expected a date-time such as 2027-01-31T00:00:00Z (or a date, 2027-01-31), got %s{ConfigRead.quote text}"

            match node with
            | Scalar((ScalarValue.OffsetDateTime text | ScalarValue.LocalDate text), at) -> parse text at
            | Scalar((ScalarValue.LocalDateTime _ | ScalarValue.LocalTime _), at) ->
                ConfigRead.fail cursor at "a date-time needs an offset (Z or +01:00): when in the world is it?"
            | _ ->
                ConfigRead.optionalString cursor node
                |> Decoded.bind (fun text ->
                    match text with
                    | None
                    | Some "" -> Decoded.none
                    | Some text -> parse text (ConfigNode.position node))

    let private usd: Read<decimal option> =
        ConfigRead.optionalDecimal 0.000001m 1_000_000_000m

    let private limit (fields: Fields) (key: string) : Decoded<int> =
        fields
        |> ConfigRead.field key (ConfigRead.optionalInteger 0L (int64 Int32.MaxValue))
        |> Decoded.orDefault 0L
        |> Decoded.map int

    /// The period caps of a `budget` or a `by_model` entry.
    let private caps (fields: Fields) (models: string option) : Decoded<Budget list> =
        periodKeys
        |> List.map (fun (key, period) ->
            fields
            |> ConfigRead.field key usd
            |> Decoded.map (
                Option.map (fun cap -> {
                    Period = period
                    LimitUsd = cap
                    Models = models
                })
            ))
        |> Decoded.sequence
        |> Decoded.map (List.choose id)

    let private modelBudget: Read<Budget list> =
        fun cursor node ->
            ConfigRead.section modelBudgetKeys cursor node
            |> Decoded.bind (fun fields ->
                ConfigRead.required fields "models" (ConfigRead.some ConfigRead.nonEmptyString)
                |> Decoded.bind (fun pattern ->
                    caps fields (Some pattern)
                    |> Decoded.bind (fun budgets ->
                        if budgets.IsEmpty then
                            ConfigRead.fail
                                cursor
                                fields.At
                                "gives no cap: set daily_usd, weekly_usd, monthly_usd or total_usd"
                        else
                            Decoded.ok budgets)))

    let private budget (client: Fields) : Decoded<Budget list> =
        ConfigRead.subsection "budget" budgetKeys client
        |> Decoded.bind (fun fields ->
            decoded {
                let! overall = caps fields None

                and! byModel =
                    fields
                    |> ConfigRead.field "by_model" (ConfigRead.optionalList modelBudget)
                    |> Decoded.orDefault []

                return overall @ List.concat byModel
            })

    let private problem (fields: Fields) (key: string) (message: string) : Decoded<'Value> = {
        Value = None
        Findings = [ ConfigKeys.problem fields key message ]
    }

    /// The key's digest, from `key` (hashed here; the text is dropped) or `key_sha256`: exactly one of them.
    let private keyDigest (fields: Fields) : Decoded<byte array> =
        decoded {
            let! key = fields |> ConfigRead.field "key" ConfigRead.optionalString
            and! sha = fields |> ConfigRead.field "key_sha256" ConfigRead.optionalString
            return key |> Option.filter (fun k -> k.Length > 0), sha |> Option.filter (fun s -> s.Length > 0)
        }
        |> Decoded.bind (fun (key, sha) ->
            match key, sha with
            | Some _, Some _ -> problem fields "key_sha256" "give either key or key_sha256, not both"
            | None, None ->
                problem
                    fields
                    "key"
                    "is required: the client's key (key: \"${ALICE_RELAY_KEY}\") or its SHA-256 (key_sha256)"
            | Some key, None when key.Length < MinimumKeyLength ->
                problem
                    fields
                    "key"
                    $"is too short: a client key needs at least %d{MinimumKeyLength} characters (e.g. 32 random bytes, base64)"
            | Some key, None -> Decoded.ok (SHA256.HashData(Encoding.UTF8.GetBytes key))
            | None, Some hex ->
                let hex = hex.Trim()

                if hex.Length = 64 && hex |> Seq.forall Uri.IsHexDigit then
                    Decoded.ok (Convert.FromHexString hex)
                else
                    problem fields "key_sha256" "expected 64 hex digits (sha256sum of the key, without a newline)")

    /// A `stages` entry: a stage's config spelling (`Stage.all`), or `direct` for a `provider,model` switch.
    let private stageName: Read<string> =
        fun cursor node ->
            ConfigRead.nonEmptyString cursor node
            |> Decoded.bind (fun name ->
                let names = (Stage.all |> List.map fst) @ [ "direct" ]

                if List.contains name names then
                    Decoded.ok name
                else
                    let hint =
                        match ConfigRead.suggest names name with
                        | Some s -> $"; did you mean \"%s{s}\"?"
                        | None -> ""

                    let known = String.concat ", " names
                    ConfigRead.fail cursor (ConfigNode.position node) $"unknown stage%s{hint} (stages: %s{known})")

    /// One `clients[]` entry.
    let private client: Read<ClientConfig> =
        fun cursor node ->
            ConfigRead.section clientKeys cursor node
            |> Decoded.bind (fun fields ->
                let names (key: string) =
                    fields
                    |> ConfigRead.field key (ConfigRead.optionalList ConfigRead.nonEmptyString)
                    |> Decoded.orDefault []

                decoded {
                    let! name = ConfigRead.required fields "name" clientName
                    and! digest = keyDigest fields
                    and! expiresAt = fields |> ConfigRead.field "expires" expires
                    and! providers = names "providers"
                    and! models = names "models"

                    and! stages =
                        fields
                        |> ConfigRead.field "stages" (ConfigRead.optionalList stageName)
                        |> Decoded.orDefault []

                    and! rpm = limit fields "rpm_limit"
                    and! itpm = limit fields "itpm_limit"
                    and! otpm = limit fields "otpm_limit"
                    and! concurrent = limit fields "max_concurrent"
                    and! budgets = budget fields

                    and! metadata =
                        fields
                        |> ConfigRead.field "metadata" (ConfigRead.optionalMap ConfigRead.nonEmptyString)
                        |> Decoded.orDefault []

                    return {
                        Name = name
                        KeyDigest = digest
                        KeyId = keyIdOf digest
                        ExpiresAt = expiresAt
                        Providers = providers
                        Models = models
                        Stages = stages
                        RpmLimit = rpm
                        ItpmLimit = itpm
                        OtpmLimit = otpm
                        MaxConcurrent = concurrent
                        Budgets = budgets
                        Metadata = metadata
                    }
                })

    /// `clients`: the clients that decoded (one with problems is left out, its problems reported), and every
    /// provider name they list with where it is.
    let decode (root: Fields) : Decoded<ClientConfig list * (string * Cursor * Position) list> =
        let entry: Read<ClientConfig option * (string * Cursor * Position) list> =
            fun cursor node ->
                client cursor node
                |> Decoded.attempt
                |> Decoded.map (fun c -> c, mentionsOf cursor node)

        root
        |> ConfigRead.field "clients" (ConfigRead.optionalList entry)
        |> Decoded.orDefault []
        |> Decoded.bind (fun entries ->
            let clients =
                entries
                |> List.mapi (fun i (c, _) -> c |> Option.map (fun c -> i, c))
                |> List.choose id

            let duplicates (key: ClientConfig -> string) (what: string) =
                clients
                |> List.groupBy (snd >> key)
                |> List.filter (fun (_, group) -> group.Length > 1)
                |> List.collect (fun (_, group) ->
                    let first = fst group.Head

                    group.Tail
                    |> List.map (fun (i, _) ->
                        Finding.error {
                            Path = $"clients[%d{i}]"
                            Position = None
                            Message = $"%s{what} as clients[%d{first}]"
                        }))

            {
                Value = Some(clients |> List.map snd, entries |> List.collect snd)
                Findings =
                    duplicates (fun c -> c.Name) "has the same name"
                    @ duplicates (fun c -> Convert.ToHexString c.KeyDigest) "has the same key"
            })

    /// Errors for provider names no provider has (a disabled provider's name is fine: it may come back).
    let checkProviders (mentions: (string * Cursor * Position) list) (providers: string list) : Finding list =
        mentions
        |> List.filter (fun (name, _, _) -> not (List.contains name providers))
        |> List.map (fun (name, cursor, at) ->
            let hint =
                match ConfigRead.suggest providers name with
                | Some s -> $"; did you mean \"%s{s}\"?"
                | None -> ""

            Finding.error (ConfigRead.issue cursor at $"no provider is named %s{ConfigRead.quote name}%s{hint}"))

    /// `ledger`.
    let ledger (root: Fields) : Decoded<LedgerConfig> =
        ConfigRead.subsection "ledger" ledgerKeys root
        |> Decoded.bind (fun fields ->
            let defaults = Config.defaultLedger

            decoded {
                let! enabled =
                    fields
                    |> ConfigRead.field "enabled" ConfigRead.optionalBoolean
                    |> Decoded.orDefault defaults.Enabled

                and! path = fields |> ConfigRead.field "path" ConfigRead.optionalString

                and! flush =
                    fields
                    |> ConfigRead.field "flush_interval_ms" (ConfigRead.optionalInteger 10L 60_000L)
                    |> Decoded.orDefault (int64 defaults.FlushIntervalMs)

                and! capacity =
                    fields
                    |> ConfigRead.field "queue_capacity" (ConfigRead.optionalInteger 100L 10_000_000L)
                    |> Decoded.orDefault (int64 defaults.QueueCapacity)

                and! zone = fields |> ConfigRead.field "time_zone" ConfigRead.optionalString

                return enabled, path, flush, capacity, zone
            }
            |> Decoded.bind (fun (enabled, path, flush, capacity, zone) ->
                let config = {
                    Enabled = enabled
                    Path = path |> Option.filter (fun p -> p.Length > 0)
                    FlushIntervalMs = int flush
                    QueueCapacity = int capacity
                    TimeZone = TimeZoneInfo.Utc
                }

                match zone with
                | None
                | Some "" -> Decoded.ok config
                | Some id ->
                    match TimeZoneInfo.TryFindSystemTimeZoneById id with
                    | true, NonNull zone -> Decoded.ok { config with TimeZone = zone }
                    | _ ->
                        ConfigRead.fail
                            (fields.Cursor.Child "time_zone")
                            (ConfigRead.valueAt "time_zone" fields)
                            $"%s{ConfigRead.quote id} is not a time zone this machine knows: use an IANA name such as UTC, Europe/Berlin or America/New_York"))
