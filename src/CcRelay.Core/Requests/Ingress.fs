namespace CcRelay.Core

open System
open System.Buffers
open System.Text
open System.Text.Json

/// A cloud-shaped route the relay answers as if it were Bedrock or Vertex AI (Claude Code in Bedrock or
/// Vertex mode pointed at the relay, protocols.md §7.6).
[<RequireQualifiedAccess>]
type IngressRoute =
    /// `POST /model/{modelId}/invoke` (Stream false) or `…/invoke-with-response-stream` (Stream true).
    | BedrockInvoke of ModelId: string * Stream: bool
    /// `POST /model/{modelId}/count-tokens`.
    | BedrockCountTokens of ModelId: string
    /// `GET /inference-profiles` (ListInferenceProfiles).
    | ListInferenceProfiles
    /// `GET /inference-profiles/{id}` (GetInferenceProfile).
    | GetInferenceProfile of Id: string
    /// `POST /v1/projects/{p}/locations/{l}/publishers/anthropic/models/{m}:rawPredict` (Stream false) or
    /// `:streamRawPredict` (Stream true).
    | VertexPredict of Model: string * Stream: bool
    /// `POST /v1/projects/{p}/locations/{l}/publishers/anthropic/models/count-tokens:rawPredict`.
    | VertexCountTokens

/// A cloud-shaped request converted to the Anthropic Messages shape: what the relay's pipeline then serves
/// as if it had arrived on `PathAndQuery`.
type IngressRequest = {
    /// The Anthropic-shaped body.
    Body: byte array
    /// The `anthropic-beta` values the body carried (Bedrock's `anthropic_beta`), to merge into the header.
    Betas: string list
    /// `/v1/messages` or `/v1/messages/count_tokens`.
    PathAndQuery: string
}

/// What one SSE event the relay would write becomes on a Bedrock event stream.
[<RequireQualifiedAccess>]
type IngressFrame =
    /// A `chunk` frame carrying the event's data.
    | Chunk
    /// Nothing (a `ping`, a comment, an event without data): Bedrock sends no such frame.
    | Drop
    /// The stream failed: an exception frame of this error, and the end of the stream.
    | Exception of ErrorType: ErrorType * Message: string

