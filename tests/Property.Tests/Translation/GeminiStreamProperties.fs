module CcRelay.Core.Properties.GeminiStreamProperties

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

/// One part Gemini streams.
type private PartSpec =
    | Thought of Text: string * Signature: string option
    | Text of Text: string * Signature: string option
    | Call of Name: string * Args: string * Signature: string option

/// A whole Gemini answer: its parts, how they are grouped into chunks, how it finishes.
type private StreamSpec = {
    Parts: PartSpec list
    /// How many parts each chunk carries (the last chunk may carry none: only the finish and usage).
    Groups: int list
    Finish: string
    UsageOnFinish: bool
}

let private plan: GeminiAnswerPlan = {
    Model = "gemini"
    EstimatedInputTokens = 10
    ToolNames = Map.empty
}

let private str (value: string) : JsonNode = nonNull (JsonValue.Create value)

let private argumentsText: Gen<string> =
    gen {
        let! a = jsonText
        let! b = jsonText
        let! n = Gen.choose (-5, 5000)
        let node = JsonObject()
        node["path"] <- str a
        let list = JsonArray()
        list.Add(str b)
        list.Add(JsonValue.Create n)
        list.Add(JsonObject())
        node["list"] <- list
        return node.ToJsonString()
    }

let private signature: Gen<string option> =
    Gen.frequency [
        2, Gen.constant None
        1, Gen.elements [ Some "CiQB"; Some "c2lnLTI="; Some "EhYK/+x" ]
    ]

let private partSpec: Gen<PartSpec> =
    Gen.frequency [
        2, Gen.map2 (fun t s -> Thought(t, s)) jsonText signature
        3, Gen.map2 (fun t s -> Text(t, s)) jsonText signature
        2,
        gen {
            let! name = Gen.elements [ "Read"; "Bash"; "mcp__x" ]
            let! args = argumentsText
            let! s = signature
            return Call(name, args, s)
        }
    ]

let private streamSpec: Gen<StreamSpec> =
    gen {
        let! parts = Gen.listOf partSpec |> Gen.map (List.truncate 12)
        let! groups = Gen.listOfLength parts.Length (Gen.choose (1, 3))
        let! finish = Gen.elements [ "STOP"; "STOP"; "MAX_TOKENS"; "SAFETY" ]
        let! usageOnFinish = Gen.elements [ true; false ]

        return {
            Parts = parts
            Groups = groups
            Finish = finish
            UsageOnFinish = usageOnFinish
        }
    }

let private partJson (part: PartSpec) : JsonNode =
    let node = JsonObject()

    let signed (s: string option) =
        match s with
        | Some s -> node["thoughtSignature"] <- str s
        | None -> ()

    match part with
    | Thought(text, s) ->
        node["text"] <- str text
        node["thought"] <- JsonValue.Create true
        signed s
    | Text(text, s) ->
        node["text"] <- str text
        signed s
    | Call(name, args, s) ->
        let call = JsonObject()
        call["name"] <- str name
        call["args"] <- JsonNode.Parse args
        node["functionCall"] <- call
        signed s

    node

let private chunk (parts: PartSpec list) (finish: string option) (usage: bool) : string =
    let partsArray = JsonArray()

    for p in parts do
        partsArray.Add(partJson p)

    let content = JsonObject()
    content["role"] <- str "model"
    content["parts"] <- partsArray
    let candidate = JsonObject()
    candidate["content"] <- content
    candidate["index"] <- JsonValue.Create 0

    match finish with
    | Some f -> candidate["finishReason"] <- str f
    | None -> ()

    let candidates = JsonArray()
    candidates.Add candidate
    let root = JsonObject()
    root["candidates"] <- candidates

    if usage then
        root["usageMetadata"] <-
            JsonNode.Parse
                """{"promptTokenCount":30,"candidatesTokenCount":5,"thoughtsTokenCount":2,"totalTokenCount":37}"""

    root["modelVersion"] <- str "gemini-x"
    root["responseId"] <- str "resp-1"
    root.ToJsonString()

/// The answer's SSE payloads, and the index of the one that carries the finishReason.
let private payloads (spec: StreamSpec) : string list * int =
    let rec group (parts: PartSpec list) (sizes: int list) : PartSpec list list =
        match parts, sizes with
        | [], _ -> []
        | _, [] -> [ parts ]
        | _, size :: rest ->
            let now = List.truncate size parts
            now :: group (List.skip now.Length parts) rest

    let groups = group spec.Parts spec.Groups
    let body = groups |> List.map (fun g -> chunk g None false)
    let finishing = chunk [] (Some spec.Finish) spec.UsageOnFinish

    let ending = [
        finishing
        if not spec.UsageOnFinish then
            """{"usageMetadata":{"promptTokenCount":30,"candidatesTokenCount":5,"thoughtsTokenCount":2,"totalTokenCount":37}}"""
    ]

    body @ ending, body.Length

let private sse (payloads: string list) : byte array =
    payloads
    |> List.map (fun p -> "data: " + p + "\r\n\r\n")
    |> String.concat ""
    |> Encoding.UTF8.GetBytes

