module CcRelay.Core.Properties.ChatStreamProperties

open System
open System.Text
open System.Text.Json
open System.Text.Json.Nodes
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators

/// One tool call the upstream makes: its arguments (a JSON object's text) cut into fragments.
type private ToolSpec = {
    Id: string
    Name: string
    Arguments: string
    Fragments: string list
}

/// A whole upstream answer, as the model produced it.
type private StreamSpec = {
    Reasoning: string list
    Text: string list
    Tools: ToolSpec list
    /// Tool fragments in the order the upstream sends them: (tool, fragment number).
    Order: (int * int) list
    Finish: string
    UsageOnFinish: bool
    Done: bool
}

let private plan: ChatAnswerPlan = {
    Model = "target"
    EstimatedInputTokens = 10
    ToolNames = Map.empty
    ReadsReasoning = true
}

/// Cuts `text` into pieces at random points (pieces may be empty: servers send empty fragments).
let private fragmentsOf (text: string) : Gen<string list> =
    gen {
        let! cuts = Gen.listOf (Gen.choose (0, text.Length))
        let points = (0 :: cuts @ [ text.Length ]) |> List.sort
        return points |> List.pairwise |> List.map (fun (a, b) -> text.Substring(a, b - a))
    }

let private argumentsText: Gen<string> =
    gen {
        let! a = jsonText
        let! b = jsonText
        let! n = Gen.choose (-5, 5000)

        let node = JsonObject()
        node["path"] <- JsonValue.Create a
        node["list"] <- JsonArray(JsonValue.Create b, JsonValue.Create n, JsonObject())
        return node.ToJsonString()
    }

/// Merges per-tool fragment sequences in a random order that keeps each tool's own order.
let private interleave (counts: int list) : Gen<(int * int) list> =
    let total = List.sum counts

    gen {
        let! picks = Gen.listOfLength total (Gen.choose (0, 1000))
        let next = Array.zeroCreate (List.length counts)
        let counts = Array.ofList counts

        return [
            for pick in picks do
                let open' = [
                    for i in 0 .. counts.Length - 1 do
                        if next[i] < counts[i] then
                            i
                ]

                let tool = open'[pick % open'.Length]
                yield tool, next[tool]
                next[tool] <- next[tool] + 1
        ]
    }

let private streamSpec: Gen<StreamSpec> =
    gen {
        let! reasoning =
            Gen.listOf (jsonText |> Gen.filter (fun t -> t <> "")) |> Gen.resize 4

        let! text = Gen.listOf (jsonText |> Gen.filter (fun t -> t <> "")) |> Gen.resize 4
        let! toolCount = Gen.choose (0, 3)

        let! tools =
            Gen.listOfLength
                toolCount
                (gen {
                    let! args = argumentsText
                    let! fragments = fragmentsOf args
                    let! name = Gen.elements [ "Bash"; "Read"; "Edit"; "mcp__x__y" ]
                    return name, args, fragments
                })

        let tools =
            tools
            |> List.mapi (fun i (name, args, fragments) -> {
                Id = $"call_%d{i}"
                Name = name
                Arguments = args
                Fragments = fragments
            })

        let! order = interleave (tools |> List.map _.Fragments.Length)
        let! finish = Gen.elements [ "stop"; "length"; "tool_calls" ]
        let! usageOnFinish = Gen.elements [ true; false ]
        let! isDone = Gen.elements [ true; false ]

        return {
            Reasoning = reasoning
            Text = text
            Tools = tools
            Order = order
            Finish = finish
            UsageOnFinish = usageOnFinish
            Done = isDone
        }
    }

let private chunkOf (delta: JsonObject) (finish: string option) (usage: bool) : string =
    let choice = JsonObject()
    choice["index"] <- JsonValue.Create 0
    choice["delta"] <- delta

    match finish with
    | Some reason -> choice["finish_reason"] <- JsonValue.Create reason
    | None -> choice["finish_reason"] <- null

    let root = JsonObject()
    root["id"] <- JsonValue.Create "chatcmpl-p"
    root["object"] <- JsonValue.Create "chat.completion.chunk"
    root["model"] <- JsonValue.Create "target"
    root["choices"] <- JsonArray(choice)

    if usage then
        root["usage"] <- JsonNode.Parse """{"prompt_tokens":30,"completion_tokens":7}"""

    root.ToJsonString()

let private field (name: string) (value: string) : JsonObject =
    let delta = JsonObject()
    delta[name] <- JsonValue.Create value
    delta

/// The upstream's SSE `data:` payloads, and the index of the finish chunk among them.
let private payloads (spec: StreamSpec) : string list * int =
    let toolChunk (tool: int, fragment: int) =
        let t = spec.Tools[tool]
        let call = JsonObject()
        call["index"] <- JsonValue.Create tool

        let func = JsonObject()

        if fragment = 0 then
            call["id"] <- JsonValue.Create t.Id
            call["type"] <- JsonValue.Create "function"
            func["name"] <- JsonValue.Create t.Name

        func["arguments"] <- JsonValue.Create t.Fragments[fragment]
        call["function"] <- func
        let delta = JsonObject()
        delta["tool_calls"] <- JsonArray(call)
        chunkOf delta None false

    let body = [
        yield chunkOf (field "role" "assistant") None false
        for r in spec.Reasoning -> chunkOf (field "reasoning_content" r) None false
        for t in spec.Text -> chunkOf (field "content" t) None false
        for step in spec.Order -> toolChunk step
    ]

    let ending = [
        chunkOf (JsonObject()) (Some spec.Finish) spec.UsageOnFinish
        if not spec.UsageOnFinish then
            """{"id":"chatcmpl-p","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":30,"completion_tokens":7}}"""
        if spec.Done then
            "[DONE]"
    ]

    body @ ending, body.Length