/// The relay as a Bedrock or Vertex AI endpoint: routes, body conversion to the Anthropic shape, and the
/// cloud's answer and error shapes. Pure; the host reads, authenticates and relays.
[<RequireQualifiedAccess>]
module Ingress =

    /// The path the Anthropic-shaped request is served as.
    [<Literal>]
    let MessagesPath = "/v1/messages"

    /// The path an Anthropic-shaped token count is served as.
    [<Literal>]
    let CountTokensPath = "/v1/messages/count_tokens"

    /// A path segment percent-decoded (`%2F` in an ARN becomes `/`, `%3A` becomes `:`); a malformed escape
    /// is left as it is.
    let decodeSegment (segment: string) : string = Uri.UnescapeDataString segment

    /// The route a raw request target names (its query is ignored), before any decoding: `/` inside a
    /// Bedrock model id arrives as `%2F`, so the raw target is split on `/` first and each segment decoded
    /// after. None for a path that is not one of the cloud routes.
    let route (rawTarget: string) : IngressRoute option =
        let path =
            match rawTarget.IndexOf '?' with
            | -1 -> rawTarget
            | q -> rawTarget.Substring(0, q)

        let segments = path.Split '/'

        match List.ofArray segments with
        | [ ""; "model"; id; operation ] when id <> "" ->
            let modelId = decodeSegment id

            match operation with
            | "invoke" -> Some(IngressRoute.BedrockInvoke(modelId, false))
            | "invoke-with-response-stream" -> Some(IngressRoute.BedrockInvoke(modelId, true))
            | "count-tokens" -> Some(IngressRoute.BedrockCountTokens modelId)
            | _ -> None
        | [ ""; "inference-profiles" ] -> Some IngressRoute.ListInferenceProfiles
        | [ ""; "inference-profiles"; id ] when id <> "" -> Some(IngressRoute.GetInferenceProfile(decodeSegment id))
        | [ ""; "v1"; "projects"; project; "locations"; location; "publishers"; "anthropic"; "models"; last ] when
            project <> "" && location <> ""
            ->
            match last.LastIndexOf ':' with
            | colon when colon > 0 ->
                let model = decodeSegment (last.Substring(0, colon))

                match last.Substring(colon + 1), model with
                | "rawPredict", "count-tokens" -> Some IngressRoute.VertexCountTokens
                | "rawPredict", _ -> Some(IngressRoute.VertexPredict(model, false))
                | "streamRawPredict", _ -> Some(IngressRoute.VertexPredict(model, true))
                | _ -> None
            | _ -> None
        | _ -> None

    /// `value` as a JSON string literal, escaped as System.Text.Json escapes by default (written directly:
    /// the reflection-based serializer is not available to a trimmed, Native AOT build).
    let private jsonString (value: string) : byte array =
        let buffer = ArrayBufferWriter<byte>()

        do
            use writer = new Utf8JsonWriter(buffer)
            writer.WriteStringValue value

        buffer.WrittenSpan.ToArray()

    /// The string values of the top-level array member `name` (None when absent); Error when the body is not
    /// JSON or the member is not an array of strings.
    let private stringArray (body: ReadOnlySpan<byte>) (name: string) : Result<string list option, string> =
        try
            let mutable reader = Utf8JsonReader(body, JsonReaderOptions(MaxDepth = 1024))
            let mutable found = Ok None

            if reader.Read() && reader.TokenType = JsonTokenType.StartObject then
                while reader.Read() && reader.TokenType = JsonTokenType.PropertyName do
                    let isName = reader.ValueTextEquals name
                    reader.Read() |> ignore

                    if isName && reader.TokenType = JsonTokenType.StartArray then
                        let values = ResizeArray<string>()
                        let mutable bad = false

                        while reader.Read() && reader.TokenType <> JsonTokenType.EndArray do
                            if reader.TokenType = JsonTokenType.String then
                                values.Add(reader.GetString() |> nonNull)
                            else
                                bad <- true
                                reader.Skip()

                        found <-
                            if bad then
                                Error $"%s{name} must be an array of strings"
                            else
                                Ok(Some(List.ofSeq values))
                    elif isName && reader.TokenType <> JsonTokenType.Null then
                        reader.Skip()
                        found <- Error $"%s{name} must be an array of strings"
                    else
                        reader.Skip()

            found
        with
        | :? JsonException
        | :? InvalidOperationException -> Error "the body is not valid JSON"

    /// The model a Bedrock-mode request is routed as: the Claude name of a Bedrock id the built-in table knows
    /// (`us.anthropic.claude-sonnet-4-6` → `claude-sonnet-4-6`), so any provider can serve it (a Bedrock provider
    /// maps it forward again, with its own region's profile); other ids (ARNs, custom models) as they are, for
    /// `model_mapping`.
    let routedModel (modelId: string) : string =
        Bedrock.claudeName modelId |> Option.defaultValue modelId

    /// The model a Vertex-mode request is routed as: a versioned Vertex id `claude-…@YYYYMMDD` as the Claude name
    /// `claude-…-YYYYMMDD` (a Vertex provider maps it back); other names as they are.
    let vertexRoutedModel (model: string) : string =
        match model.LastIndexOf '@' with
        | at when
            at > 0
            && model.Length - at = 9
            && model.Substring(at + 1) |> Seq.forall Char.IsAsciiDigit
            ->
            model.Substring(0, at) + "-" + model.Substring(at + 1)
        | _ -> model

    /// Bedrock InvokeModel's body (no `model`, no `stream`, `anthropic_version`, optional `anthropic_beta`)
    /// as Anthropic's: `anthropic_version` and `anthropic_beta` removed (with any `model` or `stream` the
    /// client sent), `"model"` (`routedModel` of the decoded model id)
    /// and `"stream"` (by the operation) inserted first. Every other byte is kept. The `anthropic_beta` values
    /// are returned for the `anthropic-beta` header.
    let bedrockMessages (modelId: string) (stream: bool) (body: ReadOnlySpan<byte>) : Result<IngressRequest, string> =
        match stringArray body "anthropic_beta" with
        | Error e -> Error e
        | Ok betas ->
            let prepend = [
                "model", jsonString (routedModel modelId)
                "stream", (if stream then "true"B else "false"B)
            ]

            JsonEdit.edit body [ "anthropic_version"; "anthropic_beta"; "model"; "stream" ] prepend
            |> Result.map (fun (edited, _) -> {
                Body = edited
                Betas = defaultArg betas []
                PathAndQuery = MessagesPath
            })

    /// The base64 `input.invokeModel.body` of a Bedrock CountTokens request, decoded.
    let private invokeModelBody (body: ReadOnlySpan<byte>) : Result<byte array, string> =
        let missing =
            Error "the body must be {\"input\":{\"invokeModel\":{\"body\":\"<base64 of the InvokeModel body>\"}}}"

        try
            use document = JsonDocument.Parse(body.ToArray())
            let root = document.RootElement
            let mutable input = Unchecked.defaultof<JsonElement>
            let mutable invoke = Unchecked.defaultof<JsonElement>
            let mutable inner = Unchecked.defaultof<JsonElement>

            if
                root.ValueKind = JsonValueKind.Object
                && root.TryGetProperty("input", &input)
                && input.ValueKind = JsonValueKind.Object
                && input.TryGetProperty("invokeModel", &invoke)
                && invoke.ValueKind = JsonValueKind.Object
                && invoke.TryGetProperty("body", &inner)
                && inner.ValueKind = JsonValueKind.String
            then
                match inner.TryGetBytesFromBase64() with
                | true, bytes -> Ok(nonNull bytes)
                | _ -> Error "input.invokeModel.body is not base64"
            else
                missing
        with :? JsonException ->
            Error "the body is not valid JSON"

    /// Bedrock CountTokens' `{"input":{"invokeModel":{"body":"<base64>"}}}` as Anthropic's count_tokens body:
    /// the InvokeModel body unwrapped and converted as `bedrockMessages`, without `stream` and without
    /// `max_tokens` (InvokeModel requires it, count_tokens does not take it).
    let bedrockCountTokens (modelId: string) (body: ReadOnlySpan<byte>) : Result<IngressRequest, string> =
        match invokeModelBody body with
        | Error e -> Error e
        | Ok inner ->
            let inner = ReadOnlySpan inner

            match stringArray inner "anthropic_beta" with
            | Error e -> Error e
            | Ok betas ->
                JsonEdit.edit inner [ "anthropic_version"; "anthropic_beta"; "model"; "stream"; "max_tokens" ] [
                    "model", jsonString (routedModel modelId)
                ]
                |> Result.map (fun (edited, _) -> {
                    Body = edited
                    Betas = defaultArg betas []
                    PathAndQuery = CountTokensPath
                })

    /// Vertex rawPredict's body (no `model`, `anthropic_version`, `stream` as the client chose) as Anthropic's:
    /// `anthropic_version` (and any `model`) removed, `"model"` (`vertexRoutedModel`) inserted first; every other
    /// byte kept.
    let vertexMessages (model: string) (body: ReadOnlySpan<byte>) : Result<IngressRequest, string> =
        JsonEdit.edit body [ "anthropic_version"; "model" ] [ "model", jsonString (vertexRoutedModel model) ]
        |> Result.map (fun (edited, _) -> {
            Body = edited
            Betas = []
            PathAndQuery = MessagesPath
        })

    /// Vertex count-tokens:rawPredict's body (it keeps its `model`) as Anthropic's: `anthropic_version` removed.
    let vertexCountTokens (body: ReadOnlySpan<byte>) : Result<IngressRequest, string> =
        let model =
            match RequestFacts.inspect body with
            | Ok facts when vertexRoutedModel facts.Model <> facts.Model -> [
                "model", jsonString (vertexRoutedModel facts.Model)
              ]
            | _ -> []

        let remove =
            if model.IsEmpty then
                [ "anthropic_version" ]
            else
                [ "anthropic_version"; "model" ]

        JsonEdit.edit body remove model
        |> Result.map (fun (edited, _) -> {
            Body = edited
            Betas = []
            PathAndQuery = CountTokensPath
        })

    /// The request a route's body becomes; Error for a route that is not a model call.
    let convert (route: IngressRoute) (body: ReadOnlySpan<byte>) : Result<IngressRequest, string> =
        match route with
        | IngressRoute.BedrockInvoke(modelId, stream) -> bedrockMessages modelId stream body
        | IngressRoute.BedrockCountTokens modelId -> bedrockCountTokens modelId body
        | IngressRoute.VertexPredict(model, _) -> vertexMessages model body
        | IngressRoute.VertexCountTokens -> vertexCountTokens body
        | IngressRoute.ListInferenceProfiles
        | IngressRoute.GetInferenceProfile _ -> Error "not a model call"

    /// The `anthropic-beta` values a converted request carries: the client's header values, then the body's
    /// `anthropic_beta` ones, de-duplicated in order.
    let mergeBetas (headerValues: string seq) (bodyBetas: string seq) : string list =
        Headers.betaValues (Seq.append headerValues bodyBetas)

    // ---------------------------
    // Answers
    // ---------------------------

    /// Anthropic's count_tokens answer `{"input_tokens":N}` as Bedrock CountTokens' `{"inputTokens":N}`;
    /// None when the answer has no integer `input_tokens`.
    let bedrockCountTokensAnswer (answer: ReadOnlySpan<byte>) : byte array option =
        try
            use document = JsonDocument.Parse(answer.ToArray())
            let mutable tokens = Unchecked.defaultof<JsonElement>

            if
                document.RootElement.ValueKind = JsonValueKind.Object
                && document.RootElement.TryGetProperty("input_tokens", &tokens)
                && tokens.ValueKind = JsonValueKind.Number
            then
                match tokens.TryGetInt64() with
                | true, n -> Some(Encoding.UTF8.GetBytes $"{{\"inputTokens\":%d{n}}}")
                | _ -> None
            else
                None
        with :? JsonException ->
            None

    let private errorTypeOfWireName (name: string) : ErrorType option =
        match name with
        | "invalid_request_error" -> Some ErrorType.InvalidRequest
        | "authentication_error" -> Some ErrorType.Authentication
        | "permission_error" -> Some ErrorType.Permission
        | "not_found_error" -> Some ErrorType.NotFound
        | "request_too_large" -> Some ErrorType.RequestTooLarge
        | "rate_limit_error" -> Some ErrorType.RateLimit
        | "api_error" -> Some ErrorType.Api
        | "timeout_error" -> Some ErrorType.Timeout
        | "overloaded_error" -> Some ErrorType.Overloaded
        | _ -> None

    /// The error type and message of an Anthropic error envelope `{"type":"error","error":{"type","message"}}`
    /// (an unknown type is api_error); None when the JSON is not one.
    let errorOfEnvelope (json: ReadOnlySpan<byte>) : (ErrorType * string) option =
        try
            use document = JsonDocument.Parse(json.ToArray())
            let root = document.RootElement
            let mutable error = Unchecked.defaultof<JsonElement>
            let mutable field = Unchecked.defaultof<JsonElement>

            if
                root.ValueKind = JsonValueKind.Object
                && root.TryGetProperty("error", &error)
                && error.ValueKind = JsonValueKind.Object
            then
                let text (name: string) =
                    if error.TryGetProperty(name, &field) && field.ValueKind = JsonValueKind.String then
                        field.GetString() |> Option.ofObj
                    else
                        None

                let errorType =
                    text "type"
                    |> Option.bind errorTypeOfWireName
                    |> Option.defaultValue ErrorType.Api

                Some(errorType, text "message" |> Option.defaultValue (ErrorEnvelope.wireName errorType))
            else
                None
        with :? JsonException ->
            None

    /// What one complete SSE event becomes on a Bedrock event stream: a `ping` or an event without data is
    /// dropped (Bedrock never sends one, and the Bedrock SDKs have no use for it); an `error` event ends the
    /// stream with an exception frame (its type and message kept); every other event is a `chunk`.
    let frameOfSseEvent (sseEvent: ReadOnlySpan<byte>) : IngressFrame =
        match Sse.frameKind sseEvent with
        | FrameKind.Ping -> IngressFrame.Drop
        | FrameKind.Error ->
            let text = Encoding.UTF8.GetString sseEvent

            let data =
                text.Split([| "\r\n"; "\n"; "\r" |], StringSplitOptions.None)
                |> Array.filter (fun line -> line.StartsWith("data:", StringComparison.Ordinal))
                |> Array.map (fun line -> line.Substring(5).TrimStart(' '))
                |> String.concat "\n"

            match errorOfEnvelope (ReadOnlySpan(Encoding.UTF8.GetBytes data)) with
            | Some(errorType, message) -> IngressFrame.Exception(errorType, message)
            | None -> IngressFrame.Exception(ErrorType.Api, "the stream failed")
        | _ -> IngressFrame.Chunk

    /// The `x-amzn-ErrorType` name for an error type (upper camel, as in rest-json error headers).
    let bedrockErrorName (errorType: ErrorType) : string =
        let name = BedrockAnswer.exceptionName errorType
        string (Char.ToUpperInvariant name[0]) + name.Substring 1

    /// An error answer (the relay's own Anthropic envelope or an upstream's, passed through) in Bedrock's
    /// rest-json shape: the status (529, which AWS never uses, becomes 503 ServiceUnavailable), the
    /// `x-amzn-ErrorType` name and the body `{"message":"…"}` keeping the original message.
    let bedrockError (status: int) (body: ReadOnlySpan<byte>) : int * string * byte array =
        let errorType, message =
            match errorOfEnvelope body with
            | Some found -> found
            | None ->
                let _, errorType = BedrockAnswer.errorOfStatus status
                let text = Encoding.UTF8.GetString(body).Trim()
                errorType, (if text = "" then $"HTTP %d{status}" else text)

        let status = if status = 529 then 503 else status
        let buffer = ArrayBufferWriter<byte>(32 + message.Length)

        do
            use writer = new Utf8JsonWriter(buffer)
            writer.WriteStartObject()
            writer.WriteString("message", message)
            writer.WriteEndObject()

        status, bedrockErrorName errorType, buffer.WrittenSpan.ToArray()

    // ---------------------------
    // Inference profiles (the Bedrock control plane Claude Code reads at start-up)
    // ---------------------------

    /// The geo prefixes of system-defined inference profiles.
    let private geoPrefixes = [ "us-gov."; "us."; "eu."; "apac."; "jp."; "au."; "global." ]

    /// The model an inference profile id or ARN names: an ARN's last path segment, without a geo prefix.
    let baseModelOf (profile: string) : string =
        let last =
            match profile.LastIndexOf '/' with
            | -1 -> profile
            | slash -> profile.Substring(slash + 1)

        geoPrefixes
        |> List.tryFind (fun prefix -> last.StartsWith(prefix, StringComparison.Ordinal))
        |> Option.map (fun prefix -> last.Substring prefix.Length)
        |> Option.defaultValue last

    let private writeProfile (writer: Utf8JsonWriter) (region: string) (id: string) : unit =
        let profileId =
            match id.LastIndexOf '/' with
            | -1 -> id
            | slash -> id.Substring(slash + 1)

        let arn =
            if id.StartsWith("arn:", StringComparison.Ordinal) then
                id
            else
                $"arn:aws:bedrock:%s{region}::inference-profile/%s{id}"

        writer.WriteStartObject()
        writer.WriteString("inferenceProfileName", profileId)
        writer.WriteString("description", "served by cc-relay")
        writer.WriteString("inferenceProfileArn", arn)
        writer.WriteStartArray("models")
        writer.WriteStartObject()
        writer.WriteString("modelArn", $"arn:aws:bedrock:%s{region}::foundation-model/%s{baseModelOf id}")
        writer.WriteEndObject()
        writer.WriteEndArray()
        writer.WriteString("inferenceProfileId", profileId)
        writer.WriteString("status", "ACTIVE")
        writer.WriteString("type", "SYSTEM_DEFINED")
        writer.WriteEndObject()

    let private render (write: Utf8JsonWriter -> unit) : byte array =
        let buffer = ArrayBufferWriter<byte>(512)

        do
            use writer = new Utf8JsonWriter(buffer)
            write writer

        buffer.WrittenSpan.ToArray()

    /// ListInferenceProfiles' answer: one system-defined profile per model id (in order, repeats dropped),
    /// all on the first page (a request with a `nextToken` gets an empty page).
    let inferenceProfiles (region: string) (modelIds: string list) (nextToken: string option) : byte array =
        render (fun writer ->
            writer.WriteStartObject()
            writer.WriteStartArray("inferenceProfileSummaries")

            if nextToken.IsNone then
                for id in List.distinct modelIds do
                    writeProfile writer region id

            writer.WriteEndArray()
            writer.WriteEndObject())

    /// GetInferenceProfile's answer for a profile id or ARN: the profile, its model the id without a geo prefix.
    let inferenceProfile (region: string) (id: string) : byte array =
        render (fun writer -> writeProfile writer region id)
