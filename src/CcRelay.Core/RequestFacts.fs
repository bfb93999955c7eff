namespace CcRelay.Core

open System
open System.Text.Encodings.Web
open System.Text.Json

/// What the relay needs to know about a request body, read in one pass without re-serialising it.
type RequestFacts = {
    /// The top-level `model` value, unescaped.
    Model: string
    /// Offset of the `model` value's opening quote in the body.
    ModelTokenStart: int
    /// Length of the raw `model` token, quotes included, as it appears in the body.
    ModelTokenLength: int
    /// The top-level `stream` flag (`false` when absent or not a boolean).
    Stream: bool
    /// The top-level `max_tokens` (0 when absent or not a positive integer).
    MaxTokens: int
    /// Input tokens the request is expected to cost, before the upstream says (`estimateInputTokens`).
    EstimatedInputTokens: int
    /// Whether some message carries a signed `thinking` block or a `redacted_thinking` block: such a
    /// conversation only validates on the provider family that minted them.
    ThinkingSignatures: bool
    /// Offset of `messages[0]` in the body (-1 when there is none): the conversation's stable first turn.
    FirstMessageStart: int
    /// Length of `messages[0]` in the body, in bytes (0 when there is none).
    FirstMessageLength: int
}

/// Why a body was refused before any upstream was called.
[<RequireQualifiedAccess>]
type BodyError =
    | NotJson of Detail: string
    | NotAnObject
    | MissingModel
    | ModelNotString

