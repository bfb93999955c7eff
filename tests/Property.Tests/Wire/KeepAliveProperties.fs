module CcRelay.Core.Properties.KeepAliveProperties

open System
open System.Text.Json
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators

/// One upstream block: its kind and its (non-empty) delta pieces.
type private Block =
    | Thinking of pieces: string list * signature: string
    | Text of pieces: string list
    | Tool of pieces: string list

/// What the stream sees: events from the decoder, or a silence long enough for a keep-alive.
type private Step =
    | Chunk of AnthropicEvent list
    | Silence

let private piece = stringOf 4 textPiece |> Gen.map (fun s -> "p" + s)

let private block: Gen<Block> =
    Gen.oneof [
        Gen.map2 (fun p s -> Thinking(p, "sig" + s)) (Gen.nonEmptyListOf piece |> Gen.resize 3) piece
        Gen.nonEmptyListOf piece |> Gen.resize 3 |> Gen.map Text
        Gen.nonEmptyListOf piece |> Gen.resize 3 |> Gen.map Tool
    ]

let private eventsOf (blocks: Block list) : AnthropicEvent list = [
    AnthropicEvent.MessageStart("msg_1", "m", 7L)
    for i, block in List.indexed blocks do
        match block with
        | Thinking(pieces, signature) ->
            AnthropicEvent.BlockStart(i, StartedBlock.Thinking)
            yield! pieces |> List.map (fun p -> AnthropicEvent.ThinkingDelta(i, p))
            AnthropicEvent.SignatureDelta(i, signature)
        | Text pieces ->
            AnthropicEvent.BlockStart(i, StartedBlock.Text)
            yield! pieces |> List.map (fun p -> AnthropicEvent.TextDelta(i, p))
        | Tool pieces ->
            AnthropicEvent.BlockStart(i, StartedBlock.ToolUse($"toolu_%d{i}", "Bash"))
            yield! pieces |> List.map (fun p -> AnthropicEvent.InputJsonDelta(i, p))

        AnthropicEvent.BlockStop i
    AnthropicEvent.MessageDelta("end_turn", Usage.zero)
    AnthropicEvent.MessageStop
]

/// The events cut into decoder outputs, with silences anywhere between them.
let private steps: Gen<KeepAliveMode * Step list> =
    gen {
        let! mode =
            Gen.elements [ KeepAliveMode.Events; KeepAliveMode.Events; KeepAliveMode.Pings ]

        let! blocks = Gen.listOf block |> Gen.resize 5
        let events = eventsOf blocks

        let! cuts =
            Gen.listOfLength events.Length (Gen.frequency [ 3, Gen.constant 0; 1, Gen.choose (1, 2) ])

        let! joins = Gen.listOfLength events.Length (Gen.elements [ true; false ])

        let steps =
            List.zip3 events cuts joins
            |> List.fold
                (fun (acc: Step list) (event, silences, join) ->
                    match acc with
                    | Chunk previous :: rest when join && silences = 0 -> Chunk(previous @ [ event ]) :: rest
                    | acc -> Chunk [ event ] :: (List.replicate silences Silence @ acc))
                []
            |> List.rev

        return mode, steps
    }

/// The client's stream as (event name, data JSON) pairs.
let private parse (bytes: byte array) : (string * JsonElement) list =
    Sse.parse (ReadOnlySpan bytes)
    |> List.map (fun e -> (e.Event |> Option.defaultValue ""), JsonDocument.Parse(e.Data).RootElement.Clone())

let private str (e: JsonElement) (path: string list) : string =
    (path |> List.fold (fun (e: JsonElement) name -> e.GetProperty name) e).ToString()

