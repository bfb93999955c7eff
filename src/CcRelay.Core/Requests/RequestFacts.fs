namespace CcRelay.Core

open System
open System.Text.Encodings.Web
open System.Text.Json
open CcRelay.Core.JsonScan

/// What stage classification needs from a request body beyond the routing facts (`Stages.classify`), read in the
/// same pass as the rest of `RequestFacts` (`RequestFacts.inspectWithStages`), never re-serialised.
type StageFacts = {
    /// The top-level `thinking.type`: "enabled", "adaptive", "disabled", or "" when absent.
    Thinking: string
    /// Some `tools[i].type` starts with `web_search`.
    WebSearchTool: bool
    /// `tools` has at least one entry.
    HasTools: bool
    /// Some system text carries Claude Code's ` cc_is_subagent=true;` attribution marker.
    SubagentMarker: bool
    /// The text inside the first `<CC-RELAY-MODEL>…</CC-RELAY-MODEL>` (or claude-code-router's
    /// `<CCR-SUBAGENT-MODEL>…</CCR-SUBAGENT-MODEL>`) tag of a system text; "" when there is none.
    ModelTag: string
    /// The Claude Code side request recognised from a system text's start ("title", "bash-prefix"); "".
    SideRequest: string
    /// The latest user turn holds an image (directly, or in a tool result).
    LatestUserImage: bool
    /// The latest user turn starts with Claude Code's compaction instruction.
    LatestUserCompaction: bool
}

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
    /// Whether some message carries a thinking block no Anthropic-shaped upstream can verify: a `thinking` block
    /// without a signature (or with an empty one), or a `redacted_thinking` block without data — the relay's own
    /// keep-alive block (`KeepAlive`) sent back by the client — or one whose signature the relay minted for a
    /// translated target's reasoning (`RequestFacts.isRelaySignature`; such a block also counts as signed for
    /// `ThinkingSignatures`, since its target wants it back). `ThinkingTurn.carry` takes them out.
    UnsignedThinking: bool
    /// Offset of `messages[0]` in the body (-1 when there is none): the conversation's stable first turn.
    FirstMessageStart: int
    /// Length of `messages[0]` in the body, in bytes (0 when there is none).
    FirstMessageLength: int
    /// What stage classification reads (`inspectWithStages`); every field empty when the body was read by
    /// `inspect`, which does not look for them (no stage is configured: nothing reads them).
    Stage: StageFacts
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

    /// The signature prefixes of the thinking blocks the relay makes from a translated target's reasoning
    /// (`AnthropicOut.ReasoningSignature`, `GeminiWire.SignaturePrefix`, `ReasoningEnvelope.Prefix`).
    let private relayPrefix: byte array = "cc-relay:"B

    let private responsesPrefix: byte array = "ccrelay-rs1:"B

    /// Whether a thinking block's signature (its raw JSON string contents) was minted by the relay for a translated
    /// target's reasoning: no Anthropic-shaped upstream can verify it.
    let isRelaySignature (signature: ReadOnlySpan<byte>) : bool =
        signature.StartsWith(ReadOnlySpan relayPrefix)
        || signature.StartsWith(ReadOnlySpan responsesPrefix)

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

    // ---------------------------
    // Stage facts
    // ---------------------------

    let private toolsName: byte array = "tools"B
    let private systemName: byte array = "system"B
    let private textName: byte array = "text"B
    let private roleName: byte array = "role"B
    let private contentName: byte array = "content"B
    let private userName: byte array = "user"B
    let private imageName: byte array = "image"B
    let private enabledName: byte array = "enabled"B
    let private adaptiveName: byte array = "adaptive"B
    let private disabledName: byte array = "disabled"B
    let private webSearchPrefix: byte array = "web_search"B
    let private subagentMarker: byte array = "cc_is_subagent=true"B
    let private unicodeEscape: byte array = "\\u"B

    let private compactionPrefix: byte array =
        "CRITICAL: Respond with TEXT ONLY. Do NOT call any tools."B

    /// Claude Code side requests recognised by how their system prompt starts (protocols.md §7.7).
    let private sidePrompts: struct (byte array * string) array = [|
        struct ("Generate a concise, sentence-case title"B, "title")
        struct ("Your task is to process Bash commands that an AI coding agent wants to run."B, "bash-prefix")
    |]

    /// The subagent model tags: CcRelay's own, and claude-code-router's.
    let private tags: (string * string) list = [
        "<CC-RELAY-MODEL>", "</CC-RELAY-MODEL>"
        "<CCR-SUBAGENT-MODEL>", "</CCR-SUBAGENT-MODEL>"
    ]

    let private relayTag: byte array = "CC-RELAY-MODEL>"B
    let private routerTag: byte array = "CCR-SUBAGENT-MODEL>"B

    /// No stage facts: what `inspect` gives, and what an empty or unreadable body gives.
    let noStages: StageFacts = {
        Thinking = ""
        WebSearchTool = false
        HasTools = false
        SubagentMarker = false
        ModelTag = ""
        SideRequest = ""
        LatestUserImage = false
        LatestUserCompaction = false
    }

    /// The tag's content in a system text (decoded), or "".
    let private findTag (text: string) : string =
        tags
        |> List.tryPick (fun (opening, closing) ->
            let start = text.IndexOf(opening, StringComparison.Ordinal)

            if start < 0 then
                None
            else
                let from = start + opening.Length
                let stop = text.IndexOf(closing, from, StringComparison.Ordinal)

                if stop < 0 then
                    None
                else
                    Some(text.Substring(from, stop - from).Trim()))
        |> Option.defaultValue ""

    /// What one decoded system text says (index 0 is the attribution block).
    let private decodedSystemText (text: string) (index: int) (f: StageFacts) : StageFacts =
        let mutable f = f

        if text.Contains("cc_is_subagent=true", StringComparison.Ordinal) then
            f <- { f with SubagentMarker = true }

        if f.ModelTag.Length = 0 then
            let tag = findTag text

            if tag.Length > 0 then
                f <- { f with ModelTag = tag }

        if index >= 1 && f.SideRequest.Length = 0 then
            for struct (prefix, kind) in sidePrompts do
                if
                    f.SideRequest.Length = 0
                    && text.StartsWith(Text.Encoding.ASCII.GetString prefix, StringComparison.Ordinal)
                then
                    f <- { f with SideRequest = kind }

        f

    /// Whether the current string value starts with `prefix` (ASCII), escapes decoded.
    let private readerStartsWith (reader: byref<Utf8JsonReader>) (prefix: byte array) : bool =
        if reader.ValueIsEscaped then
            let text = reader.GetString() |> Option.ofObj |> Option.defaultValue ""
            text.StartsWith(Text.Encoding.ASCII.GetString prefix, StringComparison.Ordinal)
        else
            reader.ValueSpan.StartsWith(ReadOnlySpan prefix)

    /// What one system text says, read by the reader.
    let private readerSystemText (reader: byref<Utf8JsonReader>) (index: int) (f: StageFacts) : StageFacts =
        if reader.ValueIsEscaped then
            // escapes decoded: what the text says, not how it was written
            decodedSystemText (reader.GetString() |> Option.ofObj |> Option.defaultValue "") index f
        else
            let mutable f = f
            let raw = reader.ValueSpan

            if raw.IndexOf(ReadOnlySpan subagentMarker) >= 0 then
                f <- { f with SubagentMarker = true }

            if
                f.ModelTag.Length = 0
                && (raw.IndexOf(ReadOnlySpan relayTag) >= 0
                    || raw.IndexOf(ReadOnlySpan routerTag) >= 0)
            then
                let tag = findTag (Text.Encoding.UTF8.GetString raw)

                if tag.Length > 0 then
                    f <- { f with ModelTag = tag }

            if index >= 1 && f.SideRequest.Length = 0 then
                for struct (prefix, kind) in sidePrompts do
                    if f.SideRequest.Length = 0 && raw.StartsWith(ReadOnlySpan prefix) then
                        f <- { f with SideRequest = kind }

            f

    /// The stage facts of a body read with `Utf8JsonReader`, in a pass of their own: `inspectWithStages`' fallback
    /// when its fast path cannot answer, and the reference the fast path is held to (properties). The reader works on
    /// the span it is given and never beyond it; a body that is not JSON yields the facts read before the fault.
    let readStageFacts (body: ReadOnlySpan<byte>) : StageFacts =
        let mutable reader = Utf8JsonReader(body, readerOptions)
        let mutable facts = noStages
        // 0 none, 1 thinking, 2 tools, 3 system, 4 messages
        let mutable section = 0
        let mutable systemIndex = 0
        let mutable role = false
        let mutable messageImage = false
        let mutable messageCompaction = false
        let mutable firstText = true

        try
            if reader.Read() && reader.TokenType = JsonTokenType.StartObject then
                while reader.Read() do
                    let depth = reader.CurrentDepth

                    match reader.TokenType with
                    | JsonTokenType.PropertyName when depth = 1 ->
                        section <-
                            if reader.ValueTextEquals thinkingName then 1
                            elif reader.ValueTextEquals toolsName then 2
                            elif reader.ValueTextEquals systemName then 3
                            elif reader.ValueTextEquals messagesName then 4
                            else 0

                        if section = 3 then
                            reader.Read() |> ignore

                            if reader.TokenType = JsonTokenType.String then
                                facts <- readerSystemText &reader 0 facts
                        elif section = 0 then
                            reader.Read() |> ignore

                            if
                                reader.TokenType = JsonTokenType.StartObject
                                || reader.TokenType = JsonTokenType.StartArray
                            then
                                reader.Skip()
                    | JsonTokenType.PropertyName when section = 1 && depth = 2 && reader.ValueTextEquals typeName ->
                        reader.Read() |> ignore

                        if reader.TokenType = JsonTokenType.String then
                            facts <- {
                                facts with
                                    Thinking = reader.GetString() |> Option.ofObj |> Option.defaultValue ""
                            }
                    | JsonTokenType.StartObject when section = 2 && depth = 2 -> facts <- { facts with HasTools = true }
                    | JsonTokenType.PropertyName when section = 2 && depth = 3 && reader.ValueTextEquals typeName ->
                        reader.Read() |> ignore

                        if
                            reader.TokenType = JsonTokenType.String
                            && readerStartsWith &reader webSearchPrefix
                        then
                            facts <- { facts with WebSearchTool = true }
                    | JsonTokenType.PropertyName when section = 3 && depth = 3 && reader.ValueTextEquals textName ->
                        reader.Read() |> ignore

                        if reader.TokenType = JsonTokenType.String then
                            facts <- readerSystemText &reader systemIndex facts
                    | JsonTokenType.EndObject when section = 3 && depth = 2 -> systemIndex <- systemIndex + 1
                    | JsonTokenType.StartObject when section = 4 && depth = 2 ->
                        role <- false
                        messageImage <- false
                        messageCompaction <- false
                        firstText <- true
                    | JsonTokenType.EndObject when section = 4 && depth = 2 ->
                        if role then
                            facts <- {
                                facts with
                                    LatestUserImage = messageImage
                                    LatestUserCompaction = messageCompaction
                            }
                    | JsonTokenType.PropertyName when section = 4 && depth = 3 ->
                        if reader.ValueTextEquals roleName then
                            reader.Read() |> ignore
                            role <- reader.TokenType = JsonTokenType.String && reader.ValueTextEquals userName
                        elif reader.ValueTextEquals contentName then
                            reader.Read() |> ignore

                            if reader.TokenType = JsonTokenType.String then
                                messageCompaction <- readerStartsWith &reader compactionPrefix
                                firstText <- false
                    | JsonTokenType.PropertyName when section = 4 && (depth = 5 || depth = 7) ->
                        if reader.ValueTextEquals typeName then
                            reader.Read() |> ignore

                            if reader.TokenType = JsonTokenType.String && reader.ValueTextEquals imageName then
                                messageImage <- true
                        elif depth = 5 && firstText && reader.ValueTextEquals textName then
                            reader.Read() |> ignore

                            if reader.TokenType = JsonTokenType.String then
                                messageCompaction <- readerStartsWith &reader compactionPrefix
                                firstText <- false
                    | _ -> ()
        with
        | :? JsonException -> ()
        | :? InvalidOperationException -> ()

        facts

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

                                    if isRelaySignature reader.ValueSpan then
                                        unsigned <- true
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
                    Stage = noStages
                }

    // ---------------------------
    // Fast path
    // ---------------------------

    /// The key a value belongs to, among those `inspect` looks at. NOTE: an enum, not a union: the scan sets it
    /// at every key and value, and a union case is an object (a GC write barrier per store into the scan state).
    type private Key =
        | Other = 0
        | Model = 1
        | Stream = 2
        | MaxTokens = 3
        | BlockType = 4
        | BlockSignature = 5
        // the stage facts' keys (only when the scan reads them)
        /// The top-level `system`, when it is a string (the attribution block).
        | System = 6
        /// `system[i].text`.
        | SystemText = 7
        /// `thinking.type`.
        | ThinkingType = 8
        /// `tools[i].type`.
        | ToolType = 9
        /// `messages[i].role`.
        | Role = 10
        /// `messages[i].content` when it is a string, and the first `messages[i].content[j].text`.
        | Text = 11
        /// `messages[i].content[j].content[k].type` (an image in a tool result).
        | NestedType = 12

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
        /// Whether the stage facts are read (`inspectWithStages`).
        ReadStages: bool
        /// The top-level member being read, for the stage facts: 0 another (or none is read), 1 `thinking`,
        /// 2 `tools`, 3 `system`, 4 `messages`.
        mutable Section: int
        mutable Thinking: string
        mutable WebSearchTool: bool
        mutable HasTools: bool
        mutable SubagentMarker: bool
        mutable ModelTag: string
        mutable SideRequest: string
        mutable LatestUserImage: bool
        mutable LatestUserCompaction: bool
        mutable SystemIndex: int
        /// The message being read is a user turn; it has an image; it starts with the compaction instruction;
        /// no text of it has been looked at yet.
        mutable Role: bool
        mutable MessageImage: bool
        mutable MessageCompaction: bool
        mutable FirstText: bool
        mutable Unsigned: bool
    }

    /// Whether a string's raw content says what its decoded text says, for the patterns the stage facts look for
    /// (ASCII letters, digits, spaces, `<`, `>`, `-`, `_`, `=`, `,`, `.`, `:`; never a quote, backslash, slash or
    /// control character): true without escapes, and with two-character escapes only (`\n`, `\"`, `\/`, …),
    /// which decode to exactly those characters the patterns do not hold and cannot start one. A `\u` escape can
    /// decode to anything: such a string is decoded first.
    let private rawIsExact (content: ReadOnlySpan<byte>) (escaped: bool) : bool =
        not escaped || content.IndexOf(ReadOnlySpan unicodeEscape) < 0

    /// The decoded text of the string token (quotes included), as `Utf8JsonReader.GetString` gives it; null where
    /// that throws (an escaped lone surrogate), and the scan then gives way to the reader, which says the same.
    let private decodeToken (token: ReadOnlySpan<byte>) : string | null =
        try
            let mutable reader = Utf8JsonReader(token, readerOptions)

            if reader.Read() && reader.TokenType = JsonTokenType.String then
                reader.GetString()
            else
                null
        with
        | :? JsonException -> null
        | :? InvalidOperationException -> null

    /// 1 when the string token's decoded text starts with `prefix`, 0 when not, -1 when the scan cannot say.
    let private tokenStartsWith (token: ReadOnlySpan<byte>) (escaped: bool) (prefix: byte array) : int =
        let content = token.Slice(1, token.Length - 2)

        if rawIsExact content escaped then
            if content.StartsWith(ReadOnlySpan prefix) then 1 else 0
        else
            match decodeToken token with
            | null -> -1
            | text ->
                if text.StartsWith(Text.Encoding.ASCII.GetString prefix, StringComparison.Ordinal) then
                    1
                else
                    0

    /// 1 when the string token's decoded text is `expected` (ASCII letters), 0 when not, -1 when the scan cannot
    /// say: escapes other than `\u` decode to no letter.
    let private tokenEquals (token: ReadOnlySpan<byte>) (escaped: bool) (expected: byte array) : int =
        let content = token.Slice(1, token.Length - 2)

        if not escaped then
            if content.SequenceEqual(ReadOnlySpan expected) then
                1
            else
                0
        elif rawIsExact content escaped then
            0
        else
            -1

    /// What one system text says (index 0 is the attribution block), as `readStageFacts` reads it: from the raw
    /// content where that is exact, else from its decoded text.
    let private systemText
        (body: ReadOnlySpan<byte>)
        (s: byref<Scan>)
        (index: int)
        (start: int)
        (stop: int)
        (escaped: bool)
        =
        let token = body.Slice(start, stop - start)
        let content = token.Slice(1, token.Length - 2)

        if rawIsExact content escaped then
            if not s.SubagentMarker && content.IndexOf(ReadOnlySpan subagentMarker) >= 0 then
                s.SubagentMarker <- true

            if
                s.ModelTag.Length = 0
                && (content.IndexOf(ReadOnlySpan relayTag) >= 0
                    || content.IndexOf(ReadOnlySpan routerTag) >= 0)
            then
                // the tag's content may hold escapes (a slash, a quote): decoded as the reader would
                match
                    (if escaped then
                         decodeToken token
                     else
                         Text.Encoding.UTF8.GetString content)
                with
                | null -> s.Ok <- false
                | text ->
                    let tag = findTag text

                    if tag.Length > 0 then
                        s.ModelTag <- tag

            if index >= 1 && s.SideRequest.Length = 0 then
                for struct (prefix, kind) in sidePrompts do
                    if s.SideRequest.Length = 0 && content.StartsWith(ReadOnlySpan prefix) then
                        s.SideRequest <- kind
        else
            match decodeToken token with
            | null -> s.Ok <- false
            | text ->
                let before = {
                    noStages with
                        SubagentMarker = s.SubagentMarker
                        ModelTag = s.ModelTag
                        SideRequest = s.SideRequest
                }

                let after = decodedSystemText text index before
                s.SubagentMarker <- after.SubagentMarker
                s.ModelTag <- after.ModelTag
                s.SideRequest <- after.SideRequest

    /// `thinking.type`'s text: the usual values without allocating.
    let private thinkingText (token: ReadOnlySpan<byte>) (escaped: bool) : string | null =
        let content = token.Slice(1, token.Length - 2)

        if escaped then
            decodeToken token
        elif content.SequenceEqual(ReadOnlySpan enabledName) then
            "enabled"
        elif content.SequenceEqual(ReadOnlySpan adaptiveName) then
            "adaptive"
        elif content.SequenceEqual(ReadOnlySpan disabledName) then
            "disabled"
        else
            Text.Encoding.UTF8.GetString content

    /// What a value at [start, stop) of `kind` ('s' string, 'n' number, 't' true, 'o' anything else) means
    /// for the key it belongs to, exactly as `inspectWithReader` (and `readStageFacts`) reads it.
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
                    elif s.ReadStages && text.SequenceEqual(ReadOnlySpan imageName) then
                        s.MessageImage <- true
        | Key.BlockSignature ->
            if kind = 's' && stop - start > 2 then
                s.BlockSigned <- true

                if isRelaySignature (body.Slice(start + 1, stop - start - 2)) then
                    s.Unsigned <- true
        | Key.System ->
            if kind = 's' then
                systemText body &s 0 start stop escaped
        | Key.SystemText ->
            if kind = 's' then
                systemText body &s s.SystemIndex start stop escaped
        | Key.ThinkingType ->
            if kind = 's' then
                match thinkingText (body.Slice(start, stop - start)) escaped with
                | null -> s.Ok <- false
                | text -> s.Thinking <- text
        | Key.ToolType ->
            if kind = 's' then
                match tokenStartsWith (body.Slice(start, stop - start)) escaped webSearchPrefix with
                | 1 -> s.WebSearchTool <- true
                | 0 -> ()
                | _ -> s.Ok <- false
        | Key.Role ->
            if kind <> 's' then
                s.Role <- false
            else
                match tokenEquals (body.Slice(start, stop - start)) escaped userName with
                | -1 -> s.Ok <- false
                | equal -> s.Role <- equal = 1
        | Key.Text ->
            if kind = 's' then
                match tokenStartsWith (body.Slice(start, stop - start)) escaped compactionPrefix with
                | -1 -> s.Ok <- false
                | starts ->
                    s.MessageCompaction <- starts = 1
                    s.FirstText <- false
        | Key.NestedType ->
            if kind = 's' then
                match tokenEquals (body.Slice(start, stop - start)) escaped imageName with
                | 1 -> s.MessageImage <- true
                | 0 -> ()
                | _ -> s.Ok <- false
        | _ -> ()

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
                        elif s.ReadStages && name.SequenceEqual(ReadOnlySpan systemName) then
                            Key.System
                        else
                            Key.Other

                    if s.ReadStages then
                        s.Section <-
                            if s.InMessages then 4
                            elif s.Key = Key.System then 3
                            elif name.SequenceEqual(ReadOnlySpan thinkingName) then 1
                            elif name.SequenceEqual(ReadOnlySpan toolsName) then 2
                            else 0
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
                        elif s.Section = 4 && s.FirstText && name.SequenceEqual(ReadOnlySpan textName) then
                            Key.Text
                        else
                            Key.Other
            elif s.Section > 0 then
                // where readStageFacts compares a key's name (s.Section > 0 only when the stage facts are read)
                let compared =
                    match s.Section with
                    | 1 -> s.Depth = 2
                    | 2
                    | 3 -> s.Depth = 3
                    | _ -> s.Depth = 3 || s.Depth = 7

                if compared then
                    if escaped then
                        s.Ok <- false
                    else
                        s.Key <-
                            match s.Section with
                            | 1 when name.SequenceEqual(ReadOnlySpan typeName) -> Key.ThinkingType
                            | 2 when name.SequenceEqual(ReadOnlySpan typeName) -> Key.ToolType
                            | 3 when name.SequenceEqual(ReadOnlySpan textName) -> Key.SystemText
                            | 4 when s.Depth = 7 && name.SequenceEqual(ReadOnlySpan typeName) -> Key.NestedType
                            | 4 when s.Depth = 3 && name.SequenceEqual(ReadOnlySpan roleName) -> Key.Role
                            | 4 when s.Depth = 3 && name.SequenceEqual(ReadOnlySpan contentName) -> Key.Text
                            | _ -> Key.Other

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

            if not isArray && s.Depth = 2 then
                if s.Section = 2 then
                    s.HasTools <- true
                elif s.Section = 4 then
                    s.Role <- false
                    s.MessageImage <- false
                    s.MessageCompaction <- false
                    s.FirstText <- true

            // a container is "anything else" to the key it is the value of
            s.Key <-
                match s.Key with
                | Key.Model when isNull s.Model && not s.ModelBad ->
                    s.ModelBad <- true
                    Key.Other
                | Key.Stream ->
                    s.Stream <- false
                    Key.Other
                | Key.Role ->
                    s.Role <- false
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

            if b = '}'B && s.Depth = 2 then
                if s.Section = 4 then
                    if s.Role then
                        s.LatestUserImage <- s.MessageImage
                        s.LatestUserCompaction <- s.MessageCompaction
                elif s.Section = 3 then
                    s.SystemIndex <- s.SystemIndex + 1

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
    /// vectorised search, and only the keys and values `inspect` looks at are compared. With `stages`, the stage
    /// facts too (`readStageFacts`' facts, in the same pass; otherwise `Stage` is `noStages`). ValueNone for
    /// anything else (not JSON, no usable model, escapes in a key or value it compares, a `\u` escape where it
    /// would have to be decoded into a lone surrogate, deep nesting): the reader then reads the body, and says
    /// exactly what is wrong. Whenever this answers, it gives the reader's facts (properties hold the two together).
    let tryFastWith (stages: bool) (body: ReadOnlySpan<byte>) : RequestFacts voption =
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
            ReadStages = stages
            Section = 0
            Thinking = ""
            WebSearchTool = false
            HasTools = false
            SubagentMarker = false
            ModelTag = ""
            SideRequest = ""
            LatestUserImage = false
            LatestUserCompaction = false
            SystemIndex = 0
            Role = false
            MessageImage = false
            MessageCompaction = false
            FirstText = true
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
                Stage =
                    if stages then
                        {
                            Thinking = s.Thinking
                            WebSearchTool = s.WebSearchTool
                            HasTools = s.HasTools
                            SubagentMarker = s.SubagentMarker
                            ModelTag = s.ModelTag
                            SideRequest = s.SideRequest
                            LatestUserImage = s.LatestUserImage
                            LatestUserCompaction = s.LatestUserCompaction
                        }
                    else
                        noStages
            }
        | _ -> ValueNone

    /// `tryFastWith` without the stage facts.
    let tryFast (body: ReadOnlySpan<byte>) : RequestFacts voption = tryFastWith false body

    /// Reads the facts of a body. The whole body is validated as JSON (UTF-8 included); nothing is allocated but
    /// the model string. A well-formed request takes the fast path; anything else is read (and refused, with the
    /// reader's own words) by `inspectWithReader`. The stage facts are not read (`Stage` is `noStages`): the cheap
    /// read for a relay without `routing.stages`, and for re-reading a body already classified.
    let inspect (body: ReadOnlySpan<byte>) : Result<RequestFacts, BodyError> =
        match tryFast body with
        | ValueSome facts -> Ok facts
        | ValueNone -> inspectWithReader body

    /// `inspect`, and the stage facts `Stages.classify` needs, in the same one pass. Where the fast path gives way
    /// (an uncommon body: escaped keys, `\u` escapes in a text it must decode, deep nesting), the reader reads
    /// the facts and then the stage facts (`readStageFacts`), which is the second pass only such a body costs.
    let inspectWithStages (body: ReadOnlySpan<byte>) : Result<RequestFacts, BodyError> =
        match tryFastWith true body with
        | ValueSome facts -> Ok facts
        | ValueNone ->
            match inspectWithReader body with
            | Ok facts ->
                Ok {
                    facts with
                        Stage = readStageFacts body
                }
            | Error e -> Error e

    /// `inspectWithStages` when `stages`, else `inspect`.
    let inspectFor (stages: bool) (body: ReadOnlySpan<byte>) : Result<RequestFacts, BodyError> =
        if stages then inspectWithStages body else inspect body

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

    /// Reads a request body's facts, with the stage facts when `stages` (`RequestFacts.inspectFor`).
    static member Inspect(body: ReadOnlySpan<byte>, stages: bool) : Result<RequestFacts, BodyError> =
        RequestFacts.inspectFor stages body

/// The C#-facing surface of `BodyError`.
type BodyError with

    /// The message a client sees (`RequestFacts.describe`).
    member this.Message: string = RequestFacts.describe this