let private sse (payloads: string list) : byte array =
    payloads
    |> List.map (fun p -> "data: " + p + "\n\n")
    |> String.concat ""
    |> Encoding.UTF8.GetBytes

let private runChunks (chunks: byte array list) : AnthropicEvent list =
    let state, events =
        chunks
        |> List.fold
            (fun (state, events) chunk ->
                let state, more = ChatStream.feed state (ReadOnlySpan chunk)
                state, events @ more)
            (ChatStream.start plan, [])

    let _, ending = ChatStream.finish state
    events @ ending

/// The Anthropic stream rules a client enforces (protocols.md §6.8): `message_start` first; block indexes
/// 0, 1, 2… in the order started; one block open at a time; each delta on the open block and of its kind;
/// every started block stopped. Returns each block's kind and accumulated content.
let private blocks (events: AnthropicEvent list) : (StartedBlock * string) list =
    match events with
    | AnthropicEvent.MessageStart _ :: rest ->
        let folder
            (open': (int * StartedBlock * StringBuilder) option, finished: (StartedBlock * string) list)
            (event: AnthropicEvent)
            =
            match open', event with
            | None, AnthropicEvent.BlockStart(index, block) ->
                Assert.Equal(finished.Length, index)
                Some(index, block, StringBuilder()), finished
            | Some(index, block, text), AnthropicEvent.TextDelta(i, t) when i = index && block = StartedBlock.Text ->
                text.Append t |> ignore
                open', finished
            | Some(index, StartedBlock.Thinking, text), AnthropicEvent.ThinkingDelta(i, t) when i = index ->
                text.Append t |> ignore
                open', finished
            | Some(index, StartedBlock.Thinking, _), AnthropicEvent.SignatureDelta(i, _) when i = index ->
                open', finished
            | Some(index, StartedBlock.ToolUse _, text), AnthropicEvent.InputJsonDelta(i, t) when i = index ->
                text.Append t |> ignore
                open', finished
            | Some(index, block, text), AnthropicEvent.BlockStop i when i = index ->
                None, finished @ [ block, text.ToString() ]
            | None, (AnthropicEvent.MessageDelta _ | AnthropicEvent.MessageStop) -> open', finished
            | _, event -> failwith $"out of order: %A{event} with %A{open'}"

        let open', finished = List.fold folder (None, []) rest
        Assert.True(open'.IsNone, "a block was left open")
        finished
    | other -> failwith $"message_start must come first, got %A{other |> List.tryHead}"

[<Fact>]
let ``any split of the upstream bytes gives the same Anthropic events`` () =
    let cases =
        gen {
            let! spec = streamSpec
            let bytes = sse (fst (payloads spec))
            let! chunks = chunksOf bytes
            return bytes, chunks
        }

    Check.property (
        Prop.forAll (Check.arb cases) (fun (bytes, chunks) ->
            Assert.Equal<AnthropicEvent list>(runChunks [ bytes ], runChunks chunks))
    )

[<Fact>]
let ``blocks are contiguous and closed, text and reasoning are whole, every tool call's arguments arrive intact`` () =
    Check.property (
        Prop.forAll (Check.arb streamSpec) (fun spec ->
            let events = runChunks [ sse (fst (payloads spec)) ]
            Assert.Equal(AnthropicEvent.MessageStop, List.last events)
            let blocks = blocks events

            let thinking =
                blocks
                |> List.choose (fun (b, t) -> if b = StartedBlock.Thinking then Some t else None)

            let text =
                blocks
                |> List.choose (fun (b, t) -> if b = StartedBlock.Text then Some t else None)

            Assert.Equal(String.concat "" spec.Reasoning, String.concat "" thinking)
            Assert.Equal(String.concat "" spec.Text, String.concat "" text)

            let tools =
                blocks
                |> List.choose (fun (b, input) ->
                    match b with
                    | StartedBlock.ToolUse(id, name) -> Some(id, (name, input))
                    | _ -> None)
                |> Map.ofList

            let expected =
                spec.Tools |> List.map (fun t -> t.Id, (t.Name, t.Arguments)) |> Map.ofList

            Assert.Equal<Map<string, string * string>>(expected, tools)

            match List.item (events.Length - 2) events with
            | AnthropicEvent.MessageDelta(stop, usage) ->
                let expectedStop =
                    match spec.Finish with
                    | "length" -> "max_tokens"
                    | _ when not spec.Tools.IsEmpty -> "tool_use"
                    | _ -> "end_turn"

                Assert.Equal(expectedStop, stop)
                Assert.Equal(30L, usage.InputTokens)
                Assert.Equal(7L, usage.OutputTokens)
            | other -> failwith $"expected message_delta, got %A{other}")
    )

[<Fact>]
let ``a stream cut anywhere before its finish_reason ends in an error event, never message_stop`` () =
    let cases =
        gen {
            let! spec = streamSpec
            let all, finishAt = payloads spec
            let! keep = Gen.choose (0, finishAt)
            let! asDone = Gen.elements [ true; false ]
            let kept = List.take keep all
            return sse (if asDone then kept @ [ "[DONE]" ] else kept)
        }

    Check.property (
        Prop.forAll (Check.arb cases) (fun bytes ->
            let events = runChunks [ bytes ]
            Assert.True((List.last events).IsError, $"%A{List.last events}")
            Assert.DoesNotContain(AnthropicEvent.MessageStop, events))
    )
