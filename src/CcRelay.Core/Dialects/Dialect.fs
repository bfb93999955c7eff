namespace CcRelay.Core

open System

/// What the client asked of the upstream.
[<RequireQualifiedAccess>]
type Operation =
    /// `POST /v1/messages`: create a message (a stream or a JSON answer).
    | Messages
    /// `POST /v1/messages/count_tokens`: count a would-be request's input tokens.
    | CountTokens

/// How an attempt's credential is obtained beyond the static headers of `UpstreamPlan.Credentials`.
[<RequireQualifiedAccess>]
type Signing =
    /// Nothing more: the static headers (a configured key, a passed-through credential) or no credential.
    | Static
    /// AWS Signature Version 4 over the final request (URL, headers, body).
    | SigV4 of Region: string * Service: string * Source: AwsCredentialSource
    /// `Authorization: Bearer <Google OAuth2 access token>` (scope cloud-platform).
    | GoogleToken of CredentialsFile: string option
    /// `Authorization: Bearer <Microsoft Entra ID token>` for `Scope`, from `AuthorityHost` (None: the default).
    | EntraToken of Scope: string * Credential: EntraCredential * AuthorityHost: string option

/// A reshape of a JSON body for a cloud, done as byte edits (the rest of the body is never re-serialised).
type BodyReshape = {
    /// The value to write into the body's `model`, in place (None: the model is not patched).
    PatchModel: string option
    /// Top-level members removed (e.g. `model` and `stream`, which Bedrock takes from the URL).
    Remove: string list
    /// Top-level members inserted first: (name, raw JSON value).
    Prepend: (string * string) list
    /// Wrap the reshaped body as Bedrock CountTokens' `{"input":{"invokeModel":{"body":"<base64>"}}}`.
    WrapForBedrockCountTokens: bool
}

/// The API shape a translated request is written in (Responses and Gemini will sit beside Chat Completions).
[<RequireQualifiedAccess>]
type Translation =
    /// OpenAI Chat Completions (`/v1/chat/completions`), with the provider's knobs.
    | OpenAiChat of Settings: OpenAiSettings * Model: string
    /// Gemini `generateContent` (or its `countTokens`).
    | Gemini of Settings: GeminiSettings * Model: string * Kind: GeminiRequestKind
    /// OpenAI Responses (`/v1/responses`); `Family` mints and accepts the reasoning envelopes.
    | OpenAiResponses of Family: string * Model: string

/// How the client's body becomes the upstream's.
[<RequireQualifiedAccess>]
type BodyEdit =
    /// The client's bytes, untouched.
    | Unchanged
    /// The client's bytes with `model` replaced in place.
    | PatchModel of Model: string
    /// A cloud's shape.
    | Reshape of BodyReshape
    /// Another API's request, written anew from the client's (`Dialect.edit` does it).
    | Translate of Translation

/// How the upstream's answer is read back into the Anthropic shape.
[<RequireQualifiedAccess>]
type AnswerDialect =
    /// Anthropic SSE or JSON, Anthropic error envelopes: relayed as they are.
    | Anthropic
    /// Bedrock InvokeModel: an AWS event stream (`application/vnd.amazon.eventstream`) of base64 chunks, or the
    /// Message JSON; errors as `{"message"}` with `x-amzn-ErrorType`, mapped onto Anthropic's.
    | Bedrock
    /// Bedrock CountTokens: `{"inputTokens":N}` becomes `{"input_tokens":N}`. Where Bedrock cannot count for the
    /// model (a 400 or 404: CountTokens is not offered for every model and region) the relay's own estimate of
    /// the request is the answer; other errors as `Bedrock`.
    | BedrockCountTokens of Estimate: int
    /// Vertex AI: Anthropic SSE or JSON from the model; Google's own envelope for front-end errors, mapped.
    | Vertex
    /// OpenAI Chat Completions: a stream of `chat.completion.chunk`s converted event by event, a JSON answer
    /// or an OpenAI error translated whole.
    | OpenAiChat of ChatAnswerPlan
    /// Gemini: an SSE stream of `GenerateContentResponse`s converted event by event, a JSON answer or a Google
    /// error translated whole.
    | Gemini of GeminiAnswerPlan
    /// Gemini `countTokens`: `{"totalTokens":N}` becomes `{"input_tokens":N}`; errors as `Gemini`.
    | GeminiCountTokens
    /// OpenAI Responses: a stream of `response.*` events converted event by event, a response object or an
    /// OpenAI error translated whole.
    | OpenAiResponses of ResponsesAnswerPlan
    /// Answered by the relay without an upstream call (`count_tokens` of a translated provider: its estimate).
    | Local of Status: int * Body: byte array

/// How the upstream framed its answer (from its `Content-Type`).
[<RequireQualifiedAccess>]
type Framing =
    /// `text/event-stream`.
    | Sse
    /// `application/vnd.amazon.eventstream`.
    | AwsEventStream
    /// Anything else (JSON).
    | Other

