module CcRelay.Core.Properties.UsageProperties

open System
open System.Text
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators

// ---------------------------
// A model of an Anthropic stream
// ---------------------------

/// One usage field as an upstream may send it.
type private Field =
    | Absent
    | Null
    | Count of int64

type private UsageSpec = {
    Input: Field
    Output: Field
    CacheRead: Field
    CacheWrite: Field
    /// Adds `service_tier`, `cache_creation` and `server_tool_use`, which must be ignored.
    Extras: bool
}

type private StreamEvent =
    | Start of Model: string * Usage: UsageSpec option
    | BlockStart of Index: int
    | TextDelta of Index: int * Text: string
    | BlockStop of Index: int
    | Ping
    | Comment
    | Future of Name: string
    | Error of ErrorType: string
    | Delta of StopReason: string option * Usage: UsageSpec option
    | Stop

/// What the tap must conclude, computed straight from the model: cumulative usage, field by field, the
/// last value winning; the first model; the last stop reason; the first error and whether content preceded it.
let private expected (events: StreamEvent list) : UsageTap =
    let apply (spec: UsageSpec) (usage: Usage option) : Usage option =
        let current = defaultArg usage Usage.zero

        let pick (field: Field) (value: int64) =
            match field with
            | Count n -> n
            | Absent
            | Null -> value

        Some {
            InputTokens = pick spec.Input current.InputTokens
            OutputTokens = pick spec.Output current.OutputTokens
            CacheReadTokens = pick spec.CacheRead current.CacheReadTokens
            CacheWriteTokens = pick spec.CacheWrite current.CacheWriteTokens
        }

    events
    |> List.fold
        (fun (tap: UsageTap) event ->
            match event with
            | Start(model, usage) -> {
                tap with
                    Model = tap.Model |> Option.orElse (Some model)
                    Usage =
                        match usage with
                        | Some spec -> apply spec tap.Usage
                        | None -> tap.Usage
              }
            | Delta(reason, usage) -> {
                tap with
                    StopReason = reason |> Option.orElse tap.StopReason
                    Usage =
                        match usage with
                        | Some spec -> apply spec tap.Usage
                        | None -> tap.Usage
              }
            | BlockStart _ -> { tap with SawContent = true }
            | Stop -> { tap with SawMessageStop = true }
            | Error errorType when tap.ErrorType.IsNone -> {
                tap with
                    ErrorType = Some errorType
                    ErrorBeforeContent = not tap.SawContent
              }
            | Error _
            | TextDelta _
            | BlockStop _
            | Ping
            | Comment
            | Future _ -> tap)
        Usage.emptyTap

// ---------------------------
// Generators
// ---------------------------

let private count: Gen<int64> =
    Gen.frequency [
        4, Gen.choose (0, 200_000) |> Gen.map int64
        1, Gen.choose (0, Int32.MaxValue) |> Gen.map (fun n -> int64 n * 1000L)
    ]

let private field: Gen<Field> =
    Gen.frequency [ 2, Gen.constant Absent; 1, Gen.constant Null; 4, count |> Gen.map Count ]

let private usageSpec: Gen<UsageSpec> =
    gen {
        let! input = field
        let! output = field
        let! cacheRead = field
        let! cacheWrite = field
        let! extras = Gen.elements [ false; true ]

        return {
            Input = input
            Output = output
            CacheRead = cacheRead
            CacheWrite = cacheWrite
            Extras = extras
        }
    }

let private stopReason: Gen<string option> =
    Gen.frequency [
        1, Gen.constant None
        4,
        Gen.elements [
            "end_turn"
            "tool_use"
            "max_tokens"
            "stop_sequence"
            "pause_turn"
            "refusal"
        ]
        |> Gen.map Some
        1, jsonText |> Gen.map Some
    ]

let private errorType: Gen<string> =
    Gen.frequency [
        3, Gen.elements [ "overloaded_error"; "api_error"; "rate_limit_error" ]
        1, jsonText |> Gen.map (fun s -> "x" + s)
    ]

/// Noise that may appear anywhere between the events that matter.
let private noise: Gen<StreamEvent list> =
    Gen.frequency [
        6, Gen.constant []
        2, Gen.constant [ Ping ]
        1, Gen.constant [ Comment ]
        1,
        Gen.elements [ "content_block_citation"; "message_progress"; "x" ]
        |> Gen.map (fun n -> [ Future n ])
        1, errorType |> Gen.map (fun e -> [ Error e ])
    ]

let private block (index: int) : Gen<StreamEvent list> =
    gen {
        let! texts = Gen.listOf jsonText |> Gen.resize 5
        let! gaps = Gen.listOfLength (texts.Length + 2) noise
        let deltas = texts |> List.map (fun t -> TextDelta(index, t))

        let body =
            List.zip (BlockStart index :: deltas @ [ BlockStop index ]) (List.take (deltas.Length + 2) gaps)
            |> List.collect (fun (event, gap) -> event :: gap)

        return body
    }

