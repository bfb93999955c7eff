namespace CcRelay.Core

open System
open System.Text
open System.Text.Json

/// What the relay sends into a stream whose upstream is silent (`server.stream_keepalive`).
[<RequireQualifiedAccess>]
type KeepAliveMode =
    /// Events Claude Code's idle watchdog counts (protocols.md §6.8): an empty delta into the open thinking or
    /// text block, or an empty thinking block of the relay's own when none is open; `ping` before `message_start`
    /// and while a tool_use block is open.
    | Events
    /// `ping` events only, as Anthropic sends them (the watchdog of Claude Code 2.1.197 does not count them).
    | Pings

/// The kind of a content block the client has open.
[<RequireQualifiedAccess>]
type KeepAliveBlock =
    | Thinking
    | Text
    | Other

/// What the client's stream has open, as a keep-alive needs it (`KeepAlive.pass` follows the stream).
type KeepAliveState = private {
    Mode: KeepAliveMode
    Started: bool
    Ended: bool
    /// The block the client has open: its index as the client sees it, and its kind.
    Open: struct (int * KeepAliveBlock) voption
    /// The index (as the client sees it) of the relay's own thinking block, while it is open.
    Own: int voption
    /// How many blocks of its own the relay inserted: the upstream's indexes are this much higher for the client.
    Shift: int
    /// The next index the upstream's stream will use (its last block's index + 1).
    NextSource: int
}

