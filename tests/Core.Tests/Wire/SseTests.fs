module CcRelay.Core.Tests.SseTests

open System
open System.Text
open Xunit
open CcRelay.Core

let private bytes (text: string) : byte array = Encoding.UTF8.GetBytes text

let private findEnd (text: string) : int =
    Sse.findEventEnd (ReadOnlySpan(bytes text))

let private kind (text: string) : FrameKind =
    Sse.frameKind (ReadOnlySpan(bytes text))

let private parse (text: string) : SseEvent list = Sse.parse (ReadOnlySpan(bytes text))

let private event (name: string option) (data: string) : SseEvent = {
    Event = name
    Data = data
    Id = None
    Retry = None
}

let private feedChunks (chunks: byte array list) : Sse.Parser * SseEvent list =
    chunks
    |> List.fold
        (fun (state, acc) chunk ->
            let state, events = Sse.feed state (ReadOnlySpan chunk)
            state, acc @ events)
        (Sse.initial, [])

// ---------------------------
// findEventEnd
// ---------------------------

[<Theory>]
[<InlineData("event: ping\ndata: {}\n\n", 22)>]
[<InlineData("event: ping\r\ndata: {}\r\n\r\n", 25)>]
[<InlineData("event: ping\rdata: {}\r\r", 22)>]
[<InlineData("data: a\n\ndata: b\n\n", 9)>]
[<InlineData("data: a\r\n\r\nrest", 11)>]
[<InlineData("data: a\n\r\n", 10)>]
[<InlineData("\n", 1)>]
[<InlineData("\r\ndata: a\n\n", 2)>]
[<InlineData(": keep-alive\n\n", 14)>]
let ``findEventEnd returns the offset just past the blank line`` (text: string, expected: int) =
    Assert.Equal(expected, findEnd text)

[<Theory>]
[<InlineData("")>]
[<InlineData("event: ping")>]
[<InlineData("event: ping\ndata: {}\n")>]
[<InlineData("event: ping\r\ndata: {}\r\n")>]
[<InlineData("data: a\r")>]
let ``findEventEnd is -1 while no event is complete`` (text: string) = Assert.Equal(-1, findEnd text)

[<Fact>]
let ``a CRLF split across reads ends the event at the CR and leaves a stray LF frame`` () =
    let first = "data: a\r\n\r"
    Assert.Equal(first.Length, findEnd first)
    Assert.Equal(1, findEnd "\n")
    Assert.Equal(1, findEnd "\ndata: b\n\n")

    let _, events = feedChunks [ bytes first; bytes "\n"; bytes "data: b\n\n" ]
    Assert.Equal<SseEvent list>([ event None "a"; event None "b" ], events)

// ---------------------------
// frameKind
// ---------------------------

[<Theory>]
[<InlineData("event: message_start\ndata: {}\n\n")>]
[<InlineData("event:message_start\ndata: {}\n\n")>]
[<InlineData("event: message_start\r\ndata: {}\r\n\r\n")>]
[<InlineData("event: message_start\rdata: {}\r\r")>]
let ``frameKind reads the name with or without a space, whatever the line end`` (frame: string) =
    Assert.Equal(FrameKind.MessageStart, kind frame)

[<Fact>]
let ``frameKind knows the events the relay acts on`` () =
    let cases = [
        "message_start", FrameKind.MessageStart
        "content_block_start", FrameKind.ContentBlockStart
        "message_delta", FrameKind.MessageDelta
        "message_stop", FrameKind.MessageStop
        "ping", FrameKind.Ping
        "error", FrameKind.Error
        "content_block_delta", FrameKind.Other
        "content_block_stop", FrameKind.Other
        "some_future_event", FrameKind.Other
        "message_start_v2", FrameKind.Other
        "Ping", FrameKind.Other
        "", FrameKind.Other
    ]

    for name, expected in cases do
        Assert.Equal(expected, kind $"event: %s{name}\ndata: {{}}\n\n")

[<Theory>]
[<InlineData(": ping\n\n")>]
[<InlineData("data: {}\n\n")>]
[<InlineData("\n")>]
[<InlineData("id: 1\nevent: ping\ndata: {}\n\n")>]
[<InlineData("")>]
let ``frameKind is Unnamed when the frame does not start with an event line`` (frame: string) =
    Assert.Equal(FrameKind.Unnamed, kind frame)

