namespace CcRelay.Core

open System
open System.Buffers
open System.Text.Json

/// What an attempt to an Anthropic-shaped upstream does with the thinking a conversation replays, decided from the
/// body's bytes (the host only applies it).
///
/// Anthropic's rules (its 400 wordings, docs/routing.md#thinking-signatures):
///
/// 1. Every `thinking` block must carry a signature that upstream minted (`Invalid \`signature\` in \`thinking\`
///    block`); the relay's own blocks (unsigned, or signed with a relay envelope: `cc-relay:…`, `ccrelay-rs1:…`)
///    never do, nor do another family's.
/// 2. With thinking on (`enabled`, `adaptive`), the final assistant turn — from the first assistant message after the
///    last user message that carries no `tool_result`, through the tool loop that follows — must start with a
///    thinking block (`When \`thinking\` is enabled, a final \`assistant\` message must start with a thinking block
///    (preceeding the lastmost set of \`tool_use\` and \`tool_result\` blocks)`).
/// 3. With thinking off, that turn carries no thinking block; `clear_thinking_*` context edits need thinking on.
///
/// So: the blocks that cannot be carried are taken out (all of them when the attempt crosses families; else the
/// unsigned and relay-signed ones), and when that leaves the final turn without its leading thinking while thinking
/// is on, thinking is turned off **for this attempt only** (`"thinking":{"type":"disabled"}`, every thinking block
/// taken out, a `clear_thinking_*` edit removed) — the one request shape Anthropic accepts without a thinking block
/// it signed. The next user turn starts a new turn, and thinking is on again. What was left out is reported
/// (`thinking`: turned off for the turn; `thinking_blocks`: blocks the upstream could not verify; `context_management`:
/// a `clear_thinking` edit). Every other byte of the body is kept as it was.
[<RequireQualifiedAccess>]
module ThinkingTurn =

    let private messagesName: byte array = "messages"B
    let private contentName: byte array = "content"B
    let private roleName: byte array = "role"B
    let private typeName: byte array = "type"B
    let private thinkingName: byte array = "thinking"B
    let private redactedThinkingName: byte array = "redacted_thinking"B
    let private toolResultName: byte array = "tool_result"B
    let private signatureName: byte array = "signature"B
    let private dataName: byte array = "data"B
    let private userName: byte array = "user"B
    let private assistantName: byte array = "assistant"B
    let private contextManagementName: byte array = "context_management"B
    let private editsName: byte array = "edits"B
    let private clearThinkingPrefix: byte array = "clear_thinking"B
    let private openBracket: byte array = "["B
    let private comma: byte array = ","B
    let private closeBracket: byte array = "]"B

    /// The value `thinking` takes when the attempt turns it off.
    let private disabled: byte array = """{"type":"disabled"}"""B

    [<RequireQualifiedAccess>]
    type private Kind =
        | Thinking
        | ToolResult
        | Other

    [<Struct>]
    type private Block = {
        Start: int
        End: int
        Kind: Kind
        /// A thinking block with a signature (or a redacted block with data), whoever minted it.
        Signed: bool
        /// A signed thinking block whose signature an upstream may have minted (not the relay's).
        Carriable: bool
    }

    type private Message = {
        Start: int
        mutable End: int
        mutable User: bool
        mutable Assistant: bool
        mutable ContentStart: int
        mutable ContentEnd: int
        Blocks: ResizeArray<Block>
    }

    type private Scan = {
        Messages: ResizeArray<Message>
        ArrayStart: int
        ArrayEnd: int
        /// `thinking.type` is `enabled` or `adaptive`.
        ThinkingOn: bool
        /// The `context_management` object, its `edits` array and the spans of its edits (`true`: a `clear_thinking_*`
        /// edit); -1 when absent.
        ManagementStart: int
        ManagementEnd: int
        EditsStart: int
        EditsEnd: int
        Edits: ResizeArray<struct (int * int * bool)>
    }

    let private scan (body: ReadOnlySpan<byte>) : Scan voption =
        let messages = ResizeArray<Message>()
        let edits = ResizeArray<struct (int * int * bool)>()
        let mutable arrayStart = -1
        let mutable arrayEnd = -1
        // the top-level member being read: 0 another, 1 messages, 2 thinking, 3 context_management
        let mutable top = 0
        let mutable current: Message option = None
        let mutable blockStart = -1
        let mutable blockKind = Kind.Other
        let mutable blockSigned = false
        let mutable blockRelay = false
        let mutable thinkingOn = false
        let mutable managementStart = -1
        let mutable managementEnd = -1
        let mutable editsStart = -1
        let mutable editsEnd = -1
        let mutable inEdits = false
        let mutable editStart = -1
        let mutable editClear = false
        let mutable ok = true
        let mutable reader = Utf8JsonReader(body)

        try
            while reader.Read() do
                let depth = reader.CurrentDepth

                match reader.TokenType with
                | JsonTokenType.PropertyName when depth = 1 ->
                    top <-
                        if reader.ValueTextEquals messagesName then 1
                        elif reader.ValueTextEquals thinkingName then 2
                        elif reader.ValueTextEquals contextManagementName then 3
                        else 0
                | _ when top = 2 ->
                    if
                        reader.TokenType = JsonTokenType.PropertyName
                        && depth = 2
                        && reader.ValueTextEquals typeName
                    then
                        reader.Read() |> ignore

                        thinkingOn <-
                            reader.TokenType = JsonTokenType.String
                            && (reader.ValueTextEquals "enabled"B || reader.ValueTextEquals "adaptive"B)
                | _ when top = 3 ->
                    match reader.TokenType with
                    | JsonTokenType.StartObject when depth = 1 -> managementStart <- int reader.TokenStartIndex
                    | JsonTokenType.EndObject when depth = 1 -> managementEnd <- int reader.BytesConsumed
                    | JsonTokenType.PropertyName when depth = 2 -> inEdits <- reader.ValueTextEquals editsName
                    | JsonTokenType.StartArray when depth = 2 && inEdits -> editsStart <- int reader.TokenStartIndex
                    | JsonTokenType.EndArray when depth = 2 && inEdits -> editsEnd <- int reader.BytesConsumed
                    | JsonTokenType.StartObject when depth = 3 && inEdits ->
                        editStart <- int reader.TokenStartIndex
                        editClear <- false
                    | JsonTokenType.EndObject when depth = 3 && inEdits ->
                        edits.Add(struct (editStart, int reader.BytesConsumed, editClear))
                    | JsonTokenType.PropertyName when depth = 4 && inEdits && reader.ValueTextEquals typeName ->
                        reader.Read() |> ignore

                        editClear <-
                            reader.TokenType = JsonTokenType.String
                            && not reader.ValueIsEscaped
                            && reader.ValueSpan.StartsWith(ReadOnlySpan clearThinkingPrefix)
                    | _ when depth = 3 && inEdits ->
                        // an edit that is not an object (a scalar): kept as it is
                        if reader.TokenType <> JsonTokenType.EndArray then
                            edits.Add(struct (int reader.TokenStartIndex, int reader.BytesConsumed, false))
                    | _ -> ()
                | _ when top <> 1 -> ()
                | JsonTokenType.StartArray when depth = 1 -> arrayStart <- int reader.TokenStartIndex
                | JsonTokenType.EndArray when depth = 1 ->
                    arrayEnd <- int reader.BytesConsumed
                    top <- 0
                | JsonTokenType.StartObject when depth = 2 ->
                    let m = {
                        Start = int reader.TokenStartIndex
                        End = -1
                        User = false
                        Assistant = false
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
                | JsonTokenType.PropertyName when depth = 3 && reader.ValueTextEquals roleName ->
                    reader.Read() |> ignore

                    match current with
                    | Some m when reader.TokenType = JsonTokenType.String ->
                        m.User <- reader.ValueTextEquals userName
                        m.Assistant <- reader.ValueTextEquals assistantName
                    | _ -> ()
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
                    blockKind <- Kind.Other
                    blockSigned <- false
                    blockRelay <- false
                | (JsonTokenType.EndObject | JsonTokenType.EndArray) when depth = 4 ->
                    match current with
                    | Some m ->
                        m.Blocks.Add {
                            Start = blockStart
                            End = int reader.BytesConsumed
                            Kind = blockKind
                            Signed = blockSigned
                            Carriable = blockSigned && not blockRelay
                        }
                    | None -> ()
                | JsonTokenType.PropertyName when depth = 5 && reader.ValueTextEquals typeName ->
                    reader.Read() |> ignore

                    if reader.TokenType = JsonTokenType.String then
                        blockKind <-
                            if
                                reader.ValueTextEquals thinkingName
                                || reader.ValueTextEquals redactedThinkingName
                            then
                                Kind.Thinking
                            elif reader.ValueTextEquals toolResultName then
                                Kind.ToolResult
                            else
                                Kind.Other
                | JsonTokenType.PropertyName when
                    depth = 5
                    && (reader.ValueTextEquals signatureName || reader.ValueTextEquals dataName)
                    ->
                    reader.Read() |> ignore
                    blockSigned <- reader.TokenType = JsonTokenType.String && not reader.ValueSpan.IsEmpty

                    blockRelay <-
                        reader.TokenType = JsonTokenType.String
                        && (if reader.ValueIsEscaped then
                                let text = string (reader.GetString())
                                RequestFacts.isRelaySignature (ReadOnlySpan(Text.Encoding.UTF8.GetBytes text))
                            else
                                RequestFacts.isRelaySignature reader.ValueSpan)
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
                            Kind = Kind.Other
                            Signed = false
                            Carriable = false
                        }
                    | None -> ()
                | _ -> ()
        with
        | :? JsonException
        | :? InvalidOperationException -> ok <- false

        if not ok || arrayStart < 0 || arrayEnd < 0 then
            ValueNone
        else
            ValueSome {
                Messages = messages
                ArrayStart = arrayStart
                ArrayEnd = arrayEnd
                ThinkingOn = thinkingOn
                ManagementStart = managementStart
                ManagementEnd = managementEnd
                EditsStart = editsStart
                EditsEnd = editsEnd
                Edits = edits
            }

    /// The `messages` array rewritten without the blocks `keep` refuses; a message left with no content is dropped.
    let private rewrite (body: ReadOnlySpan<byte>) (s: Scan) (keep: Block -> bool) (out: ArrayBufferWriter<byte>) =
        out.Write(openBracket)
        let mutable first = true

        for m in s.Messages do
            let removed = m.Blocks |> Seq.filter (keep >> not) |> Seq.length
            let dropped = removed > 0 && removed = m.Blocks.Count

            if not dropped && m.End > m.Start then
                if not first then
                    out.Write(comma)

                first <- false

                if removed = 0 || m.ContentStart < 0 || m.ContentEnd < 0 then
                    out.Write(body.Slice(m.Start, m.End - m.Start))
                else
                    out.Write(body.Slice(m.Start, m.ContentStart - m.Start))
                    out.Write(openBracket)
                    let mutable firstBlock = true

                    for b in m.Blocks do
                        if keep b then
                            if not firstBlock then
                                out.Write(comma)

                            firstBlock <- false
                            out.Write(body.Slice(b.Start, b.End - b.Start))

                    out.Write(closeBracket)
                    out.Write(body.Slice(m.ContentEnd, m.End - m.ContentEnd))

        out.Write(closeBracket)

    /// Whether the final assistant turn, with only the blocks `keep` accepts, starts with a thinking block; true when
    /// there is no such turn (the conversation ends with the user's new message).
    let private turnStartsWithThinking (s: Scan) (keep: Block -> bool) : bool =
        let isNewTurn (m: Message) =
            m.User && not (m.Blocks |> Seq.exists (fun b -> b.Kind = Kind.ToolResult))

        let lastUser = s.Messages.FindLastIndex(fun m -> isNewTurn m)
        let mutable answer = true
        let mutable found = false
        let mutable i = lastUser + 1

        while not found && i < s.Messages.Count do
            let m = s.Messages[i]

            if m.Assistant then
                match m.Blocks |> Seq.tryFind keep with
                | Some b ->
                    found <- true
                    answer <- b.Kind = Kind.Thinking
                | None when m.Blocks.Count = 0 && m.ContentStart < 0 ->
                    // string content: a text answer, no thinking
                    found <- true
                    answer <- false
                | None -> ()

            i <- i + 1

        answer

    /// The `context_management` value without its `clear_thinking_*` edits; None when no other edit is left (the
    /// member goes then).
    let private withoutClearThinking (body: ReadOnlySpan<byte>) (s: Scan) : byte array option =
        let kept =
            s.Edits |> Seq.filter (fun struct (_, _, clear) -> not clear) |> Seq.toList

        if kept.IsEmpty then
            None
        else
            let out = ArrayBufferWriter<byte>()
            out.Write(body.Slice(s.ManagementStart, s.EditsStart - s.ManagementStart))
            out.Write(openBracket)

            let mutable first = true

            for struct (start, stop, _) in kept do
                if not first then
                    out.Write(comma)

                first <- false
                out.Write(body.Slice(start, stop - start))

            out.Write(closeBracket)
            out.Write(body.Slice(s.EditsEnd, s.ManagementEnd - s.EditsEnd))
            Some(out.WrittenSpan.ToArray())

    /// The attempt's body and what it left out: `stripAll` when the attempt crosses to another family than the one that
    /// signed the conversation's thinking (or retries after a rejected signature). ValueNone body: send it unchanged.
    let decide (stripAll: bool) (body: ReadOnlySpan<byte>) : struct (byte array voption * string list) =
        match scan body with
        | ValueNone -> struct (ValueNone, [])
        | ValueSome s ->
            let carried (b: Block) =
                b.Kind <> Kind.Thinking || (not stripAll && b.Carriable)

            let anyRemoved =
                s.Messages |> Seq.exists (fun m -> m.Blocks |> Seq.exists (carried >> not))

            // reasoning the upstream could not verify (another family's, a translated target's); the relay's own
            // unsigned keep-alive block is not the conversation's and is not reported
            let reasoningLost =
                s.Messages
                |> Seq.exists (fun m -> m.Blocks |> Seq.exists (fun b -> b.Signed && not (carried b)))

            let turnOff = s.ThinkingOn && not (turnStartsWithThinking s carried)

            if turnOff then
                let out = ArrayBufferWriter<byte>(body.Length)
                out.Write(body.Slice(0, s.ArrayStart))
                rewrite body s (fun b -> b.Kind <> Kind.Thinking) out
                out.Write(body.Slice(s.ArrayEnd))

                let clears =
                    s.ManagementStart >= 0
                    && s.EditsStart >= 0
                    && s.Edits |> Seq.exists (fun struct (_, _, clear) -> clear)

                let management = if clears then withoutClearThinking body s else None

                let remove =
                    if clears then
                        [ "thinking"; "context_management" ]
                    else
                        [ "thinking" ]

                let prepend =
                    ("thinking", disabled)
                    :: (management |> Option.map (fun m -> "context_management", m) |> Option.toList)

                match JsonEdit.edit out.WrittenSpan remove prepend with
                | Ok(edited, _) ->
                    let dropped = [
                        "thinking"
                        if clears then
                            "context_management"
                    ]

                    struct (ValueSome edited, dropped)
                | Error _ -> struct (ValueNone, [])
            elif anyRemoved then
                let out = ArrayBufferWriter<byte>(body.Length)
                out.Write(body.Slice(0, s.ArrayStart))
                rewrite body s carried out
                out.Write(body.Slice(s.ArrayEnd))
                struct (ValueSome(out.WrittenSpan.ToArray()), (if reasoningLost then [ "thinking_blocks" ] else []))
            else
                struct (ValueNone, [])

    /// `decide` for an attempt's plan: the body to send (ValueNone: unchanged) and the plan with what was left out added
    /// to its `DroppedFeatures` (reported like a translation's: `x-cc-relay-dropped`, the log line, the metric).
    let carry
        (plan: UpstreamPlan)
        (stripAll: bool)
        (body: ReadOnlySpan<byte>)
        : struct (UpstreamPlan * byte array voption) =
        let struct (edited, dropped) = decide stripAll body

        if dropped.IsEmpty then
            struct (plan, edited)
        else
            struct ({
                        plan with
                            DroppedFeatures = List.distinct (plan.DroppedFeatures @ dropped)
                    },
                    edited)
