namespace CcRelay.Core

open System
open System.Text.Encodings.Web
open System.Text.Json

/// An Anthropic answer renamed to the model the client asked for: the answer's model string, and what it said before.
[<Struct>]
type RenamedAnswer = {
    /// The answer with only its model string replaced; every other byte as it came.
    Bytes: byte array
    /// The model the answer named before (what the upstream said).
    Was: string
}

/// Names the client's model in an Anthropic answer that names another one (a `model_mapping` target, a stage's
/// or a `provider,model` switch's model). Claude Code (2.1.197) leaves the thinking blocks of an answer whose model
/// differs from the one it asked for out of its next request, so a mapped provider's thinking would never come
/// back. The edit is a byte splice of the one string token: the thinking text and its signature stay byte-exact.
[<RequireQualifiedAccess>]
module AnswerModel =

    let private readerOptions = JsonReaderOptions(MaxDepth = 512)

    /// The span (start, length) of the string token of member `name` in the object reached by `path` from the
    /// root (`[]`: the root object itself), with its unescaped value; `ValueNone` when absent or not a string.
    let private find
        (json: ReadOnlySpan<byte>)
        (path: string list)
        (name: string)
        : struct (int * int * string) voption =
        let mutable reader = Utf8JsonReader(json, readerOptions)
        let target = List.length path + 1
        // how much of `path` the objects entered so far follow
        let mutable matched = 0
        let mutable pending: string voption = ValueNone
        let mutable result = ValueNone
        let mutable go = true

        try
            while go && reader.Read() do
                match reader.TokenType with
                | JsonTokenType.PropertyName ->
                    // a property of the object at depth `reader.CurrentDepth - 1`
                    pending <-
                        if reader.CurrentDepth = matched + 1 then
                            ValueSome(nonNull (reader.GetString()))
                        else
                            ValueNone
                | JsonTokenType.StartObject when
                    reader.CurrentDepth = matched + 1
                    && matched < target - 1
                    && pending = ValueSome(List.item matched path)
                    ->
                    matched <- matched + 1
                    pending <- ValueNone
                | JsonTokenType.String when
                    matched = target - 1 && reader.CurrentDepth = target && pending = ValueSome name
                    ->
                    let start = int reader.TokenStartIndex
                    // the raw token: quotes included, escapes as they came
                    result <- ValueSome(struct (start, reader.ValueSpan.Length + 2, nonNull (reader.GetString())))
                    go <- false
                | JsonTokenType.EndObject when reader.CurrentDepth <= matched -> go <- false // left the object: no such member
                | _ -> pending <- ValueNone
        with :? JsonException ->
            result <- ValueNone

        result

    let private splice (json: ReadOnlySpan<byte>) (start: int) (length: int) (model: string) : byte array =
        let encoded =
            JsonEncodedText.Encode(model, JavaScriptEncoder.UnsafeRelaxedJsonEscaping).EncodedUtf8Bytes

        let result = Array.zeroCreate<byte>(json.Length - length + encoded.Length + 2)
        json.Slice(0, start).CopyTo(result.AsSpan())
        result[start] <- byte '"'
        encoded.CopyTo(result.AsSpan(start + 1))
        result[start + 1 + encoded.Length] <- byte '"'
        json.Slice(start + length).CopyTo(result.AsSpan(start + encoded.Length + 2))
        result

    /// A JSON answer (a `Message`) naming `model` in its top-level `model`; `ValueNone` when it already does, names
    /// none, or is not JSON.
    let ofJson (json: ReadOnlySpan<byte>) (model: string) : RenamedAnswer voption =
        match find json [] "model" with
        | ValueSome(struct (start, length, was)) when was <> model ->
            ValueSome {
                Bytes = splice json start length model
                Was = was
            }
        | _ -> ValueNone

    /// The first `data:` line's JSON of an SSE frame: (its start, its length) within the frame.
    let private dataOf (frame: ReadOnlySpan<byte>) : struct (int * int) voption =
        let mutable at = 0
        let mutable result = ValueNone
        let mutable go = true

        while go && at < frame.Length do
            let rest = frame.Slice at
            let eol = rest.IndexOfAny(13uy, 10uy)
            let line = if eol < 0 then rest else rest.Slice(0, eol)

            if line.StartsWith("data:"B) then
                let skip = if line.Length > 5 && line[5] = byte ' ' then 6 else 5
                result <- ValueSome(struct (at + skip, line.Length - skip))
                go <- false
            elif eol < 0 then
                go <- false
            else
                at <- at + eol + 1

        result

    /// The SSE stream's beginning (whole events; a partial one at its end is kept as it is) with the first
    /// `message_start` naming `model` in its `message.model`; `ValueNone` when it already does, or no
    /// `message_start` with a model is among the whole events.
    let ofStreamStart (sse: ReadOnlySpan<byte>) (model: string) : RenamedAnswer voption =
        let mutable at = 0
        let mutable result = ValueNone
        let mutable go = true

        while go do
            let end' = Sse.findEventEnd (sse.Slice at)

            if end' < 0 then
                go <- false
            else
                let frame = sse.Slice(at, end')

                match Sse.frameKind frame with
                | FrameKind.MessageStart ->
                    go <- false

                    match dataOf frame with
                    | ValueSome(struct (dataStart, dataLength)) ->
                        let data = frame.Slice(dataStart, dataLength)

                        match find data [ "message" ] "model" with
                        | ValueSome(struct (start, length, was)) when was <> model ->
                            result <-
                                ValueSome {
                                    Bytes = splice sse (at + dataStart + start) length model
                                    Was = was
                                }
                        | _ -> ()
                    | ValueNone -> ()
                | FrameKind.Ping
                | FrameKind.Unnamed -> at <- at + end'
                | _ -> go <- false // content before message_start: not an answer to rename

        result

    /// Whether the answer to a request for `requested` is renamed: when the attempt sent another model (`sent`: a
    /// stage's or a `provider,model` switch's, or a pipeline's), or the provider's `mapping` maps the sent model to
    /// another name. A cloud's own id for the same model (Vertex `@`, Bedrock's) is not a rename.
    let renames (requested: string) (sent: string) (mapping: Map<string, string>) : bool =
        requested.Length > 0
        && requested <> "-"
        && (not (String.Equals(requested, sent, StringComparison.Ordinal))
            || (match Map.tryFind sent mapping with
                | Some mapped -> not (String.Equals(mapped, sent, StringComparison.Ordinal))
                | None -> false))