/// What the host does with an answer before it is judged and relayed.
[<RequireQualifiedAccess>]
type AnswerReading =
    /// Relayed as it is (an SSE stream, a JSON answer).
    | AsIs
    /// An AWS event stream read as the Anthropic SSE it carries.
    | ConvertEventStream
    /// Buffered and put into the Anthropic shape by `Dialect.answer` (a cloud's error, Bedrock's token count,
    /// a translated target's JSON answer or error).
    | Translate
    /// Another API's SSE stream, converted event by event into Anthropic SSE (`ChatStream` for Chat Completions).
    | TranslateStream

/// Everything one attempt sends upstream and how its answer is read, decided in Core; the host executes it.
type UpstreamPlan = {
    Provider: ProviderConfig
    Operation: Operation
    /// The full upstream URL.
    Url: Uri
    /// Credential headers to set (name, value). The client's own credential headers are never copied
    /// blindly; these (and what `Signing` adds) are the only ones that go out.
    Credentials: (string * string) list
    /// What the host adds to the request last, over its final bytes.
    Signing: Signing
    /// Client headers not forwarded to this upstream (lower-case names), beyond the hop-by-hop and credential
    /// headers that never are (e.g. `anthropic-beta`, which Bedrock takes in the body).
    DropHeaders: string list
    /// Headers set on the upstream request (name, value).
    SetHeaders: (string * string) list
    Body: BodyEdit
    Answer: AnswerDialect
    /// The model the upstream will see.
    UpstreamModel: string
    /// What the provider cannot take and the relay left out (`anthropic-beta` values), reported to the client.
    Dropped: string list
    /// What a translated request asked for that the target cannot do, left out (`cache_control`, `web_search`,
    /// `document`, …), reported to the client in `x-cc-relay-dropped`. Known once `Dialect.edit` ran.
    DroppedFeatures: string list
}

/// The C#-facing surface of `UpstreamPlan`.
type UpstreamPlan with

    /// Whether the client header `name` (any case) is one of `DropHeaders`. A walk down the list: the host asks
    /// for every header it forwards, and enumerating the list from C# allocated an enumerator each time.
    member this.DropsHeader(name: string) : bool =
        let rec drops (names: string list) =
            match names with
            | [] -> false
            | dropped :: rest -> String.Equals(dropped, name, StringComparison.OrdinalIgnoreCase) || drops rest

        drops this.DropHeaders

