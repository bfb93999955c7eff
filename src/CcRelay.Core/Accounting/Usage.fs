namespace CcRelay.Core

open System
open System.Buffers
open System.Text.Json

/// Token counts of one answer, with Anthropic's meaning (protocols.md §1.5): `InputTokens` excludes the
/// cached part of the prompt, so the whole prompt is `InputTokens + CacheReadTokens + CacheWriteTokens`.
type Usage = {
    /// `input_tokens`: prompt tokens read neither from nor into the cache.
    InputTokens: int64
    /// `output_tokens`.
    OutputTokens: int64
    /// `cache_read_input_tokens`: prompt tokens served from the cache.
    CacheReadTokens: int64
    /// `cache_creation_input_tokens`: prompt tokens written to the cache (5-minute and 1-hour writes alike).
    CacheWriteTokens: int64
} with

    /// No tokens.
    static member Zero: Usage = {
        InputTokens = 0L
        OutputTokens = 0L
        CacheReadTokens = 0L
        CacheWriteTokens = 0L
    }

    /// Field-wise sum (totals over several answers; never for the usages of one stream, which are cumulative).
    static member (+)(a: Usage, b: Usage) : Usage = {
        InputTokens = a.InputTokens + b.InputTokens
        OutputTokens = a.OutputTokens + b.OutputTokens
        CacheReadTokens = a.CacheReadTokens + b.CacheReadTokens
        CacheWriteTokens = a.CacheWriteTokens + b.CacheWriteTokens
    }

/// What an answer (streamed or not) says about itself: what logs, metrics and cost need.
type AnswerUsage = {
    /// The answer's `model`: the id the upstream says it ran, which may differ from the one requested.
    Model: string option
    /// The answer's token counts; None when it carried no `usage` object at all (an error, or an upstream
    /// that does not report usage). None is "unknown", never zero.
    Usage: Usage option
    /// The last `stop_reason` (`end_turn`, `tool_use`, `max_tokens`, …).
    StopReason: string option
    /// `error.type` of an error body, or of the first SSE `error` event.
    ErrorType: string option
}

/// What the SSE usage tap has read so far from one Anthropic event stream. Build it with `Usage.emptyTap`,
/// feed it every framed event with `Usage.feed`, read it at any time.
type UsageTap = {
    /// `message_start.message.model`.
    Model: string option
    /// `message_start.message.usage`, field by field overridden by every later `message_delta.usage`
    /// (usage in `message_delta` is cumulative: the last value wins, values are never summed).
    /// None until some usage object was read.
    Usage: Usage option
    /// The last `message_delta.delta.stop_reason`.
    StopReason: string option
    /// A `content_block_start` was seen: content has reached the client.
    SawContent: bool
    /// A `message_stop` was seen.
    SawMessageStop: bool
    /// `error.type` of the first `error` event.
    ErrorType: string option
    /// The first `error` event came before any content block: the answer carries nothing useful, so the
    /// error says all there is to say about the attempt (an overload, a rate limit…).
    ErrorBeforeContent: bool
}

/// Which usage fields one `usage` object carried; an absent or null field leaves the earlier value.
[<Struct>]
type internal UsagePatch = {
    Seen: bool
    PatchInput: int64 voption
    PatchOutput: int64 voption
    PatchCacheRead: int64 voption
    PatchCacheWrite: int64 voption
}

/// The fields one JSON document yielded, collected by `Usage`'s single reader.
[<Struct; NoEquality; NoComparison>]
type internal FoundFields = {
    mutable FoundModel: string option
    mutable FoundUsage: UsagePatch
    mutable FoundStopReason: string option
    mutable FoundErrorType: string option
}

