module CcRelay.Core.Properties.SseProperties

open System
open System.Text
open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators

// ---------------------------
// Oracle and helpers
// ---------------------------

/// A WHATWG §9.2.6 event-stream interpreter over a decoded string, written independently of `Sse`:
/// split into complete lines (CRLF, CR or LF), drop the unterminated last line, then apply the field rules.
/// `Id` and `Retry` are per event, as `SseEvent` documents.
let private reference (text: string) : SseEvent list =
    let lines = ResizeArray<string>()
    let mutable start = 0
    let mutable i = 0

    while i < text.Length do
        let c = text[i]

        if c = '\r' || c = '\n' then
            lines.Add(text.Substring(start, i - start))

            i <-
                if c = '\r' && i + 1 < text.Length && text[i + 1] = '\n' then
                    i + 2
                else
                    i + 1

            start <- i
        else
            i <- i + 1

    let isRetry (value: string) =
        let digits = value.TrimStart '0'

        value.Length > 0
        && value |> Seq.forall (fun c -> c >= '0' && c <= '9')
        && (digits.Length < 10
            || (digits.Length = 10 && String.CompareOrdinal(digits, "2147483647") <= 0))

    let events = ResizeArray<SseEvent>()
    let mutable eventType = None
    let mutable data: string list = []
    let mutable id = None
    let mutable retry = None

    for line in lines do
        if line = "" then
            if not data.IsEmpty then
                events.Add {
                    Event = eventType
                    Data = String.Join("\n", List.rev data)
                    Id = id
                    Retry = retry
                }

            eventType <- None
            data <- []
            id <- None
            retry <- None
        elif line.StartsWith ':' then
            ()
        else
            let name, value =
                match line.IndexOf ':' with
                | -1 -> line, ""
                | colon ->
                    let value = line.Substring(colon + 1)
                    line.Substring(0, colon), (if value.StartsWith ' ' then value.Substring 1 else value)

            match name with
            | "event" -> eventType <- Some value
            | "data" -> data <- value :: data
            | "id" when not (value.Contains '\000') -> id <- Some value
            | "retry" when isRetry value -> retry <- Some(int value)
            | _ -> ()

    List.ofSeq events

let private bytesOf (text: string) : byte array = Encoding.UTF8.GetBytes text

let private parseBytes (bytes: byte array) : SseEvent list = Sse.parse (ReadOnlySpan bytes)

/// Feeds chunks in order; the final state and every event.
let private feedAll (chunks: byte array seq) : Sse.Parser * SseEvent list =
    chunks
    |> Seq.fold
        (fun (state, acc) chunk ->
            let state, events = Sse.feed state (ReadOnlySpan chunk)
            state, acc @ events)
        (Sse.initial, [])

/// Cuts a whole buffer into frames with `findEventEnd`; the frames and the unframed tail.
let private frames (bytes: byte array) : byte array list * byte array =
    let rec loop (offset: int) (acc: byte array list) =
        match Sse.findEventEnd (ReadOnlySpan(bytes, offset, bytes.Length - offset)) with
        | -1 -> List.rev acc, bytes[offset..]
        | length ->
            Assert.True(length > 0, "a frame is never empty")
            loop (offset + length) (bytes[offset .. offset + length - 1] :: acc)

    loop 0 []

let private streamWithChunks =
    gen {
        let! text = rawSseStream
        let bytes = bytesOf text
        let! chunks = chunksOf bytes
        return text, bytes, chunks
    }
    |> Check.arb

// ---------------------------
// Parser
// ---------------------------

[<Fact>]
let ``the one-shot parse agrees with the reference interpreter`` () =
    Check.property (
        Prop.forAll (Check.arb rawSseStream) (fun text ->
            Assert.Equal<SseEvent list>(reference text, parseBytes (bytesOf text)))
    )

[<Fact>]
let ``the incremental parser gives the same events however the bytes are chunked`` () =
    Check.quick
        500
        (Prop.forAll streamWithChunks (fun (_, bytes, chunks) ->
            Assert.Equal<byte array>(bytes, Array.concat chunks)
            let chunkedState, chunked = feedAll chunks
            let oneShotState, oneShot = Sse.feed Sse.initial (ReadOnlySpan bytes)
            Assert.Equal<SseEvent list>(oneShot, chunked)
            Assert.Equal(oneShotState, chunkedState)
            Assert.Equal(Sse.hasPartialEvent oneShotState, Sse.hasPartialEvent chunkedState)))