/// The per-provider dialects: for each attempt, the whole upstream request plan.
[<RequireQualifiedAccess>]
module Dialect =

    /// The operation a client path names.
    let operationOf (pathAndQuery: string) : Operation =
        let path =
            match pathAndQuery.IndexOf '?' with
            | -1 -> pathAndQuery
            | q -> pathAndQuery.Substring(0, q)

        if path.EndsWith("/count_tokens", StringComparison.Ordinal) then
            Operation.CountTokens
        else
            Operation.Messages

    /// Whether the provider's plans need the client's `anthropic-beta` values (Bedrock InvokeModel moves them into
    /// the body); for the rest the header travels as it is and the values need not be read.
    let readsBetas (provider: ProviderConfig) : bool =
        match provider.Cloud with
        | CloudSettings.Bedrock _ -> true
        | CloudSettings.Direct
        | CloudSettings.Vertex _
        | CloudSettings.Foundry _
        | CloudSettings.OpenAi _
        | CloudSettings.Gemini _ -> false

    let private jsonString (value: string) : string =
        "\"" + Text.Json.JsonEncodedText.Encode(value).ToString() + "\""

    // Cloud URLs, by base URL, operation and model id: the same for every request to the same provider and model,
    // and building one (path encoding, a Uri that keeps its escapes) costs more than the rest of the plan. Bounded,
    // because the client chooses the model; past the bound URLs are built each time.
    let private targets =
        Collections.Concurrent.ConcurrentDictionary<struct (string * string * string), Uri>()

    let private maxTargets = 1024
    let private targetCount = ref 0

    let private target (baseUrl: Uri) (operation: string) (model: string) (build: unit -> Uri) : Uri =
        let key = struct (baseUrl.OriginalString, operation, model)

        match targets.TryGetValue key with
        | true, known -> known
        | _ ->
            let url = build ()

            if targetCount.Value < maxTargets && targets.TryAdd(key, url) then
                Threading.Interlocked.Increment(&targetCount.contents) |> ignore

            url

    let private anthropicShaped
        (provider: ProviderConfig)
        (key: KeyConfig voption)
        (facts: RequestFacts)
        (pathAndQuery: string)
        (forward: Credential list)
        : UpstreamPlan =
        let mapped = provider.ModelMapping |> Map.tryFind facts.Model

        {
            Provider = provider
            Operation = operationOf pathAndQuery
            Url = Upstream.url provider.BaseUrl pathAndQuery
            Credentials = Upstream.credentialsWith provider key forward
            Signing = Signing.Static
            DropHeaders = []
            SetHeaders = []
            Body =
                match mapped with
                | Some model when model <> facts.Model -> BodyEdit.PatchModel model
                | _ -> BodyEdit.Unchanged
            Answer = AnswerDialect.Anthropic
            UpstreamModel = defaultArg mapped facts.Model
            Dropped = []
            DroppedFeatures = []
        }

    /// A configured key as a bearer token (Bedrock API keys, Google access tokens), else `None` (no key, or
    /// a key that is an AWS credential set).
    let private bearer (key: KeyConfig voption) : (string * string) list option =
        match key with
        | ValueSome key when key.Key.Length > 0 && key.Aws.IsNone -> Some [ "authorization", "Bearer " + key.Key ]
        | _ -> None

    // What every Bedrock InvokeModel plan carries, built once (the plan is made per attempt).
    let private bedrockDropHeaders = [ "anthropic-beta"; "anthropic-version" ]

    let private bedrockRemove = [ "model"; "stream"; "anthropic_version"; "anthropic_beta" ]

    let private bedrockVersion =
        "anthropic_version", jsonString Bedrock.anthropicVersion

    let private bedrockStreamHeaders = [
        "accept", "application/vnd.amazon.eventstream"
        "x-amzn-bedrock-accept", "application/json"
    ]

    let private bedrockJsonHeaders = [ "accept", "application/json" ]

    let private bedrock
        (settings: BedrockSettings)
        (provider: ProviderConfig)
        (key: KeyConfig voption)
        (facts: RequestFacts)
        (operation: Operation)
        (betas: string list)
        : UpstreamPlan =
        let model = Bedrock.modelId provider.ModelMapping settings.Region facts.Model

        let accepted, dropped =
            match betas with
            | [] -> [], []
            | betas -> betas |> List.partition (fun b -> List.contains b settings.Betas)

        let credentials, signing =
            match key, bearer key with
            | ValueSome { Aws = Some source }, _ -> [], Signing.SigV4(settings.Region, "bedrock", source)
            | _, Some headers -> headers, Signing.Static
            | _, None -> [], Signing.SigV4(settings.Region, "bedrock", settings.Credentials)

        let plan = {
            Provider = provider
            Operation = operation
            Url = provider.BaseUrl
            Credentials = credentials
            Signing = signing
            DropHeaders = bedrockDropHeaders
            SetHeaders = []
            Body = BodyEdit.Unchanged
            Answer = AnswerDialect.Bedrock
            UpstreamModel = model
            Dropped = dropped
            DroppedFeatures = []
        }

        let betaMember =
            match accepted with
            | [] -> []
            | accepted -> [
                "anthropic_beta", "[" + (accepted |> List.map jsonString |> String.concat ",") + "]"
              ]

        let reshape = {
            PatchModel = None
            Remove = bedrockRemove
            Prepend = bedrockVersion :: betaMember
            WrapForBedrockCountTokens = false
        }

        match settings.Api, operation with
        | BedrockApi.Messages, Operation.Messages -> {
            plan with
                Url = Bedrock.url provider.BaseUrl Bedrock.messagesApiPath
                // the native Anthropic shape: the model travels in the body; the betas stay a header; Bedrock's
                // own errors (signature, throttling) are mapped, Anthropic-shaped ones pass as they are
                DropHeaders = []
                Body = BodyEdit.PatchModel model
                Dropped = []
          }
        | BedrockApi.Invoke, Operation.Messages -> {
            plan with
                Url =
                    target
                        provider.BaseUrl
                        (if facts.Stream then "bedrock-stream" else "bedrock-invoke")
                        model
                        (fun () -> Bedrock.url provider.BaseUrl (Bedrock.invokePath model facts.Stream))
                SetHeaders =
                    if facts.Stream then
                        bedrockStreamHeaders
                    else
                        bedrockJsonHeaders
                Body = BodyEdit.Reshape reshape
          }
        // tokens are counted by Bedrock's CountTokens operation whichever API serves messages
        | _, Operation.CountTokens -> {
            plan with
                Url =
                    target provider.BaseUrl "bedrock-count" model (fun () ->
                        Bedrock.url provider.BaseUrl (Bedrock.countTokensPath model))
                SetHeaders = [ "accept", "application/json" ]
                Body =
                    BodyEdit.Reshape {
                        reshape with
                            WrapForBedrockCountTokens = true
                    }
                Answer = AnswerDialect.BedrockCountTokens facts.EstimatedInputTokens
          }

    let private vertex
        (settings: VertexSettings)
        (provider: ProviderConfig)
        (key: KeyConfig voption)
        (facts: RequestFacts)
        (operation: Operation)
        : UpstreamPlan =
        let model = Vertex.modelId provider.ModelMapping facts.Model

        let credentials, signing =
            match bearer key with
            | Some headers -> headers, Signing.Static
            | None -> [], Signing.GoogleToken settings.CredentialsFile

        let version = [ "anthropic_version", jsonString Vertex.anthropicVersion ]

        {
            Provider = provider
            Operation = operation
            Url =
                match operation with
                | Operation.Messages ->
                    let operation = if facts.Stream then "vertex-stream " else "vertex-raw "

                    target provider.BaseUrl (operation + settings.ProjectId + " " + settings.Region) model (fun () ->
                        Vertex.url provider.BaseUrl (Vertex.path settings.ProjectId settings.Region model facts.Stream))
                | Operation.CountTokens ->
                    target provider.BaseUrl ("vertex-count " + settings.ProjectId + " " + settings.Region) "" (fun () ->
                        Vertex.url provider.BaseUrl (Vertex.countTokensPath settings.ProjectId settings.Region))
            Credentials = credentials
            Signing = signing
            DropHeaders = []
            SetHeaders = []
            Body =
                match operation with
                | Operation.Messages ->
                    BodyEdit.Reshape {
                        PatchModel = None
                        Remove = [ "model"; "anthropic_version" ]
                        Prepend = version
                        WrapForBedrockCountTokens = false
                    }
                // count-tokens keeps the model in the body (it is not in the URL)
                | Operation.CountTokens ->
                    BodyEdit.Reshape {
                        PatchModel = Some model
                        Remove = [ "anthropic_version" ]
                        Prepend = version
                        WrapForBedrockCountTokens = false
                    }
            Answer = AnswerDialect.Vertex
            UpstreamModel = model
            Dropped = []
            DroppedFeatures = []
        }

    let private foundry
        (settings: FoundrySettings)
        (provider: ProviderConfig)
        (key: KeyConfig voption)
        (facts: RequestFacts)
        (pathAndQuery: string)
        : UpstreamPlan =
        let plan = anthropicShaped provider key facts pathAndQuery []

        match plan.Credentials with
        | [] -> {
            plan with
                Signing = Signing.EntraToken(Foundry.entraScope, settings.Entra, settings.AuthorityHost)
          }
        | _ -> plan

    /// The Chat Completions path for a base URL: `/chat/completions` under a base that already names an API
    /// version (`…/v1`, `…/v4`, `…/v1beta/openai`), else `/v1/chat/completions` (OpenAI, DeepSeek, Ollama,
    /// vLLM, OpenRouter's `…/api`, Groq's `…/openai`).
    let chatPath (baseUrl: Uri) (resource: string) : string =
        let versioned =
            baseUrl.AbsolutePath.Split('/', StringSplitOptions.RemoveEmptyEntries)
            |> Array.exists (fun segment -> segment.Length >= 2 && segment[0] = 'v' && Char.IsAsciiDigit segment[1])

        if versioned then "/" + resource else "/v1/" + resource

    let private openAi
        (settings: OpenAiSettings)
        (provider: ProviderConfig)
        (key: KeyConfig voption)
        (facts: RequestFacts)
        (operation: Operation)
        : UpstreamPlan =
        let model =
            provider.ModelMapping
            |> Map.tryFind facts.Model
            |> Option.defaultValue facts.Model

        let responses = settings.Api = OpenAiApi.Responses

        {
            Provider = provider
            Operation = operation
            Url =
                Upstream.url
                    provider.BaseUrl
                    (chatPath provider.BaseUrl (if responses then "responses" else "chat/completions"))
            // the provider's own key as a bearer token; a caller's Anthropic credential is never sent here
            Credentials = Upstream.credentialsWith provider key []
            Signing = Signing.Static
            DropHeaders = [
                "anthropic-version"
                "anthropic-beta"
                "anthropic-dangerous-direct-browser-access"
            ]
            SetHeaders = [
                "accept",
                (if facts.Stream then
                     "text/event-stream"
                 else
                     "application/json")
            ]
            Body =
                BodyEdit.Translate(
                    if responses then
                        Translation.OpenAiResponses(provider.Family, model)
                    else
                        Translation.OpenAiChat(settings, model)
                )
            Answer =
                match operation with
                | Operation.Messages when responses ->
                    AnswerDialect.OpenAiResponses {
                        Model = facts.Model
                        EstimatedInputTokens = facts.EstimatedInputTokens
                        ToolNames = Map.empty
                        Family = provider.Family
                    }
                | Operation.Messages ->
                    AnswerDialect.OpenAiChat {
                        Model = facts.Model
                        EstimatedInputTokens = facts.EstimatedInputTokens
                        ToolNames = Map.empty
                        ReadsReasoning = settings.ReasoningField <> ReasoningField.NoField
                    }
                // Chat Completions has no counting endpoint: the relay's estimate is the answer (`edit` refines it)
                | Operation.CountTokens -> AnswerDialect.Local(200, AnthropicOut.countTokens facts.EstimatedInputTokens)
            UpstreamModel = model
            Dropped = []
            DroppedFeatures = []
        }

    /// The Gemini path of `model`'s `operation` (`generateContent`, `streamGenerateContent`, `countTokens`):
    /// Vertex AI's publisher-model path, or AI Studio's `/v1beta/models/…` (without the version when the base
    /// URL already names one).
    let geminiPath (settings: GeminiSettings) (baseUrl: Uri) (model: string) (operation: string) : string =
        let model = CloudUrl.encodeSegment model

        match settings.Endpoint with
        | GeminiEndpoint.Vertex v ->
            $"/projects/%s{CloudUrl.encodeSegment v.ProjectId}/locations/%s{CloudUrl.encodeSegment v.Region}/publishers/google/models/%s{model}:%s{operation}"
        | GeminiEndpoint.AiStudio ->
            let prefix = if (chatPath baseUrl "").Length = 1 then "" else "/v1beta"
            $"%s{prefix}/models/%s{model}:%s{operation}"

    let private gemini
        (settings: GeminiSettings)
        (provider: ProviderConfig)
        (key: KeyConfig voption)
        (facts: RequestFacts)
        (operation: Operation)
        : UpstreamPlan =
        let model =
            provider.ModelMapping
            |> Map.tryFind facts.Model
            |> Option.defaultValue facts.Model

        let method, kind =
            match operation, settings.Endpoint with
            | Operation.Messages, _ when facts.Stream -> "streamGenerateContent", GeminiRequestKind.Generate
            | Operation.Messages, _ -> "generateContent", GeminiRequestKind.Generate
            | Operation.CountTokens, GeminiEndpoint.AiStudio -> "countTokens", GeminiRequestKind.CountAiStudio
            | Operation.CountTokens, GeminiEndpoint.Vertex _ -> "countTokens", GeminiRequestKind.CountVertex

        let url =
            let where =
                match settings.Endpoint with
                | GeminiEndpoint.AiStudio -> "studio"
                | GeminiEndpoint.Vertex v -> v.ProjectId + " " + v.Region

            target provider.BaseUrl ("gemini " + method + " " + where) model (fun () ->
                let path = geminiPath settings provider.BaseUrl model method

                let path =
                    if method = "streamGenerateContent" then
                        path + "?alt=sse"
                    else
                        path

                CloudUrl.combine provider.BaseUrl path)

        let credentials, signing =
            match settings.Endpoint, key with
            | GeminiEndpoint.AiStudio, ValueSome key when key.Key.Length > 0 ->
                [ "x-goog-api-key", key.Key ], Signing.Static
            | GeminiEndpoint.AiStudio, _ -> [], Signing.Static
            | GeminiEndpoint.Vertex v, key ->
                match bearer key with
                | Some headers -> headers, Signing.Static
                | None -> [], Signing.GoogleToken v.CredentialsFile

        {
            Provider = provider
            Operation = operation
            Url = url
            Credentials = credentials
            Signing = signing
            DropHeaders = [
                "anthropic-version"
                "anthropic-beta"
                "anthropic-dangerous-direct-browser-access"
            ]
            SetHeaders = [
                "accept",
                (if facts.Stream && operation = Operation.Messages then
                     "text/event-stream"
                 else
                     "application/json")
            ]
            Body = BodyEdit.Translate(Translation.Gemini(settings, model, kind))
            Answer =
                match operation with
                | Operation.Messages ->
                    AnswerDialect.Gemini {
                        Model = facts.Model
                        EstimatedInputTokens = facts.EstimatedInputTokens
                        ToolNames = Map.empty
                    }
                | Operation.CountTokens -> AnswerDialect.GeminiCountTokens
            UpstreamModel = model
            Dropped = []
            DroppedFeatures = []
        }

    /// Plans one attempt at `provider` with `key` (a `Relay.next` attempt's `Provider` and `Key`), for a request
    /// with `facts` that arrived at `pathAndQuery` with `anthropic-beta` values `betas` and the caller's
    /// passed-through credentials `forward` (sequences, so the host passes its lists as they are; an F# list is
    /// taken as it is, not copied).
    let plan
        (provider: ProviderConfig)
        (key: KeyConfig voption)
        (facts: RequestFacts)
        (pathAndQuery: string)
        (betas: string seq)
        (forward: Credential seq)
        : UpstreamPlan =
        match provider.Cloud with
        | CloudSettings.Direct -> anthropicShaped provider key facts pathAndQuery (List.ofSeq forward)
        | CloudSettings.Bedrock settings ->
            bedrock settings provider key facts (operationOf pathAndQuery) (List.ofSeq betas)
        | CloudSettings.Vertex settings -> vertex settings provider key facts (operationOf pathAndQuery)
        | CloudSettings.Foundry settings -> foundry settings provider key facts pathAndQuery
        | CloudSettings.OpenAi settings -> openAi settings provider key facts (operationOf pathAndQuery)
        | CloudSettings.Gemini settings -> gemini settings provider key facts (operationOf pathAndQuery)

    /// The body the plan sends: the client's bytes (`ValueNone`) or the edited ones. `body` is one that
    /// `RequestFacts.inspect` accepted (its facts are `facts`), so a reshape finds its members without validating
    /// it again (`JsonEdit.editValid`). An edit that cannot be made is an error with the reason.
    let body (edit: BodyEdit) (body: ReadOnlySpan<byte>) (facts: RequestFacts) : Result<byte array voption, string> =
        match edit with
        | BodyEdit.Translate(Translation.OpenAiChat(settings, model)) ->
            ChatRequest.translate settings model true body
            |> Result.map (fun translated -> ValueSome translated.Body)
        | BodyEdit.Translate(Translation.Gemini(settings, model, kind)) ->
            GeminiRequest.translate settings model kind true body
            |> Result.map (fun translated -> ValueSome translated.Body)
        | BodyEdit.Translate(Translation.OpenAiResponses(family, model)) ->
            ResponsesRequest.translate family model true body
            |> Result.map (fun translated -> ValueSome translated.Body)
        | BodyEdit.Unchanged -> Ok ValueNone
        | BodyEdit.PatchModel model -> Ok(ValueSome(RequestFacts.withModel body facts model))
        | BodyEdit.Reshape reshape ->
            let prepend =
                reshape.Prepend
                |> List.map (fun (name, json) -> name, Text.Encoding.UTF8.GetBytes json)

            match reshape.PatchModel with
            | Some model when model <> facts.Model ->
                JsonEdit.editValid (ReadOnlySpan(RequestFacts.withModel body facts model)) reshape.Remove prepend
            // the client's bytes are read in place: one copy, the edited body
            | _ -> JsonEdit.editValid body reshape.Remove prepend
            |> Result.map (fun (edited, _) ->
                if reshape.WrapForBedrockCountTokens then
                    ValueSome(Bedrock.countTokensBody (ReadOnlySpan edited))
                else
                    ValueSome edited)

    /// Whether the plan's provider refuses a request that asks for what it cannot do (`on_dropped: refuse`).
    let private refusesDropped (plan: UpstreamPlan) : bool =
        match plan.Provider.Cloud with
        | CloudSettings.OpenAi settings -> settings.OnDropped = DroppedPolicy.Refuse
        | CloudSettings.Gemini settings -> settings.OnDropped = DroppedPolicy.Refuse
        | _ -> false

    /// What `on_dropped: refuse` refuses for: all that was left out but `thinking_blocks`. Another family's thinking is
    /// left out by the family affinity, not for lack of a capability: no target can verify it, and a refusal would
    /// stay with every later request of the conversation (each replays those blocks). It is reported only.
    let private refusable (dropped: string list) : string list =
        dropped |> List.filter (fun capability -> capability <> "thinking_blocks")

    /// A translated plan with what its request left out (cleaned for a header and a log line); a provider that
    /// refuses rather than drops answers a message request itself, with a 400 naming them, and calls no upstream.
    let private withDropped (plan: UpstreamPlan) (dropped: string list) : UpstreamPlan =
        let dropped = dropped |> List.map Dropped.clean |> List.distinct
        let refused = refusable dropped

        if
            refusesDropped plan
            && not refused.IsEmpty
            && plan.Operation = Operation.Messages
        then
            {
                plan with
                    DroppedFeatures = refused
                    Answer = AnswerDialect.Local(400, Dropped.refusal plan.Provider.Name refused)
            }
        else
            { plan with DroppedFeatures = dropped }

    /// Whether the plan is a refusal of what its request asked for (`on_dropped: refuse`): nothing was dropped
    /// then, the request was not sent.
    let refusedDropped (plan: UpstreamPlan) : bool =
        refusesDropped plan
        && not (refusable plan.DroppedFeatures).IsEmpty
        && plan.Operation = Operation.Messages

    /// The attempt's final plan and body: `body`, and for a translation also what only the translated request
    /// tells (what was dropped, the tool names to restore, the input estimate). `fixups`: the translation-phase
    /// transformers' settings (`Pipeline.fixups`; `TranslationFixups.defaults` without a pipeline).
    /// `stripThinking`: the conversation's thinking was minted by another family, so none of it is echoed to a
    /// translated target, whatever `fixups` says.
    let editWith
        (fixups: TranslationFixups)
        (plan: UpstreamPlan)
        (payload: ReadOnlySpan<byte>)
        (facts: RequestFacts)
        (stripThinking: bool)
        : Result<UpstreamPlan * byte array voption, string> =
        let fixups = {
            fixups with
                EchoReasoning = fixups.EchoReasoning && not stripThinking
        }

        match plan.Body with
        | BodyEdit.Translate(Translation.OpenAiChat(settings, model)) ->
            ChatRequest.translateWith fixups settings model payload
            |> Result.map (fun translated ->
                let answer =
                    match plan.Answer with
                    | AnswerDialect.OpenAiChat answer ->
                        AnswerDialect.OpenAiChat {
                            answer with
                                EstimatedInputTokens = translated.EstimatedInputTokens
                                ToolNames = translated.ToolNames
                        }
                    | AnswerDialect.Local _ ->
                        AnswerDialect.Local(200, AnthropicOut.countTokens translated.EstimatedInputTokens)
                    | other -> other

                withDropped { plan with Answer = answer } translated.Dropped, ValueSome translated.Body)
        | BodyEdit.Translate(Translation.OpenAiResponses(family, model)) ->
            ResponsesRequest.translateWith fixups family model payload
            |> Result.map (fun translated ->
                let answer =
                    match plan.Answer with
                    | AnswerDialect.OpenAiResponses answer ->
                        AnswerDialect.OpenAiResponses {
                            answer with
                                EstimatedInputTokens = translated.EstimatedInputTokens
                                ToolNames = translated.ToolNames
                        }
                    | AnswerDialect.Local _ ->
                        AnswerDialect.Local(200, AnthropicOut.countTokens translated.EstimatedInputTokens)
                    | other -> other

                withDropped { plan with Answer = answer } translated.Dropped, ValueSome translated.Body)
        | BodyEdit.Translate(Translation.Gemini(settings, model, kind)) ->
            GeminiRequest.translateWith fixups settings model kind payload
            |> Result.map (fun translated ->
                let answer =
                    match plan.Answer with
                    | AnswerDialect.Gemini answer ->
                        AnswerDialect.Gemini {
                            answer with
                                EstimatedInputTokens = translated.EstimatedInputTokens
                                ToolNames = translated.ToolNames
                        }
                    | other -> other

                withDropped { plan with Answer = answer } translated.Dropped, ValueSome translated.Body)
        | other -> body other payload facts |> Result.map (fun edited -> plan, edited)

    /// `editWith` the default fix-ups: the attempt's plan and body when no pipeline sets a translation fix-up.
    let edit
        (plan: UpstreamPlan)
        (payload: ReadOnlySpan<byte>)
        (facts: RequestFacts)
        (stripThinking: bool)
        : Result<UpstreamPlan * byte array voption, string> =
        editWith TranslationFixups.defaults plan payload facts stripThinking

    /// The answer the relay gives itself instead of calling the upstream (`(status, body)`), when the plan says so.
    let localAnswer (plan: UpstreamPlan) : (int * byte array) option =
        match plan.Answer with
        | AnswerDialect.Local(status, body) -> Some(status, body)
        | _ -> None

    /// A translated provider's `count_tokens` answer counted with a real tokenizer (`count`, the host's, in the
    /// model's encoding) over the translated request `payload` (`TokenEstimate`); None for any other plan, or
    /// when the payload cannot be read (the plan's own estimate answers then).
    let countTokens
        (plan: UpstreamPlan)
        (payload: ReadOnlySpan<byte>)
        (count: Func<TokenEncoding, string, int>)
        : byte array option =
        let shape =
            match plan.Operation, plan.Body with
            | Operation.CountTokens, BodyEdit.Translate(Translation.OpenAiChat _) -> Some false
            | Operation.CountTokens, BodyEdit.Translate(Translation.OpenAiResponses _) -> Some true
            | _ -> None

        match shape with
        | Some responses ->
            TokenEstimate.ofBody count responses payload
            |> Option.map (fun tokens -> AnthropicOut.countTokens tokens)
        | None -> None

    /// A facts value for a probe or a synthetic request of `model` (no body offsets: its body is built whole).
    let private probeFacts (model: string) : RequestFacts = {
        Model = model
        ModelTokenStart = 0
        ModelTokenLength = 0
        Stream = false
        MaxTokens = 1
        EstimatedInputTokens = 1
        ThinkingSignatures = false
        UnsignedThinking = false
        FirstMessageStart = -1
        FirstMessageLength = 0
        Stage = RequestFacts.noStages
    }

    /// A health probe of `provider` as the same plan a request would get (its first key, no passed-through
    /// credential): `(plan, method, body)`. `GET /v1/models` where the provider has a models API; a token count
    /// of one word for the clouds, which have none.
    let probe (kind: ProbeKind) (provider: ProviderConfig) : UpstreamPlan * string * byte array =
        let key = provider.Keys |> List.tryHead |> ValueOption.ofOption

        let model =
            provider.Models |> List.tryHead |> Option.defaultValue "claude-haiku-4-5"

        let countBody =
            Text.Encoding.UTF8.GetBytes(
                "{\"model\":"
                + jsonString model
                + ",\"messages\":[{\"role\":\"user\",\"content\":\"ping\"}]}"
            )

        let countTokens () =
            let facts =
                match RequestFacts.inspect (ReadOnlySpan countBody) with
                | Ok facts -> facts
                | Error _ -> probeFacts model

            let plan = plan provider key facts "/v1/messages/count_tokens" [] []

            let sent =
                match body plan.Body (ReadOnlySpan countBody) facts with
                | Ok(ValueSome edited) -> edited
                | Ok ValueNone
                | Error _ -> countBody

            plan, "POST", sent

        match kind, provider.Cloud with
        // Chat Completions servers have `GET /v1/models` (OpenAI, DeepSeek, vLLM, Ollama, OpenRouter)
        | (ProbeKind.Models | ProbeKind.CountTokens), CloudSettings.OpenAi _ ->
            let plan = plan provider key (probeFacts model) "/v1/models" [] []

            {
                plan with
                    Url = Upstream.url provider.BaseUrl (chatPath provider.BaseUrl "models")
                    Answer = AnswerDialect.Anthropic
            },
            "GET",
            [||]
        | ProbeKind.Url target, _ ->
            let plan = plan provider key (probeFacts model) "/v1/models" [] []
            { plan with Url = target }, "GET", [||]
        | ProbeKind.CountTokens, _
        | ProbeKind.Models,
          (CloudSettings.Bedrock _ | CloudSettings.Vertex _ | CloudSettings.Foundry _ | CloudSettings.Gemini _) ->
            countTokens ()
        | ProbeKind.Models, CloudSettings.Direct -> plan provider key (probeFacts model) "/v1/models" [] [], "GET", [||]

    /// Whether a probe's answer shows the provider serving again. With a credential of its own: a 2xx. Without
    /// one (a passthrough provider, which only ever carries its callers' credentials), an authentication
    /// refusal (401/403) is the healthy answer too: the provider is up and judging credentials.
    let probeSucceeded (plan: UpstreamPlan) (status: int) : bool =
        let credentialed =
            not plan.Credentials.IsEmpty
            || (match plan.Signing with
                | Signing.Static -> false
                | _ -> true)

        (status >= 200 && status < 300)
        || (not credentialed && (status = 401 || status = 403))

    /// How an answer of `dialect` with `status` and `framing` is read: a cloud's error or Bedrock's token count
    /// is translated, a successful Bedrock event stream converted, everything else relayed as it is.
    let reading (dialect: AnswerDialect) (status: int) (framing: Framing) : AnswerReading =
        match dialect, framing with
        | AnswerDialect.Anthropic, _
        | AnswerDialect.Local _, _ -> AnswerReading.AsIs
        | AnswerDialect.OpenAiChat _, Framing.Sse when status < 400 -> AnswerReading.TranslateStream
        | AnswerDialect.OpenAiChat _, _ -> AnswerReading.Translate
        | AnswerDialect.Gemini _, Framing.Sse when status < 400 -> AnswerReading.TranslateStream
        | AnswerDialect.Gemini _, _
        | AnswerDialect.GeminiCountTokens, _ -> AnswerReading.Translate
        | AnswerDialect.OpenAiResponses _, Framing.Sse when status < 400 -> AnswerReading.TranslateStream
        | AnswerDialect.OpenAiResponses _, _ -> AnswerReading.Translate
        | _, Framing.Sse when status < 400 -> AnswerReading.AsIs
        | AnswerDialect.Bedrock, Framing.AwsEventStream when status < 400 -> AnswerReading.ConvertEventStream
        | AnswerDialect.BedrockCountTokens _, _ -> AnswerReading.Translate
        | _ when status >= 400 -> AnswerReading.Translate
        | _ -> AnswerReading.AsIs

    /// Whether the attempt carries an OAuth token (Google, Entra ID), which an upstream may refuse before its time.
    let usesToken (plan: UpstreamPlan) : bool =
        match plan.Signing with
        | Signing.GoogleToken _
        | Signing.EntraToken _ -> true
        | Signing.Static
        | Signing.SigV4 _ -> false

    /// Whether a refused answer means the attempt's OAuth token went stale before its time (revoked, rotated):
    /// a 401 to a Google or Entra ID token. The host drops the token and sends once more with a fresh one.
    let retriesWithFreshToken (plan: UpstreamPlan) (status: int) : bool = status = 401 && usesToken plan

    /// An answer of `dialect` in the Anthropic shape, for the buffered answers a dialect changes (a cloud's
    /// error, Bedrock's token count): `(status, body)`, or None when it stays as it is. Error messages are kept
    /// word for word (Claude Code reacts to some of them).
    let answer
        (dialect: AnswerDialect)
        (status: int)
        (errorTypeHeader: string option)
        (body: ReadOnlySpan<byte>)
        : (int * byte array) option =
        match dialect with
        | AnswerDialect.Anthropic
        | AnswerDialect.Local _ -> None
        | AnswerDialect.OpenAiChat _ when status >= 400 -> Some(ChatAnswer.errorBody status body)
        | AnswerDialect.OpenAiChat plan -> Some(ChatAnswer.ofJson plan body)
        | AnswerDialect.OpenAiResponses plan -> Some(ResponsesAnswer.ofJson plan status body)
        | AnswerDialect.Gemini _
        | AnswerDialect.GeminiCountTokens when status >= 400 -> Some(GeminiAnswer.errorBody status body)
        | AnswerDialect.Gemini plan -> Some(GeminiStream.ofJson plan body)
        | AnswerDialect.GeminiCountTokens ->
            match GeminiAnswer.countTokens body with
            | Some counted -> Some(status, counted)
            | None -> Some(GeminiAnswer.errorBody 502 body)
        | AnswerDialect.BedrockCountTokens estimate when status = 400 || status = 404 ->
            Some(200, Bedrock.countTokensResponse estimate)
        | AnswerDialect.Bedrock
        | AnswerDialect.BedrockCountTokens _ when status >= 400 ->
            Some(BedrockAnswer.errorBody status errorTypeHeader body)
        | AnswerDialect.Vertex when status >= 400 -> Some(Vertex.errorBody status body)
        | AnswerDialect.BedrockCountTokens _ ->
            Bedrock.countTokensAnswer body
            |> Option.map (fun n -> status, Bedrock.countTokensResponse n)
        | AnswerDialect.Bedrock
        | AnswerDialect.Vertex -> None

    /// The seconds a translated error answer asks the relay to wait (Gemini's 429 carries them in its body,
    /// `RetryInfo.retryDelay`, not in `retry-after`); the host sets `retry-after` from it, so the key cools down.
    let retryAfterSeconds (dialect: AnswerDialect) (status: int) (body: ReadOnlySpan<byte>) : int voption =
        match dialect with
        | AnswerDialect.Gemini _
        | AnswerDialect.GeminiCountTokens when status = 429 ->
            GeminiAnswer.retryAfterSeconds body |> ValueOption.ofOption
        | _ -> ValueNone

/// The C#-facing surface of `AnswerDialect`.
type AnswerDialect with

    /// `Dialect.answer`, with the answer's `x-amzn-ErrorType` header or null.
    member this.Answer
        (status: int, errorTypeHeader: string | null, body: ReadOnlySpan<byte>)
        : (int * byte array) option =
        Dialect.answer this status (Option.ofObj errorTypeHeader) body
