namespace CcRelay.Core

open System
open System.Text.Json

/// The kind of a Responses output item the stream follows.
[<RequireQualifiedAccess>]
type private ItemKind =
    | Reasoning
    | Message
    | Call

/// One output item of a Responses stream, by its item id.
type private StreamedItem = {
    Kind: ItemKind
    /// The Anthropic index of its current block, else -1.
    Block: int
    /// The summary (or reasoning content) part last streamed (a new part is set off by a blank line).
    LastPart: int
    /// Its text (reasoning, answer) or arguments were streamed at least in part.
    Streamed: bool
    /// It is finished: its signature delivered, its call's block stopped.
    Done: bool
    CallId: string
    Name: string
}

/// The state of one Responses stream being read as Anthropic events.
type ResponsesStreamState = private {
    Plan: ResponsesAnswerPlan
    Parser: Sse.Parser
    MessageId: string
    Started: bool
    Next: int
    /// The item whose block the client has open, with the block's index.
    Open: (string * int) option
    Items: Map<string, StreamedItem>
    /// Events held back while a function call's block is open (newest first), replayed after it.
    Deferred: string list
    CalledTools: bool
    Refused: bool
    OutputChars: int64
    Ended: bool
}

/// OpenAI Responses stream → Anthropic SSE events (protocols.md §6.5.4).
///
/// `message_start` goes out with the first upstream event. Each reasoning item becomes one thinking block (its
/// summary parts joined by a blank line) whose signature, sent when the item is done, is the envelope that
/// carries the item's id and encrypted content to the next turn (`ReasoningEnvelope`); a reasoning item with
/// no summary still gets a signature-only block. Text becomes text blocks; each function call a tool_use block
/// whose arguments stream as `input_json_delta`. Anthropic streams one block at a time, so events of other
/// items that arrive while a call's block is open wait until it closes. The terminal event closes what is
/// open, adds what only it carries (items some servers never stream), and gives the stop reason and usage.
/// `response.failed`, an `error` event, or an end without a terminal event ends the answer in an `error`
/// event: a truncated answer never looks complete.
[<RequireQualifiedAccess>]
module ResponsesStream =

    let private documentOptions = JsonDocumentOptions(MaxDepth = 512)

    /// A stream about to be read for a request planned with `plan`.
    let start (plan: ResponsesAnswerPlan) : ResponsesStreamState = {
        Plan = plan
        Parser = Sse.initial
        MessageId = "msg_cc_relay"
        Started = false
        Next = 0
        Open = None
        Items = Map.empty
        Deferred = []
        CalledTools = false
        Refused = false
        OutputChars = 0L
        Ended = false
    }

    /// Whether the answer is over (finished, or failed with an `error` event).
    let isEnded (state: ResponsesStreamState) : bool = state.Ended

    type private Step = ResponsesStreamState * AnthropicEvent list

    let private fail (state: ResponsesStreamState) (errorType: ErrorType) (message: string) : Step =
        { state with Ended = true }, [ AnthropicEvent.Error(errorType, message) ]

    let private newItem (kind: ItemKind) : StreamedItem = {
        Kind = kind
        Block = -1
        LastPart = -1
        Streamed = false
        Done = false
        CallId = ""
        Name = ""
    }

    let private item (state: ResponsesStreamState) (id: string) (kind: ItemKind) : StreamedItem =
        state.Items |> Map.tryFind id |> Option.defaultValue (newItem kind)

    let private put (state: ResponsesStreamState) (id: string) (value: StreamedItem) : ResponsesStreamState = {
        state with
            Items = state.Items.Add(id, value)
    }

    /// The id of the function call whose block is open, if one is.
    let private openCall (state: ResponsesStreamState) : string option =
        match state.Open with
        | Some(id, _) when (item state id ItemKind.Call).Kind = ItemKind.Call -> Some id
        | _ -> None

    /// Stops the open block (a reasoning item's signature comes when it is done, on a block of its own if
    /// this one was cut short by another item).
    let private closeOpen (state: ResponsesStreamState) : Step =
        match state.Open with
        | None -> state, []
        | Some(id, index) ->
            let current = item state id ItemKind.Message

            let current =
                match current.Kind with
                // a call's block, once stopped, is the whole call
                | ItemKind.Call -> { current with Done = true }
                | ItemKind.Reasoning
                | ItemKind.Message -> current

            {
                put state id current with
                    Open = None
            },
            [ AnthropicEvent.BlockStop index ]

    /// Opens a block for item `id` after closing the open one.
    let private openBlock
        (state: ResponsesStreamState)
        (id: string)
        (value: StreamedItem)
        (block: StartedBlock)
        : Step =
        let state, closed = closeOpen state
        let index = state.Next

        {
            put state id { value with Block = index } with
                Next = index + 1
                Open = Some(id, index)
        },
        closed @ [ AnthropicEvent.BlockStart(index, block) ]

    /// Reasoning or answer text of item `id`: into its open block, else a new one.
    let private textIn (state: ResponsesStreamState) (id: string) (kind: ItemKind) (part: int) (text: string) : Step =
        if text.Length = 0 then
            state, []
        else
            let state = {
                state with
                    OutputChars = state.OutputChars + int64 text.Length
            }

            let current = item state id kind

            let state, opened, current =
                match state.Open with
                | Some(openId, _) when openId = id -> state, [], current
                | _ ->
                    let block =
                        match kind with
                        | ItemKind.Reasoning -> StartedBlock.Thinking
                        | _ -> StartedBlock.Text

                    let state, opened = openBlock state id { current with LastPart = -1 } block
                    state, opened, state.Items[id]

            let text =
                if current.LastPart >= 0 && part <> current.LastPart && kind = ItemKind.Reasoning then
                    "\n\n" + text
                else
                    text

            let delta =
                match kind with
                | ItemKind.Reasoning -> AnthropicEvent.ThinkingDelta(current.Block, text)
                | _ -> AnthropicEvent.TextDelta(current.Block, text)

            put state id {
                current with
                    LastPart = part
                    Streamed = true
            },
            opened @ [ delta ]

    /// A function call's block starts (with its arguments so far, when the added item carries some).
    let private startCall (state: ResponsesStreamState) (id: string) (call: JsonElement) : Step =
        let current = item state id ItemKind.Call

        if current.Block >= 0 || current.Done then
            state, []
        else
            let callId =
                JsonRead.tryString call "call_id"
                |> Option.orElse (JsonRead.tryString call "id")
                |> Option.defaultValue $"toolu_%s{state.MessageId}_%d{state.Next}"

            let name = JsonRead.tryString call "name" |> Option.defaultValue ""

            let state, opened =
                openBlock
                    { state with CalledTools = true }
                    id
                    {
                        current with
                            Kind = ItemKind.Call
                            CallId = callId
                            Name = name
                    }
                    (StartedBlock.ToolUse(callId, ToolName.original state.Plan.ToolNames name))

            match JsonRead.tryString call "arguments" with
            | Some arguments when arguments.Length > 0 ->
                let started = state.Items[id]

                put state id { started with Streamed = true },
                opened @ [ AnthropicEvent.InputJsonDelta(started.Block, arguments) ]
            | _ -> state, opened

    /// A reasoning item is done: its envelope as the signature of its block (opened now when it streamed no
    /// summary, or when its block was cut short), then the block stops.
    let private reasoningDone (state: ResponsesStreamState) (id: string) (reasoning: JsonElement) : Step =
        let current = item state id ItemKind.Reasoning

        if current.Done then
            state, []
        else
            let signature =
                match JsonRead.tryString reasoning "encrypted_content" with
                | Some encrypted when encrypted.Length > 0 -> ReasoningEnvelope.mint state.Plan.Family id encrypted
                | _ -> ""

            let state, opened, text =
                match state.Open with
                | Some(openId, _) when openId = id -> state, [], []
                | _ when signature.Length = 0 && current.Streamed -> state, [], []
                | _ ->
                    // never streamed: its summary (if the item carries one) goes out whole
                    let text =
                        if current.Streamed then
                            ""
                        else
                            match ResponsesAnswer.thinkingOf state.Plan reasoning with
                            | Some(AnswerBlock.Thinking(text, _)) -> text
                            | _ -> ""

                    if signature.Length = 0 && text.Length = 0 then
                        state, [], []
                    else
                        let state, opened = openBlock state id current StartedBlock.Thinking
                        let index = state.Items[id].Block

                        state,
                        opened,
                        (if text.Length > 0 then
                             [ AnthropicEvent.ThinkingDelta(index, text) ]
                         else
                             [])

            match state.Open with
            | Some(openId, index) when openId = id ->
                let state, closed = closeOpen state

                put state id { state.Items[id] with Done = true },
                opened
                @ text
                @ (if signature.Length > 0 then
                       [ AnthropicEvent.SignatureDelta(index, signature) ]
                   else
                       [])
                @ closed
            | _ -> put state id { current with Done = true }, opened @ text

    /// A message item that streamed no text: its text parts go out whole.
    let private messageWhole (state: ResponsesStreamState) (id: string) (message: JsonElement) : Step =
        let current = item state id ItemKind.Message

        if current.Streamed then
            state, []
        else
            match JsonRead.tryProperty message "content" with
            | ValueSome parts when parts.ValueKind = JsonValueKind.Array ->
                parts.EnumerateArray()
                |> List.ofSeq
                |> List.indexed
                |> List.fold
                    (fun (state: ResponsesStreamState, events) (i, part) ->
                        match JsonRead.tryString part "type" with
                        | Some "output_text" ->
                            let state, more =
                                textIn
                                    state
                                    id
                                    ItemKind.Message
                                    i
                                    (JsonRead.tryString part "text" |> Option.defaultValue "")

                            state, events @ more
                        | Some "refusal" ->
                            let state, more =
                                textIn
                                    { state with Refused = true }
                                    id
                                    ItemKind.Message
                                    i
                                    (JsonRead.tryString part "refusal" |> Option.defaultValue "")

                            state, events @ more
                        | _ -> state, events)
                    (state, [])
            | _ -> state, []

    /// A function call is done: its whole arguments when none streamed, then its block stops.
    let private callDone (state: ResponsesStreamState) (id: string) (call: JsonElement) : Step =
        let current = item state id ItemKind.Call

        if current.Done then
            state, []
        else
            let state, started =
                if current.Block < 0 then
                    startCall state id call
                else
                    state, []

            let current = state.Items[id]

            let arguments =
                match current.Streamed, JsonRead.tryString call "arguments" with
                | false, Some arguments when arguments.Length > 0 -> [
                    AnthropicEvent.InputJsonDelta(current.Block, arguments)
                  ]
                | _ -> []

            let state = put state id { current with Streamed = true }

            let state, closed =
                match state.Open with
                | Some(openId, _) when openId = id -> closeOpen state
                | _ -> state, []

            state, started @ arguments @ closed

    /// The end of the answer: `message_delta` with the stop reason and the usage, then `message_stop`.
    let private endMessage (state: ResponsesStreamState) (response: JsonElement) : Step =
        let status = JsonRead.tryString response "status" |> Option.defaultValue "completed"

        let incomplete =
            JsonRead.tryProperty response "incomplete_details"
            |> ValueOption.bind (fun d -> JsonRead.tryString d "reason" |> ValueOption.ofOption)
            |> ValueOption.toOption

        let usage =
            match JsonRead.tryProperty response "usage" with
            | ValueSome usage when usage.ValueKind = JsonValueKind.Object -> Some(ResponsesAnswer.usageOf usage)
            | _ -> None

        { state with Ended = true },
        StreamFrame.ending
            (ResponsesAnswer.stopReason status incomplete state.CalledTools state.Refused)
            usage
            state.Plan.EstimatedInputTokens
            state.OutputChars

    let rec private handle (state: ResponsesStreamState) (data: string) : Step =
        let parsed =
            try
                Ok(JsonDocument.Parse(data, documentOptions))
            with :? JsonException as e ->
                Error e.Message

        match parsed with
        | Error reason -> fail state ErrorType.Api $"malformed event from the upstream: %s{reason}"
        | Ok document ->
            use document = document
            let root = document.RootElement

            if root.ValueKind <> JsonValueKind.Object then
                fail state ErrorType.Api "malformed event from the upstream: not a JSON object"
            else
                let kind = JsonRead.tryString root "type" |> Option.defaultValue ""
                let response = JsonRead.tryProperty root "response"
                let itemOf = JsonRead.tryProperty root "item"

                let itemId =
                    match JsonRead.tryString root "item_id" with
                    | Some id -> Some id
                    | None ->
                        itemOf
                        |> ValueOption.bind (fun i -> JsonRead.tryString i "id" |> ValueOption.ofOption)
                        |> ValueOption.toOption

                let state, opening =
                    if state.Started || kind = "error" then
                        state, []
                    else
                        let id =
                            response
                            |> ValueOption.bind (fun r -> JsonRead.tryString r "id" |> ValueOption.ofOption)
                            |> ValueOption.defaultValue state.MessageId

                        // the client's model, not the response's: see ResponsesAnswerPlan.Model
                        let model = state.Plan.Model

                        {
                            state with
                                Started = true
                                MessageId = id
                        },
                        [
                            AnthropicEvent.MessageStart(id, model, int64 state.Plan.EstimatedInputTokens)
                        ]

                let terminal = kind = "response.completed" || kind = "response.incomplete"

                match openCall state, itemId with
                // another item's event while a call's block is open: held back until it closes
                | Some call, Some other when other <> call && not terminal ->
                    {
                        state with
                            Deferred = data :: state.Deferred
                    },
                    opening
                | _ ->
                    let state, events = body state kind root response itemOf itemId
                    state, opening @ events

    /// Replays the held-back events once no call's block is open.
    and private replay (state: ResponsesStreamState) : Step =
        match state.Deferred, openCall state with
        | [], _
        | _, Some _ -> state, []
        | deferred, None ->
            List.rev deferred
            |> List.fold
                (fun (state: ResponsesStreamState, events) data ->
                    if state.Ended then
                        state, events
                    else
                        let state, more = handle state data
                        state, events @ more)
                ({ state with Deferred = [] }, [])

    and private body
        (state: ResponsesStreamState)
        (kind: string)
        (root: JsonElement)
        (response: JsonElement voption)
        (itemOf: JsonElement voption)
        (itemId: string option)
        : Step =
        let number (name: string) =
            match JsonRead.tryProperty root name with
            | ValueSome value when value.ValueKind = JsonValueKind.Number -> value.GetInt32()
            | _ -> 0

        let delta () =
            JsonRead.tryString root "delta" |> Option.defaultValue ""

        let itemType =
            itemOf
            |> ValueOption.bind (fun i -> JsonRead.tryString i "type" |> ValueOption.ofOption)

        match kind, itemId with
        | "response.output_item.added", Some id ->
            match itemType with
            | ValueSome "reasoning" -> put state id (item state id ItemKind.Reasoning), []
            | ValueSome "message" -> put state id (item state id ItemKind.Message), []
            | ValueSome "function_call" -> startCall state id itemOf.Value
            | _ -> state, []
        | ("response.reasoning_summary_text.delta"), Some id ->
            textIn state id ItemKind.Reasoning (number "summary_index") (delta ())
        | ("response.reasoning_text.delta"), Some id ->
            textIn state id ItemKind.Reasoning (number "content_index") (delta ())
        | "response.output_text.delta", Some id -> textIn state id ItemKind.Message (number "content_index") (delta ())
        | "response.refusal.delta", Some id ->
            textIn { state with Refused = true } id ItemKind.Message (number "content_index") (delta ())
        | "response.function_call_arguments.delta", Some id ->
            match state.Open, delta () with
            | Some(openId, index), fragment when openId = id && fragment.Length > 0 ->
                {
                    put state id { state.Items[id] with Streamed = true } with
                        OutputChars = state.OutputChars + int64 fragment.Length
                },
                [ AnthropicEvent.InputJsonDelta(index, fragment) ]
            | _ -> state, []
        | "response.function_call_arguments.done", Some id ->
            match state.Open, JsonRead.tryString root "arguments" with
            | Some(openId, index), Some arguments when
                openId = id && arguments.Length > 0 && not state.Items[id].Streamed
                ->
                put state id { state.Items[id] with Streamed = true },
                [ AnthropicEvent.InputJsonDelta(index, arguments) ]
            | _ -> state, []
        | "response.output_item.done", Some id ->
            match itemType with
            | ValueSome "reasoning" -> reasoningDone state id itemOf.Value
            | ValueSome "message" ->
                let state, whole = messageWhole state id itemOf.Value

                let state, closed =
                    match state.Open with
                    | Some(openId, _) when openId = id -> closeOpen state
                    | _ -> state, []

                state, whole @ closed
            | ValueSome "function_call" ->
                let state, finished = callDone state id itemOf.Value
                let state, replayed = replay state
                state, finished @ replayed
            | _ -> state, []
        | ("response.completed" | "response.incomplete"), _ ->
            let response = response |> ValueOption.defaultValue root

            let output =
                match JsonRead.tryProperty response "output" with
                | ValueSome output when output.ValueKind = JsonValueKind.Array -> output.EnumerateArray() |> List.ofSeq
                | _ -> []

            let outputItem (id: string) =
                output |> List.tryFind (fun o -> JsonRead.tryString o "id" = Some id)

            // the open call ends as the terminal event says it ended; then what waited for it
            let state, closed =
                match openCall state with
                | Some id ->
                    match outputItem id with
                    | Some call -> callDone state id call
                    | None -> closeOpen state
                | None -> state, []

            let state, replayed = replay state

            if state.Ended then
                state, closed @ replayed
            else
                // what only the terminal event carries (some servers never stream an item), in output order
                let state, unseen =
                    output
                    |> List.fold
                        (fun (state: ResponsesStreamState, events) output ->
                            match JsonRead.tryString output "type", JsonRead.tryString output "id" with
                            | Some "reasoning", Some id ->
                                let state, more = reasoningDone state id output
                                state, events @ more
                            | Some "message", Some id ->
                                let state, more = messageWhole state id output
                                state, events @ more
                            | Some "function_call", Some id ->
                                let state, more = callDone state id output
                                state, events @ more
                            | _ -> state, events)
                        (state, [])

                let state, closedLast = closeOpen state
                let state, ending = endMessage state response
                state, closed @ replayed @ unseen @ closedLast @ ending
        | "response.failed", _ ->
            let errorType, message =
                match response |> ValueOption.bind (fun r -> JsonRead.tryProperty r "error") with
                | ValueSome error -> ResponsesAnswer.describeError error
                | ValueNone -> ErrorType.Api, "the upstream's response failed"

            fail state errorType message
        | "error", _ ->
            let error =
                match JsonRead.tryProperty root "error" with
                | ValueSome error when error.ValueKind = JsonValueKind.Object -> error
                | _ -> root

            let errorType, message = ResponsesAnswer.describeError error
            fail state errorType message
        | _ -> state, []

    /// Feeds upstream bytes (split anywhere); returns the events they complete, in order.
    let feed (state: ResponsesStreamState) (bytes: ReadOnlySpan<byte>) : Step =
        if state.Ended then
            state, []
        else
            let parser, events = Sse.feed state.Parser bytes

            events
            |> List.fold
                (fun (state: ResponsesStreamState, out) sse ->
                    if state.Ended || String.IsNullOrWhiteSpace sse.Data then
                        state, out
                    elif sse.Data.Trim() = "[DONE]" then
                        state, out
                    else
                        let state, more = handle state sse.Data
                        state, out @ more)
                ({ state with Parser = parser }, [])

    /// The upstream ended: without a terminal event the answer ends in an `error` (it was cut short).
    let finish (state: ResponsesStreamState) : Step =
        if state.Ended then
            state, []
        else
            fail
                state
                ErrorType.Api
                "the upstream stream ended before the response was finished (no response.completed)"