[<Fact>]
let ``frameKind keeps a second leading space as part of the name, like the parser`` () =
    let frame = "event:  ping\ndata: {}\n\n"
    Assert.Equal(FrameKind.Other, kind frame)
    Assert.Equal(Some " ping", (List.exactlyOne (parse frame)).Event)

// ---------------------------
// format
// ---------------------------

[<Fact>]
let ``format writes event, id, retry, then one data line per line`` () =
    let text =
        Sse.format {
            Event = Some "content_block_delta"
            Data = "line 1\nline 2"
            Id = Some "7"
            Retry = Some 3000
        }

    Assert.Equal("event: content_block_delta\nid: 7\nretry: 3000\ndata: line 1\ndata: line 2\n\n", text)

[<Fact>]
let ``format of an unnamed event with empty data is a single empty data line`` () =
    Assert.Equal("data: \n\n", Sse.format (event None ""))

[<Fact>]
let ``format splits data on CRLF, CR and LF alike`` () =
    Assert.Equal("data: a\ndata: b\ndata: c\ndata: d\n\n", Sse.format (event None "a\r\nb\rc\nd"))

[<Theory>]
[<InlineData("a\nb")>]
[<InlineData("a\rb")>]
[<InlineData("a\r\nb")>]
let ``format refuses a line break in the event name`` (name: string) =
    Assert.Throws<ArgumentException>(fun () -> Sse.format (event (Some name) "x") |> ignore)
    |> ignore

[<Fact>]
let ``format refuses a line break in the id`` () =
    Assert.Throws<ArgumentException>(fun () -> Sse.format { event None "x" with Id = Some "1\n2" } |> ignore)
    |> ignore

[<Fact>]
let ``format refuses an id with NUL, which parsers ignore`` () =
    Assert.Throws<ArgumentException>(fun () ->
        Sse.format {
            event None "x" with
                Id = Some "a\000b"
        }
        |> ignore)
    |> ignore

[<Fact>]
let ``format refuses a negative retry, which parsers ignore`` () =
    Assert.Throws<ArgumentException>(fun () -> Sse.format { event None "x" with Retry = Some -1 } |> ignore)
    |> ignore

// ---------------------------
// parse and feed
// ---------------------------

[<Fact>]
let ``parse reads the Anthropic stream of protocols.md`` () =
    let stream =
        String.concat "" [
            "event: message_start\n"
            "data: {\"type\":\"message_start\"}\n\n"
            "event: content_block_start\n"
            "data: {\"type\":\"content_block_start\",\"index\":0}\n\n"
            "event: ping\n"
            "data: {\"type\": \"ping\"}\n\n"
            "event: content_block_delta\n"
            "data: {\"type\":\"content_block_delta\",\"index\":0}\n\n"
            "event: content_block_stop\n"
            "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
            "event: message_delta\n"
            "data: {\"type\":\"message_delta\"}\n\n"
            "event: message_stop\n"
            "data: {\"type\":\"message_stop\"}\n\n"
        ]

    let events = parse stream

    Assert.Equal<string option list>(
        [
            Some "message_start"
            Some "content_block_start"
            Some "ping"
            Some "content_block_delta"
            Some "content_block_stop"
            Some "message_delta"
            Some "message_stop"
        ],
        events |> List.map _.Event
    )

    Assert.Equal("{\"type\": \"ping\"}", events[2].Data)

[<Fact>]
let ``data lines are joined with LF and one leading space is removed`` () =
    Assert.Equal<SseEvent list>([ event None "a\n b\n\nc" ], parse "data: a\ndata:  b\ndata\ndata:c\n\n")

[<Fact>]
let ``comments, unknown fields and wrongly-cased fields are ignored`` () =
    Assert.Equal<SseEvent list>(
        [ event (Some "x") "1" ],
        parse ": comment\nfoo: bar\nData: no\nEVENT: no\nevent: x\ndata: 1\n\n"
    )

[<Fact>]
let ``an event without data lines is not dispatched`` () =
    Assert.Equal<SseEvent list>([], parse "event: ping\nid: 1\nretry: 5\n\n")
    Assert.Equal<SseEvent list>([ event None "next" ], parse "event: ping\n\ndata: next\n\n")

[<Fact>]
let ``an empty data line dispatches an event with empty data`` () =
    Assert.Equal<SseEvent list>([ event None "" ], parse "data:\n\n")

