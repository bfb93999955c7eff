namespace CcRelay.Core

open System
open System.Buffers
open System.Text.Json

/// Thinking-signature affinity.
///
/// Thinking blocks carry signatures (and `redacted_thinking` blocks encrypted data) that only the provider
/// family that minted them can verify. So:
///
/// 1. Every success pins the request's *conversation* to the family that answered (`Relay.record`).
/// 2. A request that replays signed thinking blocks is planned with its pinned family first.
/// 3. When it must cross to another family (the pinned one is down or exhausted), the attempt says
///    `StripThinking`, and the host sends what `ThinkingTurn.carry` makes of the body instead: the other family
///    could not verify the blocks, and answering without the old reasoning beats failing the user.
/// 4. A provider that still rejects a signature (a 400 that `isSignatureError` recognises) gets one retry
///    with thinking stripped, on the same provider, without touching breakers or keys.
///
/// The conversation is keyed by `x-claude-code-session-id` when the client sends it (Claude Code does),
/// else by a hash of the raw bytes of `messages[0]`, which a client replays unchanged on every turn.
[<RequireQualifiedAccess>]
module Affinity =

    // Property names and punctuation, built once (a `"…"B` literal is a new array at every evaluation).
    let private messagesName: byte array = "messages"B
    let private messageName: byte array = "message"B
    let private contentName: byte array = "content"B
    let private typeName: byte array = "type"B
    let private redactedThinkingName: byte array = "redacted_thinking"B
    let private thinkingName: byte array = "thinking"B
    let private signatureName: byte array = "signature"B
    let private dataName: byte array = "data"B
    let private openBracket: byte array = "["B
    let private comma: byte array = ","B
    let private closeBracket: byte array = "]"B

    let private fnv (seed: uint64) (bytes: ReadOnlySpan<byte>) : uint64 =
        let mutable hash = seed

        for b in bytes do
            hash <- (hash ^^^ uint64 b) * 1099511628211UL

        hash

    /// The conversation key of a request: from the session id when there is one, else from `messages[0]`;
    /// 0 when neither exists.
    let conversationKey (sessionId: string | null) (body: ReadOnlySpan<byte>) (facts: RequestFacts) : uint64 =
        let nonZero (key: uint64) = if key = 0UL then 1UL else key

        match sessionId with
        | NonNull id when id.Length > 0 ->
            nonZero (fnv 14695981039346656037UL (Runtime.InteropServices.MemoryMarshal.AsBytes(id.AsSpan())))
        | _ when
            facts.FirstMessageStart >= 0
            && facts.FirstMessageLength > 0
            && facts.FirstMessageStart + facts.FirstMessageLength <= body.Length
            ->
            // Another seed, so that a session id and a message are two separate key spaces.
            nonZero (fnv 1469598103934665603UL (body.Slice(facts.FirstMessageStart, facts.FirstMessageLength)))
        | _ -> 0UL

    /// Whether an upstream 400 body complains about a thinking signature (`…Invalid \`signature\` in
    /// \`thinking\` block`, or Gemini's missing or invalid `thought_signature`). Looks at `error.message` only.
    let isSignatureError (body: ReadOnlySpan<byte>) : bool =
        let mutable reader = Utf8JsonReader(body)
        let mutable found = false

        try
            while not found && reader.Read() do
                if
                    reader.TokenType = JsonTokenType.PropertyName
                    && reader.CurrentDepth = 2
                    && reader.ValueTextEquals messageName
                then
                    reader.Read() |> ignore

                    if reader.TokenType = JsonTokenType.String then
                        match reader.GetString() with
                        | NonNull message ->
                            found <-
                                message.Contains("signature", StringComparison.OrdinalIgnoreCase)
                                && message.Contains("thinking", StringComparison.OrdinalIgnoreCase)
                                // Gemini 3: "Function call is missing a thought_signature in functionCall parts…"
                                || message.Contains("thought_signature", StringComparison.OrdinalIgnoreCase)
                                || message.Contains("thoughtSignature", StringComparison.Ordinal)
                        | _ -> ()
        with
        | :? JsonException
        | :? InvalidOperationException -> ()

        found

    [<Struct>]
    type private Element = { Start: int; End: int; Thinking: bool }

    type private Message = {
        Start: int
        mutable End: int
        mutable ContentStart: int
        mutable ContentEnd: int
        Blocks: ResizeArray<Element>
    }

    /// The body without `thinking` and `redacted_thinking` blocks (`unsignedOnly`: only those without a
    /// signature, or data, or with an empty one); ValueNone when it has none (or is not the expected JSON).
    let private strip (unsignedOnly: bool) (body: ReadOnlySpan<byte>) : byte array voption =
        let messages = ResizeArray<Message>()
        let mutable arrayStart = -1
        let mutable arrayEnd = -1
        let mutable inMessages = false
        let mutable current: Message option = None
        let mutable blockStart = -1
        let mutable blockThinking = false
        let mutable blockSigned = false
        let mutable any = false
        let mutable ok = true
        let mutable reader = Utf8JsonReader(body)

        try
            while reader.Read() do
                let depth = reader.CurrentDepth

                match reader.TokenType with
                | JsonTokenType.PropertyName when depth = 1 -> inMessages <- reader.ValueTextEquals messagesName
                | JsonTokenType.StartArray when depth = 1 && inMessages -> arrayStart <- int reader.TokenStartIndex
                | JsonTokenType.EndArray when depth = 1 && inMessages ->
                    arrayEnd <- int reader.BytesConsumed
                    inMessages <- false
                | _ when not inMessages -> ()
                | JsonTokenType.StartObject when depth = 2 ->
                    let m = {
                        Start = int reader.TokenStartIndex
                        End = -1
                        ContentStart = -1
                        ContentEnd = -1
                        Blocks = ResizeArray()
                    }

                    messages.Add m
                    current <- Some m
                | JsonTokenType.EndObject when depth = 2 ->
                    match current with
                    | Some m -> m.End <- int reader.BytesConsumed
                    | None -> ()
                | JsonTokenType.PropertyName when depth = 3 && reader.ValueTextEquals contentName ->
                    reader.Read() |> ignore

                    match current with
                    | Some m when reader.TokenType = JsonTokenType.StartArray ->
                        m.ContentStart <- int reader.TokenStartIndex
                    | _ -> ()
                | JsonTokenType.EndArray when depth = 3 ->
                    match current with
                    | Some m when m.ContentStart >= 0 && m.ContentEnd < 0 -> m.ContentEnd <- int reader.BytesConsumed
                    | _ -> ()
                | (JsonTokenType.StartObject | JsonTokenType.StartArray) when depth = 4 ->
                    blockStart <- int reader.TokenStartIndex
                    blockThinking <- false
                    blockSigned <- false
                | (JsonTokenType.EndObject | JsonTokenType.EndArray) when depth = 4 ->
                    match current with
                    | Some m ->
                        let stripped = blockThinking && not (unsignedOnly && blockSigned)

                        m.Blocks.Add {
                            Start = blockStart
                            End = int reader.BytesConsumed
                            Thinking = stripped
                        }

                        any <- any || stripped
                    | None -> ()
                | JsonTokenType.PropertyName when depth = 5 && reader.ValueTextEquals typeName ->
                    reader.Read() |> ignore

                    blockThinking <-
                        reader.TokenType = JsonTokenType.String
                        && (reader.ValueTextEquals thinkingName
                            || reader.ValueTextEquals redactedThinkingName)
                | JsonTokenType.PropertyName when
                    depth = 5
                    && (reader.ValueTextEquals signatureName || reader.ValueTextEquals dataName)
                    ->
                    reader.Read() |> ignore
                    blockSigned <- reader.TokenType = JsonTokenType.String && not reader.ValueSpan.IsEmpty
                | JsonTokenType.String
                | JsonTokenType.Number
                | JsonTokenType.True
                | JsonTokenType.False
                | JsonTokenType.Null when depth = 4 ->
                    match current with
                    | Some m ->
                        m.Blocks.Add {
                            Start = int reader.TokenStartIndex
                            End = int reader.BytesConsumed
                            Thinking = false
                        }
                    | None -> ()
                | _ -> ()
        with
        | :? JsonException
        | :? InvalidOperationException -> ok <- false

        if not ok || not any || arrayStart < 0 || arrayEnd < 0 then
            ValueNone
        else
            let out = ArrayBufferWriter<byte>(body.Length)
            out.Write(body.Slice(0, arrayStart))
            out.Write(openBracket)
            let mutable first = true

            for m in messages do
                let thinking = m.Blocks |> Seq.filter _.Thinking |> Seq.length
                let dropped = thinking > 0 && thinking = m.Blocks.Count

                if not dropped && m.End > m.Start then
                    if not first then
                        out.Write(comma)

                    first <- false

                    if thinking = 0 || m.ContentStart < 0 || m.ContentEnd < 0 then
                        out.Write(body.Slice(m.Start, m.End - m.Start))
                    else
                        out.Write(body.Slice(m.Start, m.ContentStart - m.Start))
                        out.Write(openBracket)
                        let mutable firstBlock = true

                        for b in m.Blocks do
                            if not b.Thinking then
                                if not firstBlock then
                                    out.Write(comma)

                                firstBlock <- false
                                out.Write(body.Slice(b.Start, b.End - b.Start))

                        out.Write(closeBracket)
                        out.Write(body.Slice(m.ContentEnd, m.End - m.ContentEnd))

            out.Write(closeBracket)
            out.Write(body.Slice(arrayEnd))
            ValueSome(out.WrittenSpan.ToArray())

    /// The body without `thinking` and `redacted_thinking` blocks; ValueNone when it has none (or is not
    /// the expected JSON). Every other byte of every kept block and message is kept as it was. An
    /// assistant message left with no content is dropped (the API merges the turns around it).
    let stripThinking (body: ReadOnlySpan<byte>) : byte array voption = strip false body

    /// The body without its unsigned `thinking` blocks (no `signature`, or an empty one; a `redacted_thinking`
    /// without `data`) — above all the relay's own keep-alive block (`KeepAlive`: empty, unsigned), which Claude
    /// Code sends back on its next turn and which an Anthropic-shaped upstream refuses as an invalid signature.
    /// Signed blocks stay, byte for byte, so the conversation's reasoning still reaches the family that minted
    /// it (stripping all thinking instead would fail a tool loop with thinking on). ValueNone when there is none.
    let stripUnsignedThinking (body: ReadOnlySpan<byte>) : byte array voption = strip true body
