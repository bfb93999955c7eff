namespace CcRelay.Core

open System
open System.Text.Json

/// How far a tool call's streamed arguments have come, read as JSON: enough to tell a whole value from a
/// part of one (depth outside strings), without parsing it.
[<Struct>]
type JsonProgress = {
    Depth: int
    InString: bool
    Escaped: bool
    Started: bool
} with

    /// Nothing read yet.
    static member Empty: JsonProgress = {
        Depth = 0
        InString = false
        Escaped = false
        Started = false
    }

    /// Whether what was read is one whole JSON value (an object, typically).
    member this.Complete: bool = this.Started && this.Depth = 0 && not this.InString

/// Reading arguments as they stream.
[<RequireQualifiedAccess>]
module JsonProgress =

    /// `progress` after `fragment`.
    let advance (progress: JsonProgress) (fragment: string) : JsonProgress =
        let mutable p = progress

        for c in fragment do
            if p.InString then
                if p.Escaped then
                    p <- { p with Escaped = false }
                elif c = '\\' then
                    p <- { p with Escaped = true }
                elif c = '"' then
                    p <- { p with InString = false }
            else
                match c with
                | '"' ->
                    p <- {
                        p with
                            InString = true
                            Started = true
                    }
                | '{'
                | '[' ->
                    p <- {
                        p with
                            Depth = p.Depth + 1
                            Started = true
                    }
                | '}'
                | ']' -> p <- { p with Depth = max 0 (p.Depth - 1) }
                | c when Char.IsWhiteSpace c -> ()
                | _ -> p <- { p with Started = true }

        p

/// One tool call of a Chat Completions stream, by its OpenAI `index`.
type private StreamedTool = {
    Id: string
    Name: string
    /// Its Anthropic block index once started, else -1.
    Block: int
    Closed: bool
    /// Argument fragments not sent yet (newest first): the call is not the open block.
    Pending: string list
    Progress: JsonProgress
    /// When it was first seen (calls still pending at the end start in this order).
    Order: int
}

/// The block the client has open.
[<RequireQualifiedAccess>]
type private OpenBlock =
    | NoBlock
    | Thinking of Index: int
    | Text of Index: int
    /// The tool call with this OpenAI index.
    | Tool of Key: int

/// The state of one Chat Completions stream being read as Anthropic events.
type ChatStreamState = private {
    Plan: ChatAnswerPlan
    Parser: Sse.Parser
    MessageId: string
    Started: bool
    Next: int
    Open: OpenBlock
    Tools: Map<int, StreamedTool>
    Seen: int
    Stop: string option
    Usage: Usage option
    OutputChars: int64
    Ended: bool
}

