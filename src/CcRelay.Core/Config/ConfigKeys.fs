namespace CcRelay.Core

open System

/// A `keys[].key` as written: a value, a reference to an unset variable, or nothing.
[<RequireQualifiedAccess>]
type internal KeyText =
    | Given of Value: string
    | UnsetVariable of Name: string
    | Missing

/// One decoded `keys[]` entry, before the provider's type says whether a key is required.
type internal KeyEntry = {
    Cursor: Cursor
    /// Where the key's value is (or the entry, when it has no key).
    At: Position
    Text: KeyText
    /// The limits, with `Key` still empty (and `Aws`, when the entry is an AWS credential set).
    Limits: KeyConfig
}

/// The keys of one provider after the type's rules: the usable ones, and why the provider must be turned
/// off (when it must).
type internal ResolvedKeys = {
    Keys: KeyConfig list
    DisabledBecause: string option
}

/// Decodes `providers[].keys[]`. Keys are secrets: no message shows one.
[<RequireQualifiedAccess>]
module internal ConfigKeys =

    let private keyKeys: string list = [
        "key"
        "rpm_limit"
        "itpm_limit"
        "otpm_limit"
        "tpm_limit"
        "priority"
        "weight"
        "aws_access_key_id"
        "aws_secret_access_key"
        "aws_session_token"
        "aws_profile"
    ]

    /// An error at `key` of `fields` (where its value is, when present) or, when absent, at the section itself.
    let problem (fields: Fields) (key: string) (message: string) : Finding =
        let at =
            match ConfigRead.entry key fields with
            | Some _ -> ConfigRead.valueAt key fields
            | None -> fields.At

        Finding.error (ConfigRead.issue (fields.Cursor.Child key) at message)

    /// An AWS credential set from its four keys (a provider's, or one `keys[]` entry's); None when none is given.
    /// `problem key message` locates a finding at `key`.
    let awsCredentials
        (problem: string -> string -> Finding)
        (accessKey: string option, secret: string option, token: string option, profile: string option)
        : AwsCredentialSource option * Finding list =
        match accessKey, secret, token, profile with
        | Some _, _, _, Some _
        | _, Some _, _, Some _ ->
            None,
            [
                problem "aws_profile" "give either aws_profile or aws_access_key_id/aws_secret_access_key, not both"
            ]
        | Some id, Some secret, token, None -> Some(AwsCredentialSource.Static(id, secret, token)), []
        | Some _, None, _, _ -> None, [ problem "aws_secret_access_key" "is required with aws_access_key_id" ]
        | None, Some _, _, _ -> None, [ problem "aws_access_key_id" "is required with aws_secret_access_key" ]
        | None, None, Some _, _ ->
            None,
            [
                problem
                    "aws_session_token"
                    "needs aws_access_key_id and aws_secret_access_key (a session token is part of a temporary credential set)"
            ]
        | None, None, None, Some name -> Some(AwsCredentialSource.Profile name), []
        | None, None, None, None -> None, []

    /// The pool identity of an AWS credential set (a secret: only its key id is ever shown).
    let private awsIdentity (source: AwsCredentialSource) : string =
        match source with
        | AwsCredentialSource.Static(id, secret, _) -> "aws:" + id + ":" + secret
        | AwsCredentialSource.Profile name -> "aws-profile:" + name
        | AwsCredentialSource.Chain -> "aws-chain"

    /// Whether a `keys[]` entry must carry a key: Anthropic can pass the caller's own credential through,
    /// and a local Ollama usually needs none.
    let requiresKey (providerType: ProviderType) : bool =
        match providerType with
        | ProviderType.Anthropic
        | ProviderType.Ollama
        // a Chat Completions server may be local and keyless (vLLM, Ollama, LM Studio)
        | ProviderType.OpenAi
        // Gemini on Vertex AI uses Google credentials (AI Studio's need of keys is checked with its settings)
        | ProviderType.Gemini
        // the clouds have credentials of their own (AWS, Google, Entra ID); keys are an alternative
        | ProviderType.Bedrock
        | ProviderType.Vertex
        | ProviderType.Foundry -> false
        | ProviderType.Zai
        | ProviderType.Minimax
        | ProviderType.AnthropicCompatible -> true

    /// `keys[].key`. An unset variable is not an error here: `resolve` knows whether the key is needed.
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

    /// One `keys[i]` entry: the key and its limits.
    let entry: Read<KeyEntry> =
        fun cursor node ->
            ConfigRead.section keyKeys cursor node
            |> Decoded.bind (fun fields ->
                let limit (key: string) (maximum: int64) : Decoded<int> =
                    fields
                    |> ConfigRead.field key (ConfigRead.optionalInteger 0L maximum)
                    |> Decoded.orDefault 0L
                    |> Decoded.map int

                let anyInt = int64 Int32.MaxValue

                let optionalText (key: string) : Decoded<string option> =
                    ConfigRead.field key ConfigRead.optionalString fields
                    |> Decoded.map (Option.filter (fun t -> t.Length > 0))

                decoded {
                    let! text = keyText (cursor.Child "key") fields
                    and! rpm = limit "rpm_limit" anyInt
                    and! itpm = limit "itpm_limit" anyInt
                    and! otpm = limit "otpm_limit" anyInt
                    and! tpm = limit "tpm_limit" anyInt
                    and! priority = limit "priority" 2L
                    and! weight = limit "weight" anyInt
                    and! accessKey = optionalText "aws_access_key_id"
                    and! secret = optionalText "aws_secret_access_key"
                    and! token = optionalText "aws_session_token"
                    and! profile = optionalText "aws_profile"

                    return
                        {
                            Cursor = cursor
                            At = ConfigRead.valueAt "key" fields
                            Text = text
                            Limits = {
                                Key = ""
                                RpmLimit = rpm
                                ItpmLimit = itpm
                                OtpmLimit = otpm
                                TpmLimit = tpm
                                Priority = priority
                                Weight = weight
                                Aws = None
                            }
                        },
                        (accessKey, secret, token, profile)
                }
                |> Decoded.bind (fun (entry, aws) ->
                    let source, problems = awsCredentials (problem fields) aws

                    {
                        Value =
                            Some {
                                entry with
                                    Limits = { entry.Limits with Aws = source }
                            }
                        Findings = problems
                    }))

    /// What one entry contributes: its findings and, when usable, its key.
    let private judge (providerType: ProviderType) (entry: KeyEntry) : Finding list * (KeyEntry * string) option =
        let typeName = ProviderType.wireName providerType
        let noKeyNeeded = $"type %s{typeName} works without a configured key"

        let at (message: string) =
            ConfigRead.issue (entry.Cursor.Child "key") entry.At message

        match entry.Limits.Aws, entry.Text, requiresKey providerType with
        | Some _, _, _ when providerType <> ProviderType.Bedrock ->
            [
                Finding.error (
                    ConfigRead.issue
                        entry.Cursor
                        entry.At
                        $"AWS credentials in keys[] apply only to type bedrock, not %s{typeName}"
                )
            ],
            None
        | Some _, (KeyText.Given _ | KeyText.UnsetVariable _), _ ->
            [
                Finding.error (
                    at
                        "give either key (a Bedrock API key) or an AWS credential set (aws_access_key_id/aws_secret_access_key or aws_profile), not both"
                )
            ],
            None
        | Some source, KeyText.Missing, _ -> [], Some(entry, awsIdentity source)
        | None, KeyText.Given value, _ -> [], Some(entry, value)
        | None, KeyText.UnsetVariable name, true ->
            [
                Finding.warning (at $"environment variable %s{name} is not set; this key is skipped")
            ],
            None
        | None, KeyText.UnsetVariable name, false ->
            [
                Finding.warning (at $"environment variable %s{name} is not set; this key is skipped (%s{noKeyNeeded})")
            ],
            None
        | None, KeyText.Missing, true -> [ Finding.error (at $"is required for type %s{typeName}") ], None
        | None, KeyText.Missing, false ->
            [
                Finding.warning (at $"no key given; this entry is ignored (%s{noKeyNeeded})")
            ],
            None

    /// The same key twice is a copy-paste slip; the message names both places, never the key.
    let private duplicates (usable: (KeyEntry * string) list) : Finding list =
        usable
        |> List.indexed
        |> List.choose (fun (i, (entry, value)) ->
            usable
            |> List.take i
            |> List.tryFind (fun (_, earlier) -> earlier = value)
            |> Option.map (fun (first, _) ->
                Finding.error (
                    ConfigRead.issue
                        (entry.Cursor.Child "key")
                        entry.At
                        $"is the same key as %s{first.Cursor.Path}.key (line %d{first.At.Line}); list each key once"
                )))

    /// Applies the type's key rules. An enabled provider whose type needs a key, and whose every listed key
    /// refers to an unset variable, is turned off (with a warning) rather than sent out keyless: this is
    /// what lets the Go `example.yaml` load with no variables set.
    let resolve
        (enabled: bool)
        (providerType: ProviderType)
        (provider: Fields)
        (listed: KeyEntry list option)
        : Decoded<ResolvedKeys> =
        let entries = listed |> Option.defaultValue []
        let judged = entries |> List.map (judge providerType)
        let usable = judged |> List.choose snd
        let typeName = ProviderType.wireName providerType

        let unsetNames =
            entries
            |> List.choose (fun k ->
                match k.Text with
                | KeyText.UnsetVariable name -> Some name
                | _ -> None)

        let disabledBecause =
            if
                enabled
                && requiresKey providerType
                && not entries.IsEmpty
                && unsetNames.Length = entries.Length
            then
                let names = unsetNames |> List.distinct |> String.concat ", "
                Some $"environment variable %s{names} is not set"
            else
                None

        let providerFindings =
            match disabledBecause with
            | Some reason -> [
                Finding.warning (
                    ConfigRead.issue
                        (provider.Cursor.Child "keys")
                        (ConfigRead.valueAt "keys" provider)
                        $"type %s{typeName} needs a key and %s{reason}; the provider is disabled"
                )
              ]
            | None when enabled && (listed |> Option.exists List.isEmpty) && requiresKey providerType -> [
                Finding.warning (
                    ConfigRead.issue
                        provider.Cursor
                        provider.At
                        $"no keys: requests to this %s{typeName} provider are sent without a credential"
                )
              ]
            | None -> []

        {
            Value =
                Some {
                    Keys = usable |> List.map (fun (k, value) -> { k.Limits with Key = value })
                    DisabledBecause = disabledBecause
                }
            Findings = (judged |> List.collect fst) @ duplicates usable @ providerFindings
        }
