namespace CcRelay.Core

open System
open System.Text.Json

/// The block the client has open in a translated Gemini answer.
[<RequireQualifiedAccess>]
type private GeminiOpen =
    | NoBlock
    /// A thinking block, with the thought signature met in its run (given at its close).
    | Thinking of Index: int * Signature: string option
    /// A text block, with a signature Gemini put on its last part (carried in a block after it).
    | Text of Index: int * Signature: string option

/// The state of one Gemini answer (a stream, or a whole answer read as one chunk) being read as Anthropic events.
type GeminiStreamState = private {
    Plan: GeminiAnswerPlan
    Parser: Sse.Parser
    MessageId: string
    /// Hex digits unique to this answer, in the tool-use ids it mints.
    Nonce: string
    Started: bool
    Next: int
    Open: GeminiOpen
    Calls: int
    Finish: string option
    Usage: Usage option
    OutputChars: int64
    Ended: bool
}

/// Gemini `streamGenerateContent?alt=sse` (and `generateContent`) → Anthropic events (protocols.md §6.4, §6.6.4).
///
/// `message_start` goes out with the first chunk, with the request's estimated input tokens. Thought parts
/// become thinking blocks, text parts text blocks, function calls tool_use blocks (Gemini sends each call
/// whole: start, its `args` as one `input_json_delta`, stop), each with a minted id that names the function
/// (`GeminiWire.toolId`). Every thinking block's signature is `GeminiWire.SignaturePrefix` + the thought
/// signature of its run; a signature Gemini put on a function call or on the answer's last text part is
/// carried in an empty thinking block right before the call, or right after the text, so that Claude Code
/// echoes it and the next request gives it back on the right part. `message_delta` comes with the chunk
/// that has both the `finishReason` and the usage, or at the upstream's end; a stream that ends before a
/// `finishReason` ends in an `error` event.
[<RequireQualifiedAccess>]
module GeminiStream =

    let private documentOptions = JsonDocumentOptions(MaxDepth = 512)

    /// An answer about to be read for a request planned with `plan`.
    let start (plan: GeminiAnswerPlan) : GeminiStreamState = {
        Plan = plan
        Parser = Sse.initial
        MessageId = "msg_cc_relay"
        Nonce = "0"
        Started = false
        Next = 0
        Open = GeminiOpen.NoBlock
        Calls = 0
        Finish = None
        Usage = None
        OutputChars = 0L
        Ended = false
    }

    /// Whether the answer is over (finished, or failed with an `error` event).
    let isEnded (state: GeminiStreamState) : bool = state.Ended

    let private fail (state: GeminiStreamState) (errorType: ErrorType) (message: string) =
        { state with Ended = true }, [ AnthropicEvent.Error(errorType, message) ]

    /// An empty thinking block whose signature carries `signature`.
    let private carrier (state: GeminiStreamState) (signature: string) : GeminiStreamState * AnthropicEvent list =
        let index = state.Next

        { state with Next = index + 1 },
        [
            AnthropicEvent.BlockStart(index, StartedBlock.Thinking)
            AnthropicEvent.SignatureDelta(index, GeminiWire.SignaturePrefix + signature)
            AnthropicEvent.BlockStop index
        ]

    let private closeOpen (state: GeminiStreamState) : GeminiStreamState * AnthropicEvent list =
        let closed = { state with Open = GeminiOpen.NoBlock }

        match state.Open with
        | GeminiOpen.NoBlock -> state, []
        | GeminiOpen.Thinking(index, signature) ->
            closed,
            [
                AnthropicEvent.SignatureDelta(index, GeminiWire.SignaturePrefix + defaultArg signature "")
                AnthropicEvent.BlockStop index
            ]
        | GeminiOpen.Text(index, None) -> closed, [ AnthropicEvent.BlockStop index ]
        | GeminiOpen.Text(index, Some signature) ->
            let state, carried = carrier closed signature
            state, AnthropicEvent.BlockStop index :: carried

    /// Closes the open block (which may add a carrier block) and opens `block index` at the next index.
    let private opened (state: GeminiStreamState) (block: int -> GeminiOpen) (kind: StartedBlock) =
        let state, closed = closeOpen state

        {
            state with
                Next = state.Next + 1
                Open = block state.Next
        },
        closed @ [ AnthropicEvent.BlockStart(state.Next, kind) ]

    let private delta (state: GeminiStreamState) (text: string) = {
        state with
            OutputChars = state.OutputChars + int64 text.Length
    }

    /// A thought part: thinking text, and maybe the run's signature.
    let private thought (state: GeminiStreamState) (text: string) (signature: string option) =
        let state, events =
            match state.Open with
            | GeminiOpen.Thinking(_, None) -> state, []
            // a run already signed: what follows is a new run
            | GeminiOpen.Thinking(_, Some _) when text.Length > 0 || signature.IsSome ->
                opened state (fun index -> GeminiOpen.Thinking(index, None)) StartedBlock.Thinking
            | GeminiOpen.Thinking _ -> state, []
            | _ when text.Length = 0 && signature.IsNone -> state, []
            | _ -> opened state (fun index -> GeminiOpen.Thinking(index, None)) StartedBlock.Thinking

        match state.Open with
        | GeminiOpen.Thinking(index, own) ->
            let state = {
                delta state text with
                    Open = GeminiOpen.Thinking(index, signature |> Option.orElse own)
            }

            state,
            events
            @ (if text.Length > 0 then
                   [ AnthropicEvent.ThinkingDelta(index, text) ]
               else
                   [])
        | _ -> state, events

    /// A text part: text, and maybe a signature (Gemini's last part of an answer without calls).
    let private textPart (state: GeminiStreamState) (text: string) (signature: string option) =
        match state.Open with
        | GeminiOpen.Text(index, own) ->
            {
                delta state text with
                    Open = GeminiOpen.Text(index, signature |> Option.orElse own)
            },
            (if text.Length > 0 then
                 [ AnthropicEvent.TextDelta(index, text) ]
             else
                 [])
        | _ when text.Length > 0 ->
            let state, events =
                opened state (fun index -> GeminiOpen.Text(index, signature)) StartedBlock.Text

            delta state text, events @ [ AnthropicEvent.TextDelta(state.Next - 1, text) ]
        | _ ->
            match signature with
            | Some signature ->
                let state, closed = closeOpen state
                let state, carried = carrier state signature
                state, closed @ carried
            | None -> state, []

    /// A function call: whole, so its block starts, gets its arguments and stops at once.
    let private call (state: GeminiStreamState) (call: JsonElement) (signature: string option) =
        let state, closed = closeOpen state

        let state, carried =
            match signature with
            | Some signature -> carrier state signature
            | None -> state, []

        let name = JsonRead.tryString call "name" |> Option.defaultValue ""

        let args =
            match JsonRead.tryProperty call "args" with
            | ValueSome args when args.ValueKind = JsonValueKind.Object -> args.GetRawText()
            | _ -> "{}"

        let id =
            GeminiWire.toolId name (JsonRead.tryString call "id") state.Nonce state.Calls

        let index = state.Next

        {
            state with
                Next = index + 1
                Calls = state.Calls + 1
                OutputChars = state.OutputChars + int64 args.Length
        },
        closed
        @ carried
        @ [
            AnthropicEvent.BlockStart(index, StartedBlock.ToolUse(id, ToolName.original state.Plan.ToolNames name))
            AnthropicEvent.InputJsonDelta(index, args)
            AnthropicEvent.BlockStop index
        ]

    let private part (state: GeminiStreamState) (part: JsonElement) : GeminiStreamState * AnthropicEvent list =
        let signature =
            JsonRead.tryString part "thoughtSignature"
            |> Option.filter (fun s -> s.Length > 0)

        let isThought =
            match JsonRead.tryProperty part "thought" with
            | ValueSome value -> value.ValueKind = JsonValueKind.True
            | ValueNone -> false

        match JsonRead.tryProperty part "functionCall" with
        | ValueSome functionCall -> call state functionCall signature
        | ValueNone ->
            let text = JsonRead.tryString part "text" |> Option.defaultValue ""

            if isThought then
                thought state text signature
            else
                textPart state text signature

    /// The end of the answer: the open block closed, `message_delta` with the stop reason and the usage
    /// (the request's estimate when Gemini gave none), `message_stop`.
    let private endMessage (state: GeminiStreamState) (finish: string) : GeminiStreamState * AnthropicEvent list =
        let state, closed = closeOpen state

        { state with Ended = true },
        closed
        @ StreamFrame.ending
            (GeminiAnswer.stopReason finish (state.Calls > 0))
            state.Usage
            state.Plan.EstimatedInputTokens
            state.OutputChars

    let private nonceOf (seed: string) : string =
        Security.Cryptography.SHA256.HashData(Text.Encoding.UTF8.GetBytes seed)
        |> Convert.ToHexStringLower
        |> fun hex -> hex.Substring(0, 12)

    /// One `GenerateContentResponse` (a chunk, or a whole answer). `raw`: its text (the nonce's seed when it
    /// has no `responseId`).
    let private chunk (state: GeminiStreamState) (root: JsonElement) (raw: string) =
        let state, opening =
            if state.Started then
                state, []
            else
                let nonce =
                    nonceOf (JsonRead.tryString root "responseId" |> Option.defaultValue raw)

                let id = "msg_gm_" + nonce

                // the client's model, not `modelVersion`: see GeminiAnswerPlan.Model
                let model = state.Plan.Model

                {
                    state with
                        Started = true
                        MessageId = id
                        Nonce = nonce
                },
                [
                    AnthropicEvent.MessageStart(id, model, int64 state.Plan.EstimatedInputTokens)
                ]

        let candidate =
            match JsonRead.tryProperty root "candidates" with
            | ValueSome candidates when candidates.ValueKind = JsonValueKind.Array && candidates.GetArrayLength() > 0 ->
                ValueSome candidates[0]
            | _ -> ValueNone

        let state, content =
            match candidate with
            | ValueSome candidate when state.Finish.IsNone ->
                let parts =
                    match
                        JsonRead.tryProperty candidate "content"
                        |> ValueOption.bind (fun c -> JsonRead.tryProperty c "parts")
                    with
                    | ValueSome parts when parts.ValueKind = JsonValueKind.Array -> List.ofSeq (parts.EnumerateArray())
                    | _ -> []

                let state, events =
                    parts
                    |> List.fold
                        (fun (state, events) p ->
                            let state, more = part state p
                            state, events @ more)
                        (state, [])

                let state =
                    match JsonRead.tryString candidate "finishReason" with
                    | Some finish -> { state with Finish = Some finish }
                    | None -> state

                state, events
            | ValueSome _ -> state, []
            | ValueNone ->
                // a blocked prompt: no candidates, `promptFeedback.blockReason`
                match
                    JsonRead.tryProperty root "promptFeedback"
                    |> ValueOption.bind (fun f -> JsonRead.tryString f "blockReason" |> ValueOption.ofOption)
                with
                | ValueSome _ -> { state with Finish = Some "SAFETY" }, []
                | ValueNone -> state, []

        let state, hasUsage =
            match JsonRead.tryProperty root "usageMetadata" with
            | ValueSome usage when usage.ValueKind = JsonValueKind.Object ->
                {
                    state with
                        Usage = Some(GeminiAnswer.usageOf usage)
                },
                true
            | _ -> state, false

        match state.Finish with
        | Some finish when hasUsage ->
            let state, ending = endMessage state finish
            state, opening @ content @ ending
        | _ -> state, opening @ content

    let private event (state: GeminiStreamState) (data: string) : GeminiStreamState * AnthropicEvent list =
        if state.Ended || data.Trim() = "[DONE]" || data.Trim() = "" then
            state, []
        else
            StreamFrame.read
                data
                (fail state ErrorType.Api)
                (fun status error ->
                    let _, errorType, message =
                        GeminiAnswer.describe status (ValueSome error) "the upstream failed"

                    fail state errorType message)
                (fun root -> chunk state root data)

    /// Feeds upstream bytes (split anywhere); returns the events they complete, in order.
    let feed (state: GeminiStreamState) (bytes: ReadOnlySpan<byte>) : GeminiStreamState * AnthropicEvent list =
        if state.Ended then
            state, []
        else
            let parser, events = Sse.feed state.Parser bytes
            StreamFrame.fold event { state with Parser = parser } events

    /// The upstream ended: the answer ends as it finished, or, without a `finishReason`, in an `error`.
    let finish (state: GeminiStreamState) : GeminiStreamState * AnthropicEvent list =
        if state.Ended then
            state, []
        else
            match state.Finish with
            | Some finish -> endMessage state finish
            | None ->
                fail state ErrorType.Api "the upstream stream ended before the answer was finished (no finishReason)"

    /// The events of an answer as a whole `Message`.
    let private assemble (events: AnthropicEvent list) : AnswerMessage option =
        let blocks = ResizeArray<StartedBlock * Text.StringBuilder * string ref>()
        let mutable id = "msg_cc_relay"
        let mutable model = ""
        let mutable stop = None

        for event in events do
            match event with
            | AnthropicEvent.MessageStart(i, m, _) ->
                id <- i
                model <- m
            | AnthropicEvent.BlockStart(_, kind) -> blocks.Add(kind, Text.StringBuilder(), ref "")
            | AnthropicEvent.TextDelta(_, text)
            | AnthropicEvent.ThinkingDelta(_, text)
            | AnthropicEvent.InputJsonDelta(_, text) ->
                let _, builder, _ = blocks[blocks.Count - 1]
                builder.Append text |> ignore
            | AnthropicEvent.SignatureDelta(_, signature) ->
                let _, _, own = blocks[blocks.Count - 1]
                own.Value <- signature
            | AnthropicEvent.MessageDelta(reason, usage) -> stop <- Some(reason, usage)
            | AnthropicEvent.BlockStop _
            | AnthropicEvent.MessageStop
            | AnthropicEvent.Error _ -> ()

        stop
        |> Option.map (fun (reason, usage) -> {
            Id = id
            Model = model
            Content =
                blocks
                |> Seq.map (fun (kind, builder, signature) ->
                    match kind with
                    | StartedBlock.Text -> AnswerBlock.Text(builder.ToString())
                    | StartedBlock.Thinking -> AnswerBlock.Thinking(builder.ToString(), signature.Value)
                    | StartedBlock.ToolUse(id, name) -> AnswerBlock.ToolUse(id, name, builder.ToString()))
                |> List.ofSeq
            StopReason = reason
            Usage = usage
        })

    /// A `generateContent` JSON answer as an Anthropic `Message` (`(status, body)`); an answer that is not one
    /// as an Anthropic error.
    let ofJson (plan: GeminiAnswerPlan) (body: ReadOnlySpan<byte>) : int * byte array =
        let text = Text.Encoding.UTF8.GetString body

        let parsed =
            try
                Some(JsonDocument.Parse(text, documentOptions))
            with :? JsonException ->
                None

        match parsed with
        | None -> GeminiAnswer.errorBody 502 body
        | Some document ->
            use document = document
            let root = document.RootElement

            if
                root.ValueKind <> JsonValueKind.Object
                || (JsonRead.tryProperty root "error").IsSome
            then
                GeminiAnswer.errorBody 502 body
            else
                let state, events = chunk (start plan) root text
                let _, ending = finish state

                match assemble (events @ ending) with
                | Some message -> 200, AnthropicOut.message message
                | None -> 502, ErrorEnvelope.toJson ErrorType.Api "the upstream's answer has no candidates"