/// Token usage of answers: the SSE tap for streams, `ofJson` for plain answers.
///
/// NOTE: the tap runs on the relay's hot path, once per framed event. `Sse.frameKind` reads only the
/// `event:` line, so a content delta costs one short byte comparison chain and allocates nothing; JSON is
/// read only for `message_start`, `message_delta` and `error`, a handful of events per stream.
[<RequireQualifiedAccess>]
module Usage =

    /// No tokens.
    let zero: Usage = Usage.Zero

    /// Every token the answer involved: prompt (fresh, cache read, cache write) and output.
    let total (usage: Usage) : int64 =
        usage.InputTokens
        + usage.OutputTokens
        + usage.CacheReadTokens
        + usage.CacheWriteTokens

    /// The whole prompt: `InputTokens + CacheReadTokens + CacheWriteTokens`.
    let promptTokens (usage: Usage) : int64 =
        usage.InputTokens + usage.CacheReadTokens + usage.CacheWriteTokens

    /// The tap before the first event.
    let emptyTap: UsageTap = {
        Model = None
        Usage = None
        StopReason = None
        SawContent = false
        SawMessageStop = false
        ErrorType = None
        ErrorBeforeContent = false
    }

    // ---------------------------
    // JSON
    // ---------------------------

    let private readerOptions =
        JsonReaderOptions(CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 256)

    // Property names, built once (a `"…"B` literal is a new array at every evaluation).
    let private cacheCreationInputTokensName: byte array =
        "cache_creation_input_tokens"B

    let private cacheReadInputTokensName: byte array = "cache_read_input_tokens"B
    let private dataField: byte array = "data:"B
    let private deltaName: byte array = "delta"B
    let private errorName: byte array = "error"B
    let private inputTokensName: byte array = "input_tokens"B
    let private messageName: byte array = "message"B
    let private modelName: byte array = "model"B
    let private outputTokensName: byte array = "output_tokens"B
    let private stopReasonName: byte array = "stop_reason"B
    let private typeName: byte array = "type"B
    let private usageName: byte array = "usage"B

    let private noPatch: UsagePatch = {
        Seen = false
        PatchInput = ValueNone
        PatchOutput = ValueNone
        PatchCacheRead = ValueNone
        PatchCacheWrite = ValueNone
    }

    /// Known wire values, returned as these instances so that reading them allocates nothing.
    let private stopReasons: string array = [|
        "end_turn"
        "tool_use"
        "max_tokens"
        "stop_sequence"
        "pause_turn"
        "refusal"
        "model_context_window_exceeded"
        "compaction"
    |]

    let private errorTypes: string array = [|
        "overloaded_error"
        "api_error"
        "rate_limit_error"
        "invalid_request_error"
        "authentication_error"
        "permission_error"
        "not_found_error"
        "request_too_large"
        "timeout_error"
        "billing_error"
    |]

    /// The string value under the reader, as one of `known` when it is one. None for a non-string.
    let private readText (reader: byref<Utf8JsonReader>) (known: string array) : string option =
        if reader.TokenType <> JsonTokenType.String then
            None
        else
            let mutable found = -1
            let mutable i = 0

            while found < 0 && i < known.Length do
                if reader.ValueTextEquals(known[i]) then
                    found <- i

                i <- i + 1

            if found >= 0 then
                Some known[found]
            else
                reader.GetString() |> Option.ofObj

    /// A token count: a non-negative integer; anything else (null, a fraction, a string) counts as absent.
    let private readCount (reader: byref<Utf8JsonReader>) : int64 voption =
        match reader.TokenType with
        | JsonTokenType.Number ->
            match reader.TryGetInt64() with
            | true, value when value >= 0L -> ValueSome value
            | _ -> ValueNone
        | _ -> ValueNone

    /// Skips the value under the reader when it is a container.
    let private skipValue (reader: byref<Utf8JsonReader>) : unit =
        if
            reader.TokenType = JsonTokenType.StartObject
            || reader.TokenType = JsonTokenType.StartArray
        then
            reader.Skip()

    /// Reads the `usage` object the reader is on (its StartObject) up to its EndObject.
    let private readUsage (reader: byref<Utf8JsonReader>) : UsagePatch =
        let depth = reader.CurrentDepth
        let mutable patch = { noPatch with Seen = true }
        let mutable reading = true

        while reading && reader.Read() do
            if reader.TokenType = JsonTokenType.EndObject && reader.CurrentDepth = depth then
                reading <- false
            elif reader.TokenType = JsonTokenType.PropertyName then
                if reader.ValueTextEquals(ReadOnlySpan inputTokensName) then
                    reader.Read() |> ignore
                    let count = readCount &reader

                    if count.IsSome then
                        patch <- { patch with PatchInput = count }
                elif reader.ValueTextEquals(ReadOnlySpan outputTokensName) then
                    reader.Read() |> ignore
                    let count = readCount &reader

                    if count.IsSome then
                        patch <- { patch with PatchOutput = count }
                elif reader.ValueTextEquals(ReadOnlySpan cacheReadInputTokensName) then
                    reader.Read() |> ignore
                    let count = readCount &reader

                    if count.IsSome then
                        patch <- { patch with PatchCacheRead = count }
                elif reader.ValueTextEquals(ReadOnlySpan cacheCreationInputTokensName) then
                    reader.Read() |> ignore
                    let count = readCount &reader

                    if count.IsSome then
                        patch <- { patch with PatchCacheWrite = count }
                else
                    // `cache_creation`, `server_tool_use`, `service_tier`, …
                    reader.Read() |> ignore

                skipValue &reader

        patch

    /// Reads the object the reader is on (its StartObject). `message` (message_start) and `delta`
    /// (message_delta) are read for the same fields; `error` for its `type`; other values are skipped, so
    /// `content` (and any `usage`-looking key inside it) is never looked at.
    let rec private readObject (reader: byref<Utf8JsonReader>) (found: byref<FoundFields>) : unit =
        let depth = reader.CurrentDepth
        let mutable reading = true

        while reading && reader.Read() do
            if reader.TokenType = JsonTokenType.EndObject && reader.CurrentDepth = depth then
                reading <- false
            elif reader.TokenType = JsonTokenType.PropertyName then
                if reader.ValueTextEquals(ReadOnlySpan usageName) then
                    reader.Read() |> ignore

                    if reader.TokenType = JsonTokenType.StartObject then
                        found.FoundUsage <- readUsage &reader
                elif reader.ValueTextEquals(ReadOnlySpan modelName) then
                    reader.Read() |> ignore

                    if found.FoundModel.IsNone then
                        found.FoundModel <- readText &reader Array.empty
                elif reader.ValueTextEquals(ReadOnlySpan stopReasonName) then
                    reader.Read() |> ignore
                    let reason = readText &reader stopReasons

                    if reason.IsSome then
                        found.FoundStopReason <- reason
                elif
                    reader.ValueTextEquals(ReadOnlySpan messageName)
                    || reader.ValueTextEquals(ReadOnlySpan deltaName)
                then
                    reader.Read() |> ignore

                    if reader.TokenType = JsonTokenType.StartObject then
                        readObject &reader &found
                elif reader.ValueTextEquals(ReadOnlySpan errorName) then
                    reader.Read() |> ignore

                    if reader.TokenType = JsonTokenType.StartObject then
                        let errorDepth = reader.CurrentDepth
                        let mutable inError = true

                        while inError && reader.Read() do
                            if reader.TokenType = JsonTokenType.EndObject && reader.CurrentDepth = errorDepth then
                                inError <- false
                            elif reader.TokenType = JsonTokenType.PropertyName then
                                let isType = reader.ValueTextEquals(ReadOnlySpan typeName)
                                reader.Read() |> ignore

                                if isType && found.FoundErrorType.IsNone then
                                    found.FoundErrorType <- readText &reader errorTypes

                                skipValue &reader
                else
                    reader.Read() |> ignore

                skipValue &reader

    /// Reads one JSON document. Invalid JSON yields what was read before the problem: the tap observes,
    /// it never fails the relay.
    let private scan (json: ReadOnlySpan<byte>) : FoundFields =
        let mutable found: FoundFields = {
            FoundModel = None
            FoundUsage = noPatch
            FoundStopReason = None
            FoundErrorType = None
        }

        try
            let mutable reader = Utf8JsonReader(json, readerOptions)

            if reader.Read() && reader.TokenType = JsonTokenType.StartObject then
                readObject &reader &found
        with
        | :? JsonException -> ()
        // GetString on invalid UTF-8 or a lone surrogate escape
        | :? InvalidOperationException -> ()

        found

    /// `usage` with the fields the patch carries replaced; None stays None unless the patch saw a usage object.
    let private apply (patch: UsagePatch) (usage: Usage option) : Usage option =
        if not patch.Seen then
            usage
        else
            let usage = defaultArg usage zero

            Some {
                InputTokens = patch.PatchInput |> ValueOption.defaultValue usage.InputTokens
                OutputTokens = patch.PatchOutput |> ValueOption.defaultValue usage.OutputTokens
                CacheReadTokens = patch.PatchCacheRead |> ValueOption.defaultValue usage.CacheReadTokens
                CacheWriteTokens = patch.PatchCacheWrite |> ValueOption.defaultValue usage.CacheWriteTokens
            }

    // ---------------------------
    // SSE frames
    // ---------------------------

    [<Literal>]
    let private Cr = 13uy

    [<Literal>]
    let private Lf = 10uy

    /// The payload of a frame's `data:` lines (one optional space after the colon removed). One line, as
    /// every Anthropic event has, is a slice of the frame; several are joined with `\n` into a new array.
    let private frameData (frame: ReadOnlySpan<byte>) : ReadOnlySpan<byte> =
        let mutable position = 0
        let mutable firstStart = -1
        let mutable firstLength = 0
        let mutable joined: ArrayBufferWriter<byte> option = None

        while position < frame.Length do
            let rest = frame.Slice position
            let found = rest.IndexOfAny(Cr, Lf)
            let lineLength = if found < 0 then rest.Length else found
            let line = rest.Slice(0, lineLength)

            if line.StartsWith(ReadOnlySpan dataField) then
                let valueStart = if line.Length > 5 && line[5] = 32uy then 6 else 5

                let value = line.Slice valueStart

                match joined with
                | _ when firstStart < 0 ->
                    firstStart <- position + valueStart
                    firstLength <- value.Length
                | None ->
                    let writer = ArrayBufferWriter<byte>(firstLength + value.Length + 1)
                    writer.Write(frame.Slice(firstStart, firstLength))
                    writer.Write(ReadOnlySpan [| Lf |])
                    writer.Write value
                    joined <- Some writer
                | Some writer ->
                    writer.Write(ReadOnlySpan [| Lf |])
                    writer.Write value

            position <- position + lineLength

            if position < frame.Length then
                position <-
                    if frame[position] = Cr && position + 1 < frame.Length && frame[position + 1] = Lf then
                        position + 2
                    else
                        position + 1

        match joined with
        | Some writer -> writer.WrittenSpan
        | None when firstStart >= 0 -> frame.Slice(firstStart, firstLength)
        | None -> ReadOnlySpan.Empty

    /// Feeds one complete framed event (as `Sse.findEventEnd` cuts them, terminating blank line included)
    /// and returns the new state. Events that carry no usage return `tap` itself: nothing is allocated
    /// for content deltas, pings or comments. Never throws.
    let feed (tap: UsageTap) (frame: ReadOnlySpan<byte>) : UsageTap =
        match Sse.frameKind frame with
        | FrameKind.MessageStart
        | FrameKind.MessageDelta ->
            let found = scan (frameData frame)

            if
                not found.FoundUsage.Seen
                && found.FoundStopReason.IsNone
                && found.FoundModel.IsNone
            then
                tap
            else
                {
                    tap with
                        Model = (if tap.Model.IsSome then tap.Model else found.FoundModel)
                        Usage = apply found.FoundUsage tap.Usage
                        StopReason =
                            (if found.FoundStopReason.IsSome then
                                 found.FoundStopReason
                             else
                                 tap.StopReason)
                }
        | FrameKind.ContentBlockStart ->
            if tap.SawContent then
                tap
            else
                { tap with SawContent = true }
        | FrameKind.MessageStop ->
            if tap.SawMessageStop then
                tap
            else
                { tap with SawMessageStop = true }
        | FrameKind.Error ->
            if tap.ErrorType.IsSome then
                tap
            else
                let found = scan (frameData frame)

                {
                    tap with
                        // an error event without a readable type is still an error
                        ErrorType = found.FoundErrorType |> Option.orElse (Some "error")
                        ErrorBeforeContent = not tap.SawContent
                }
        | FrameKind.Ping
        | FrameKind.Other
        | FrameKind.Unnamed -> tap

    /// What a finished (or cut) stream said about itself.
    let ofTap (tap: UsageTap) : AnswerUsage = {
        Model = tap.Model
        Usage = tap.Usage
        StopReason = tap.StopReason
        ErrorType = tap.ErrorType
    }

    /// Reads a non-streaming answer body (a `Message`, or an error envelope): its `model`, `usage`,
    /// `stop_reason` and `error.type`. Content is skipped unread. A body that is not JSON yields what was
    /// read before the problem (usually nothing). Never throws.
    let ofJson (body: ReadOnlySpan<byte>) : AnswerUsage =
        let found = scan body

        {
            Model = found.FoundModel
            Usage = apply found.FoundUsage None
            StopReason = found.FoundStopReason
            ErrorType = found.FoundErrorType
        }

/// The C#-facing surface of `Usage`.
type Usage with

    /// Every input token of the request (`Usage.promptTokens`).
    member this.PromptTokens: int64 = Usage.promptTokens this

/// The C#-facing surface of `UsageTap`: the host feeds a relayed stream's events through it.
type UsageTap with

    /// A tap that has seen nothing (`Usage.emptyTap`).
    static member Empty: UsageTap = Usage.emptyTap

    /// The tap after one SSE event (`Usage.feed`).
    member this.Feed(frame: ReadOnlySpan<byte>) : UsageTap = Usage.feed this frame

/// The C#-facing surface of `AnswerUsage`.
type AnswerUsage with

    /// What a stream's tap saw (`Usage.ofTap`).
    static member OfTap(tap: UsageTap) : AnswerUsage = Usage.ofTap tap

    /// What a JSON answer says (`Usage.ofJson`).
    static member OfJson(body: ReadOnlySpan<byte>) : AnswerUsage = Usage.ofJson body