[<Fact>]
let ``parse inverts format`` () =
    Check.property (
        Prop.forAll (Check.arb sseEvent) (fun event ->
            Assert.Equal<SseEvent list>([ event ], parseBytes (bytesOf (Sse.format event))))
    )

[<Fact>]
let ``parse inverts format over a whole stream of events`` () =
    Check.property (
        Prop.forAll (Check.arb sseEvents) (fun events ->
            let text = events |> List.map Sse.format |> String.Concat
            Assert.Equal<SseEvent list>(events, parseBytes (bytesOf text)))
    )

[<Fact>]
let ``format writes data with any line breaks as lines that parse back with LF breaks`` () =
    let eventWithAnyData =
        gen {
            let! event = sseEvent
            let! data = anyText
            return { event with Data = data }
        }

    Check.property (
        Prop.forAll (Check.arb eventWithAnyData) (fun event ->
            let normalised = event.Data.Replace("\r\n", "\n").Replace('\r', '\n')
            Assert.Equal<SseEvent list>([ { event with Data = normalised } ], parseBytes (bytesOf (Sse.format event))))
    )

[<Fact>]
let ``format never emits a line break inside event or id and writes one field per line`` () =
    let candidate =
        gen {
            let! event = sseEvent
            let! name = Gen.optionOf anyText
            let! id = Gen.optionOf anyText
            return { event with Event = name; Id = id }
        }

    let hasBreak (value: string option) =
        value |> Option.exists (fun v -> v.IndexOfAny [| '\r'; '\n' |] >= 0)

    Check.property (
        Prop.forAll (Check.arb candidate) (fun event ->
            if
                hasBreak event.Event
                || hasBreak event.Id
                || (event.Id |> Option.exists (fun id -> id.Contains '\000'))
            then
                Assert.Throws<ArgumentException>(fun () -> Sse.format event |> ignore) |> ignore
            else
                let text = Sse.format event
                Assert.DoesNotContain("\r", text)

                let expected = [
                    match event.Event with
                    | Some name -> yield "event: " + name
                    | None -> ()
                    match event.Id with
                    | Some id -> yield "id: " + id
                    | None -> ()
                    match event.Retry with
                    | Some ms -> yield $"retry: %d{ms}"
                    | None -> ()
                    for line in event.Data.Split '\n' do
                        yield "data: " + line
                    yield ""
                    yield ""
                ]

                Assert.Equal<string list>(expected, text.Split '\n' |> List.ofArray))
    )

[<Fact>]
let ``format either refuses an event or writes one that parses back to it`` () =
    let anyEvent =
        gen {
            let! event = sseEvent
            let! name = Gen.optionOf anyText

            let! id =
                Gen.optionOf (stringOf 6 (Gen.oneof [ textPiece; Gen.elements [ "\n"; "\r" ] ]))

            let! retry =
                Gen.optionOf (
                    Gen.oneof [
                        Gen.choose (-1000, 1000)
                        Gen.elements [ Int32.MinValue; -1; Int32.MaxValue ]
                    ]
                )

            return {
                event with
                    Event = name
                    Id = id
                    Retry = retry
            }
        }

    Check.property (
        Prop.forAll (Check.arb anyEvent) (fun event ->
            match
                (try
                    Ok(Sse.format event)
                 with :? ArgumentException as e ->
                     Error e)
            with
            | Ok text -> Assert.Equal<SseEvent list>([ event ], parseBytes (bytesOf text))
            | Error _ ->
                let breaks (v: string option) =
                    v |> Option.exists (fun v -> v.IndexOfAny [| '\r'; '\n' |] >= 0)

                Assert.True(
                    breaks event.Event
                    || breaks event.Id
                    || (event.Id |> Option.exists (fun id -> id.Contains '\000'))
                    || (event.Retry |> Option.exists (fun ms -> ms < 0))
                ))
    )

