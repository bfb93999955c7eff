namespace CcRelay.Core

open System

/// What a provider's `type` names: a type this version relays to, or one it recognises but cannot serve yet.
[<RequireQualifiedAccess>]
type internal ProviderKind =
    | Supported of ProviderType
    | NotYetSupported of Name: string

/// A `keys[].key` as written: a value, a reference to an unset variable, or nothing.
[<RequireQualifiedAccess>]
type internal KeyText =
    | Given of Value: string
    | UnsetVariable of Name: string
    | Missing

/// One decoded `keys[]` entry, before the provider's type says whether a key is required.
type internal KeyEntry = {
    Cursor: Cursor
    At: Position
    Text: KeyText
    Limits: KeyConfig
}

/// One decoded `providers[]` entry, with what the list-level checks need.
type internal ProviderEntry = {
    Cursor: Cursor
    At: Position
    Name: string option
    NameAt: Position
    /// As configured (`enabled`, default true), before any automatic disabling.
    Enabled: bool
    /// Why an enabled provider was turned off while loading (e.g. every key's variable is unset).
    DisabledBecause: string option
    /// The provider, when it is usable and of a supported type (None: skipped or invalid).
    Config: ProviderConfig option
}

/// Decodes `providers[]` (seed-cc-relay.md §3.2, with our defaults: `enabled` is true unless said otherwise).
[<RequireQualifiedAccess>]
module internal ConfigProviders =

    let private keyKeys: string list = [
        "key"
        "rpm_limit"
        "itpm_limit"
        "otpm_limit"
        "tpm_limit"
        "priority"
        "weight"
    ]

    /// Go keys of the cloud types, accepted so Go configs load; each belongs to one type.
    let private cloudKeys: (string * string) list = [
        "aws_region", "bedrock"
        "aws_access_key_id", "bedrock"
        "aws_secret_access_key", "bedrock"
        "gcp_project_id", "vertex"
        "gcp_region", "vertex"
        "azure_resource_name", "azure"
        "azure_api_version", "azure"
        "azure_deployment_id", "azure"
    ]

    let private providerKeys: string list =
        [
            "name"
            "type"
            "enabled"
            "base_url"
            "auth_header"
            "keys"
            "pooling"
            "model_mapping"
            "models"
        ]
        @ (cloudKeys |> List.map fst)

    let private kinds: (string * ProviderKind) list =
        (ProviderType.all
         |> List.map (fun t -> ProviderType.wireName t, ProviderKind.Supported t))
        @ (ProviderType.notYetSupported
           |> List.map (fun n -> n, ProviderKind.NotYetSupported n))

    let private supportedNames: string =
        ProviderType.all |> List.map ProviderType.wireName |> String.concat ", "

    /// Whether a `keys[]` entry must carry a key: Anthropic can pass the caller's own credential through,
    /// and a local Ollama usually needs none.
    let private requiresKey (providerType: ProviderType) : bool =
        match providerType with
        | ProviderType.Anthropic
        | ProviderType.Ollama -> false
        | ProviderType.Zai
        | ProviderType.Minimax
        | ProviderType.AnthropicCompatible -> true

    // ---------------------------
    // Fields
    // ---------------------------

    /// An absolute http(s) URL without credentials, query or fragment.
    let private url: Read<Uri option> =
        fun cursor node ->
            ConfigRead.optionalString cursor node
            |> Decoded.bind (fun text ->
                let at = ConfigNode.position node

                match text with
                | None
                | Some "" -> Decoded.none
                | Some text ->
                    match Uri.TryCreate(text, UriKind.Absolute) with
                    | true, NonNull uri when
                        (uri.Scheme = Uri.UriSchemeHttp || uri.Scheme = Uri.UriSchemeHttps)
                        && uri.Host <> ""
                        ->
                        // The URL is not echoed here: it may hold the password.
                        if uri.UserInfo <> "" then
                            ConfigRead.fail
                                cursor
                                at
                                "must not contain a user name or password; put credentials in keys[]"
                        elif uri.Query <> "" || uri.Fragment <> "" then
                            ConfigRead.fail
                                cursor
                                at
                                $"must not have a query (?…) or fragment (#…), got %s{ConfigRead.quote text}"
                        else
                            Decoded.ok (Some uri)
                    | _ ->
                        ConfigRead.fail
                            cursor
                            at
                            $"expected an absolute http:// or https:// URL, got %s{ConfigRead.quote text}")

    /// `keys[].key`: a secret, so no message shows its value. An unset variable is reported by the caller,
    /// which knows whether the key is needed.
    let private keyText (cursor: Cursor) (fields: Fields) : Decoded<KeyText> =
        match ConfigRead.entry "key" fields with
        | Some {
                   Value = Scalar((ScalarValue.Plain source | ScalarValue.String source), at)
               } ->
            match EnvExpand.expand cursor.Lookup source with
            | Ok "" -> Decoded.ok KeyText.Missing
            | Ok value -> Decoded.ok (KeyText.Given value)
            | Error(ExpandError.Unset name) -> Decoded.ok (KeyText.UnsetVariable name)
            | Error e -> ConfigRead.fail cursor at (EnvExpand.describe e)
        | Some { Value = Scalar(ScalarValue.Null, _) }
        | None -> Decoded.ok KeyText.Missing
        | Some entry ->
            ConfigRead.optionalString cursor entry.Value
            |> Decoded.map (fun text -> text |> Option.map KeyText.Given |> Option.defaultValue KeyText.Missing)

    let private keyEntry: Read<KeyEntry> =
        fun cursor node ->
            ConfigRead.section keyKeys cursor node
            |> Decoded.bind (fun fields ->
                let limit (key: string) (maximum: int64) : Decoded<int> =
                    fields
                    |> ConfigRead.field key (ConfigRead.optionalInteger 0L maximum)
                    |> Decoded.orDefault 0L
                    |> Decoded.map int

                let keyAt =
                    ConfigRead.entry "key" fields
                    |> Option.map (fun e -> ConfigNode.position e.Value)
                    |> Option.defaultValue fields.At

                decoded {
                    let! text = keyText (cursor.Child "key") fields
                    and! rpm = limit "rpm_limit" (int64 Int32.MaxValue)
                    and! itpm = limit "itpm_limit" (int64 Int32.MaxValue)
                    and! otpm = limit "otpm_limit" (int64 Int32.MaxValue)
                    and! tpm = limit "tpm_limit" (int64 Int32.MaxValue)
                    and! priority = limit "priority" 2L
                    and! weight = limit "weight" (int64 Int32.MaxValue)

                    return {
                        Cursor = cursor
                        At = keyAt
                        Text = text
                        Limits = {
                            Key = ""
                            RpmLimit = rpm
                            ItpmLimit = itpm
                            OtpmLimit = otpm
                            TpmLimit = tpm
                            Priority = priority
                            Weight = weight
                        }
                    }
                })

    /// `pooling`: accepted and validated; stored once key pools exist.
    let private pooling (fields: Fields) : Decoded<unit> =
        ConfigRead.subsection "pooling" [ "enabled"; "strategy" ] fields
        |> Decoded.bind (fun pooling ->
            Decoded.zip
                (ConfigRead.field "enabled" ConfigRead.optionalBoolean pooling)
                (ConfigRead.field
                    "strategy"
                    (ConfigRead.optionalChoice (
                        [ "least_loaded"; "round_robin"; "random"; "weighted" ]
                        |> List.map (fun s -> s, s)
                    ))
                    pooling)
            |> Decoded.map ignore)

    /// The Go cloud keys: checked as strings (so `${…}` problems surface), warned about on the wrong type.
    let private cloudFields (kind: ProviderKind option) (fields: Fields) : Decoded<unit> =
        cloudKeys
        |> List.map (fun (key, owner) ->
            let read = ConfigRead.field key ConfigRead.optionalString fields

            match ConfigRead.entry key fields, kind with
            | Some entry, Some(ProviderKind.Supported t) ->
                read
                |> Decoded.tell [
                    {
                        Severity = Severity.Warning
                        Issue =
                            ConfigRead.issue
                                (fields.Cursor.Child key)
                                entry.KeyAt
                                $"applies only to type %s{owner}, not %s{ProviderType.wireName t}; ignored"
                    }
                ]
            | _ -> read)
        |> Decoded.sequence
        |> Decoded.map ignore

    // ---------------------------
    // Keys
    // ---------------------------

    let private warning (issue: ConfigIssue) : Finding = {
        Severity = Severity.Warning
        Issue = issue
    }

    let private error (issue: ConfigIssue) : Finding = {
        Severity = Severity.Error
        Issue = issue
    }

    /// Applies the type's key rules: which keys are usable, what to report, and whether the provider must be
    /// turned off because every key it lists refers to an unset variable.
    let private resolveKeys
        (enabled: bool)
        (providerType: ProviderType)
        (keysAt: Position)
        (fields: Fields)
        (entries: KeyEntry list)
        : Decoded<KeyConfig list * string option> =
        let typeName = ProviderType.wireName providerType

        let perEntry =
            entries
            |> List.map (fun k ->
                match k.Text with
                | KeyText.Given value -> [], Some(k, value)
                | KeyText.UnsetVariable name when requiresKey providerType ->
                    [
                        warning (
                            ConfigRead.issue
                                (k.Cursor.Child "key")
                                k.At
                                $"environment variable %s{name} is not set; this key is skipped"
                        )
                    ],
                    None
                | KeyText.UnsetVariable name ->
                    [
                        warning (
                            ConfigRead.issue
                                (k.Cursor.Child "key")
                                k.At
                                $"environment variable %s{name} is not set; this key is skipped (type %s{typeName} works without a configured key)"
                        )
                    ],
                    None
                | KeyText.Missing when requiresKey providerType ->
                    [
                        error (ConfigRead.issue (k.Cursor.Child "key") k.At $"is required for type %s{typeName}")
                    ],
                    None
                | KeyText.Missing ->
                    [
                        warning (
                            ConfigRead.issue
                                (k.Cursor.Child "key")
                                k.At
                                $"no key given; this entry is ignored (type %s{typeName} works without a configured key)"
                        )
                    ],
                    None)

        let usable = perEntry |> List.choose snd

        // The same key twice is a copy-paste slip; the message names both places, never the key.
        let duplicates =
            usable
            |> List.indexed
            |> List.choose (fun (i, (k, value)) ->
                usable
                |> List.take i
                |> List.tryFind (fun (_, earlier) -> earlier = value)
                |> Option.map (fun (first, _) ->
                    error (
                        ConfigRead.issue
                            (k.Cursor.Child "key")
                            k.At
                            $"is the same key as %s{first.Cursor.Path}.key (line %d{first.At.Line}); list each key once"
                    )))

        let allUnset =
            not entries.IsEmpty
            && usable.IsEmpty
            && entries
               |> List.forall (fun k ->
                   match k.Text with
                   | KeyText.UnsetVariable _ -> true
                   | _ -> false)

        let disabledBecause =
            if enabled && allUnset && requiresKey providerType then
                let names =
                    entries
                    |> List.choose (fun k ->
                        match k.Text with
                        | KeyText.UnsetVariable name -> Some name
                        | _ -> None)
                    |> List.distinct
                    |> String.concat ", "

                Some $"environment variable %s{names} is not set"
            else
                None

        let disabledFinding =
            match disabledBecause with
            | Some reason -> [
                warning (
                    ConfigRead.issue
                        (fields.Cursor.Child "keys")
                        keysAt
                        $"type %s{typeName} needs a key and %s{reason}; the provider is disabled"
                )
              ]
            | None when enabled && entries.IsEmpty && requiresKey providerType -> [
                warning (
                    ConfigRead.issue
                        fields.Cursor
                        fields.At
                        $"no keys: requests to this %s{typeName} provider are sent without a credential"
                )
              ]
            | None -> []

        let keys = usable |> List.map (fun (k, value) -> { k.Limits with Key = value })

        {
            Value = Some(keys, disabledBecause)
            Findings = (perEntry |> List.collect fst) @ duplicates @ disabledFinding
        }

    // ---------------------------
    // One provider
    // ---------------------------

    /// Decodes one `providers[i]`. A disabled provider's problems are warnings: it is not used, so it must
    /// not stop the relay (the Go project validated disabled entries too: seed §16 #10).
    let private providerEntry: Read<ProviderEntry> =
        fun cursor node ->
            ConfigRead.section providerKeys cursor node
            |> Decoded.bind (fun fields ->
                let enabledDecoded =
                    fields
                    |> ConfigRead.field "enabled" ConfigRead.optionalBoolean
                    |> Decoded.orDefault true

                let enabled = enabledDecoded.Value |> Option.defaultValue true

                let typeAt =
                    ConfigRead.entry "type" fields
                    |> Option.map (fun e -> ConfigNode.position e.Value)
                    |> Option.defaultValue fields.At

                let nameAt =
                    ConfigRead.entry "name" fields
                    |> Option.map (fun e -> ConfigNode.position e.Value)
                    |> Option.defaultValue fields.At

                let keysAt =
                    ConfigRead.entry "keys" fields
                    |> Option.map (fun e -> ConfigNode.position e.Value)
                    |> Option.defaultValue fields.At

                let parts =
                    decoded {
                        let! name =
                            ConfigRead.required fields "name" ConfigRead.optionalString |> Decoded.attempt

                        and! kind =
                            ConfigRead.required fields "type" (ConfigRead.optionalChoice kinds)
                            |> Decoded.attempt

                        and! baseUrl = fields |> ConfigRead.field "base_url" url |> Decoded.attempt

                        and! authStyle =
                            fields
                            |> ConfigRead.field
                                "auth_header"
                                (ConfigRead.optionalChoice [
                                    "x-api-key", AuthStyle.XApiKey
                                    "bearer", AuthStyle.Bearer
                                ])
                            |> Decoded.attempt

                        and! keys =
                            fields
                            |> ConfigRead.field "keys" (ConfigRead.optionalList keyEntry)
                            |> Decoded.orDefault []
                            |> Decoded.attempt

                        and! mapping =
                            fields
                            |> ConfigRead.field "model_mapping" (ConfigRead.optionalMap ConfigRead.nonEmptyString)
                            |> Decoded.orDefault []
                            |> Decoded.attempt

                        and! models =
                            fields
                            |> ConfigRead.field "models" (ConfigRead.optionalList ConfigRead.nonEmptyString)
                            |> Decoded.orDefault []
                            |> Decoded.attempt

                        and! _ = pooling fields |> Decoded.attempt

                        return name, kind, baseUrl, authStyle, keys, mapping, models
                    }

                let assembled =
                    parts
                    |> Decoded.bind (fun (name, kind, baseUrl, authStyle, keys, mapping, models) ->
                        let name = name |> Option.filter (fun n -> n.Length > 0)

                        let emptyName =
                            match ConfigRead.entry "name" fields, name with
                            | Some _, None when not (Decoded.hasErrors parts) -> [
                                error (ConfigRead.issue (fields.Cursor.Child "name") nameAt "must not be empty")
                              ]
                            | _ -> []

                        let entry (config: ProviderConfig option) (disabledBecause: string option) : ProviderEntry = {
                            Cursor = cursor
                            At = fields.At
                            Name = name
                            NameAt = nameAt
                            Enabled = enabled
                            DisabledBecause = disabledBecause
                            Config = config
                        }

                        let typed =
                            match kind with
                            | None -> Decoded.ok (entry None None)
                            | Some(ProviderKind.NotYetSupported typeName) ->
                                let message =
                                    $"type %s{typeName} is recognised but not supported yet (supported: %s{supportedNames})"

                                if enabled then
                                    Decoded.error (
                                        ConfigRead.issue
                                            (fields.Cursor.Child "type")
                                            typeAt
                                            $"%s{message}; set enabled: false to keep it in the file"
                                    )
                                else
                                    Decoded.warn
                                        (ConfigRead.issue
                                            (fields.Cursor.Child "type")
                                            typeAt
                                            $"%s{message}; this provider is skipped")
                                        (entry None None)
                            | Some(ProviderKind.Supported providerType) ->
                                let baseUrlDecoded =
                                    match Option.flatten baseUrl, ProviderType.defaultBaseUrl providerType with
                                    | Some uri, _
                                    | None, Some uri -> Decoded.ok (Some uri)
                                    | None, None when ConfigRead.entry "base_url" fields |> Option.isSome ->
                                        Decoded.ok None
                                    | None, None ->
                                        Decoded.error (
                                            ConfigRead.issue
                                                (fields.Cursor.Child "base_url")
                                                fields.At
                                                $"is required for type %s{ProviderType.wireName providerType}"
                                        )

                                decoded {
                                    let! resolvedUrl = baseUrlDecoded

                                    and! resolved =
                                        resolveKeys
                                            enabled
                                            providerType
                                            keysAt
                                            fields
                                            (keys |> Option.defaultValue [])

                                    let resolvedKeys, disabledBecause = resolved

                                    return
                                        match name, resolvedUrl with
                                        | Some name, Some resolvedUrl ->
                                            let config = {
                                                Name = name
                                                Type = providerType
                                                Enabled = enabled && disabledBecause.IsNone
                                                BaseUrl = resolvedUrl
                                                AuthStyle =
                                                    authStyle
                                                    |> Option.flatten
                                                    |> Option.defaultValue (
                                                        ProviderType.defaultAuthStyle providerType
                                                    )
                                                Keys = resolvedKeys
                                                ModelMapping = mapping |> Option.defaultValue [] |> Map.ofList
                                                Models =
                                                    match models with
                                                    | Some(_ :: _ as listed) -> listed
                                                    | _ -> ProviderType.defaultModels providerType
                                            }

                                            entry (Some config) disabledBecause
                                        | _ -> entry None disabledBecause
                                }

                        typed
                        |> Decoded.tell emptyName
                        |> Decoded.bind (fun e ->
                            cloudFields kind fields |> Decoded.attempt |> Decoded.map (fun _ -> e)))

                let whole = Decoded.zip enabledDecoded assembled |> Decoded.map snd

                // A provider with an error is not usable, even when disabled.
                let whole =
                    if Decoded.hasErrors whole then
                        whole |> Decoded.map (fun e -> { e with Config = None })
                    else
                        whole

                if enabled then
                    whole
                else
                    whole |> Decoded.soften "the provider is disabled, so this is a warning")

    let private provider: Read<ProviderEntry> =
        fun cursor node ->
            match node with
            | Mapping _ -> providerEntry cursor node
            // Only the shape error: "name is required" and the like would be noise.
            | other ->
                ConfigRead.fail cursor (ConfigNode.position other) "expected a mapping with at least name and type"

    // ---------------------------
    // The list
    // ---------------------------

    /// Decodes `providers`. Absent, null or empty: the embedded default (Anthropic passthrough).
    let decode (fields: Fields) : Decoded<ProviderConfig list> =
        let cursor = fields.Cursor.Child "providers"

        match ConfigRead.entry "providers" fields with
        | None -> Decoded.ok Config.defaults.Providers
        | Some providersEntry ->
            let attempted: Read<ProviderEntry option> =
                fun c n -> provider c n |> Decoded.attempt

            ConfigRead.optionalList attempted cursor providersEntry.Value
            |> Decoded.bind (fun entries ->
                match entries |> Option.map (List.choose id) with
                | None
                | Some [] -> Decoded.ok Config.defaults.Providers
                | Some entries ->
                    // A repeated name: an error when both are enabled, else a warning; the later entry is dropped.
                    let duplicates =
                        entries
                        |> List.indexed
                        |> List.choose (fun (i, e) ->
                            match e.Name with
                            | None -> None
                            | Some name ->
                                entries
                                |> List.take i
                                |> List.tryFind (fun earlier -> earlier.Name = Some name)
                                |> Option.map (fun earlier ->
                                    let severity =
                                        if earlier.Enabled && e.Enabled then
                                            Severity.Error
                                        else
                                            Severity.Warning

                                    i,
                                    {
                                        Severity = severity
                                        Issue =
                                            ConfigRead.issue
                                                (e.Cursor.Child "name")
                                                e.NameAt
                                                $"duplicate provider name %s{ConfigRead.quote name} (first used by %s{earlier.Cursor.Path}, line %d{earlier.NameAt.Line}); names must be unique"
                                    }))

                    let dropped = duplicates |> List.map fst |> Set.ofList

                    let kept =
                        entries
                        |> List.indexed
                        |> List.filter (fun (i, _) -> not (dropped.Contains i))
                        |> List.map snd

                    let enabledCount =
                        entries
                        |> List.filter (fun e -> e.Enabled && e.DisabledBecause.IsNone)
                        |> List.length

                    let noneEnabled =
                        if enabledCount > 0 then
                            []
                        else
                            let turnedOff =
                                entries
                                |> List.choose (fun e ->
                                    match e.Name, e.DisabledBecause with
                                    | Some name, Some reason -> Some $"%s{name} was disabled because %s{reason}"
                                    | _ -> None)

                            let detail =
                                match turnedOff with
                                | [] -> "; set enabled: true on at least one"
                                | reasons ->
                                    let joined = String.concat "; " reasons
                                    $" (%s{joined})"

                            [
                                {
                                    Severity = Severity.Error
                                    Issue =
                                        ConfigRead.issue
                                            cursor
                                            (ConfigNode.position providersEntry.Value)
                                            $"no enabled provider%s{detail}"
                                }
                            ]

                    {
                        Value = Some(kept |> List.choose _.Config)
                        Findings = (duplicates |> List.map snd) @ noneEnabled
                    })
