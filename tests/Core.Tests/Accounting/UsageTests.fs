module CcRelay.Core.Tests.UsageTests

open System
open System.Text
open Xunit
open CcRelay.Core

let private bytes (text: string) : byte array = Encoding.UTF8.GetBytes text

/// Frames a whole stream with `Sse.findEventEnd`, as the relay's reader does, and feeds every frame.
let private tapAll (stream: string) : UsageTap =
    let buffer = bytes stream
    let mutable offset = 0
    let mutable tap = Usage.emptyTap
    let mutable framing = true

    while framing do
        match Sse.findEventEnd (ReadOnlySpan(buffer, offset, buffer.Length - offset)) with
        | -1 -> framing <- false
        | length ->
            tap <- Usage.feed tap (ReadOnlySpan(buffer, offset, length))
            offset <- offset + length

    tap

let private feedOne (tap: UsageTap) (frame: string) : UsageTap =
    Usage.feed tap (ReadOnlySpan(bytes frame))

let private usage (input: int64) (output: int64) (cacheRead: int64) (cacheWrite: int64) : Usage = {
    InputTokens = input
    OutputTokens = output
    CacheReadTokens = cacheRead
    CacheWriteTokens = cacheWrite
}

let private messageStart (usageJson: string) : string =
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-6\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":"
    + usageJson
    + "}}\n\n"

let private messageDelta (stopReason: string) (usageJson: string) : string =
    $"event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"%s{stopReason}\",\"stop_sequence\":null}},\"usage\":%s{usageJson}}}\n\n"

let private textDelta (text: string) : string =
    $"event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"%s{text}\"}}}}\n\n"

let private blockStart =
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"

let private blockStop =
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"

let private messageStop =
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"

let private ping = "event: ping\ndata: {\"type\":\"ping\"}\n\n"

let private overloaded =
    "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"

/// The minimal example of protocols.md §1.6 (thinking + tool).
let private protocolExample =
    String.concat "" [
        "event: message_start\n"
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n"
        "event: content_block_start\n"
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"let me\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQB\"}}\n\n"
        "event: content_block_stop\n"
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
        "event: content_block_start\n"
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_5\",\"name\":\"get_weather\",\"input\":{}}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Paris\\\"}\"}}\n\n"
        "event: content_block_stop\n"
        "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
        "event: message_delta\n"
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\n"
        "event: message_stop\n"
        "data: {\"type\":\"message_stop\"}\n\n"
    ]

// ---------------------------
// The SSE tap
// ---------------------------

[<Fact>]
let ``the protocol example yields its model, usage and stop reason`` () =
    let tap = tapAll protocolExample

    Assert.Equal(Some "claude-x", tap.Model)
    Assert.Equal(Some(usage 9L 89L 0L 0L), tap.Usage)
    Assert.Equal(Some "tool_use", tap.StopReason)
    Assert.True tap.SawContent
    Assert.True tap.SawMessageStop
    Assert.Equal(None, tap.ErrorType)
    Assert.False tap.ErrorBeforeContent

[<Fact>]
let ``cache counts from message_start survive a message_delta that carries only output_tokens`` () =
    let tap =
        tapAll (
            messageStart
                "{\"input_tokens\":12,\"cache_creation_input_tokens\":300,\"cache_read_input_tokens\":900,\"output_tokens\":1,\"service_tier\":\"standard\",\"cache_creation\":{\"ephemeral_5m_input_tokens\":300,\"ephemeral_1h_input_tokens\":0}}"
            + blockStart
            + textDelta "hi"
            + blockStop
            + messageDelta "end_turn" "{\"output_tokens\":57}"
            + messageStop
        )

    Assert.Equal(Some(usage 12L 57L 900L 300L), tap.Usage)
    Assert.Equal(Some "end_turn", tap.StopReason)

[<Fact>]
let ``input and cache fields in message_delta override those of message_start`` () =
    let tap =
        tapAll (
            messageStart "{\"input_tokens\":0,\"output_tokens\":0}"
            + messageDelta
                "end_turn"
                "{\"input_tokens\":40,\"cache_read_input_tokens\":5,\"cache_creation_input_tokens\":6,\"output_tokens\":7}"
        )

    Assert.Equal(Some(usage 40L 7L 5L 6L), tap.Usage)

[<Fact>]
let ``the last message_delta wins and usages are never summed`` () =
    let tap =
        tapAll (
            messageStart "{\"input_tokens\":10,\"output_tokens\":1}"
            + messageDelta "pause_turn" "{\"output_tokens\":20}"
            + messageDelta "max_tokens" "{\"output_tokens\":30,\"input_tokens\":11}"
            + messageDelta "end_turn" "{\"output_tokens\":31}"
        )

    Assert.Equal(Some(usage 11L 31L 0L 0L), tap.Usage)
    Assert.Equal(Some "end_turn", tap.StopReason)