/// The stream a client accepts: message_start first (pings before it), indexes 0, 1, 2… one block at a time, each
/// delta on the open block and of its kind, every block stopped before message_delta. Returns the events with the
/// relay's own (empty, unsigned) thinking blocks, empty deltas and pings left out, each block renumbered in order.
let private check (events: (string * JsonElement) list) : string list =
    let events = events |> List.skipWhile (fun (name, _) -> name = "ping")
    Assert.Equal("message_start", fst (List.head events))
    let mutable next = 0
    let mutable open' = None
    let mutable kept = 0
    let mutable own = Set.empty
    let out = ResizeArray()
    // blocks whose start the client saw, by index: (kind, content seen)
    let content = Collections.Generic.Dictionary<int, string * string>()

    for name, data in List.tail events do
        match name with
        | "ping" -> ()
        | "content_block_start" ->
            Assert.Equal(None, open')
            let index = data.GetProperty("index").GetInt32()
            Assert.Equal(next, index)
            next <- next + 1
            open' <- Some index
            content[index] <- str data [ "content_block"; "type" ], ""
        | "content_block_delta" ->
            let index = data.GetProperty("index").GetInt32()
            Assert.Equal(open', Some index)
            let kind, seen = content[index]
            let deltaKind = str data [ "delta"; "type" ]

            let text =
                match kind, deltaKind with
                | "thinking", "thinking_delta" -> str data [ "delta"; "thinking" ]
                | "thinking", "signature_delta" -> "sig:" + str data [ "delta"; "signature" ]
                | "text", "text_delta" -> str data [ "delta"; "text" ]
                | "tool_use", "input_json_delta" -> str data [ "delta"; "partial_json" ]
                | _ -> failwith $"a %s{deltaKind} on a %s{kind} block"

            content[index] <- kind, seen + text
        | "content_block_stop" ->
            let index = data.GetProperty("index").GetInt32()
            Assert.Equal(open', Some index)
            open' <- None
            let kind, seen = content[index]

            if kind = "thinking" && seen = "" then
                own <- own.Add index
            else
                out.Add $"%d{kept}:%s{kind}:%s{seen}"
                kept <- kept + 1
        | "message_delta" ->
            Assert.Equal(None, open')
            out.Add "message_delta"
        | "message_stop" -> out.Add "message_stop"
        | other -> failwith $"unexpected %s{other}"

    List.ofSeq out

let private expected (events: AnthropicEvent list) : string list =
    let blocks = ResizeArray()
    let mutable current = ("", "")

    for event in events do
        match event with
        | AnthropicEvent.BlockStart(_, StartedBlock.Thinking) -> current <- "thinking", ""
        | AnthropicEvent.BlockStart(_, StartedBlock.Text) -> current <- "text", ""
        | AnthropicEvent.BlockStart(_, StartedBlock.ToolUse _) -> current <- "tool_use", ""
        | AnthropicEvent.ThinkingDelta(_, t)
        | AnthropicEvent.TextDelta(_, t)
        | AnthropicEvent.InputJsonDelta(_, t) -> current <- fst current, snd current + t
        | AnthropicEvent.SignatureDelta(_, s) -> current <- fst current, snd current + "sig:" + s
        | AnthropicEvent.BlockStop _ -> blocks.Add $"%d{blocks.Count}:%s{fst current}:%s{snd current}"
        | AnthropicEvent.MessageDelta _ -> blocks.Add "message_delta"
        | AnthropicEvent.MessageStop -> blocks.Add "message_stop"
        | _ -> ()

    List.ofSeq blocks

[<Fact>]
let ``keep-alives never break the stream a client accepts, and the upstream's blocks arrive whole and in order`` () =
    Check.property (
        Prop.forAll (Check.arb steps) (fun (mode, steps) ->
            let mutable state = KeepAlive.start mode
            let output = ResizeArray<byte>()
            // what each silence sent, with what the upstream had sent before it: (started, ended, open block kind)
            let silences = ResizeArray<byte array * (bool * bool * string option)>()
            let mutable started, ended, openKind = false, false, None

            for step in steps do
                match step with
                | Chunk events ->
                    let next, sse = KeepAlive.pass state (AnthropicOut.sse events)
                    state <- next
                    output.AddRange sse

                    for event in events do
                        match event with
                        | AnthropicEvent.MessageStart _ -> started <- true
                        | AnthropicEvent.BlockStart(_, StartedBlock.Thinking) -> openKind <- Some "thinking"
                        | AnthropicEvent.BlockStart(_, StartedBlock.Text) -> openKind <- Some "text"
                        | AnthropicEvent.BlockStart(_, StartedBlock.ToolUse _) -> openKind <- Some "tool_use"
                        | AnthropicEvent.BlockStop _ -> openKind <- None
                        | AnthropicEvent.MessageStop -> ended <- true
                        | _ -> ()
                | Silence ->
                    let next, sse = KeepAlive.silence state
                    state <- next
                    output.AddRange sse
                    silences.Add(sse, (started, ended, openKind))

            let all =
                steps
                |> List.collect (function
                    | Chunk e -> e
                    | Silence -> [])

            Assert.Equal<string list>(expected all, check (parse (output.ToArray())))

            for sse, (started, ended, openKind) in silences do
                // Claude Code's watchdog counts any event but ping: one goes out whenever the stream allows it
                let isPing = sse = KeepAlive.ping

                match mode with
                | KeepAliveMode.Pings -> Assert.True isPing
                | KeepAliveMode.Events -> Assert.Equal((not started || ended || openKind = Some "tool_use"), isPing))
    )

[<Fact>]
let ``with pings only, the stream is the upstream's byte for byte with pings between events`` () =
    Check.property (
        Prop.forAll (Check.arb steps) (fun (_, steps) ->
            let mutable state = KeepAlive.start KeepAliveMode.Pings
            let expected = ResizeArray<byte>()
            let output = ResizeArray<byte>()

            for step in steps do
                let bytes =
                    match step with
                    | Chunk events -> AnthropicOut.sse events
                    | Silence -> KeepAlive.ping

                expected.AddRange bytes

                let next, sse =
                    match step with
                    | Chunk _ -> KeepAlive.pass state bytes
                    | Silence -> KeepAlive.silence state

                state <- next
                output.AddRange sse

            Assert.Equal<byte array>(expected.ToArray(), output.ToArray()))
    )
