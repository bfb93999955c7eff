namespace CcRelay.Core

open System
open System.Text

/// One server-sent event (WHATWG HTML §9.2): the fields a client sees after parsing.
type SseEvent = {
    /// The `event:` field; None means the default type `message`.
    Event: string option
    /// The `data:` lines joined with `\n`.
    Data: string
    /// The `id:` field, if the event set one.
    Id: string option
    /// The `retry:` field in milliseconds, if present and valid.
    Retry: int option
}

/// What a framed event means to the relay, read from its `event:` line without allocating.
[<RequireQualifiedAccess>]
type FrameKind =
    | MessageStart
    | ContentBlockStart
    | MessageDelta
    | MessageStop
    | Ping
    | Error
    /// Any other named event (content deltas, unknown future events).
    | Other
    /// A frame with no `event:` line (comments, keep-alive blank lines).
    | Unnamed

/// SSE framing and parsing. Framing finds event boundaries in raw bytes so the host can flush each event
/// the moment it is complete; parsing turns bytes into `SseEvent`s and is chunking-independent.
[<RequireQualifiedAccess>]
module Sse =

    [<Literal>]
    let private Cr = 13uy

    [<Literal>]
    let private Lf = 10uy

    /// The offset just past the first complete event in `buffer` (its terminating blank line included),
    /// or -1 when the buffer holds no complete event yet. Accepts `\n`, `\r\n` and `\r` line ends.
    /// A `\r\n` split across two reads ends the event at the `\r`; the stray `\n` then frames as a
    /// blank line of its own, which every SSE parser ignores.
    let findEventEnd (buffer: ReadOnlySpan<byte>) : int =
        let mutable i = 0
        let mutable lineEmpty = true
        let mutable result = -1

        while result < 0 && i < buffer.Length do
            let b = buffer[i]

            if b = Lf || b = Cr then
                // a CR followed by LF is one line end: consume both
                let next = i + 1

                let ending =
                    if b = Cr && next < buffer.Length && buffer[next] = Lf then
                        next + 1
                    else
                        next

                if lineEmpty then result <- ending else lineEmpty <- true
                i <- ending
            else
                lineEmpty <- false
                i <- i + 1

        result

    let private lineEnd (frame: ReadOnlySpan<byte>) : int =
        let i = frame.IndexOfAny(Cr, Lf)
        if i < 0 then frame.Length else i

    // NOTE: a byte-string literal (`"ping"B`) builds a new array every time it is evaluated; `frameKind` runs
    // once per relayed event, so its names are built once here (an array converts to a span for free).
    let private eventField: byte array = "event:"B
    let private messageStartName: byte array = "message_start"B
    let private contentBlockStartName: byte array = "content_block_start"B
    let private messageDeltaName: byte array = "message_delta"B
    let private messageStopName: byte array = "message_stop"B
    let private pingName: byte array = "ping"B
    let private errorName: byte array = "error"B

    /// Classifies a framed event by its `event:` line. Only the first line is inspected, which is where
    /// Anthropic (and every SSE writer the relay speaks to) puts it.
    let frameKind (frame: ReadOnlySpan<byte>) : FrameKind =
        if not (frame.StartsWith(ReadOnlySpan eventField)) then
            FrameKind.Unnamed
        else
            let line = frame.Slice(6, lineEnd frame - 6)

            let name =
                if line.Length > 0 && line[0] = 32uy then
                    line.Slice 1
                else
                    line

            if name.SequenceEqual(ReadOnlySpan messageStartName) then
                FrameKind.MessageStart
            elif name.SequenceEqual(ReadOnlySpan contentBlockStartName) then
                FrameKind.ContentBlockStart
            elif name.SequenceEqual(ReadOnlySpan messageDeltaName) then
                FrameKind.MessageDelta
            elif name.SequenceEqual(ReadOnlySpan messageStopName) then
                FrameKind.MessageStop
            elif name.SequenceEqual(ReadOnlySpan pingName) then
                FrameKind.Ping
            elif name.SequenceEqual(ReadOnlySpan errorName) then
                FrameKind.Error
            else
                FrameKind.Other


    /// Whether a frame of this kind says how the stream goes. The relay reads past the others before it commits
    /// an answer, so that an `error` event that comes before any content — first, or right after
    /// `message_start`, as Anthropic's overloaded errors often do — can still fail over.
    let decidesStream (kind: FrameKind) : bool =
        match kind with
        | FrameKind.Ping
        | FrameKind.Unnamed
        | FrameKind.MessageStart -> false
        | FrameKind.ContentBlockStart
        | FrameKind.MessageDelta
        | FrameKind.MessageStop
        | FrameKind.Error
        | FrameKind.Other -> true

    /// Formats one event. Multi-line data becomes several `data:` lines (`\r\n`, `\r` and `\n` all count
    /// as breaks), so `parse (format e) = [e]` for every event whose data uses `\n` breaks.
    /// Throws `ArgumentException` for what no parser would read back: a line break in `event` or `id`,
    /// a NUL in `id`, a negative `retry`.
    let format (event: SseEvent) : string =
        let noBreaks (field: string) (value: string) =
            if value.IndexOfAny([| '\r'; '\n' |]) >= 0 then
                invalidArg field $"SSE field '%s{field}' must not contain a line break"

        let sb = StringBuilder()

        match event.Event with
        | Some name ->
            noBreaks "event" name
            sb.Append("event: ").Append(name).Append('\n') |> ignore
        | None -> ()

        match event.Id with
        | Some id ->
            noBreaks "id" id

            if id.Contains '\000' then
                invalidArg "id" "SSE field 'id' must not contain NUL"

            sb.Append("id: ").Append(id).Append('\n') |> ignore
        | None -> ()

        match event.Retry with
        | Some ms when ms < 0 -> invalidArg "retry" "SSE field 'retry' must not be negative"
        | Some ms -> sb.Append("retry: ").Append(ms).Append('\n') |> ignore
        | None -> ()

        for line in event.Data.Replace("\r\n", "\n").Split([| '\n'; '\r' |]) do
            sb.Append("data: ").Append(line).Append('\n') |> ignore

        sb.Append('\n').ToString()

    /// Incremental parser state. Feed it bytes in any chunking; it yields the same events.
    type Parser = private {
        Line: byte array
        SkipLf: bool
        EventType: string option
        Data: string option
        Id: string option
        Retry: int option
        LastId: string option
    }

    /// A parser at the start of a stream.
    let initial: Parser = {
        Line = Array.empty
        SkipLf = false
        EventType = None
        Data = None
        Id = None
        Retry = None
        LastId = None
    }

    let private processLine (state: Parser) (line: string) (emit: SseEvent -> unit) : Parser =
        if line.Length = 0 then
            // dispatch (WHATWG: an event with no data lines is dropped)
            match state.Data with
            | Some text ->
                let text =
                    if text.EndsWith '\n' then
                        text.Substring(0, text.Length - 1)
                    else
                        text

                emit {
                    Event = state.EventType
                    Data = text
                    Id = state.Id
                    Retry = state.Retry
                }
            | None -> ()

            {
                state with
                    EventType = None
                    Data = None
                    Id = None
                    Retry = None
            }
        elif line[0] = ':' then
            state
        else
            let colon = line.IndexOf ':'

            let field, value =
                if colon < 0 then
                    line, ""
                else
                    let value = line.Substring(colon + 1)
                    line.Substring(0, colon), (if value.StartsWith ' ' then value.Substring 1 else value)

            match field with
            | "event" -> { state with EventType = Some value }
            | "data" ->
                let data = defaultArg state.Data ""

                {
                    state with
                        Data = Some(data + value + "\n")
                }
            | "id" when not (value.Contains '\000') -> {
                state with
                    Id = Some value
                    LastId = Some value
              }
            | "retry" ->
                match
                    Int32.TryParse(value, Globalization.NumberStyles.None, Globalization.CultureInfo.InvariantCulture)
                with
                | true, ms -> { state with Retry = Some ms }
                | _ -> state
            | _ -> state

    /// Feeds a chunk; returns the new state and the events completed by it, in order.
    let feed (state: Parser) (chunk: ReadOnlySpan<byte>) : Parser * SseEvent list =
        let events = ResizeArray<SseEvent>()
        let mutable state = state
        let mutable line = ResizeArray<byte>(state.Line)
        let mutable skipLf = state.SkipLf

        for i in 0 .. chunk.Length - 1 do
            let b = chunk[i]

            if skipLf && b = Lf then
                skipLf <- false
            else
                skipLf <- false

                if b = Lf || b = Cr then
                    skipLf <- (b = Cr)
                    let text = Encoding.UTF8.GetString(line.ToArray())
                    line.Clear()
                    state <- processLine state text events.Add
                else
                    line.Add b

        {
            state with
                Line = line.ToArray()
                SkipLf = skipLf
        },
        List.ofSeq events

    /// True when the parser holds a started but unfinished event (its stream was cut mid-event):
    /// an unterminated line, or any field (`event`, `data`, `id`, `retry`) read since the last blank line.
    let hasPartialEvent (state: Parser) : bool =
        state.Line.Length > 0
        || state.Data.IsSome
        || state.EventType.IsSome
        || state.Id.IsSome
        || state.Retry.IsSome

    /// Parses a complete byte sequence.
    let parse (bytes: ReadOnlySpan<byte>) : SseEvent list = feed initial bytes |> snd
