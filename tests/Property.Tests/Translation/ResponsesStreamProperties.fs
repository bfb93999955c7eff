module CcRelay.Core.Properties.ResponsesStreamProperties

open System
open System.Text
open System.Text.Json
open System.Text.Json.Nodes
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators
open CcRelay.Core.Properties.AnthropicBlocks

/// One function call the upstream makes: its arguments (a JSON object's text) cut into fragments.
type private CallSpec = {
    ItemId: string
    CallId: string
    Name: string
    Arguments: string
    Fragments: string list
}

/// One reasoning item: its summary parts, each cut into deltas, and its encrypted content.
type private ReasoningSpec = {
    ItemId: string
    Parts: string list list
    Encrypted: string
}

/// A whole upstream answer, as the model produced it.
type private StreamSpec = {
    Reasoning: ReasoningSpec list
    Text: string list
    Calls: CallSpec list
    /// Call fragments in the order the upstream sends them: (call, fragment number).
    Order: (int * int) list
    /// The arguments arrive only whole, in `output_item.done` (no deltas).
    ArgumentsAtDone: bool
    /// `response.incomplete` (max_output_tokens) instead of `response.completed`.
    Incomplete: bool
}

let private plan: ResponsesAnswerPlan = {
    Model = "gpt-5"
    EstimatedInputTokens = 10
    ToolNames = Map.empty
    Family = "openai"
}

