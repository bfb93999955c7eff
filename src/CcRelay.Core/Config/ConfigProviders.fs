namespace CcRelay.Core

open System

/// What a provider's `type` names: a type this version relays to, or one it recognises but cannot serve yet.
[<RequireQualifiedAccess>]
type internal ProviderKind =
    | Supported of ProviderType
    | NotYetSupported of Name: string

/// The fields of one `providers[]` entry, each None when absent or invalid (its finding is recorded).
type internal ProviderFields = {
    Name: string option
    Kind: ProviderKind option
    BaseUrl: Uri option
    AuthStyle: AuthStyle option
    /// None when `keys` itself had an error (so "no keys" is not reported on top of it).
    Keys: KeyEntry list option
    ModelMapping: (string * string) list
    Models: string list
    Pricing: PriceRule list
    Priority: int option
    Weight: int option
    Family: string option
    KeyStrategy: KeyStrategy
}

/// One decoded `providers[]` entry, with what the list-level checks need.
type internal ProviderEntry = {
    Cursor: Cursor
    Name: string option
    NameAt: Position
    /// As configured (`enabled`, default true), before any automatic disabling.
    Enabled: bool
    /// Why an enabled provider was turned off while loading (e.g. every key's variable is unset).
    DisabledBecause: string option
    /// The provider, when it is usable and of a supported type (None: skipped or invalid).
    Config: ProviderConfig option
    /// An enabled entry with an error of its own (already reported; it makes the load fail).
    Failed: bool
}