[<Fact>]
let ``hasPartialEvent is false exactly at event boundaries of a formatted stream`` () =
    let streamAndCut =
        gen {
            let! events = sseEvents
            let texts = events |> List.map (Sse.format >> bytesOf)
            let bytes = Array.concat texts
            // cuts at line starts find the subtle states (after an `id:` or `retry:` line, before the blank line)
            let lineStarts = [
                for i in 0 .. bytes.Length - 1 do
                    if bytes[i] = 10uy then
                        yield i + 1
            ]

            let! cut =
                if lineStarts.IsEmpty then
                    Gen.choose (0, bytes.Length)
                else
                    Gen.frequency [ 1, Gen.choose (0, bytes.Length); 3, Gen.elements lineStarts ]

            let boundaries = texts |> List.scan (fun offset t -> offset + t.Length) 0
            return bytes, cut, boundaries
        }

    Check.quick
        500
        (Prop.forAll (Check.arb streamAndCut) (fun (bytes, cut, boundaries) ->
            let state, _ = Sse.feed Sse.initial (ReadOnlySpan(bytes, 0, cut))
            Assert.Equal(not (List.contains cut boundaries), Sse.hasPartialEvent state)))

// ---------------------------
// Framing
// ---------------------------

[<Fact>]
let ``findEventEnd frames concatenate to the buffer and parse to the same events`` () =
    Check.quick
        500
        (Prop.forAll (Check.arb rawSseStream) (fun text ->
            let bytes = bytesOf text
            let frames, tail = frames bytes
            Assert.Equal<byte array>(bytes, Array.concat (frames @ [ tail ]))

            let mutable state = Sse.initial
            let perFrame = ResizeArray<SseEvent>()

            for frame in frames do
                let next, events = Sse.feed state (ReadOnlySpan frame)
                // a frame ends at its blank line: at most one event, nothing left half-read
                Assert.True(events.Length <= 1)
                Assert.False(Sse.hasPartialEvent next)
                // and a frame is self-contained: on its own it gives the same event
                Assert.Equal<SseEvent list>(events, parseBytes frame)
                perFrame.AddRange events
                state <- next

            let _, tailEvents = Sse.feed state (ReadOnlySpan tail)
            Assert.Empty tailEvents
            Assert.Equal<SseEvent list>(parseBytes bytes, List.ofSeq perFrame)))

[<Fact>]
let ``framing reads as they arrive gives the same bytes and events as the one-shot parse`` () =
    // What the host does: append each read to a pending buffer, cut every complete frame, keep the rest.
    Check.quick
        500
        (Prop.forAll streamWithChunks (fun (_, bytes, chunks) ->
            let mutable pending: byte array = [||]
            let out = ResizeArray<byte array>()

            for chunk in chunks do
                pending <- Array.append pending chunk
                let complete, rest = frames pending
                out.AddRange complete
                pending <- rest

            Assert.Equal<byte array>(bytes, Array.concat (List.ofSeq out @ [ pending ]))
            let _, viaFrames = feedAll (List.ofSeq out @ [ pending ])
            Assert.Equal<SseEvent list>(parseBytes bytes, viaFrames)

            for frame in out do
                Assert.True((parseBytes frame).Length <= 1)))

[<Fact>]
let ``frameKind agrees with the parsed event name of formatted events`` () =
    let expectedKind (event: string option) =
        match event with
        | None -> FrameKind.Unnamed
        | Some "message_start" -> FrameKind.MessageStart
        | Some "content_block_start" -> FrameKind.ContentBlockStart
        | Some "message_delta" -> FrameKind.MessageDelta
        | Some "message_stop" -> FrameKind.MessageStop
        | Some "ping" -> FrameKind.Ping
        | Some "error" -> FrameKind.Error
        | Some _ -> FrameKind.Other

    Check.property (
        Prop.forAll (Check.arb sseEvent) (fun event ->
            let bytes = bytesOf (Sse.format event)
            Assert.Equal(bytes.Length, Sse.findEventEnd (ReadOnlySpan bytes))

            match parseBytes bytes with
            | [ parsed ] -> Assert.Equal(expectedKind parsed.Event, Sse.frameKind (ReadOnlySpan bytes))
            | other -> failwith $"expected one event, got %A{other}")
    )
