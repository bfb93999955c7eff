namespace CcRelay.Core

open System
open System.Globalization
open System.Text
open System.Text.Json

/// URL helpers shared by the cloud providers.
module internal CloudUrl =

    let private isUnreserved (c: char) =
        (c >= 'A' && c <= 'Z')
        || (c >= 'a' && c <= 'z')
        || (c >= '0' && c <= '9')
        || c = '-'
        || c = '_'
        || c = '.'
        || c = '~'

    /// RFC 3986 `pchar` sub-delimiters and `:`/`@`: what the TypeScript SDK leaves unencoded in a path segment.
    let private isPcharDelimiter (c: char) = "!$&'()*+,;=:@".Contains c

    /// A path segment percent-encoded (UTF-8, upper-case hex), keeping unreserved and `pchar` characters;
    /// `/`, `%`, `?`, `#` and everything else are encoded.
    let encodeSegment (segment: string) : string =
        let builder = StringBuilder(segment.Length + 16)

        for b in Encoding.UTF8.GetBytes segment do
            let c = char b

            if b < 128uy && (isUnreserved c || isPcharDelimiter c) then
                builder.Append(c) |> ignore
            else
                builder.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture))
                |> ignore

        builder.ToString()

    /// `baseUrl` (its path prefix kept, trailing `/` dropped) followed by `path`, as a Uri whose path and query
    /// are never unescaped or canonicalised (`%2F` stays `%2F`): what is signed is what is sent.
    let combine (baseUrl: Uri) (path: string) : Uri =
        let text =
            baseUrl.GetLeftPart(UriPartial.Authority)
            + baseUrl.AbsolutePath.TrimEnd('/')
            + path

        let options =
            UriCreationOptions(DangerousDisablePathAndQueryCanonicalization = true)

        Uri(text, &options)

    /// A model name without Claude Code's `[1m]` (1M-context) marker.
    let stripContextMarker (model: string) : string =
        if model.EndsWith("[1m]", StringComparison.OrdinalIgnoreCase) then
            model.Substring(0, model.Length - 4)
        else
            model