/// Decodes `providers[]` (seed-cc-relay.md §3.2, with our defaults: `enabled` is true unless said otherwise).
[<RequireQualifiedAccess>]
module internal ConfigProviders =

    /// The cloud types' keys (the Go project's and ours); each belongs to one type.
    let private cloudKeys: (string * ProviderType) list = [
        "aws_region", ProviderType.Bedrock
        "aws_access_key_id", ProviderType.Bedrock
        "aws_secret_access_key", ProviderType.Bedrock
        "aws_session_token", ProviderType.Bedrock
        "aws_profile", ProviderType.Bedrock
        "bedrock_api", ProviderType.Bedrock
        "bedrock_betas", ProviderType.Bedrock
        "gcp_project_id", ProviderType.Vertex
        "gcp_region", ProviderType.Vertex
        "gcp_credentials_file", ProviderType.Vertex
        "azure_resource_name", ProviderType.Foundry
        "azure_api_version", ProviderType.Foundry
        "azure_deployment_id", ProviderType.Foundry
        "azure_tenant_id", ProviderType.Foundry
        "azure_client_id", ProviderType.Foundry
        "azure_client_secret", ProviderType.Foundry
        "azure_client_certificate_path", ProviderType.Foundry
        "azure_authority_host", ProviderType.Foundry
        "reasoning_field", ProviderType.OpenAi
        "max_tokens_field", ProviderType.OpenAi
        "stream_usage", ProviderType.OpenAi
        "thinking_control", ProviderType.OpenAi
        "mid_conversation_system", ProviderType.OpenAi
        // Gemini on Vertex AI reads the Google keys too
        "gcp_project_id", ProviderType.Gemini
        "gcp_region", ProviderType.Gemini
        "gcp_credentials_file", ProviderType.Gemini
        "gemini_thinking", ProviderType.Gemini
        "openai_api", ProviderType.OpenAi
        "on_dropped", ProviderType.OpenAi
        "on_dropped", ProviderType.Gemini
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
            "pricing"
            "priority"
            "weight"
            "family"
        ]
        @ (cloudKeys |> List.map fst |> List.distinct)

    let private kinds: (string * ProviderKind) list =
        (ProviderType.all
         |> List.map (fun t -> ProviderType.wireName t, ProviderKind.Supported t))
        @ (ProviderType.aliases
           |> List.map (fun (alias, t) -> alias, ProviderKind.Supported t))
        @ (ProviderType.notYetSupported
           |> List.map (fun n -> n, ProviderKind.NotYetSupported n))

    let private supportedNames: string =
        ProviderType.all |> List.map ProviderType.wireName |> String.concat ", "

    // ---------------------------
    // Fields
    // ---------------------------

    /// A non-empty name (a name is how routing, logs and breakers refer to a provider).
    let private name: Read<string option> =
        fun cursor node ->
            ConfigRead.optionalString cursor node
            |> Decoded.bind (fun text ->
                match text with
                | Some "" -> ConfigRead.fail cursor (ConfigNode.position node) "must not be empty"
                | other -> Decoded.ok other)

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

    /// `pooling`: the key strategy. Pooling itself is always on when a provider has keys, so
    /// `enabled: false` (Go's switch) has no effect and says so.
    let private pooling (fields: Fields) : Decoded<KeyStrategy> =
        ConfigRead.subsection "pooling" [ "enabled"; "strategy" ] fields
        |> Decoded.bind (fun pooling ->
            let enabled = ConfigRead.field "enabled" ConfigRead.optionalBoolean pooling

            let enabled =
                match enabled.Value with
                | Some(Some false) ->
                    enabled
                    |> Decoded.tell [
                        Finding.warning (
                            ConfigRead.issue
                                (pooling.Cursor.Child "enabled")
                                (ConfigRead.valueAt "enabled" pooling)
                                "has no effect: keys are always pooled and their limits always enforced"
                        )
                    ]
                | _ -> enabled

            Decoded.zip
                enabled
                (ConfigRead.field "strategy" (ConfigRead.optionalChoice KeyStrategy.all) pooling
                 |> Decoded.orDefault KeyStrategy.LeastLoaded)
            |> Decoded.map snd)

    /// The most a price may be, in USD per million tokens: far above any real model's, so that a slipped
    /// digit is caught.
    let private maxPrice: decimal = 100_000m

    /// One `pricing` value: `{ input, output, cache_read, cache_write }` in USD per million tokens. `input`
    /// and `output` are required; a missing cache price is the input price (no cache discount assumed).
    let private modelPrice: Read<ModelPrice> =
        fun cursor node ->
            ConfigRead.section [ "input"; "output"; "cache_read"; "cache_write" ] cursor node
            |> Decoded.bind (fun fields ->
                let amount = ConfigRead.optionalDecimal 0m maxPrice

                decoded {
                    let! input = ConfigRead.required fields "input" amount
                    and! output = ConfigRead.required fields "output" amount
                    and! cacheRead = fields |> ConfigRead.field "cache_read" amount
                    and! cacheWrite = fields |> ConfigRead.field "cache_write" amount

                    return {
                        Input = input
                        Output = output
                        CacheRead = defaultArg cacheRead input
                        CacheWrite = defaultArg cacheWrite input
                    }
                })

    /// `pricing`: a mapping of model id (or prefix ending in `*`) to prices, in file order.
    let private pricing (fields: Fields) : Decoded<PriceRule list> =
        let patternProblems =
            match ConfigRead.entry "pricing" fields with
            | Some { Value = Mapping(entries, _) } ->
                entries
                |> List.choose (fun e ->
                    let star = e.Key.IndexOf '*'

                    if e.Key.Trim().Length = 0 then
                        Some "a model pattern must not be empty"
                    elif star >= 0 && star <> e.Key.Length - 1 then
                        Some
                            $"model pattern %s{ConfigRead.quote e.Key}: only a trailing * is allowed (a prefix, e.g. claude-sonnet-4*)"
                    else
                        None
                    |> Option.map (fun message ->
                        Finding.error (ConfigRead.issue ((fields.Cursor.Child "pricing").Child e.Key) e.KeyAt message)))
            | _ -> []

        fields
        |> ConfigRead.field "pricing" (ConfigRead.optionalMap modelPrice)
        |> Decoded.orDefault []
        |> Decoded.map (List.map (fun (pattern, price) -> { Pattern = pattern; Price = price }))
        |> Decoded.tell patternProblems

    /// The cloud keys of the other types: checked as strings (so `${…}` problems surface), warned about.
    let private foreignCloudKeys (providerType: ProviderType) (fields: Fields) : Decoded<unit> =
        let own =
            cloudKeys
            |> List.filter (fun (_, owner) -> owner = providerType)
            |> List.map fst

        cloudKeys
        |> List.filter (fun (key, _) -> not (List.contains key own))
        |> List.distinctBy fst
        |> List.map (fun (key, _) ->
            let read = ConfigRead.field key ConfigRead.optionalString fields

            let owners =
                cloudKeys
                |> List.filter (fun (k, _) -> k = key)
                |> List.map (snd >> ProviderType.wireName)
                |> String.concat " or "

            match ConfigRead.entry key fields with
            | Some entry ->
                read
                |> Decoded.tell [
                    Finding.warning (
                        ConfigRead.issue
                            (fields.Cursor.Child key)
                            entry.KeyAt
                            $"applies only to type %s{owners}, not %s{ProviderType.wireName providerType}; ignored"
                    )
                ]
            | None -> read)
        |> Decoded.sequence
        |> Decoded.map ignore

    /// A string key that must be given for this type.
    let private requiredFor (providerType: ProviderType) (key: string) (fields: Fields) : Decoded<string> =
        ConfigRead.field key ConfigRead.optionalString fields
        |> Decoded.bind (fun value ->
            match value with
            | Some text when text.Trim().Length > 0 -> Decoded.ok text
            | Some _ -> ConfigRead.fail (fields.Cursor.Child key) (ConfigRead.valueAt key fields) "must not be empty"
            | None when (ConfigRead.entry key fields).IsSome ->
                // present but not a string: already reported
                { Value = None; Findings = [] }
            | None ->
                ConfigRead.fail
                    (fields.Cursor.Child key)
                    fields.At
                    $"is required for type %s{ProviderType.wireName providerType}")

    let private text (key: string) (fields: Fields) : Decoded<string option> =
        ConfigRead.field key ConfigRead.optionalString fields
        |> Decoded.map (Option.filter (fun t -> t.Length > 0))

    /// An error at `key` (which is present) or, when absent, at the provider.
    let private problem = ConfigKeys.problem

    /// A region or project spelled as AWS and Google spell them: lower-case letters, digits and hyphens.
    let private isPlainName (value: string) : bool =
        value.Length > 0
        && value
           |> Seq.forall (fun c -> (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c = '-')

    let private nameProblem (fields: Fields) (key: string) (value: string) (what: string) (example: string) =
        if isPlainName value then
            []
        else
            [
                problem
                    fields
                    key
                    $"%s{ConfigRead.quote value} is not %s{what} (lower-case letters, digits and hyphens, e.g. %s{example})"
            ]

    let private bedrock (fields: Fields) : Decoded<CloudSettings> =
        decoded {
            let! region = requiredFor ProviderType.Bedrock "aws_region" fields
            and! accessKey = text "aws_access_key_id" fields
            and! secret = text "aws_secret_access_key" fields
            and! token = text "aws_session_token" fields
            and! profile = text "aws_profile" fields

            and! api =
                fields
                |> ConfigRead.field
                    "bedrock_api"
                    (ConfigRead.optionalChoice [ "invoke", BedrockApi.Invoke; "messages", BedrockApi.Messages ])
                |> Decoded.orDefault BedrockApi.Invoke

            and! betas =
                fields
                |> ConfigRead.field "bedrock_betas" (ConfigRead.optionalList ConfigRead.nonEmptyString)

            return region, accessKey, secret, token, profile, api, betas
        }
        |> Decoded.bind (fun (region, accessKey, secret, token, profile, api, betas) ->
            let credentials, problems =
                ConfigKeys.awsCredentials (problem fields) (accessKey, secret, token, profile)
                |> fun (source, problems) -> defaultArg source AwsCredentialSource.Chain, problems

            {
                Value =
                    Some(
                        CloudSettings.Bedrock {
                            Region = region
                            Credentials = credentials
                            Api = api
                            Betas = betas |> Option.defaultValue Bedrock.defaultBetas
                        }
                    )
                Findings = problems @ nameProblem fields "aws_region" region "an AWS region" "us-east-1"
            })

    let private vertex (fields: Fields) : Decoded<CloudSettings> =
        decoded {
            let! project = requiredFor ProviderType.Vertex "gcp_project_id" fields
            and! region = requiredFor ProviderType.Vertex "gcp_region" fields
            and! file = text "gcp_credentials_file" fields
            return project, region, file
        }
        |> Decoded.bind (fun (project, region, file) -> {
            Value =
                Some(
                    CloudSettings.Vertex {
                        ProjectId = project
                        Region = region
                        CredentialsFile = file
                    }
                )
            Findings = nameProblem fields "gcp_region" region "a Google Cloud region" "us-east5"
        })

    let private foundry (baseUrlGiven: bool) (fields: Fields) : Decoded<CloudSettings> =
        let noEffect (key: string) (why: string) : Finding list =
            match ConfigRead.entry key fields with
            | Some entry -> [
                Finding.warning (
                    ConfigRead.issue
                        (fields.Cursor.Child key)
                        entry.KeyAt
                        $"has no effect on Microsoft Foundry: %s{why}"
                )
              ]
            | None -> []

        decoded {
            let! resource = text "azure_resource_name" fields
            and! _ = text "azure_api_version" fields
            and! _ = text "azure_deployment_id" fields
            and! tenant = text "azure_tenant_id" fields
            and! client = text "azure_client_id" fields
            and! secret = text "azure_client_secret" fields
            and! certificate = text "azure_client_certificate_path" fields
            and! authority = text "azure_authority_host" fields
            return resource, tenant, client, secret, certificate, authority
        }
        |> Decoded.bind (fun (resource, tenant, client, secret, certificate, authority) ->
            let authorityProblems =
                match authority with
                | Some host ->
                    match Uri.TryCreate(host, UriKind.Absolute) with
                    | true, NonNull uri when uri.Scheme = Uri.UriSchemeHttps && String.IsNullOrEmpty uri.Query -> []
                    | _ -> [
                        problem
                            fields
                            "azure_authority_host"
                            $"%s{ConfigRead.quote host} is not an https URL (e.g. https://login.microsoftonline.us)"
                      ]
                | None -> []

            let resourceProblems =
                match resource with
                | None when not baseUrlGiven -> [
                    problem
                        fields
                        "azure_resource_name"
                        "is required for type azure (or give base_url, e.g. https://my-resource.services.ai.azure.com/anthropic)"
                  ]
                | Some name ->
                    match Foundry.defaultBaseUrl name with
                    | Ok _ -> []
                    | Error message -> [
                        problem fields "azure_resource_name" $"%s{ConfigRead.quote name}: %s{message}"
                      ]
                | _ -> []

            let entra, entraProblems =
                match tenant, client, secret, certificate with
                | _, _, Some _, Some _ ->
                    EntraCredential.Default,
                    [
                        problem
                            fields
                            "azure_client_certificate_path"
                            "give either azure_client_secret or azure_client_certificate_path, not both"
                    ]
                | Some tenant, Some client, Some secret, None ->
                    EntraCredential.ClientSecret(tenant, client, secret), []
                | Some tenant, Some client, None, Some path ->
                    EntraCredential.ClientCertificate(tenant, client, path), []
                | None, _, Some _, _
                | None, _, _, Some _ ->
                    EntraCredential.Default,
                    [
                        problem fields "azure_tenant_id" "is required with a client secret or certificate"
                    ]
                | _, None, Some _, _
                | _, None, _, Some _ ->
                    EntraCredential.Default,
                    [
                        problem fields "azure_client_id" "is required with a client secret or certificate"
                    ]
                | Some _, Some _, None, None ->
                    EntraCredential.Default,
                    [
                        Finding.warning (
                            ConfigRead.issue
                                (fields.Cursor.Child "azure_client_id")
                                (ConfigRead.valueAt "azure_client_id" fields)
                                "has no effect without azure_client_secret or azure_client_certificate_path: DefaultAzureCredential is used (it reads AZURE_CLIENT_ID from the environment)"
                        )
                    ]
                | _, _, None, None -> EntraCredential.Default, []

            {
                Value =
                    Some(
                        CloudSettings.Foundry {
                            Resource = resource
                            Entra = entra
                            AuthorityHost = authority
                        }
                    )
                Findings =
                    resourceProblems
                    @ authorityProblems
                    @ entraProblems
                    @ noEffect "azure_api_version" "its Anthropic endpoint takes no api-version"
                    @ noEffect "azure_deployment_id" "the deployment name is the model (use model_mapping)"
            })

    /// `type: openai`'s knobs. The defaults follow the server: OpenAI's own API (`api.openai.com`) shows no
    /// reasoning and its newer models take only `max_completion_tokens`; every other server (DeepSeek, vLLM,
    /// Ollama, OpenRouter, …) takes `max_tokens` and shows reasoning as `reasoning_content` (read as
    /// `reasoning` too).
    let private openAi (baseUrl: Uri option) (fields: Fields) : Decoded<CloudSettings> =
        let openAiItself =
            match baseUrl with
            | Some url -> url.Host.Equals("api.openai.com", StringComparison.OrdinalIgnoreCase)
            | None -> true

        let choice (key: string) (choices: (string * 'Value) list) (fallback: 'Value) : Decoded<'Value> =
            fields
            |> ConfigRead.field key (ConfigRead.optionalChoice choices)
            |> Decoded.orDefault fallback

        decoded {
            let! reasoning =
                choice
                    "reasoning_field"
                    OpenAiKnobs.reasoningFields
                    (if openAiItself then
                         ReasoningField.NoField
                     else
                         ReasoningField.ReasoningContent)

            and! maxTokens =
                choice
                    "max_tokens_field"
                    OpenAiKnobs.maxTokensFields
                    (if openAiItself then
                         MaxTokensField.MaxCompletionTokens
                     else
                         MaxTokensField.MaxTokens)

            and! streamUsage =
                fields
                |> ConfigRead.field "stream_usage" ConfigRead.optionalBoolean
                |> Decoded.orDefault true

            and! thinking =
                choice "thinking_control" OpenAiKnobs.thinkingControls ThinkingControl.NoControl

            and! midSystem =
                choice "mid_conversation_system" OpenAiKnobs.midSystems MidSystem.InPlace

            and! api = choice "openai_api" OpenAiKnobs.apis OpenAiApi.Chat

            and! onDropped = choice "on_dropped" OpenAiKnobs.droppedPolicies DroppedPolicy.Report

            return
                CloudSettings.OpenAi {
                    ReasoningField = reasoning
                    MaxTokensField = maxTokens
                    StreamUsage = streamUsage
                    Thinking = thinking
                    Api = api
                    OnDropped = onDropped
                    MidSystem = midSystem
                }
        }

    /// `type: gemini`'s settings: Vertex AI when `gcp_project_id` is given (then `gcp_region` is required),
    /// else Google AI Studio; `gemini_thinking` (default `auto`).
    let private gemini (fields: Fields) : Decoded<CloudSettings> =
        decoded {
            let! project = text "gcp_project_id" fields
            and! region = text "gcp_region" fields
            and! file = text "gcp_credentials_file" fields

            and! thinking =
                fields
                |> ConfigRead.field "gemini_thinking" (ConfigRead.optionalChoice OpenAiKnobs.geminiThinkings)
                |> Decoded.orDefault GeminiThinking.Auto

            and! onDropped =
                fields
                |> ConfigRead.field "on_dropped" (ConfigRead.optionalChoice OpenAiKnobs.droppedPolicies)
                |> Decoded.orDefault DroppedPolicy.Report

            return project, region, file, thinking, onDropped
        }
        |> Decoded.bind (fun (project, region, file, thinking, onDropped) ->
            let vertexOnly (key: string) (value: string option) =
                match value with
                | Some _ -> [
                    problem fields key "applies to Gemini on Vertex AI only: give gcp_project_id too (or remove it)"
                  ]
                | None -> []

            match project, region with
            | Some project, Some region -> {
                Value =
                    Some(
                        CloudSettings.Gemini {
                            Endpoint =
                                GeminiEndpoint.Vertex {
                                    ProjectId = project
                                    Region = region
                                    CredentialsFile = file
                                }
                            Thinking = thinking
                            OnDropped = onDropped
                        }
                    )
                Findings =
                    nameProblem fields "gcp_region" region "a Google Cloud region" "us-central1"
                    @ nameProblem fields "gcp_project_id" project "a Google Cloud project id" "my-project"
              }
            | Some _, None -> {
                Value = None
                Findings = [
                    problem
                        fields
                        "gcp_region"
                        "is required for Gemini on Vertex AI (with gcp_project_id), e.g. global or us-central1"
                ]
              }
            | None, _ -> {
                Value =
                    Some(
                        CloudSettings.Gemini {
                            Endpoint = GeminiEndpoint.AiStudio
                            Thinking = thinking
                            OnDropped = onDropped
                        }
                    )
                Findings =
                    vertexOnly "gcp_region" region
                    @ vertexOnly "gcp_credentials_file" file
                    @ (match ConfigRead.entry "keys" fields with
                       | None -> [
                           problem
                               fields
                               "keys"
                               "is required for Gemini on Google AI Studio (an API key); for Vertex AI give gcp_project_id and gcp_region"
                         ]
                       | Some _ -> [])
              })

    /// The cloud settings of a provider of `providerType` (a `type: openai` provider's knobs too), and
    /// warnings for other types' keys.
    let private cloud
        (providerType: ProviderType)
        (baseUrlGiven: bool)
        (baseUrl: Uri option)
        (fields: Fields)
        : Decoded<CloudSettings> =
        let own =
            match providerType with
            | ProviderType.Bedrock -> bedrock fields
            | ProviderType.Vertex -> vertex fields
            | ProviderType.Foundry -> foundry baseUrlGiven fields
            | ProviderType.OpenAi -> openAi baseUrl fields
            | ProviderType.Gemini -> gemini fields
            | ProviderType.Anthropic
            | ProviderType.Zai
            | ProviderType.Minimax
            | ProviderType.Ollama
            | ProviderType.AnthropicCompatible -> Decoded.ok CloudSettings.Direct

        Decoded.zip own (foreignCloudKeys providerType fields) |> Decoded.map fst

    /// The endpoint a cloud provider uses when `base_url` is not given.
    let private cloudBaseUrl (settings: CloudSettings) : Uri option =
        match settings with
        | CloudSettings.Bedrock b -> Some(Bedrock.defaultBaseUrl b.Region)
        | CloudSettings.Vertex v -> Some(Vertex.defaultBaseUrl v.Region)
        | CloudSettings.Foundry { Resource = Some resource } -> Foundry.defaultBaseUrl resource |> Result.toOption
        | CloudSettings.Gemini { Endpoint = GeminiEndpoint.Vertex v } -> Some(Vertex.defaultBaseUrl v.Region)
        | CloudSettings.Foundry _
        | CloudSettings.OpenAi _
        | CloudSettings.Gemini _
        | CloudSettings.Direct -> None

    /// Every field, each decoded on its own so that all their problems are reported together.
    let private providerFields (fields: Fields) : Decoded<ProviderFields> =
        let optional (key: string) (read: Read<'Value option>) : Decoded<'Value option> =
            fields
            |> ConfigRead.field key read
            |> Decoded.attempt
            |> Decoded.map Option.flatten

        let listed (key: string) (read: Read<'Value list option>) : Decoded<'Value list> =
            fields
            |> ConfigRead.field key read
            |> Decoded.orDefault []
            |> Decoded.attempt
            |> Decoded.map (Option.defaultValue [])

        let authStyles = [ "x-api-key", AuthStyle.XApiKey; "bearer", AuthStyle.Bearer ]

        decoded {
            let! name = ConfigRead.required fields "name" name |> Decoded.attempt

            and! kind =
                ConfigRead.required fields "type" (ConfigRead.optionalChoice kinds)
                |> Decoded.attempt

            and! baseUrl = optional "base_url" url
            and! authStyle = optional "auth_header" (ConfigRead.optionalChoice authStyles)

            and! keys =
                fields
                |> ConfigRead.field "keys" (ConfigRead.optionalList ConfigKeys.entry)
                |> Decoded.attempt
                // Absent: no keys. Invalid: None.
                |> Decoded.map (Option.map (Option.defaultValue []))

            and! mapping =
                listed "model_mapping" (ConfigRead.optionalMap ConfigRead.nonEmptyString)

            and! models = listed "models" (ConfigRead.optionalList ConfigRead.nonEmptyString)

            and! pricing =
                pricing fields |> Decoded.attempt |> Decoded.map (Option.defaultValue [])


            and! keyStrategy =
                pooling fields
                |> Decoded.attempt
                |> Decoded.map (Option.defaultValue KeyStrategy.LeastLoaded)

            and! priority = optional "priority" (ConfigRead.optionalInteger 0L 1_000_000L)
            and! weight = optional "weight" (ConfigRead.optionalInteger 0L 1_000_000L)
            and! family = optional "family" ConfigRead.optionalString

            return {
                Name = name
                Kind = kind
                BaseUrl = baseUrl
                AuthStyle = authStyle
                Keys = keys
                ModelMapping = mapping
                Models = models
                Pricing = pricing
                Priority = priority |> Option.map int
                Weight = weight |> Option.map int
                Family = family |> Option.filter (fun f -> f.Length > 0)
                KeyStrategy = keyStrategy
            }
        }

    // ---------------------------
    // One provider
    // ---------------------------

    /// A provider of a type this version relays to: type defaults applied, key rules enforced.
    let private supported
        (enabled: bool)
        (providerType: ProviderType)
        (fields: Fields)
        (parts: ProviderFields)
        : Decoded<ProviderConfig option * string option> =
        let baseUrlGiven = (ConfigRead.entry "base_url" fields).IsSome
        let cloud = cloud providerType baseUrlGiven parts.BaseUrl fields

        let typeDefault =
            match cloud.Value with
            | Some settings -> cloudBaseUrl settings
            | None -> None
            |> Option.orElse (ProviderType.defaultBaseUrl providerType)

        let baseUrl =
            match parts.BaseUrl, typeDefault with
            | Some uri, _
            | None, Some uri -> Decoded.ok (Some uri)
            // The cloud settings that would give the URL have an error of their own (reported).
            | None, None when ProviderType.isCloud providerType -> Decoded.ok None
            // Present but invalid: already reported.
            | None, None when (ConfigRead.entry "base_url" fields).IsSome -> Decoded.ok None
            | None, None ->
                ConfigRead.fail
                    (fields.Cursor.Child "base_url")
                    fields.At
                    $"is required for type %s{ProviderType.wireName providerType}"

        decoded {
            let! baseUrl = baseUrl
            and! cloud = cloud
            and! keys = ConfigKeys.resolve enabled providerType fields parts.Keys

            return
                match parts.Name, baseUrl with
                | Some name, Some baseUrl ->
                    Some {
                        Name = name
                        Type = providerType
                        Enabled = enabled && keys.DisabledBecause.IsNone
                        BaseUrl = baseUrl
                        AuthStyle =
                            parts.AuthStyle
                            |> Option.defaultValue (ProviderType.defaultAuthStyle providerType)
                        Keys = keys.Keys
                        ModelMapping = Map.ofList parts.ModelMapping
                        Models =
                            match parts.Models with
                            | [] -> ProviderType.defaultModels providerType
                            | listed -> listed
                        Pricing = parts.Pricing
                        // Go took the provider's priority and weight from its first key; an explicit
                        // provider-level value wins.
                        Priority =
                            parts.Priority
                            |> Option.orElse (keys.Keys |> List.tryHead |> Option.map _.Priority)
                            |> Option.defaultValue 0
                        Weight =
                            parts.Weight
                            |> Option.orElse (keys.Keys |> List.tryHead |> Option.map _.Weight)
                            |> Option.defaultValue 1
                            |> max 1
                        Family = parts.Family |> Option.defaultValue (Config.defaultFamily name providerType)
                        KeyStrategy = parts.KeyStrategy
                        Cloud = cloud
                    },
                    keys.DisabledBecause
                | _ -> None, keys.DisabledBecause
        }

    /// A provider whose type is recognised but not served yet: an error when enabled, else skipped.
    let private notYetSupported (enabled: bool) (typeName: string) (fields: Fields) : Decoded<unit> =
        let message =
            $"type %s{typeName} is recognised but not supported yet (supported: %s{supportedNames})"

        let at = ConfigRead.valueAt "type" fields

        if enabled then
            ConfigRead.fail (fields.Cursor.Child "type") at $"%s{message}; set enabled: false to keep it in the file"
        else
            Decoded.warn (ConfigRead.issue (fields.Cursor.Child "type") at $"%s{message}; this provider is skipped") ()

    /// Decodes one `providers[i]` mapping. A disabled provider's problems are warnings: it is not used, so it
    /// must not stop the relay (the Go project validated disabled entries like enabled ones: seed §16 #10).
    let private providerEntry (cursor: Cursor) (node: ConfigNode) : Decoded<ProviderEntry> =
        ConfigRead.section providerKeys cursor node
        |> Decoded.bind (fun fields ->
            let enabledField =
                fields
                |> ConfigRead.field "enabled" ConfigRead.optionalBoolean
                |> Decoded.orDefault true

            let enabled = enabledField.Value |> Option.defaultValue true

            let decodedEntry =
                providerFields fields
                |> Decoded.bind (fun parts ->
                    let resolved =
                        match parts.Kind with
                        | None -> Decoded.ok (None, None)
                        | Some(ProviderKind.NotYetSupported typeName) ->
                            notYetSupported enabled typeName fields |> Decoded.map (fun () -> None, None)
                        | Some(ProviderKind.Supported providerType) -> supported enabled providerType fields parts

                    decoded {
                        let! config, disabledBecause = resolved

                        return {
                            Cursor = cursor
                            Name = parts.Name
                            NameAt = ConfigRead.valueAt "name" fields
                            Enabled = enabled
                            DisabledBecause = disabledBecause
                            Config = config
                            Failed = false
                        }
                    })

            let whole = Decoded.zip enabledField decodedEntry |> Decoded.map snd

            // A provider with an error is not usable, even when disabled.
            let whole =
                if Decoded.hasErrors whole then
                    whole
                    |> Decoded.map (fun e -> {
                        e with
                            Config = None
                            Failed = enabled
                    })
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

    /// A repeated name: an error when both entries are enabled, else a warning. Returns the findings and the
    /// indexes of the later entries, which are dropped so that names stay unique.
    let private duplicateNames (entries: ProviderEntry list) : Finding list * Set<int> =
        let found =
            entries
            |> List.indexed
            |> List.choose (fun (i, e) ->
                e.Name
                |> Option.bind (fun name ->
                    entries
                    |> List.take i
                    |> List.tryFind (fun earlier -> earlier.Name = Some name)
                    |> Option.map (fun earlier ->
                        let issue =
                            ConfigRead.issue
                                (e.Cursor.Child "name")
                                e.NameAt
                                $"duplicate provider name %s{ConfigRead.quote name} (first used by %s{earlier.Cursor.Path}, line %d{earlier.NameAt.Line}); names must be unique"

                        let finding =
                            if earlier.Enabled && e.Enabled then
                                Finding.error issue
                            else
                                Finding.warning issue

                        finding, i)))

        found |> List.map fst, found |> List.map snd |> Set.ofList

    /// No enabled provider is an error; when some were turned off for unset keys, it says which and why.
    let private noneEnabled (at: Position) (cursor: Cursor) (entries: ProviderEntry list) : Finding list =
        if entries |> List.exists (fun e -> e.Enabled && e.DisabledBecause.IsNone) then
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

            [ Finding.error (ConfigRead.issue cursor at $"no enabled provider%s{detail}") ]

    /// Decodes `providers`. Absent, null or empty: the embedded default (Anthropic passthrough). Also gives
    /// the names of enabled entries that failed with errors of their own: they exist in the file, so a
    /// reference to one (from `routing`) is not a second error.
    let decode (root: Fields) : Decoded<ProviderConfig list * string list> =
        let cursor = root.Cursor.Child "providers"

        match ConfigRead.entry "providers" root with
        | None -> Decoded.ok (Config.defaults.Providers, [])
        | Some listEntry ->
            // Each entry always yields a value, so one bad provider does not hide the list-level checks.
            let attempted: Read<ProviderEntry option> =
                fun c n -> provider c n |> Decoded.attempt

            ConfigRead.optionalList attempted cursor listEntry.Value
            |> Decoded.bind (fun entries ->
                match entries |> Option.map (List.choose id) with
                | None
                | Some [] -> Decoded.ok (Config.defaults.Providers, [])
                | Some entries ->
                    let duplicates, dropped = duplicateNames entries

                    let kept =
                        entries
                        |> List.indexed
                        |> List.filter (fun (i, _) -> not (dropped.Contains i))
                        |> List.choose (fun (_, e) -> e.Config)

                    let failed = entries |> List.filter _.Failed |> List.choose _.Name

                    {
                        Value = Some(kept, failed)
                        Findings = duplicates @ noneEnabled (ConfigNode.position listEntry.Value) cursor entries
                    })