[<Fact>]
let ``null, negative and fractional counts leave the earlier value`` () =
    let tap =
        tapAll (
            messageStart "{\"input_tokens\":10,\"cache_read_input_tokens\":4,\"output_tokens\":1}"
            + messageDelta
                "end_turn"
                "{\"input_tokens\":null,\"cache_read_input_tokens\":-3,\"cache_creation_input_tokens\":2.5,\"output_tokens\":8}"
        )

    Assert.Equal(Some(usage 10L 8L 4L 0L), tap.Usage)

[<Fact>]
let ``a stream without usage reports none, not zero`` () =
    let tap =
        tapAll (
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"m\"}}\n\n"
            + blockStart
            + messageStop
        )

    Assert.Equal(None, tap.Usage)
    Assert.Equal(Some "m", tap.Model)
    Assert.Equal(None, Usage.ofTap(tap).Usage)

[<Fact>]
let ``an error event before any content is flagged with its type`` () =
    let tap =
        tapAll (messageStart "{\"input_tokens\":3,\"output_tokens\":1}" + ping + overloaded)

    Assert.Equal(Some "overloaded_error", tap.ErrorType)
    Assert.True tap.ErrorBeforeContent
    Assert.False tap.SawContent
    Assert.Equal(Some(usage 3L 1L 0L 0L), tap.Usage)

[<Fact>]
let ``an error event after content is not before content`` () =
    let tap =
        tapAll (
            messageStart "{\"input_tokens\":3,\"output_tokens\":1}"
            + blockStart
            + textDelta "x"
            + overloaded
        )

    Assert.Equal(Some "overloaded_error", tap.ErrorType)
    Assert.False tap.ErrorBeforeContent

[<Fact>]
let ``the first error event decides`` () =
    let later =
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"x\"}}\n\n"

    let tap = tapAll (overloaded + blockStart + later)

    Assert.Equal(Some "overloaded_error", tap.ErrorType)
    Assert.True tap.ErrorBeforeContent

[<Fact>]
let ``an error event without a readable type still counts as an error`` () =
    let tap = tapAll "event: error\ndata: not json\n\n"

    Assert.Equal(Some "error", tap.ErrorType)
    Assert.True tap.ErrorBeforeContent

[<Fact>]
let ``an unknown error type is read as written`` () =
    let tap =
        tapAll "event: error\ndata: {\"type\":\"error\",\"error\":{\"message\":\"m\",\"type\":\"brand_new_error\"}}\n\n"

    Assert.Equal(Some "brand_new_error", tap.ErrorType)

[<Fact>]
let ``CRLF and CR line ends and data without a space are read`` () =
    let crlf =
        (messageStart "{\"input_tokens\":5,\"output_tokens\":1}").Replace("\n", "\r\n")
        + "event:message_delta\r\ndata:{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":6}}\r\n\r\n"

    let cr = crlf.Replace("\r\n", "\r")

    for stream in [ crlf; cr ] do
        let tap = tapAll stream
        Assert.Equal(Some(usage 5L 6L 0L 0L), tap.Usage)
        Assert.Equal(Some "end_turn", tap.StopReason)
        Assert.Equal(Some "claude-sonnet-4-6", tap.Model)

[<Fact>]
let ``data split over several data lines is joined with line feeds`` () =
    let stream =
        "event: message_delta\nid: 7\ndata: {\"type\":\"message_delta\",\n: a comment\ndata:  \"usage\":\ndata: {\"output_tokens\":44}}\n\n"

    let tap = tapAll stream

    Assert.Equal(Some(usage 0L 44L 0L 0L), tap.Usage)

[<Fact>]
let ``an unreadable message_delta leaves the tap as it was`` () =
    let before = tapAll (messageStart "{\"input_tokens\":5,\"output_tokens\":1}")

    for broken in
        [
            "event: message_delta\ndata: {\"usage\":{\"output_tokens\":\n\n"
            "event: message_delta\ndata: \n\n"
            "event: message_delta\n\n"
            "event: message_delta\ndata: [1,2]\n\n"
        ] do
        Assert.Equal(before, feedOne before broken)

[<Fact>]
let ``a usage key inside content or delta text is not read`` () =
    let tricky =
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\\\"usage\\\":{\\\"output_tokens\\\":999}\"}}\n\n"

    let tap =
        tapAll (messageStart "{\"input_tokens\":5,\"output_tokens\":1}" + blockStart + tricky)

    Assert.Equal(Some(usage 5L 1L 0L 0L), tap.Usage)