/// Keep-alives for a stream the relay produces (a translated or converted answer): Claude Code 2.1.197 aborts a
/// stream when no event but `ping` arrives for 300 s (protocols.md §6.8), and reasoning targets may think
/// silently for longer. The state follows the events that go to the client; in a silence `silence` says what to
/// send. When no block is open it opens an empty thinking block of the relay's own (no signature: the request
/// translators leave it out of later requests), closed before the upstream's next block, whose index (and every
/// later one) is then shifted by one — a byte edit of `index`, nothing else.
[<RequireQualifiedAccess>]
module KeepAlive =

    /// Anthropic's own keep-alive event, byte for byte.
    let ping: byte array = "event: ping\ndata: {\"type\": \"ping\"}\n\n"B

    /// A stream about to start.
    let start (mode: KeepAliveMode) : KeepAliveState = {
        Mode = mode
        Started = false
        Ended = false
        Open = ValueNone
        Own = ValueNone
        Shift = 0
        NextSource = 0
    }

    let private event (name: string) (json: string) : byte array =
        Encoding.UTF8.GetBytes("event: " + name + "\ndata: " + json + "\n\n")

    let private delta (index: int) (kind: string) (field: string) : byte array =
        event
            "content_block_delta"
            $"{{\"type\":\"content_block_delta\",\"index\":%d{index},\"delta\":{{\"type\":\"%s{kind}\",\"%s{field}\":\"\"}}}}"

    let private stop (index: int) : byte array =
        event "content_block_stop" $"{{\"type\":\"content_block_stop\",\"index\":%d{index}}}"

    let private deltaName = "content_block_delta"B
    let private stopName = "content_block_stop"B
    let private startName = "content_block_start"B

    let private nameIs (frame: ReadOnlySpan<byte>) (name: ReadOnlySpan<byte>) : bool =
        frame.StartsWith("event:"B)
        && (let rest = frame.Slice 6

            let rest =
                if rest.Length > 0 && rest[0] = byte ' ' then
                    rest.Slice 1
                else
                    rest

            rest.StartsWith name
            && rest.Length > name.Length
            && (rest[name.Length] = 10uy || rest[name.Length] = 13uy))

    /// The data line's JSON of a frame: (start, length).
    let private dataOf (frame: ReadOnlySpan<byte>) : struct (int * int) voption =
        let at = frame.IndexOf("\ndata:"B)

        if at < 0 then
            ValueNone
        else
            let start = at + 6

            let start =
                if start < frame.Length && frame[start] = byte ' ' then
                    start + 1
                else
                    start

            let rest = frame.Slice start
            let eol = rest.IndexOfAny(13uy, 10uy)
            ValueSome(struct (start, (if eol < 0 then rest.Length else eol)))

    /// The top-level `index` number of an event's JSON (start, length, value), and the `content_block.type`.
    let private read (json: ReadOnlySpan<byte>) : struct (int * int * int * string) voption =
        let mutable reader = Utf8JsonReader(json)
        let mutable index = ValueNone
        let mutable kind = ""
        let mutable property = ""

        try
            while reader.Read() do
                match reader.TokenType with
                | JsonTokenType.PropertyName -> property <- nonNull (reader.GetString())
                | JsonTokenType.Number when reader.CurrentDepth = 1 && property = "index" ->
                    match reader.TryGetInt32() with
                    | true, value ->
                        index <- ValueSome(struct (int reader.TokenStartIndex, reader.ValueSpan.Length, value))
                    | _ -> ()
                | JsonTokenType.String when reader.CurrentDepth = 2 && property = "type" && kind.Length = 0 ->
                    kind <- nonNull (reader.GetString())
                | _ -> ()
        with :? JsonException ->
            index <- ValueNone

        index |> ValueOption.map (fun (struct (s, l, v)) -> struct (s, l, v, kind))

    let private shifted
        (frame: ReadOnlySpan<byte>)
        (dataStart: int)
        (start: int)
        (length: int)
        (value: int)
        : byte array =
        let number = Encoding.ASCII.GetBytes(string value)
        let at = dataStart + start
        let result = Array.zeroCreate<byte>(frame.Length - length + number.Length)
        frame.Slice(0, at).CopyTo(result.AsSpan())
        number.CopyTo(result.AsSpan at)
        frame.Slice(at + length).CopyTo(result.AsSpan(at + number.Length))
        result

    /// The event with its `index` moved up by the blocks the relay inserted; `ValueNone` when it needs no edit.
    let private shift (state: KeepAliveState) (frame: ReadOnlySpan<byte>) : byte array voption =
        if state.Shift = 0 then
            ValueNone
        else
            match dataOf frame with
            | ValueNone -> ValueNone
            | ValueSome(struct (dataStart, dataLength)) ->
                match read (frame.Slice(dataStart, dataLength)) with
                | ValueSome(struct (start, length, index, _)) ->
                    ValueSome(shifted frame dataStart start length (index + state.Shift))
                | ValueNone -> ValueNone

    let private closeOwn (state: KeepAliveState) : KeepAliveState * byte array list =
        match state.Own with
        | ValueSome own ->
            {
                state with
                    Own = ValueNone
                    Open = ValueNone
            },
            [ stop own ]
        | ValueNone -> state, []

    /// Follows one whole event on its way to the client: returns what goes out instead (`ValueNone`: itself), the
    /// relay's own block closed before it and its `index` shifted. Only a block's start is read as JSON (and, after
    /// the relay inserted a block, every block event, to shift its index).
    let private frame (state: KeepAliveState) (frame: ReadOnlySpan<byte>) : KeepAliveState * byte array voption =
        if nameIs frame (ReadOnlySpan deltaName) then
            state, shift state frame
        elif nameIs frame (ReadOnlySpan stopName) then
            { state with Open = ValueNone }, shift state frame
        elif nameIs frame (ReadOnlySpan startName) then
            let state, before = closeOwn state

            match dataOf frame with
            | ValueNone -> state, ValueNone
            | ValueSome(struct (dataStart, dataLength)) ->
                match read (frame.Slice(dataStart, dataLength)) with
                | ValueNone -> state, ValueNone
                | ValueSome(struct (_, _, index, kind)) ->
                    let block =
                        match kind with
                        | "thinking" -> KeepAliveBlock.Thinking
                        | "text" -> KeepAliveBlock.Text
                        | _ -> KeepAliveBlock.Other

                    let state = {
                        state with
                            Open = ValueSome(struct (index + state.Shift, block))
                            NextSource = max state.NextSource (index + 1)
                    }

                    let edited = shift state frame

                    match before with
                    | [] -> state, edited
                    | before ->
                        let bytes =
                            match edited with
                            | ValueSome bytes -> bytes
                            | ValueNone -> frame.ToArray()

                        state, ValueSome(Array.concat (before @ [ bytes ]))
        else
            match Sse.frameKind frame with
            | FrameKind.MessageStart -> { state with Started = true }, ValueNone
            | FrameKind.MessageDelta
            | FrameKind.MessageStop
            | FrameKind.Error as kind ->
                let state, before = closeOwn state

                let state = {
                    state with
                        Ended = kind <> FrameKind.MessageDelta
                }

                match before with
                | [] -> state, ValueNone
                | before -> state, ValueSome(Array.concat (before @ [ frame.ToArray() ]))
            | _ -> state, ValueNone

    /// Follows SSE on its way to the client (whole events; a partial tail goes out as it is): the new state and
    /// what goes out — `sse` itself unless the relay's own block is closed or indexes are shifted.
    let pass (state: KeepAliveState) (sse: byte array) : KeepAliveState * byte array =
        let mutable state = state
        let mutable at = 0
        // allocated at the first edit only: most calls change nothing
        let mutable parts: ResizeArray<byte array> voption = ValueNone

        while at < sse.Length do
            let span = ReadOnlySpan(sse, at, sse.Length - at)
            let end' = Sse.findEventEnd span
            let length = if end' < 0 then span.Length else end'
            let next, edited = frame state (span.Slice(0, length))
            state <- next

            match edited, parts with
            | ValueSome bytes, ValueSome list -> list.Add bytes
            | ValueSome bytes, ValueNone ->
                let list = ResizeArray()
                list.Add(sse[.. at - 1])
                list.Add bytes
                parts <- ValueSome list
            | ValueNone, ValueSome list -> list.Add(span.Slice(0, length).ToArray())
            | ValueNone, ValueNone -> ()

            at <- at + length

        match parts with
        | ValueSome list -> state, Array.concat list
        | ValueNone -> state, sse

    /// What to send after a silence, and the state after it.
    let silence (state: KeepAliveState) : KeepAliveState * byte array =
        match state.Mode with
        | KeepAliveMode.Pings -> state, ping
        | KeepAliveMode.Events when not state.Started || state.Ended -> state, ping
        | KeepAliveMode.Events ->
            match state.Open with
            | ValueSome(struct (index, KeepAliveBlock.Thinking)) -> state, delta index "thinking_delta" "thinking"
            | ValueSome(struct (index, KeepAliveBlock.Text)) -> state, delta index "text_delta" "text"
            | ValueSome(struct (_, KeepAliveBlock.Other)) -> state, ping
            | ValueNone ->
                // no block open: one of the relay's own, empty; the upstream's later blocks move up by one
                let index = state.NextSource + state.Shift

                {
                    state with
                        Own = ValueSome index
                        Open = ValueSome(struct (index, KeepAliveBlock.Thinking))
                        Shift = state.Shift + 1
                },
                Array.concat [
                    event
                        "content_block_start"
                        $"{{\"type\":\"content_block_start\",\"index\":%d{index},\"content_block\":{{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}}}"
                    delta index "thinking_delta" "thinking"
                ]