/// AWS Bedrock InvokeModel requests (protocols.md §2): model ids, paths, URLs and the body reshape.
[<RequireQualifiedAccess>]
module Bedrock =

    /// The inference-profile prefix Claude Code derives from a region (protocols.md §7.6.1): `us-gov-*` →
    /// `us-gov`, `us-*` → `us`, `eu-*` → `eu`, `ap-*` → `apac`, anything else `global`.
    let regionPrefix (region: string) : string =
        let region = region.Trim().ToLowerInvariant()

        if region.StartsWith("us-gov-", StringComparison.Ordinal) then
            "us-gov"
        elif region.StartsWith("us-", StringComparison.Ordinal) then
            "us"
        elif region.StartsWith("eu-", StringComparison.Ordinal) then
            "eu"
        elif region.StartsWith("ap-", StringComparison.Ordinal) then
            "apac"
        else
            "global"

    /// The geo prefixes of system inference profiles.
    let private geoPrefixes = [ "us"; "eu"; "apac"; "jp"; "au"; "us-gov"; "global" ]

    /// Claude model names (dated and undated) and the Bedrock base model id each is served as.
    let private builtIn: Map<string, string> =
        let haiku45 = "anthropic.claude-haiku-4-5-20251001-v1:0"
        let sonnet45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"
        let opus45 = "anthropic.claude-opus-4-5-20251101-v1:0"
        let opus41 = "anthropic.claude-opus-4-1-20250805-v1:0"
        let sonnet4 = "anthropic.claude-sonnet-4-20250514-v1:0"
        let opus4 = "anthropic.claude-opus-4-20250514-v1:0"
        let sonnet37 = "anthropic.claude-3-7-sonnet-20250219-v1:0"
        let haiku35 = "anthropic.claude-3-5-haiku-20241022-v1:0"

        Map [
            "claude-haiku-4-5-20251001", haiku45
            "claude-haiku-4-5", haiku45
            "claude-sonnet-4-5-20250929", sonnet45
            "claude-sonnet-4-5", sonnet45
            "claude-opus-4-5-20251101", opus45
            "claude-opus-4-5", opus45
            "claude-sonnet-4-6", "anthropic.claude-sonnet-4-6"
            "claude-opus-4-6", "anthropic.claude-opus-4-6-v1"
            "claude-opus-4-7", "anthropic.claude-opus-4-7"
            "claude-opus-4-8", "anthropic.claude-opus-4-8"
            "claude-sonnet-5", "anthropic.claude-sonnet-5"
            "claude-fable-5", "anthropic.claude-fable-5"
            "claude-opus-4-1-20250805", opus41
            "claude-opus-4-1", opus41
            "claude-sonnet-4-20250514", sonnet4
            "claude-sonnet-4-0", sonnet4
            "claude-opus-4-20250514", opus4
            "claude-opus-4-0", opus4
            "claude-3-7-sonnet-20250219", sonnet37
            "claude-3-7-sonnet-latest", sonnet37
            "claude-3-5-haiku-20241022", haiku35
            "claude-3-5-haiku-latest", haiku35
        ]

    /// `{prefix}.anthropic.` for every geo prefix (built once: `isBedrockId` runs per request).
    let private profilePrefixes: string array =
        geoPrefixes |> List.map (fun prefix -> prefix + ".anthropic.") |> Array.ofList

    /// Whether a model is already a Bedrock id: an ARN, a base `anthropic.…` id or a geo profile of one.
    let private isBedrockId (model: string) : bool =
        model.StartsWith("arn:", StringComparison.Ordinal)
        || model.StartsWith("anthropic.", StringComparison.Ordinal)
        || profilePrefixes
           |> Array.exists (fun prefix -> model.StartsWith(prefix, StringComparison.Ordinal))

    /// The Bedrock inference-profile id `{prefix}.anthropic.…` of a Claude model name as Claude Code sends it
    /// (dated or not, a `[1m]` marker ignored); a name that already is a Bedrock id (`anthropic.…`, a geo
    /// profile, an `arn:`) as it is; None for a name the built-in table does not know.
    let builtInModelId (prefix: string) (claudeModel: string) : string option =
        let model = CloudUrl.stripContextMarker (claudeModel.Trim())

        if isBedrockId model then
            Some model
        else
            builtIn
            |> Map.tryFind (model.ToLowerInvariant())
            |> Option.map (fun id -> prefix + "." + id)

    /// The Claude model name a Bedrock id of the built-in table stands for (the dated name where there is one),
    /// its geo prefix ignored: what Claude Code in Bedrock mode means by `us.anthropic.claude-sonnet-4-6`, so that
    /// a relay behind it can route it to any provider. None for ids the table does not know (ARNs, custom models).
    let claudeName (modelId: string) : string option =
        let id = modelId.Trim()

        let baseId =
            geoPrefixes
            |> List.tryFind (fun prefix -> id.StartsWith(prefix + ".anthropic.", StringComparison.Ordinal))
            |> Option.map (fun prefix -> id.Substring(prefix.Length + 1))
            |> Option.defaultValue id

        let names =
            builtIn
            |> Map.toList
            |> List.filter (fun (_, bedrockId) -> bedrockId = baseId)
            |> List.map fst

        let dated (name: string) =
            name.Length > 9
            && name[name.Length - 9] = '-'
            && name.Substring(name.Length - 8) |> Seq.forall Char.IsAsciiDigit

        names
        |> List.tryFind dated
        |> Option.orElse (
            names
            |> List.tryFind (fun n -> not (n.EndsWith("-latest", StringComparison.Ordinal)))
        )
        |> Option.orElse (List.tryHead names)

    /// The Bedrock model id a request is sent with: the operator's `model_mapping` (exact name) first, then the
    /// built-in table with the region's profile prefix, else the model as it is.
    let modelId (mapping: Map<string, string>) (region: string) (model: string) : string =
        match Map.tryFind model mapping with
        | Some mapped -> mapped
        | None -> builtInModelId (regionPrefix region) model |> Option.defaultValue model

    /// A model id as a path segment, the way the official SDKs encode it: `:` and the other RFC 3986 `pchar`
    /// characters kept, `/` (in ARNs) as `%2F`, everything else unsafe percent-encoded.
    let encodeModelId (modelId: string) : string = CloudUrl.encodeSegment modelId

    /// `/model/{id}/invoke`, or `/model/{id}/invoke-with-response-stream` when streaming.
    let invokePath (modelId: string) (stream: bool) : string =
        let operation = if stream then "invoke-with-response-stream" else "invoke"
        $"/model/%s{encodeModelId modelId}/%s{operation}"

    /// `/model/{id}/count-tokens`.
    let countTokensPath (modelId: string) : string =
        $"/model/%s{encodeModelId modelId}/count-tokens"

    /// The Messages API on bedrock-runtime (protocols.md §2.8): the native Anthropic shape.
    [<Literal>]
    let messagesApiPath = "/anthropic/v1/messages"

    /// `https://bedrock-runtime.{region}.amazonaws.com`. Precondition: `region` is a host label (e.g. `us-east-1`).
    let defaultBaseUrl (region: string) : Uri =
        Uri($"https://bedrock-runtime.%s{region}.amazonaws.com")

    /// The request URL: `baseUrl` (a path prefix in it kept) followed by `path`, built so that the path is
    /// sent byte for byte as given (`%2F` is not unescaped; nothing is canonicalised) and matches what was signed.
    let url (baseUrl: Uri) (path: string) : Uri = CloudUrl.combine baseUrl path

    /// The `anthropic-beta` values passed to Bedrock's Claude by default; the others are dropped, since the
    /// Bedrock container refuses betas it does not know. A default: providers can configure their own list.
    let defaultBetas: string list = [
        "interleaved-thinking-2025-05-14"
        "context-1m-2025-08-07"
        "fine-grained-tool-streaming-2025-05-14"
        "token-efficient-tools-2025-02-19"
        "output-128k-2025-02-19"
        "computer-use-2025-01-24"
        "context-management-2025-06-27"
        "tool-examples-2025-10-29"
        "effort-2025-11-24"
        "tool-search-tool-2025-10-19"
    ]

    /// The `anthropic_version` InvokeModel requires in the body (the plan adds it: `Dialect.plan`).
    [<Literal>]
    let anthropicVersion = "bedrock-2023-05-31"

    /// The CountTokens request body for a reshaped InvokeModel body: `{"input":{"invokeModel":{"body":"<base64>"}}}`.
    let countTokensBody (reshapedBody: ReadOnlySpan<byte>) : byte array =
        Encoding.ASCII.GetBytes(
            "{\"input\":{\"invokeModel\":{\"body\":\""
            + Convert.ToBase64String reshapedBody
            + "\"}}}"
        )

    /// The token count of a CountTokens answer `{"inputTokens":N}`; None when it has no such non-negative integer.
    let countTokensAnswer (json: ReadOnlySpan<byte>) : int option =
        try
            let mutable reader = Utf8JsonReader(json)
            let mutable result = None

            if reader.Read() && reader.TokenType = JsonTokenType.StartObject then
                while reader.Read() && reader.CurrentDepth > 0 do
                    if reader.TokenType = JsonTokenType.PropertyName && reader.CurrentDepth = 1 then
                        let isCount = reader.ValueTextEquals "inputTokens"B
                        reader.Read() |> ignore

                        match reader.TokenType with
                        | JsonTokenType.Number when isCount ->
                            match reader.TryGetInt32() with
                            | true, n when n >= 0 -> result <- Some n
                            | _ -> ()
                        | JsonTokenType.StartObject
                        | JsonTokenType.StartArray -> reader.Skip()
                        | _ -> ()

            result
        with :? JsonException ->
            None

    /// Anthropic's count_tokens answer `{"input_tokens":N}`.
    let countTokensResponse (n: int) : byte array =
        Encoding.ASCII.GetBytes $"""{{"input_tokens":%d{n}}}"""

