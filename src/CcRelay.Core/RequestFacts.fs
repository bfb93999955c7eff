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

    /// The message a client sees for a refused body.
    let describe (error: BodyError) : string =
        match error with
        | BodyError.NotJson detail -> $"request body is not valid JSON: %s{detail}"
        | BodyError.NotAnObject -> "request body must be a JSON object"
        | BodyError.MissingModel -> "model: field required"
        | BodyError.ModelNotString -> "model: must be a non-empty string"

    /// Reads the facts of a body. The whole body is validated as JSON (UTF-8 included); nothing is allocated but
    /// the model string.
    let inspect (body: ReadOnlySpan<byte>) : Result<RequestFacts, BodyError> =
        let mutable reader = Utf8JsonReader(body, readerOptions)
        let mutable model: string | null = null
        let mutable modelStart = -1
        let mutable modelLength = 0
        let mutable modelBad = false
        let mutable stream = false
        let mutable error: BodyError option = None

        try
            if not (reader.Read()) then
                error <- Some(BodyError.NotJson "the body is empty")
            elif reader.TokenType <> JsonTokenType.StartObject then
                error <- Some BodyError.NotAnObject
            else
                while reader.Read() do
                    if reader.TokenType = JsonTokenType.PropertyName && reader.CurrentDepth = 1 then
                        if reader.ValueTextEquals "model"B then
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
                        elif reader.ValueTextEquals "stream"B then
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