/// A realistic stream: message_start (usually), content blocks with deltas, one or more message_deltas
/// (cumulative usage), message_stop (usually), with pings, comments, unknown events and errors anywhere.
let private streamEvents: Gen<StreamEvent list> =
    gen {
        let! hasStart = Gen.frequency [ 9, Gen.constant true; 1, Gen.constant false ]
        let! model = modelName
        let! startUsage = Gen.optionOf usageSpec
        let! lead = noise
        let! blockCount = Gen.choose (0, 4)
        let! blocks = [ 0 .. blockCount - 1 ] |> Gen.collectToList block

        let! deltaCount =
            Gen.frequency [ 1, Gen.constant 0; 4, Gen.constant 1; 2, Gen.choose (2, 4) ]

        let! deltas =
            Gen.listOfLength deltaCount (Gen.zip stopReason (Gen.optionOf usageSpec))

        let! deltaGaps = Gen.listOfLength deltaCount noise
        let! hasStop = Gen.frequency [ 4, Gen.constant true; 1, Gen.constant false ]

        return [
            if hasStart then
                yield Start(model, startUsage)
            yield! lead
            yield! List.concat blocks
            for (reason, usage), gap in List.zip deltas deltaGaps do
                yield Delta(reason, usage)
                yield! gap
            if hasStop then
                yield Stop
        ]
    }

let private usageJson (spec: UsageSpec) : Json =
    let member' (name: string) (field: Field) =
        match field with
        | Absent -> []
        | Null -> [ name, JNull ]
        | Count n -> [ name, JNumber(string n) ]

    JObject(
        member' "input_tokens" spec.Input
        @ member' "cache_creation_input_tokens" spec.CacheWrite
        @ member' "cache_read_input_tokens" spec.CacheRead
        @ member' "output_tokens" spec.Output
        @ (if spec.Extras then
               [
                   "service_tier", JString "standard"
                   "cache_creation",
                   JObject [
                       "ephemeral_5m_input_tokens", JNumber "5"
                       "ephemeral_1h_input_tokens", JNumber "0"
                   ]
                   "server_tool_use", JObject [ "web_search_requests", JNumber "1" ]
               ]
           else
               [])
    )

let private usageOf (n: int64) : UsageSpec = {
    Input = Count n
    Output = Count n
    CacheRead = Count n
    CacheWrite = Count n
    Extras = false
}

/// The event's name and its data as a JSON tree; None for a comment.
let private eventJson (event: StreamEvent) : (string * Json) option =
    let typed (name: string) (members: (string * Json) list) =
        Some(name, JObject(("type", JString name) :: members))

    match event with
    | Start(model, usage) ->
        typed "message_start" [
            "message",
            JObject(
                [
                    "id", JString "msg_01"
                    "type", JString "message"
                    "role", JString "assistant"
                    "model", JString model
                    "content", JArray []
                    "stop_reason", JNull
                    "stop_sequence", JNull
                ]
                @ (usage |> Option.map (fun u -> "usage", usageJson u) |> Option.toList)
            )
        ]
    | BlockStart index ->
        typed "content_block_start" [
            "index", JNumber(string index)
            "content_block", JObject [ "type", JString "text"; "text", JString "" ]
        ]
    | TextDelta(index, text) ->
        typed "content_block_delta" [
            "index", JNumber(string index)
            // a delta whose text looks like usage must not be read as usage
            "delta",
            JObject [
                "type", JString "text_delta"
                "text", JString text
                "usage", usageJson (usageOf 7L)
            ]
        ]
    | BlockStop index -> typed "content_block_stop" [ "index", JNumber(string index) ]
    | Ping -> typed "ping" []
    | Comment -> None
    | Future name -> typed name [ "usage", usageJson (usageOf 13L) ]
    | Error errorType ->
        typed "error" [
            "error", JObject [ "type", JString errorType; "message", JString "Overloaded" ]
        ]
    | Delta(reason, usage) ->
        typed
            "message_delta"
            ([
                "delta",
                JObject [
                    "stop_reason",
                    (match reason with
                     | Some r -> JString r
                     | None -> JNull)
                    "stop_sequence", JNull
                ]
             ]
             @ (usage |> Option.map (fun u -> "usage", usageJson u) |> Option.toList))
    | Stop -> typed "message_stop" []


/// Renders one event as SSE text. The JSON is rendered with random whitespace; where that whitespace
/// holds a line break, the data is split over several `data:` lines (joined back with `\n`: still JSON).
let private renderEvent (lineEnd: string) (event: StreamEvent) : Gen<string> =
    match eventJson event with
    | None -> Gen.constant (": keep-alive" + lineEnd + lineEnd)
    | Some(name, json) ->
        gen {
            let! text = renderJson json
            let! eventSpace = Gen.elements [ " "; "" ]
            let! dataSpace = Gen.elements [ " "; "" ]

            let lines =
                text.Replace("\r\n", "\n").Split([| '\n'; '\r' |])
                |> Array.map (fun line -> "data:" + dataSpace + line + lineEnd)

            return "event:" + eventSpace + name + lineEnd + String.Concat lines + lineEnd
        }