/// Google Vertex AI rawPredict requests (protocols.md §3): URLs, model ids, the body reshape and error envelopes.
[<RequireQualifiedAccess>]
module Vertex =

    /// The API base for a region, version path included: `global` → `https://aiplatform.googleapis.com/v1`,
    /// `us`/`eu` → `https://aiplatform.{r}.rep.googleapis.com/v1`, else `https://{region}-aiplatform.googleapis.com/v1`.
    /// Precondition: `region` is a host label.
    let defaultBaseUrl (region: string) : Uri =
        match region with
        | "global" -> Uri "https://aiplatform.googleapis.com/v1"
        | "us"
        | "eu" -> Uri $"https://aiplatform.%s{region}.rep.googleapis.com/v1"
        | _ -> Uri $"https://%s{region}-aiplatform.googleapis.com/v1"

    let private modelsPath (project: string) (region: string) =
        $"/projects/%s{CloudUrl.encodeSegment project}/locations/%s{CloudUrl.encodeSegment region}/publishers/anthropic/models"

    /// `/projects/{p}/locations/{r}/publishers/anthropic/models/{m}:rawPredict` (`:streamRawPredict` when
    /// streaming); each part percent-encoded as a path segment (`@` and `:` kept, `/` encoded).
    let path (project: string) (region: string) (model: string) (stream: bool) : string =
        let operation = if stream then "streamRawPredict" else "rawPredict"
        $"%s{modelsPath project region}/%s{CloudUrl.encodeSegment model}:%s{operation}"

    /// `/projects/{p}/locations/{r}/publishers/anthropic/models/count-tokens:rawPredict`.
    let countTokensPath (project: string) (region: string) : string =
        $"%s{modelsPath project region}/count-tokens:rawPredict"

    /// The request URL: `baseUrl` (its path prefix such as `/v1` kept) followed by `path`, sent as given.
    let url (baseUrl: Uri) (path: string) : Uri = CloudUrl.combine baseUrl path

    /// The `anthropic_version` rawPredict requires in the body (the plan adds it: `Dialect.plan`).
    [<Literal>]
    let anthropicVersion = "vertex-2023-10-16"

    /// The Vertex model id: the operator's `model_mapping` (exact name) first; else a dated Claude name
    /// `claude-…-YYYYMMDD` as `claude-…@YYYYMMDD` (Vertex's versioned ids); names already carrying `@` and
    /// undated names unchanged. A `[1m]` marker is dropped.
    let modelId (mapping: Map<string, string>) (model: string) : string =
        match Map.tryFind model mapping with
        | Some mapped -> mapped
        | None ->
            let name = CloudUrl.stripContextMarker model
            let dash = name.LastIndexOf '-'

            if
                name.StartsWith("claude-", StringComparison.Ordinal)
                && not (name.Contains '@')
                && dash > 0
                && name.Length - dash - 1 = 8
                && name.Substring(dash + 1) |> Seq.forall Char.IsAsciiDigit
            then
                name.Substring(0, dash) + "@" + name.Substring(dash + 1)
            else
                name

    /// The Anthropic error type for a Google front-end status.
    let private errorTypeOf (status: int) : ErrorType =
        match status with
        | 400 -> ErrorType.InvalidRequest
        | 401 -> ErrorType.Authentication
        | 403 -> ErrorType.Permission
        | 404 -> ErrorType.NotFound
        | 413 -> ErrorType.RequestTooLarge
        | 429 -> ErrorType.RateLimit
        | 503 -> ErrorType.Overloaded
        | 504 -> ErrorType.Timeout
        | s when s >= 400 && s < 500 -> ErrorType.InvalidRequest
        | _ -> ErrorType.Api

    /// What an error body says: Some None for an Anthropic envelope; Some(Some message) for Google's envelope
    /// (`{"error":{"code":…,"message":…,"status":…}}`, or a one-element array of it); None otherwise.
    let private readError (body: ReadOnlySpan<byte>) : string option option =
        try
            let reader = Utf8JsonReader(body)
            let mutable reader = reader

            use document = JsonDocument.ParseValue(&reader)
            let mutable root = document.RootElement

            if root.ValueKind = JsonValueKind.Array && root.GetArrayLength() > 0 then
                root <- root[0]

            if root.ValueKind <> JsonValueKind.Object then
                None
            else
                let isAnthropic =
                    match root.TryGetProperty "type" with
                    | true, t -> t.ValueKind = JsonValueKind.String && t.GetString() = "error"
                    | _ -> false

                match root.TryGetProperty "error" with
                | true, error when error.ValueKind = JsonValueKind.Object ->
                    if isAnthropic then
                        Some None
                    else
                        match error.TryGetProperty "message" with
                        | true, message when message.ValueKind = JsonValueKind.String ->
                            Some(Some(message.GetString() |> Option.ofObj |> Option.defaultValue ""))
                        | _ -> None
                | _ -> None
        with :? JsonException ->
            None

    /// The status and body a client sees for a Vertex error answer. Google's front-end envelope becomes an
    /// Anthropic envelope by status (401 authentication_error, 403 permission_error, 404 not_found_error,
    /// 429 rate_limit_error, 400 and other 4xx invalid_request_error, 503 overloaded_error, 504 timeout_error,
    /// 500 and other 5xx api_error), its message kept verbatim; the status is kept, except 503 which becomes
    /// Anthropic's 529. An Anthropic-shaped body (from the model container) is returned unchanged with its status.
    /// Anything else gets an envelope whose message names only the status.
    let errorBody (status: int) (body: ReadOnlySpan<byte>) : int * byte array =
        let errorType = errorTypeOf status
        let clientStatus = if status = 503 then 529 else status

        match readError body with
        | Some None -> status, body.ToArray()
        | Some(Some message) -> clientStatus, ErrorEnvelope.toJson errorType message
        | None -> clientStatus, ErrorEnvelope.toJson errorType $"Vertex AI answered HTTP %d{status}"

/// Microsoft Foundry (Azure AI Foundry) Claude endpoints (protocols.md §4).
[<RequireQualifiedAccess>]
module Foundry =

    /// `https://{resource}.services.ai.azure.com/anthropic`; Error unless the resource name is a DNS label
    /// (1–63 ASCII letters, digits and hyphens, not starting or ending with a hyphen).
    let defaultBaseUrl (resource: string) : Result<Uri, string> =
        let valid =
            resource.Length > 0
            && resource.Length <= 63
            && resource |> Seq.forall (fun c -> Char.IsAsciiLetterOrDigit c || c = '-')
            && not (resource.StartsWith '-')
            && not (resource.EndsWith '-')

        if valid then
            Ok(Uri $"https://%s{resource}.services.ai.azure.com/anthropic")
        else
            Error
                "the Foundry resource name must be 1-63 letters, digits and hyphens, not starting or ending with a hyphen"

    /// The Microsoft Entra ID scope of a Foundry token.
    [<Literal>]
    let entraScope = "https://ai.azure.com/.default"