let private runChunks (chunks: byte array list) : AnthropicEvent list =
    let state, events =
        chunks
        |> List.fold
            (fun (state, events) chunk ->
                let state, more = GeminiStream.feed state (ReadOnlySpan chunk)
                state, events @ more)
            (GeminiStream.start plan, [])

    let _, ending = GeminiStream.finish state
    events @ ending

[<Fact>]
let ``any split of a Gemini stream gives the same Anthropic events`` () =
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
let ``blocks are well-formed, text and thoughts whole, tool inputs parse to exactly the arguments, signatures all carried``
    ()
    =
    Check.property (
        Prop.forAll (Check.arb streamSpec) (fun spec ->
            let events = runChunks [ sse (fst (payloads spec)) ]
            Assert.Equal(AnthropicEvent.MessageStop, List.last events)
            let blocks = blocks events

            let ofKind kind =
                blocks
                |> List.choose (fun (b, t, _) -> if b = kind then Some t else None)
                |> String.concat ""

            let expectedThoughts =
                spec.Parts
                |> List.choose (fun p ->
                    match p with
                    | Thought(t, _) -> Some t
                    | _ -> None)
                |> String.concat ""

            let expectedText =
                spec.Parts
                |> List.choose (fun p ->
                    match p with
                    | Text(t, _) -> Some t
                    | _ -> None)
                |> String.concat ""

            Assert.Equal(expectedThoughts, ofKind StartedBlock.Thinking)
            Assert.Equal(expectedText, ofKind StartedBlock.Text)

            // every tool input parses to exactly the arguments Gemini sent, in order, ids unique
            let tools =
                blocks
                |> List.choose (fun (b, input, _) ->
                    match b with
                    | StartedBlock.ToolUse(id, name) -> Some(id, name, input)
                    | _ -> None)

            let calls =
                spec.Parts
                |> List.choose (fun p ->
                    match p with
                    | Call(name, args, _) -> Some(name, args)
                    | _ -> None)

            Assert.Equal(calls.Length, tools.Length)
            Assert.Equal(tools.Length, tools |> List.map (fun (id, _, _) -> id) |> List.distinct |> List.length)

            for (id, name, input), (expectedName, args) in List.zip tools calls do
                Assert.Equal(expectedName, name)
                Assert.True(JsonNode.DeepEquals(JsonNode.Parse args, JsonNode.Parse input), $"%s{input} <> %s{args}")
                Assert.Equal(Some(name, None), GeminiWire.tryParseToolId id |> Option.map (fun (n, u, _) -> n, u))

            // every signature Gemini gave rides in a thinking block's signature, in order
            let given =
                spec.Parts
                |> List.choose (fun p ->
                    match p with
                    | Thought(_, s)
                    | Text(_, s)
                    | Call(_, _, s) -> s)

            let carried =
                blocks
                |> List.choose (fun (b, _, s) ->
                    if b = StartedBlock.Thinking then
                        GeminiWire.signatureOf s
                    else
                        None)
                |> List.filter (fun s -> s.Length > 0)

            // consecutive thought parts of one run keep the last signature, so carried ⊆ given, in order
            let rec subsequence (small: string list) (big: string list) =
                match small, big with
                | [], _ -> true
                | _, [] -> false
                | s :: rest, b :: more when s = b -> subsequence rest more
                | _, _ :: more -> subsequence small more

            Assert.True(subsequence carried given, $"%A{carried} not in %A{given}")

            let calledSignatures =
                spec.Parts
                |> List.choose (fun p ->
                    match p with
                    | Call(_, _, Some s) -> Some s
                    | _ -> None)

            for s in calledSignatures do
                Assert.Contains(s, carried)

            match List.item (events.Length - 2) events with
            | AnthropicEvent.MessageDelta(stop, usage) ->
                let expectedStop =
                    match spec.Finish with
                    | "MAX_TOKENS" -> "max_tokens"
                    | "SAFETY" -> "refusal"
                    | _ when not calls.IsEmpty -> "tool_use"
                    | _ -> "end_turn"

                Assert.Equal(expectedStop, stop)
                Assert.Equal(30L, usage.InputTokens)
                Assert.Equal(7L, usage.OutputTokens)
            | other -> failwith $"expected message_delta, got %A{other}")
    )

[<Fact>]
let ``a Gemini stream cut anywhere before its finishReason ends in an error event, never message_stop`` () =
    let cases =
        gen {
            let! spec = streamSpec
            let all, finishAt = payloads spec
            let! keep = Gen.choose (0, finishAt)
            let bytes = sse (List.take keep all)
            // and cut inside the next event too, sometimes
            let! extra = Gen.choose (0, 20)

            let next =
                if keep < all.Length then
                    Encoding.UTF8.GetBytes("data: " + all[keep])
                else
                    [||]

            return Array.append bytes (Array.truncate extra next)
        }

    Check.property (
        Prop.forAll (Check.arb cases) (fun bytes ->
            let events = runChunks [ bytes ]
            Assert.True((List.last events).IsError, $"%A{List.last events}")
            Assert.DoesNotContain(AnthropicEvent.MessageStop, events))
    )