let private stream: Gen<StreamEvent list * byte array> =
    gen {
        let! events = streamEvents
        let! lineEnd = Gen.elements [ "\n"; "\r\n"; "\r" ]
        let! parts = events |> Gen.collectToList (renderEvent lineEnd)
        return events, Encoding.UTF8.GetBytes(String.Concat parts)
    }

// ---------------------------
// Driving the tap as the relay does
// ---------------------------

/// Frames the reads as `SseRelay.ReadAsync` does (append each read, cut every complete event, keep the
/// partial tail) and feeds each frame to the tap.
let private tapReads (reads: byte array list) : UsageTap =
    let mutable pending: byte array = [||]
    let mutable tap = Usage.emptyTap

    for read in reads do
        pending <- Array.append pending read
        let mutable offset = 0
        let mutable framing = true

        while framing do
            match Sse.findEventEnd (ReadOnlySpan(pending, offset, pending.Length - offset)) with
            | -1 -> framing <- false
            | length ->
                tap <- Usage.feed tap (ReadOnlySpan(pending, offset, length))
                offset <- offset + length

        pending <- pending[offset..]

    tap

// ---------------------------
// Properties
// ---------------------------

[<Fact>]
let ``the tap reads what the stream says, however it is cut into reads`` () =
    let withReads =
        gen {
            let! events, bytes = stream
            let! reads = chunksOf bytes
            return events, bytes, reads
        }

    Check.quick
        500
        (Prop.forAll (Check.arb withReads) (fun (events, bytes, reads) ->
            let whole = tapReads [ bytes ]
            Assert.Equal(expected events, whole)
            Assert.Equal(whole, tapReads reads)))

[<Fact>]
let ``the last message_delta's output_tokens wins, whatever the earlier values`` () =
    let deltas =
        gen {
            let! start = count
            let! outputs = Gen.nonEmptyListOf count
            return start, outputs
        }

    Check.property (
        Prop.forAll (Check.arb deltas) (fun (start, outputs) ->
            let frame (json: string) = Encoding.UTF8.GetBytes json

            let reads = [
                frame
                    $"event: message_start\ndata: {{\"message\":{{\"usage\":{{\"input_tokens\":%d{start},\"output_tokens\":1}}}}}}\n\n"
                for output in outputs do
                    frame $"event: message_delta\ndata: {{\"usage\":{{\"output_tokens\":%d{output}}}}}\n\n"
            ]

            let tap = tapReads reads
            Assert.Equal(Some(List.last outputs), tap.Usage |> Option.map _.OutputTokens)
            Assert.Equal(Some start, tap.Usage |> Option.map _.InputTokens))
    )

[<Fact>]
let ``ofJson reads a Message's model, usage and stop reason wherever its members are`` () =
    let message =
        gen {
            let! model = modelName
            let! usage = Gen.optionOf usageSpec
            let! reason = stopReason
            let! decoy = usageSpec
            let! text = jsonText

            let members = [
                "id", JString "msg_01"
                "type", JString "message"
                "role", JString "assistant"
                "model", JString model
                "content",
                JArray [
                    JObject [ "type", JString "text"; "text", JString text ]
                    JObject [
                        "type", JString "tool_use"
                        "input",
                        JObject [
                            "usage", usageJson decoy
                            "model", JString "decoy"
                            "stop_reason", JString "decoy"
                        ]
                    ]
                ]
                "stop_reason",
                (match reason with
                 | Some r -> JString r
                 | None -> JNull)
                "stop_sequence", JNull
                "metadata", JObject [ "usage", usageJson decoy ]
            ]

            let! shuffled =
                Gen.shuffle (members @ (usage |> Option.map (fun u -> "usage", usageJson u) |> Option.toList))

            let! text = renderJson (JObject(List.ofArray shuffled))
            return model, usage, reason, text
        }

    Check.property (
        Prop.forAll (Check.arb message) (fun (model, usage, reason, text) ->
            let answer = Usage.ofJson (ReadOnlySpan(Encoding.UTF8.GetBytes text))

            let expectedUsage =
                usage |> Option.bind (fun spec -> (expected [ Start(model, Some spec) ]).Usage)

            Assert.Equal(Some model, answer.Model)
            Assert.Equal(expectedUsage, answer.Usage)
            Assert.Equal(reason, answer.StopReason)
            Assert.Equal(None, answer.ErrorType))
    )

[<Fact>]
let ``the tap never throws on arbitrary bytes in a usage-bearing event`` () =
    let garbage =
        gen {
            let! name = Gen.elements [ "message_start"; "message_delta"; "error" ]
            let! payload = Gen.arrayOf (Gen.choose (0, 255) |> Gen.map byte)
            return Array.append (Encoding.UTF8.GetBytes("event: " + name + "\ndata: ")) payload
        }

    Check.property (
        Prop.forAll (Check.arb garbage) (fun frame ->
            Usage.feed Usage.emptyTap (ReadOnlySpan frame) |> ignore
            Usage.ofJson (ReadOnlySpan frame) |> ignore)
    )