/// One `Utf8JsonReader` pass over a request body, and the in-place `model` patch.
[<RequireQualifiedAccess>]
module RequestFacts =

    let private readerOptions =
        JsonReaderOptions(CommentHandling = JsonCommentHandling.Disallow, AllowTrailingCommas = false, MaxDepth = 512)

    // NOTE: a byte-string literal (`"type"B`) builds a new array every time it is evaluated, and `inspect`
    // compares names at every property of every content block: inline literals cost ~9 KB of garbage per
    // Claude Code request. The names are built once here (an array converts to a span for free).
    let private typeName: byte array = "type"B
    let private thinkingName: byte array = "thinking"B
    let private redactedThinkingName: byte array = "redacted_thinking"B
    let private signatureName: byte array = "signature"B
    let private dataName: byte array = "data"B
    let private messagesName: byte array = "messages"B
    let private maxTokensName: byte array = "max_tokens"B
    let private modelName: byte array = "model"B
    let private streamName: byte array = "stream"B

    /// The message a client sees for a refused body.
    let describe (error: BodyError) : string =
        match error with
        | BodyError.NotJson detail -> $"request body is not valid JSON: %s{detail}"
        | BodyError.NotAnObject -> "request body must be a JSON object"
        | BodyError.MissingModel -> "model: field required"
        | BodyError.ModelNotString -> "model: must be a non-empty string"

    /// Input tokens estimated from the body's size: one token per 4 bytes, rounded up. JSON syntax and
    /// base64 images make this an over-estimate, which is the safe side for rate limits: the key pool
    /// charges the estimate before sending and gives back the difference when the real usage arrives.
    let estimateInputTokens (bodyLength: int) : int =
        int ((int64 (max 0 bodyLength) + 3L) / 4L)

    /// Reads the facts of a body. The whole body is validated as JSON (UTF-8 included); nothing is allocated but
    /// the model string.
    let inspect (body: ReadOnlySpan<byte>) : Result<RequestFacts, BodyError> =
        let mutable reader = Utf8JsonReader(body, readerOptions)
        let mutable model: string | null = null
        let mutable modelStart = -1
        let mutable modelLength = 0
        let mutable modelBad = false
        let mutable stream = false
        let mutable maxTokens = 0
        let mutable inMessages = false
        let mutable messageCount = 0
        let mutable firstStart = -1
        let mutable firstLength = 0
        let mutable blockThinking = false
        let mutable blockSigned = false
        let mutable signatures = false
        let mutable error: BodyError option = None

        try
            if not (reader.Read()) then
                error <- Some(BodyError.NotJson "the body is empty")
            elif reader.TokenType <> JsonTokenType.StartObject then
                error <- Some BodyError.NotAnObject
            else
                while reader.Read() do
                    // messages[i] objects sit at depth 2, their content blocks at depth 4 and the blocks'
                    // properties at depth 5.
                    if inMessages then
                        match reader.TokenType, reader.CurrentDepth with
                        | JsonTokenType.StartObject, 2 ->
                            if messageCount = 0 then
                                firstStart <- int reader.TokenStartIndex

                            messageCount <- messageCount + 1
                        | JsonTokenType.EndObject, 2 when messageCount = 1 && firstLength = 0 ->
                            firstLength <- int reader.BytesConsumed - firstStart
                        | JsonTokenType.StartObject, 4 ->
                            blockThinking <- false
                            blockSigned <- false
                        | JsonTokenType.EndObject, 4 ->
                            if blockThinking && blockSigned then
                                signatures <- true
                        | JsonTokenType.PropertyName, 5 ->
                            if reader.ValueTextEquals(ReadOnlySpan typeName) then
                                reader.Read() |> ignore

                                if
                                    reader.TokenType = JsonTokenType.String
                                    && (reader.ValueTextEquals(ReadOnlySpan thinkingName)
                                        || reader.ValueTextEquals(ReadOnlySpan redactedThinkingName))
                                then
                                    blockThinking <- true
                            elif
                                reader.ValueTextEquals(ReadOnlySpan signatureName)
                                || reader.ValueTextEquals(ReadOnlySpan dataName)
                            then
                                reader.Read() |> ignore

                                if reader.TokenType = JsonTokenType.String && not reader.ValueSpan.IsEmpty then
                                    blockSigned <- true
                        | _ -> ()

                    if reader.TokenType = JsonTokenType.PropertyName && reader.CurrentDepth = 1 then
                        inMessages <- reader.ValueTextEquals(ReadOnlySpan messagesName)

                        if reader.ValueTextEquals(ReadOnlySpan maxTokensName) then
                            reader.Read() |> ignore

                            match reader.TokenType with
                            | JsonTokenType.Number ->
                                match reader.TryGetInt32() with
                                | true, value when value > 0 -> maxTokens <- value
                                | _ -> ()
                            | JsonTokenType.StartObject
                            | JsonTokenType.StartArray -> reader.Skip()
                            | _ -> ()
                        elif reader.ValueTextEquals(ReadOnlySpan modelName) then
                            reader.Read() |> ignore

                            if isNull model && not modelBad then
                                if reader.TokenType = JsonTokenType.String then
                                    let value = reader.GetString() |> Option.ofObj |> Option.defaultValue ""
                                    model <- value
                                    modelStart <- int reader.TokenStartIndex
                                    modelLength <- reader.ValueSpan.Length + 2

                                    if value.Length = 0 then
                                        modelBad <- true
                                else
                                    modelBad <- true

                            if
                                reader.TokenType = JsonTokenType.StartObject
                                || reader.TokenType = JsonTokenType.StartArray
                            then
                                reader.Skip()
                        elif reader.ValueTextEquals(ReadOnlySpan streamName) then
                            reader.Read() |> ignore
                            stream <- reader.TokenType = JsonTokenType.True

                            if
                                reader.TokenType = JsonTokenType.StartObject
                                || reader.TokenType = JsonTokenType.StartArray
                            then
                                reader.Skip()
        with
        | :? JsonException as e -> error <- Some(BodyError.NotJson(e.Message))
        // GetString on invalid UTF-8 or on an escaped lone surrogate (`"\ud800"`), which no string can hold
        | :? InvalidOperationException as e -> error <- Some(BodyError.NotJson(e.Message))

        match error with
        | Some e -> Error e
        // the reader checks UTF-8 only in the strings it decodes; JSON text must be UTF-8 throughout (RFC 8259 §8.1)
        | None when not (Text.Unicode.Utf8.IsValid body) -> Error(BodyError.NotJson "the body is not valid UTF-8")
        | None when modelBad -> Error BodyError.ModelNotString
        | None ->
            match model with
            | null -> Error BodyError.MissingModel
            | model ->
                Ok {
                    Model = model
                    ModelTokenStart = modelStart
                    ModelTokenLength = modelLength
                    Stream = stream
                    MaxTokens = maxTokens
                    EstimatedInputTokens = estimateInputTokens body.Length
                    ThinkingSignatures = signatures
                    FirstMessageStart = firstStart
                    FirstMessageLength = firstLength
                }

    /// The body with its `model` value replaced by `model`; every other byte is kept as it was.
    let withModel (body: ReadOnlySpan<byte>) (facts: RequestFacts) (model: string) : byte array =
        let encoded =
            JsonEncodedText.Encode(model, JavaScriptEncoder.UnsafeRelaxedJsonEscaping).EncodedUtf8Bytes

        let tailStart = facts.ModelTokenStart + facts.ModelTokenLength

        let result =
            Array.zeroCreate<byte>(body.Length - facts.ModelTokenLength + encoded.Length + 2)

        body.Slice(0, facts.ModelTokenStart).CopyTo(result.AsSpan())
        let mutable at = facts.ModelTokenStart
        result[at] <- byte '"'
        encoded.CopyTo(result.AsSpan(at + 1))
        at <- at + 1 + encoded.Length
        result[at] <- byte '"'
        body.Slice(tailStart).CopyTo(result.AsSpan(at + 1))
        result
