namespace CcRelay.Core

open System
open System.Text.Encodings.Web
open System.Text.Json
open CcRelay.Core.JsonScan

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
    /// Whether some message carries a `thinking` block without a signature (or with an empty one), or a
    /// `redacted_thinking` block without data: the relay's own keep-alive block (`KeepAlive`) sent back by
    /// the client. An Anthropic-shaped upstream refuses it (`Affinity.stripUnsignedThinking` takes it out).
    UnsignedThinking: bool
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

    // Property names, built once (a `"…"B` literal is a new array at every evaluation).
    let private typeName: byte array = "type"B
    let private thinkingName: byte array = "thinking"B
    let private redactedThinkingName: byte array = "redacted_thinking"B
    let private signatureName: byte array = "signature"B
    let private dataName: byte array = "data"B
    let private messagesName: byte array = "messages"B
    let private maxTokensName: byte array = "max_tokens"B
    let private modelName: byte array = "model"B
    let private streamName: byte array = "stream"B

    let private readerOptions =
        JsonReaderOptions(CommentHandling = JsonCommentHandling.Disallow, AllowTrailingCommas = false, MaxDepth = 512)

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

    /// Reads the facts of a body with `Utf8JsonReader`: the whole body is validated as JSON (UTF-8 included);
    /// nothing is allocated but the model string. The reference for `inspect`'s fast path, and its fallback.
    let inspectWithReader (body: ReadOnlySpan<byte>) : Result<RequestFacts, BodyError> =
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
        let mutable unsigned = false
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
                            elif blockThinking then
                                unsigned <- true
                        | JsonTokenType.PropertyName, 5 ->
                            if reader.ValueTextEquals typeName then
                                reader.Read() |> ignore

                                if
                                    reader.TokenType = JsonTokenType.String
                                    && (reader.ValueTextEquals thinkingName
                                        || reader.ValueTextEquals redactedThinkingName)
                                then
                                    blockThinking <- true
                            elif reader.ValueTextEquals signatureName || reader.ValueTextEquals dataName then
                                reader.Read() |> ignore

                                if reader.TokenType = JsonTokenType.String && not reader.ValueSpan.IsEmpty then
                                    blockSigned <- true
                        | _ -> ()

                    if reader.TokenType = JsonTokenType.PropertyName && reader.CurrentDepth = 1 then
                        inMessages <- reader.ValueTextEquals messagesName

                        if reader.ValueTextEquals maxTokensName then
                            reader.Read() |> ignore

                            match reader.TokenType with
                            | JsonTokenType.Number ->
                                match reader.TryGetInt32() with
                                | true, value when value > 0 -> maxTokens <- value
                                | _ -> ()
                            | JsonTokenType.StartObject
                            | JsonTokenType.StartArray -> reader.Skip()
                            | _ -> ()
                        elif reader.ValueTextEquals modelName then
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
                        elif reader.ValueTextEquals streamName then
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
                    UnsignedThinking = unsigned
                    FirstMessageStart = firstStart
                    FirstMessageLength = firstLength
                }

    // ---------------------------
    // Fast path
    // ---------------------------

    /// The key a value belongs to, among those `inspect` looks at.
    [<RequireQualifiedAccess>]
    type private Key =
        | Other
        | Model
        | Stream
        | MaxTokens
        | BlockType
        | BlockSignature

    [<Literal>]
    let private FastMaxDepth = 64

    /// The scan's state: where it is, what it has read.
    [<Struct; NoEquality; NoComparison>]
    type private Scan = {
        mutable At: int
        mutable Ok: bool
        /// Open containers (the root included) and whether each is an array.
        mutable Depth: int
        Arrays: bool array
        /// 0: a value; 1: a key or '}' (object just opened); 2: a key; 3: ',' or the end; 4: a value or ']'
        mutable Expect: int
        mutable RootDone: bool
        mutable Key: Key
        mutable Model: string | null
        mutable ModelStart: int
        mutable ModelLength: int
        mutable ModelBad: bool
        mutable Stream: bool
        mutable MaxTokens: int
        mutable InMessages: bool
        mutable MessageCount: int
        mutable FirstStart: int
        mutable FirstLength: int
        mutable BlockThinking: bool
        mutable BlockSigned: bool
        mutable Signatures: bool
        mutable Unsigned: bool
    }

    /// What a value at [start, stop) of `kind` ('s' string, 'n' number, 't' true, 'o' anything else) means
    /// for the key it belongs to, exactly as `inspectWithReader` reads it.
    let private valueFor
        (body: ReadOnlySpan<byte>)
        (s: byref<Scan>)
        (kind: char)
        (start: int)
        (stop: int)
        (escaped: bool)
        : unit =
        match s.Key with
        | Key.Other -> ()
        | Key.Model ->
            if isNull s.Model && not s.ModelBad then
                if kind <> 's' then
                    s.ModelBad <- true
                elif escaped then
                    s.Ok <- false // decoding escapes is the reader's job
                elif stop - start = 2 then
                    s.ModelBad <- true
                else
                    s.Model <- Text.Encoding.UTF8.GetString(body.Slice(start + 1, stop - start - 2))
                    s.ModelStart <- start
                    s.ModelLength <- stop - start
        | Key.Stream -> s.Stream <- kind = 't'
        | Key.MaxTokens ->
            if kind = 'n' then
                let token = body.Slice(start, stop - start)
                let mutable value = 0
                let mutable consumed = 0

                if
                    Buffers.Text.Utf8Parser.TryParse(token, &value, &consumed)
                    && consumed = token.Length
                    && value > 0
                then
                    s.MaxTokens <- value
        | Key.BlockType ->
            if kind = 's' then
                if escaped then
                    s.Ok <- false
                else
                    let text = body.Slice(start + 1, stop - start - 2)

                    if
                        text.SequenceEqual(ReadOnlySpan thinkingName)
                        || text.SequenceEqual(ReadOnlySpan redactedThinkingName)
                    then
                        s.BlockThinking <- true
        | Key.BlockSignature ->
            if kind = 's' && stop - start > 2 then
                s.BlockSigned <- true

        s.Key <- Key.Other

    /// A key (its opening quote at `s.At`), its colon; what it is, for the value that follows.
    let private readKey (body: ReadOnlySpan<byte>) (s: byref<Scan>) : unit =
        let struct (stop, escaped) = scanString body s.At

        if stop < 0 then
            s.Ok <- false
        else
            let name = body.Slice(s.At + 1, stop - s.At - 2)

            if s.Depth = 1 then
                if escaped then
                    s.Ok <- false
                else
                    s.InMessages <- name.SequenceEqual(ReadOnlySpan messagesName)

                    s.Key <-
                        if name.SequenceEqual(ReadOnlySpan modelName) then
                            Key.Model
                        elif name.SequenceEqual(ReadOnlySpan streamName) then
                            Key.Stream
                        elif name.SequenceEqual(ReadOnlySpan maxTokensName) then
                            Key.MaxTokens
                        else
                            Key.Other
            elif s.InMessages && s.Depth = 5 then
                if escaped then
                    s.Ok <- false
                else
                    s.Key <-
                        if name.SequenceEqual(ReadOnlySpan typeName) then
                            Key.BlockType
                        elif
                            name.SequenceEqual(ReadOnlySpan signatureName)
                            || name.SequenceEqual(ReadOnlySpan dataName)
                        then
                            Key.BlockSignature
                        else
                            Key.Other

            let mutable i = stop

            while i < body.Length && isSpace body[i] do
                i <- i + 1

            if i < body.Length && body[i] = ':'B then
                s.At <- i + 1
                s.Expect <- 0
            else
                s.Ok <- false

    /// The container open at `s.At` ('{' or '[').
    let private openContainer (s: byref<Scan>) (isArray: bool) : unit =
        if s.Depth >= FastMaxDepth || (s.Depth = 0 && isArray) then
            s.Ok <- false
        else
            // messages[i] objects sit at depth 2, their content blocks at depth 4
            if not isArray && s.InMessages then
                if s.Depth = 2 then
                    if s.MessageCount = 0 then
                        s.FirstStart <- s.At

                    s.MessageCount <- s.MessageCount + 1
                elif s.Depth = 4 then
                    s.BlockThinking <- false
                    s.BlockSigned <- false

            // a container is "anything else" to the key it is the value of
            s.Key <-
                match s.Key with
                | Key.Model when isNull s.Model && not s.ModelBad ->
                    s.ModelBad <- true
                    Key.Other
                | Key.Stream ->
                    s.Stream <- false
                    Key.Other
                | _ -> Key.Other

            s.Depth <- s.Depth + 1
            s.Arrays[s.Depth] <- isArray
            s.Expect <- if isArray then 4 else 1
            s.At <- s.At + 1

    /// The container closing at `s.At` with `b` ('}' or ']').
    let private closeContainer (s: byref<Scan>) (b: byte) : unit =
        if s.Depth = 0 || (b = ']'B) <> s.Arrays[s.Depth] then
            s.Ok <- false
        else
            s.Depth <- s.Depth - 1

            if b = '}'B && s.InMessages then
                if s.Depth = 2 && s.MessageCount = 1 && s.FirstLength = 0 then
                    s.FirstLength <- s.At + 1 - s.FirstStart
                elif s.Depth = 4 && s.BlockThinking then
                    if s.BlockSigned then
                        s.Signatures <- true
                    else
                        s.Unsigned <- true

            s.At <- s.At + 1
            s.Expect <- 3
            s.RootDone <- s.Depth = 0

    /// A string, number or literal value at `s.At`.
    let private readScalar (body: ReadOnlySpan<byte>) (s: byref<Scan>) (b: byte) : unit =
        if b = '"'B then
            let struct (stop, escaped) = scanString body s.At

            if stop < 0 then
                s.Ok <- false
            else
                valueFor body &s 's' s.At stop escaped
                s.At <- stop
                s.Expect <- 3
        elif b = 't'B || b = 'f'B || b = 'n'B then
            let literal =
                if b = 't'B then trueLiteral
                elif b = 'f'B then falseLiteral
                else nullLiteral

            if body.Slice(s.At).StartsWith(ReadOnlySpan literal) then
                valueFor body &s (if b = 't'B then 't' else 'o') s.At (s.At + literal.Length) false
                s.At <- s.At + literal.Length
                s.Expect <- 3
            else
                s.Ok <- false
        else
            let stop = scanNumber body s.At

            if stop < 0 then
                s.Ok <- false
            else
                valueFor body &s 'n' s.At stop false
                s.At <- stop
                s.Expect <- 3

    /// The facts of a well-formed request in one pass without a tokenizer: string contents are skipped by a
    /// vectorised search, and only the keys and values `inspect` looks at are compared. ValueNone for anything
    /// else (not JSON, no usable model, escapes in a key or value it compares, deep nesting): `inspect` then
    /// reads the body with `Utf8JsonReader`, which says exactly what is wrong. Whenever this answers, it gives
    /// the reader's facts (a property test holds the two together).
    let tryFast (body: ReadOnlySpan<byte>) : RequestFacts voption =
        let mutable s = {
            At = 0
            Ok = true
            Depth = 0
            Arrays = Array.zeroCreate (FastMaxDepth + 1)
            Expect = 0
            RootDone = false
            Key = Key.Other
            Model = null
            ModelStart = -1
            ModelLength = 0
            ModelBad = false
            Stream = false
            MaxTokens = 0
            InMessages = false
            MessageCount = 0
            FirstStart = -1
            FirstLength = 0
            BlockThinking = false
            BlockSigned = false
            Signatures = false
            Unsigned = false
        }

        while s.Ok && s.At < body.Length do
            let b = body[s.At]

            if isSpace b then
                s.At <- s.At + 1
            elif s.RootDone then
                s.Ok <- false
            else
                match s.Expect with
                | 1 when b = '}'B -> closeContainer &s b
                | 1
                | 2 -> if b = '"'B then readKey body &s else s.Ok <- false
                | 3 ->
                    if b = ','B && s.Depth > 0 then
                        s.At <- s.At + 1
                        s.Expect <- if s.Arrays[s.Depth] then 0 else 2
                    elif b = '}'B || b = ']'B then
                        closeContainer &s b
                    else
                        s.Ok <- false
                | 4 when b = ']'B -> closeContainer &s b
                | _ ->
                    if b = '{'B || b = '['B then openContainer &s (b = '['B)
                    elif s.Depth = 0 then s.Ok <- false
                    else readScalar body &s b

        match s.Model with
        | NonNull model when s.Ok && s.RootDone && not s.ModelBad && Text.Unicode.Utf8.IsValid body ->
            ValueSome {
                Model = model
                ModelTokenStart = s.ModelStart
                ModelTokenLength = s.ModelLength
                Stream = s.Stream
                MaxTokens = s.MaxTokens
                EstimatedInputTokens = estimateInputTokens body.Length
                ThinkingSignatures = s.Signatures
                UnsignedThinking = s.Unsigned
                FirstMessageStart = s.FirstStart
                FirstMessageLength = s.FirstLength
            }
        | _ -> ValueNone

    /// Reads the facts of a body. The whole body is validated as JSON (UTF-8 included); nothing is allocated but
    /// the model string. A well-formed request takes the fast path; anything else is read (and refused, with the
    /// reader's own words) by `inspectWithReader`.
    let inspect (body: ReadOnlySpan<byte>) : Result<RequestFacts, BodyError> =
        match tryFast body with
        | ValueSome facts -> Ok facts
        | ValueNone -> inspectWithReader body

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

/// The C#-facing surface of `RequestFacts`.
type RequestFacts with

    /// Reads a request body's facts, or why it is refused (`RequestFacts.inspect`).
    static member Inspect(body: ReadOnlySpan<byte>) : Result<RequestFacts, BodyError> = RequestFacts.inspect body

/// The C#-facing surface of `BodyError`.
type BodyError with

    /// The message a client sees (`RequestFacts.describe`).
    member this.Message: string = RequestFacts.describe this