[<Fact>]
let ``id and retry belong to the event that sets them`` () =
    let events = parse "id: 1\nretry: 250\ndata: a\n\ndata: b\n\n"

    Assert.Equal<SseEvent list>(
        [
            {
                Event = None
                Data = "a"
                Id = Some "1"
                Retry = Some 250
            }
            event None "b"
        ],
        events
    )

[<Theory>]
[<InlineData("retry: abc")>]
[<InlineData("retry: -5")>]
[<InlineData("retry: +5")>]
[<InlineData("retry:  5")>]
[<InlineData("retry: 5s")>]
[<InlineData("retry: 99999999999")>]
[<InlineData("retry:")>]
let ``an invalid retry is ignored`` (line: string) =
    Assert.Equal<SseEvent list>([ event None "x" ], parse $"%s{line}\ndata: x\n\n")

[<Fact>]
let ``an id containing NUL is ignored`` () =
    Assert.Equal<SseEvent list>([ event None "x" ], parse "id: a\000b\ndata: x\n\n")

[<Fact>]
let ``an unterminated last event is not dispatched and counts as partial`` () =
    let state, events =
        Sse.feed Sse.initial (ReadOnlySpan(bytes "data: a\n\nevent: message_delta\ndata: {"))

    Assert.Equal<SseEvent list>([ event None "a" ], events)
    Assert.True(Sse.hasPartialEvent state)

[<Fact>]
let ``a stream cut between events has no partial event`` () =
    let state, _ =
        Sse.feed Sse.initial (ReadOnlySpan(bytes "event: ping\ndata: {}\n\n"))

    Assert.False(Sse.hasPartialEvent state)
    Assert.False(Sse.hasPartialEvent Sse.initial)

[<Theory>]
[<InlineData("data: a")>]
[<InlineData("data: a\n")>]
[<InlineData("event: ping\n")>]
// Regression: a cut after an `id:` or `retry:` line (before any data) was reported as a clean end.
[<InlineData("id: 1\n")>]
[<InlineData("retry: 100\n")>]
[<InlineData("event: ping\ndata: {}\r")>]
let ``a stream cut inside an event has a partial event`` (text: string) =
    let state, events = Sse.feed Sse.initial (ReadOnlySpan(bytes text))
    Assert.Empty events
    Assert.True(Sse.hasPartialEvent state)

[<Fact>]
let ``a CR at the end of one chunk and LF at the start of the next are one line end`` () =
    let _, events =
        feedChunks [ bytes "data: a\r"; bytes "\ndata: b\r"; bytes "\n\r"; bytes "\n" ]

    Assert.Equal<SseEvent list>([ event None "a\nb" ], events)

[<Fact>]
let ``a multi-byte character split across chunks is decoded whole`` () =
    let all = bytes "data: caf\u00e9 \U0001F600\n\n"
    let cuts = [ 10; 13; 14; 15 ]

    let chunks =
        (0 :: cuts @ [ all.Length ])
        |> List.pairwise
        |> List.map (fun (a, b) -> all[a .. b - 1])

    let _, events = feedChunks chunks
    Assert.Equal<SseEvent list>([ event None "caf\u00e9 \U0001F600" ], events)

[<Fact>]
let ``feeding an empty chunk changes nothing`` () =
    let state, _ = Sse.feed Sse.initial (ReadOnlySpan(bytes "event: x\ndata: a"))
    let again, events = Sse.feed state ReadOnlySpan<byte>.Empty
    Assert.Empty events
    Assert.Equal(state, again)

[<Fact>]
let ``frameKind allocates nothing`` () =
    let frames =
        [
            "event: content_block_delta\ndata: {}\n\n"
            "event: ping\n\n"
            "event: message_stop\n\n"
            ": c\n\n"
        ]
        |> List.map bytes
        |> Array.ofList

    for frame in frames do
        Sse.frameKind (ReadOnlySpan frame) |> ignore

    // A tier-up or on-stack replacement of the loop can allocate once on this thread (it failed one CI run so);
    // an allocation of frameKind itself recurs in every round, so the least of three rounds must be 0.
    let round () =
        let before = GC.GetAllocatedBytesForCurrentThread()

        for _ in 1..1000 do
            for frame in frames do
                Sse.frameKind (ReadOnlySpan frame) |> ignore

        GC.GetAllocatedBytesForCurrentThread() - before

    Assert.Equal(0L, List.min [ round (); round (); round () ])