[<Fact>]
let ``events that carry no usage return the same state`` () =
    let tap =
        tapAll (messageStart "{\"input_tokens\":5,\"output_tokens\":1}" + blockStart)

    for frame in
        [
            textDelta "hello"
            blockStop
            ping
            blockStart
            ": keep-alive\n\n"
            "\n"
            "event: some_future_event\ndata: {}\n\n"
        ] do
        Assert.Same(tap, feedOne tap frame)

[<Fact>]
let ``feeding content deltas allocates nothing`` () =
    let tap =
        tapAll (messageStart "{\"input_tokens\":5,\"output_tokens\":1}" + blockStart)

    let delta = bytes (textDelta "some streamed text, the bulk of every answer")
    let pingBytes = bytes ping
    // warm up (JIT, static initialisers)
    Usage.feed tap (ReadOnlySpan delta) |> ignore
    Usage.feed tap (ReadOnlySpan pingBytes) |> ignore

    let before = GC.GetAllocatedBytesForCurrentThread()
    let mutable state = tap

    for _ in 1..1000 do
        state <- Usage.feed state (ReadOnlySpan delta)
        state <- Usage.feed state (ReadOnlySpan pingBytes)

    let allocated = GC.GetAllocatedBytesForCurrentThread() - before

    Assert.Equal(0L, allocated)
    Assert.Same(tap, state)

[<Fact>]
let ``known stop reasons are shared instances`` () =
    let first = tapAll (messageDelta "end_turn" "{\"output_tokens\":1}")
    let second = tapAll (messageDelta "end_turn" "{\"output_tokens\":2}")

    Assert.Same(first.StopReason.Value, second.StopReason.Value)

// ---------------------------
// JSON answers
// ---------------------------

[<Fact>]
let ``ofJson reads the protocol's Message example`` () =
    let body =
        """{
  "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
  "content": [
    {"type": "thinking", "thinking": "…", "signature": "…"},
    {"type": "text", "text": "…"},
    {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris", "usage": {"output_tokens": 1}, "model": "x", "stop_reason": "y"}}
  ],
  "stop_reason": "tool_use",
  "stop_sequence": null,
  "usage": {"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 900,
            "output_tokens": 57, "service_tier": "standard"}
}"""

    let answer = Usage.ofJson (ReadOnlySpan(bytes body))

    Assert.Equal(Some "claude-sonnet-4-6", answer.Model)
    Assert.Equal(Some(usage 12L 57L 900L 0L), answer.Usage)
    Assert.Equal(Some "tool_use", answer.StopReason)
    Assert.Equal(None, answer.ErrorType)

[<Fact>]
let ``ofJson reads an error envelope's type and no usage`` () =
    let body =
        """{"type":"error","error":{"type":"rate_limit_error","message":"slow down"},"request_id":"req_1"}"""

    let answer = Usage.ofJson (ReadOnlySpan(bytes body))

    Assert.Equal(Some "rate_limit_error", answer.ErrorType)
    Assert.Equal(None, answer.Usage)
    Assert.Equal(None, answer.Model)

[<Theory>]
[<InlineData("")>]
[<InlineData("not json")>]
[<InlineData("[]")>]
[<InlineData("\"usage\"")>]
[<InlineData("{\"usage\": 5}")>]
let ``ofJson of something that is not a Message yields nothing`` (body: string) =
    let answer = Usage.ofJson (ReadOnlySpan(bytes body))

    Assert.Equal<AnswerUsage>(
        {
            Model = None
            Usage = None
            StopReason = None
            ErrorType = None
        },
        answer
    )

[<Fact>]
let ``ofJson keeps what it read before a truncation`` () =
    let body =
        """{"model":"claude-haiku-4-5","usage":{"input_tokens":3,"output_tokens":4},"content":[{"type":"text","te"""

    let answer = Usage.ofJson (ReadOnlySpan(bytes body))

    Assert.Equal(Some "claude-haiku-4-5", answer.Model)
    Assert.Equal(Some(usage 3L 4L 0L 0L), answer.Usage)

// ---------------------------
// Arithmetic
// ---------------------------

[<Fact>]
let ``total and prompt tokens add the right fields`` () =
    let u = usage 1L 2L 4L 8L
    Assert.Equal(15L, Usage.total u)
    Assert.Equal(13L, Usage.promptTokens u)
    Assert.Equal(usage 2L 4L 8L 16L, u + u)
    Assert.Equal(u, u + Usage.zero)