/// Cuts `text` into pieces at random points (pieces may be empty), never inside a surrogate pair (a server
/// sends UTF-8, which cannot split a character's code point).
let private fragmentsOf (text: string) : Gen<string list> =
    gen {
        let! cuts =
            Gen.listOf (Gen.choose (0, text.Length))
            |> Gen.map (List.filter (fun cut -> cut = text.Length || not (Char.IsLowSurrogate text[cut])))

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

/// Merges per-call fragment sequences in a random order that keeps each call's own order.
let private interleave (counts: int list) : Gen<(int * int) list> =
    let total = List.sum counts

    gen {
        let! picks = Gen.listOfLength total (Gen.choose (0, 1000))
        let next = Array.zeroCreate (List.length counts)
        let counts = Array.ofList counts

        return [
            for pick in picks do
                let left = [
                    for i in 0 .. counts.Length - 1 do
                        if next[i] < counts[i] then
                            i
                ]

                let call = left[pick % left.Length]
                yield call, next[call]
                next[call] <- next[call] + 1
        ]
    }

let private nonEmpty: Gen<string> = jsonText |> Gen.filter (fun t -> t <> "")

let private streamSpec: Gen<StreamSpec> =
    gen {
        let! reasoningCount = Gen.choose (0, 2)

        let! reasoning =
            Gen.listOfLength
                reasoningCount
                (gen {
                    let! parts = Gen.listOf nonEmpty |> Gen.resize 3
                    let! cut = parts |> List.map fragmentsOf |> Gen.sequenceToList
                    let! encrypted = Gen.elements [ "gAAAAB1"; "gAAAAB" + String('x', 300) ]
                    return parts, cut, encrypted
                })

        let reasoning =
            reasoning
            |> List.mapi (fun i (_, cut, encrypted) -> {
                ItemId = $"rs_%d{i}"
                Parts = cut
                Encrypted = encrypted
            })

        let! text = Gen.listOf nonEmpty |> Gen.resize 4
        let! callCount = Gen.choose (0, 3)

        let! calls =
            Gen.listOfLength
                callCount
                (gen {
                    let! args = argumentsText
                    let! fragments = fragmentsOf args
                    let! name = Gen.elements [ "Bash"; "Read"; "Edit"; "mcp__x__y" ]
                    return name, args, fragments
                })

        let calls =
            calls
            |> List.mapi (fun i (name, args, fragments) -> {
                ItemId = $"fc_%d{i}"
                CallId = $"call_%d{i}"
                Name = name
                Arguments = args
                Fragments = fragments
            })

        let! order = interleave (calls |> List.map _.Fragments.Length)
        let! atDone = Gen.elements [ true; false; false ]
        let! incomplete = Gen.elements [ true; false; false ]

        return {
            Reasoning = reasoning
            Text = text
            Calls = calls
            Order = order
            ArgumentsAtDone = atDone
            Incomplete = incomplete
        }
    }

let private event (kind: string) (fields: (string * JsonNode) list) : string =
    let root = JsonObject()
    root["type"] <- JsonValue.Create kind

    for name, value in fields do
        root[name] <- value

    root.ToJsonString()

let private str (value: string) : JsonNode = nonNull (JsonValue.Create value)
let private num (value: int) : JsonNode = nonNull (JsonValue.Create value)
let private parse (json: string) : JsonNode = nonNull (JsonNode.Parse json)

let private callItem (call: CallSpec) (arguments: string) : JsonNode =
    let item = JsonObject()
    item["type"] <- str "function_call"
    item["id"] <- str call.ItemId
    item["call_id"] <- str call.CallId
    item["name"] <- str call.Name
    item["arguments"] <- str arguments
    item

/// The upstream's SSE payloads, and the index of the terminal event among them.
let private payloads (spec: StreamSpec) : string list * int =
    let created =
        event "response.created" [
            "response", parse """{"id":"resp_p","model":"gpt-5","status":"in_progress","output":[],"usage":null}"""
        ]

    let reasoning = [
        for r in spec.Reasoning do
            event "response.output_item.added" [
                "item", parse $"""{{"type":"reasoning","id":"%s{r.ItemId}","summary":[]}}"""
            ]

            for index, part in List.indexed r.Parts do
                event "response.reasoning_summary_part.added" [ "item_id", str r.ItemId; "summary_index", num index ]

                for delta in part do
                    event "response.reasoning_summary_text.delta" [
                        "item_id", str r.ItemId
                        "summary_index", num index
                        "delta", str delta
                    ]

            let item = JsonObject()
            item["type"] <- str "reasoning"
            item["id"] <- str r.ItemId
            item["summary"] <- JsonArray()
            item["encrypted_content"] <- str r.Encrypted
            event "response.output_item.done" [ "item", item ]
    ]

    let message = [
        if not spec.Text.IsEmpty then
            event "response.output_item.added" [
                "item", parse """{"type":"message","id":"msg_p","role":"assistant","content":[]}"""
            ]

            for delta in spec.Text do
                event "response.output_text.delta" [
                    "item_id", str "msg_p"
                    "content_index", num 0
                    "delta", str delta
                ]

            let whole = JsonObject()
            whole["type"] <- str "output_text"
            whole["text"] <- str (String.concat "" spec.Text)
            let item = JsonObject()
            item["type"] <- str "message"
            item["id"] <- str "msg_p"
            item["content"] <- JsonArray(whole)
            event "response.output_item.done" [ "item", item ]
    ]

    let calls = [
        // calls with no fragment at all still start and end
        for call in spec.Calls do
            if call.Fragments.IsEmpty then
                event "response.output_item.added" [ "item", callItem call "" ]

        for callIndex, fragment in spec.Order do
            let call = spec.Calls[callIndex]

            if fragment = 0 then
                event "response.output_item.added" [ "item", callItem call "" ]

            if not spec.ArgumentsAtDone then
                event "response.function_call_arguments.delta" [
                    "item_id", str call.ItemId
                    "delta", str call.Fragments[fragment]
                ]

        for call in spec.Calls do
            event "response.output_item.done" [ "item", callItem call call.Arguments ]
    ]

    let terminal =
        let response = JsonObject()
        response["id"] <- str "resp_p"
        response["status"] <- str (if spec.Incomplete then "incomplete" else "completed")

        if spec.Incomplete then
            response["incomplete_details"] <- parse """{"reason":"max_output_tokens"}"""

        response["output"] <- JsonArray()

        response["usage"] <-
            parse
                """{"input_tokens":30,"input_tokens_details":{"cached_tokens":20},"output_tokens":7,"output_tokens_details":{"reasoning_tokens":3}}"""

        event
            (if spec.Incomplete then
                 "response.incomplete"
             else
                 "response.completed")
            [ "response", response ]

    let body = created :: reasoning @ message @ calls
    body @ [ terminal ], body.Length

let private sse (payloads: string list) : byte array =
    payloads
    |> List.map (fun p ->
        let kind = JsonDocument.Parse(p).RootElement.GetProperty("type").GetString()
        $"event: %s{kind}\ndata: %s{p}\n\n")
    |> String.concat ""
    |> Encoding.UTF8.GetBytes

let private runChunks (chunks: byte array list) : AnthropicEvent list =
    let state, events =
        chunks
        |> List.fold
            (fun (state, events) chunk ->
                let state, more = ResponsesStream.feed state (ReadOnlySpan chunk)
                state, events @ more)
            (ResponsesStream.start plan, [])

    let _, ending = ResponsesStream.finish state
    events @ ending

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
let ``well-formed Anthropic events: reasoning signed with its envelope, text whole, each call's input exactly its arguments``
    ()
    =
    let cases =
        gen {
            let! spec = streamSpec
            let! chunks = chunksOf (sse (fst (payloads spec)))
            return spec, chunks
        }

    Check.property (
        Prop.forAll (Check.arb cases) (fun (spec, chunks) ->
            let events = runChunks chunks
            Assert.Equal(AnthropicEvent.MessageStop, List.last events)
            let blocks = blocks events

            let thinking =
                blocks
                |> List.choose (fun (b, t, s) -> if b = StartedBlock.Thinking then Some(t, s) else None)

            let expectedThinking =
                spec.Reasoning
                |> List.map (fun r ->
                    r.Parts |> List.map (String.concat "") |> String.concat "\n\n",
                    ReasoningEnvelope.mint "openai" r.ItemId r.Encrypted)

            Assert.Equal<(string * string) list>(expectedThinking, thinking)

            let text =
                blocks
                |> List.choose (fun (b, t, _) -> if b = StartedBlock.Text then Some t else None)

            Assert.Equal(String.concat "" spec.Text, String.concat "" text)

            let calls =
                blocks
                |> List.choose (fun (b, input, _) ->
                    match b with
                    | StartedBlock.ToolUse(id, name) -> Some(id, name, input)
                    | _ -> None)

            // in the order the upstream started them, each input exactly the arguments sent
            Assert.Equal<(string * string * string) list>(
                spec.Calls
                |> List.map (fun c -> c.CallId, c.Name, c.Arguments)
                |> List.sortBy (fun (id, _, _) -> id),
                calls |> List.sortBy (fun (id, _, _) -> id)
            )

            for _, _, input in calls do
                use _ = JsonDocument.Parse input
                ()

            match List.item (events.Length - 2) events with
            | AnthropicEvent.MessageDelta(stop, usage) ->
                let expectedStop =
                    if spec.Incomplete then "max_tokens"
                    elif not spec.Calls.IsEmpty then "tool_use"
                    else "end_turn"

                Assert.Equal(expectedStop, stop)
                Assert.Equal(10L, usage.InputTokens)
                Assert.Equal(20L, usage.CacheReadTokens)
                Assert.Equal(7L, usage.OutputTokens)
            | other -> failwith $"expected message_delta, got %A{other}")
    )

[<Fact>]
let ``a stream cut anywhere before its terminal event ends in an error event, never message_stop`` () =
    let cases =
        gen {
            let! spec = streamSpec
            let all, terminalAt = payloads spec
            let! keep = Gen.choose (0, terminalAt)
            let bytes = sse (List.take keep all)
            let! cut = Gen.choose (0, bytes.Length)
            // cut whole events, then possibly inside the last one
            return Array.sub bytes 0 cut
        }

    Check.property (
        Prop.forAll (Check.arb cases) (fun bytes ->
            let events = runChunks [ bytes ]
            Assert.True((List.last events).IsError, $"%A{List.last events}")
            Assert.DoesNotContain(AnthropicEvent.MessageStop, events))
    )
