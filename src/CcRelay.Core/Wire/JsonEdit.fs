namespace CcRelay.Core

open System
open System.Text.Encodings.Web
open System.Text.Json

/// Byte edits of a top-level JSON object that never re-serialise the rest: members are removed and
/// added, every other byte (whitespace, escapes, number spellings, member order) is kept as it was.
[<RequireQualifiedAccess>]
module JsonEdit =

    let private readerOptions =
        JsonReaderOptions(CommentHandling = JsonCommentHandling.Disallow, AllowTrailingCommas = false, MaxDepth = 512)

    /// One top-level member: its (unescaped) name and its byte span, from the name's opening quote to the
    /// end of its value.
    [<Struct>]
    type private Member = { Name: string; Start: int; Stop: int }

    /// The top-level members of an object, the index of its `{` and of its `}`; Error when the body is not
    /// one JSON object (trailing bytes other than whitespace included).
    let private members (body: ReadOnlySpan<byte>) : Result<struct (Member list * int * int), string> =
        let mutable reader = Utf8JsonReader(body, readerOptions)
        let found = ResizeArray<Member>()
        let mutable openAt = -1
        let mutable closeAt = -1
        let mutable error: string option = None

        try
            if not (reader.Read()) then
                error <- Some "the body is empty"
            elif reader.TokenType <> JsonTokenType.StartObject then
                error <- Some "the body is not a JSON object"
            else
                openAt <- int reader.TokenStartIndex

                while closeAt < 0 && reader.Read() do
                    if reader.TokenType = JsonTokenType.PropertyName then
                        let start = int reader.TokenStartIndex
                        let name = reader.GetString() |> Option.ofObj |> Option.defaultValue ""
                        reader.Read() |> ignore

                        if
                            reader.TokenType = JsonTokenType.StartObject
                            || reader.TokenType = JsonTokenType.StartArray
                        then
                            reader.Skip()

                        found.Add {
                            Name = name
                            Start = start
                            Stop = int reader.BytesConsumed
                        }
                    elif reader.TokenType = JsonTokenType.EndObject then
                        closeAt <- int reader.TokenStartIndex

                // only whitespace may follow the object (the reader throws on anything else)
                if closeAt >= 0 && reader.Read() then
                    error <- Some "the body has bytes after the JSON object"
        with
        | :? JsonException as e -> error <- Some $"the body is not valid JSON: %s{e.Message}"
        | :? InvalidOperationException as e -> error <- Some $"the body is not valid JSON: %s{e.Message}"

        match error with
        | Some e -> Error e
        | None when closeAt < 0 -> Error "the body is not valid JSON: the object is not closed"
        | None when not (Text.Unicode.Utf8.IsValid body) -> Error "the body is not valid UTF-8"
        | None -> Ok(struct (List.ofSeq found, openAt, closeAt))

    /// `"name":` as UTF-8, the name JSON-escaped.
    let private nameBytes (name: string) : byte array =
        let encoded =
            JsonEncodedText.Encode(name, JavaScriptEncoder.UnsafeRelaxedJsonEscaping).EncodedUtf8Bytes

        let result = Array.zeroCreate<byte>(encoded.Length + 3)
        result[0] <- byte '"'
        encoded.CopyTo(result.AsSpan(1))
        result[encoded.Length + 1] <- byte '"'
        result[encoded.Length + 2] <- byte ':'
        result

    /// The body with the top-level members named in `remove` taken out (every occurrence, with the comma
    /// that separated each, so the result is valid JSON whichever position they held) and the members of
    /// `prepend` (name, raw JSON value) inserted right after the opening `{`, in the given order. Every other
    /// byte is kept exactly. Also returns the names actually removed (each once, in body order).
    /// Precondition: each prepended value is one valid JSON value; it is copied as it is.
    /// Error when the body is not a single JSON object in valid UTF-8.
    let edit
        (body: ReadOnlySpan<byte>)
        (remove: string list)
        (prepend: (string * byte array) list)
        : Result<byte array * string list, string> =
        match members body with
        | Error e -> Error e
        | Ok(struct (found, openAt, closeAt)) ->
            let found = Array.ofList found
            let n = found.Length
            let removed = found |> Array.map (fun m -> List.contains m.Name remove)

            // The interior as segments: gap 0 (after '{'), member 0, gap 1 (the separator, with its comma),
            // member 1, …, member n-1, gap n (before '}'). Segment 2i+1 is member i, segment 2i its leading gap.
            let segmentStart (k: int) =
                if k = 0 then openAt + 1
                elif k % 2 = 1 then found[k / 2].Start
                else found[k / 2 - 1].Stop

            let segmentStop (k: int) =
                if k = 2 * n then closeAt
                elif k % 2 = 1 then found[k / 2].Stop
                else found[k / 2].Start

            let keep = Array.create (2 * n + 1) true

            // a removed member goes with the separator after it; the last member, with the one before it
            // (the separator that follows the last kept member, since those in between went already)
            for i in 0 .. n - 1 do
                if removed[i] then
                    keep[2 * i + 1] <- false

                    if i < n - 1 then
                        keep[2 * i + 2] <- false

            if n > 0 && removed[n - 1] then
                let mutable k = 2 * n - 2

                while k > 0 && not keep[k] do
                    k <- k - 2

                if k > 0 then
                    keep[k] <- false

            let anyKept = removed |> Array.exists not

            let added =
                prepend
                |> List.mapi (fun i (name, value) ->
                    let separator = if i < prepend.Length - 1 || anyKept then 1 else 0
                    nameBytes name, value, separator)

            let addedLength =
                added
                |> List.sumBy (fun (name, value, separator) -> name.Length + value.Length + separator)

            let mutable keptLength = 0

            for k in 0 .. 2 * n do
                if keep[k] then
                    keptLength <- keptLength + segmentStop k - segmentStart k

            let result =
                Array.zeroCreate<byte>(openAt + 1 + addedLength + keptLength + body.Length - closeAt)

            body.Slice(0, openAt + 1).CopyTo(result.AsSpan())
            let mutable at = openAt + 1

            for name, value, separator in added do
                name.CopyTo(result.AsSpan(at))
                at <- at + name.Length
                value.CopyTo(result.AsSpan(at))
                at <- at + value.Length

                if separator = 1 then
                    result[at] <- byte ','
                    at <- at + 1

            for k in 0 .. 2 * n do
                if keep[k] then
                    let segment = body.Slice(segmentStart k, segmentStop k - segmentStart k)
                    segment.CopyTo(result.AsSpan(at))
                    at <- at + segment.Length

            body.Slice(closeAt).CopyTo(result.AsSpan(at))

            let removedNames =
                found
                |> Array.filter (fun m -> List.contains m.Name remove)
                |> Array.map _.Name
                |> Array.distinct
                |> List.ofArray

            Ok(result, removedNames)