/// OpenAI Chat Completions stream → Anthropic SSE events (protocols.md §6.3).
///
/// `message_start` goes out with the first upstream chunk (not before: an upstream that fails at once must
/// still be able to fail over), with the request's estimated input tokens. Reasoning, text and tool calls
/// become thinking, text and tool_use blocks with contiguous indexes, each started block stopped. Anthropic
/// streams one block at a time, so a tool call that arrives while another is open waits (its fragments kept)
/// until the open one's arguments are a whole JSON value, or until the finish; its arguments are never cut.
/// `message_delta` waits for the usage chunk that follows `finish_reason` (`stream_options.include_usage`),
/// or for `[DONE]` or the end. A stream that ends before a `finish_reason` ends in an `error` event: a
/// truncated answer must never look complete.
[<RequireQualifiedAccess>]
module ChatStream =

    /// A stream about to be read for a request planned with `plan`.
    let start (plan: ChatAnswerPlan) : ChatStreamState = {
        Plan = plan
        Parser = Sse.initial
        MessageId = "msg_cc_relay"
        Started = false
        Next = 0
        Open = OpenBlock.NoBlock
        Tools = Map.empty
        Seen = 0
        Stop = None
        Usage = None
        OutputChars = 0L
        Ended = false
    }

    /// Whether the answer is over (finished, or failed with an `error` event): nothing more comes out.
    let isEnded (state: ChatStreamState) : bool = state.Ended

    let private fail (state: ChatStreamState) (errorType: ErrorType) (message: string) =
        { state with Ended = true }, [ AnthropicEvent.Error(errorType, message) ]

    /// Closes the open block: a thinking block gets the relay's signature first (so that its text is echoed
    /// back to the target on the next turn).
    let private closeOpen (state: ChatStreamState) : ChatStreamState * AnthropicEvent list =
        match state.Open with
        | OpenBlock.NoBlock -> state, []
        | OpenBlock.Thinking index ->
            { state with Open = OpenBlock.NoBlock },
            [
                AnthropicEvent.SignatureDelta(index, AnthropicOut.ReasoningSignature)
                AnthropicEvent.BlockStop index
            ]
        | OpenBlock.Text index -> { state with Open = OpenBlock.NoBlock }, [ AnthropicEvent.BlockStop index ]
        | OpenBlock.Tool key ->
            let tool = state.Tools[key]

            {
                state with
                    Open = OpenBlock.NoBlock
                    Tools = state.Tools.Add(key, { tool with Closed = true })
            },
            [ AnthropicEvent.BlockStop tool.Block ]

    /// Starts a tool call's block with what it has buffered.
    let private startTool (state: ChatStreamState) (key: int) : ChatStreamState * AnthropicEvent list =
        let tool = state.Tools[key]

        let id =
            if tool.Id.Length > 0 then
                tool.Id
            else
                $"toolu_%s{state.MessageId}_%d{key}"

        let name = ToolName.original state.Plan.ToolNames tool.Name
        let index = state.Next

        let arguments =
            match tool.Pending with
            | [] -> []
            | pending -> [
                AnthropicEvent.InputJsonDelta(index, pending |> List.rev |> String.concat "")
              ]

        {
            state with
                Next = index + 1
                Open = OpenBlock.Tool key
                Tools =
                    state.Tools.Add(
                        key,
                        {
                            tool with
                                Id = id
                                Block = index
                                Pending = []
                        }
                    )
        },
        AnthropicEvent.BlockStart(index, StartedBlock.ToolUse(id, name)) :: arguments

    /// Text or thinking: the open block of that kind, else a new one after closing the open block.
    let private deltaIn
        (state: ChatStreamState)
        (thinking: bool)
        (text: string)
        : ChatStreamState * AnthropicEvent list =
        let state = {
            state with
                OutputChars = state.OutputChars + int64 text.Length
        }

        match state.Open, thinking with
        | OpenBlock.Thinking index, true -> state, [ AnthropicEvent.ThinkingDelta(index, text) ]
        | OpenBlock.Text index, false -> state, [ AnthropicEvent.TextDelta(index, text) ]
        | _ ->
            let state, closed = closeOpen state
            let index = state.Next

            let opened, block, delta =
                if thinking then
                    OpenBlock.Thinking index, StartedBlock.Thinking, AnthropicEvent.ThinkingDelta(index, text)
                else
                    OpenBlock.Text index, StartedBlock.Text, AnthropicEvent.TextDelta(index, text)

            {
                state with
                    Next = index + 1
                    Open = opened
            },
            closed @ [ AnthropicEvent.BlockStart(index, block); delta ]

    /// One `delta.tool_calls[]` entry.
    let private toolDelta (state: ChatStreamState) (call: JsonElement) : ChatStreamState * AnthropicEvent list =
        let key =
            match JsonRead.tryProperty call "index" with
            | ValueSome index when index.ValueKind = JsonValueKind.Number -> index.GetInt32()
            | _ -> 0

        let func = JsonRead.tryProperty call "function"

        let field name =
            func
            |> ValueOption.bind (fun f -> JsonRead.tryString f name |> ValueOption.ofOption)
            |> ValueOption.defaultValue ""

        let name = field "name"
        let fragment = field "arguments"
        let id = JsonRead.tryString call "id" |> Option.defaultValue ""

        let known, state =
            match state.Tools.TryFind key with
            | Some tool -> tool, state
            | None ->
                {
                    Id = ""
                    Name = ""
                    Block = -1
                    Closed = false
                    Pending = []
                    Progress = JsonProgress.Empty
                    Order = state.Seen
                },
                { state with Seen = state.Seen + 1 }

        let tool = {
            known with
                // some servers repeat id and name on later fragments: the first ones stand
                Id = (if known.Id = "" then id else known.Id)
                Name =
                    (if known.Name = "" && known.Block < 0 then
                         name
                     else
                         known.Name)
                Progress = JsonProgress.advance known.Progress fragment
        }

        let state = {
            state with
                OutputChars = state.OutputChars + int64 fragment.Length
        }

        if tool.Closed then
            // a fragment after its call was judged whole cannot make it valid again; it is not sent
            state, []
        elif tool.Block >= 0 then
            // started, so it is the open block (a started call is open until closed)
            {
                state with
                    Tools = state.Tools.Add(key, tool)
            },
            (if fragment.Length > 0 then
                 [ AnthropicEvent.InputJsonDelta(tool.Block, fragment) ]
             else
                 [])
        else
            let tool =
                if fragment.Length > 0 then
                    {
                        tool with
                            Pending = fragment :: tool.Pending
                    }
                else
                    tool

            let state = {
                state with
                    Tools = state.Tools.Add(key, tool)
            }

            match state.Open with
            | _ when tool.Name = "" -> state, [] // wait for its name
            | OpenBlock.Tool other when not state.Tools[other].Progress.Complete -> state, []
            | _ ->
                let state, closed = closeOpen state
                let state, started = startTool state key
                state, closed @ started

    /// The end of the answer: `message_delta` with the stop reason and the usage, then `message_stop`.
    let private endMessage (state: ChatStreamState) (stop: string) : ChatStreamState * AnthropicEvent list =
        { state with Ended = true },
        StreamFrame.ending stop state.Usage state.Plan.EstimatedInputTokens state.OutputChars

    /// `finish_reason`: the open block is closed and every call still waiting is sent whole, in order.
    let private finished (state: ChatStreamState) (reason: string) : ChatStreamState * AnthropicEvent list =
        let state, closed = closeOpen state

        let waiting =
            state.Tools
            |> Map.toList
            |> List.filter (fun (_, tool) -> tool.Block < 0)
            |> List.sortBy (fun (_, tool) -> tool.Order)

        let state, sent =
            waiting
            |> List.fold
                (fun (state, events) (key, _) ->
                    let state, started = startTool state key
                    let state, stopped = closeOpen state
                    state, events @ started @ stopped)
                (state, [])

        {
            state with
                Stop = Some(ChatAnswer.stopReason reason (not state.Tools.IsEmpty))
        },
        closed @ sent

    /// One upstream chunk (parsed).
    let private chunk (state: ChatStreamState) (root: JsonElement) : ChatStreamState * AnthropicEvent list =
        let state, opening =
            if state.Started then
                state, []
            else
                let id = JsonRead.tryString root "id" |> Option.defaultValue state.MessageId

                // the client's model, not the chunk's: see ChatAnswerPlan.Model
                let model = state.Plan.Model

                {
                    state with
                        Started = true
                        MessageId = id
                },
                [
                    AnthropicEvent.MessageStart(id, model, int64 state.Plan.EstimatedInputTokens)
                ]

        let choice =
            match JsonRead.tryProperty root "choices" with
            | ValueSome choices when choices.ValueKind = JsonValueKind.Array ->
                choices.EnumerateArray()
                |> Seq.tryFind (fun c ->
                    match JsonRead.tryProperty c "index" with
                    | ValueSome index when index.ValueKind = JsonValueKind.Number -> index.GetInt32() = 0
                    | _ -> true)
            | _ -> None

        let state, content =
            match choice with
            // anything after finish_reason but the usage is not part of the answer
            | Some _ when state.Stop.IsSome -> state, []
            | Some choice ->
                let delta =
                    JsonRead.tryProperty choice "delta"
                    |> ValueOption.defaultValue Unchecked.defaultof<JsonElement>

                let step (state, events) (next: ChatStreamState -> ChatStreamState * AnthropicEvent list) =
                    let state, more = next state
                    state, events @ more

                let steps = [
                    match ChatAnswer.reasoningOf state.Plan delta with
                    | Some text when text.Length > 0 -> fun s -> deltaIn s true text
                    | _ -> ()

                    match JsonRead.tryString delta "content" with
                    | Some text when text.Length > 0 -> fun s -> deltaIn s false text
                    | _ -> ()

                    match JsonRead.tryProperty delta "tool_calls" with
                    | ValueSome calls when calls.ValueKind = JsonValueKind.Array ->
                        for call in calls.EnumerateArray() do
                            fun s -> toolDelta s call
                    | _ -> ()

                    match JsonRead.tryString choice "finish_reason" with
                    | Some reason -> fun s -> finished s reason
                    | None -> ()
                ]

                steps |> List.fold step (state, [])
            | None -> state, []

        let state =
            match JsonRead.tryProperty root "usage" with
            | ValueSome usage when usage.ValueKind = JsonValueKind.Object -> {
                state with
                    Usage = Some(ChatAnswer.usageOf usage)
              }
            | _ -> state

        match state.Stop, state.Usage with
        | Some stop, Some _ ->
            let state, ending = endMessage state stop
            state, opening @ content @ ending
        | _ -> state, opening @ content

    /// One upstream SSE event's data.
    let private event (state: ChatStreamState) (data: string) : ChatStreamState * AnthropicEvent list =
        if state.Ended then
            state, []
        elif data.Trim() = "[DONE]" then
            match state.Stop with
            | Some stop -> endMessage state stop
            | None ->
                fail state ErrorType.Api "the upstream stream ended before the answer was finished (no finish_reason)"
        else
            StreamFrame.read
                data
                (fail state ErrorType.Api)
                (fun status error ->
                    let _, errorType, message =
                        ChatAnswer.describeError status (ValueSome error) "the upstream failed"

                    fail state errorType message)
                (fun root -> chunk state root)

    /// Feeds upstream bytes (split anywhere); returns the events they complete, in order.
    let feed (state: ChatStreamState) (bytes: ReadOnlySpan<byte>) : ChatStreamState * AnthropicEvent list =
        if state.Ended then
            state, []
        else
            let parser, events = Sse.feed state.Parser bytes
            StreamFrame.fold event { state with Parser = parser } events

    /// The upstream ended: the answer ends as it finished, or, without a `finish_reason`, in an `error`.
    let finish (state: ChatStreamState) : ChatStreamState * AnthropicEvent list =
        if state.Ended then
            state, []
        else
            match state.Stop with
            | Some stop -> endMessage state stop
            | None ->
                fail state ErrorType.Api "the upstream stream ended before the answer was finished (no finish_reason)"
