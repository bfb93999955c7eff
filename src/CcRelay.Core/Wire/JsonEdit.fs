namespace CcRelay.Core

open System
open System.Numerics
open System.Runtime.Intrinsics
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

    /// The bytes that end a scalar value (a number or a literal) inside an object or array.
    let private scalarEnds =
        Buffers.SearchValues.Create(ReadOnlySpan<byte>(",}] \t\r\n"B))

    /// The index of the closing quote of the string whose contents start at `from`; -1 when it is not closed.
    let private stringEnd (body: ReadOnlySpan<byte>) (from: int) : int =
        let mutable at = from
        let mutable stop = -2

        while stop = -2 do
            match body.Slice(at).IndexOfAny('"'B, '\\'B) with
            | -1 -> stop <- -1
            | k when body[at + k] = '\\'B -> at <- at + k + 2
            | k -> stop <- at + k

            if stop = -2 && at >= body.Length then
                stop <- -1

        stop

    let private isWhitespace (b: byte) =
        b = ' 'B || b = '\t'B || b = '\r'B || b = '\n'B

    let private skipWhitespace (body: ReadOnlySpan<byte>) (from: int) : int =
        let mutable at = from

        while at < body.Length && isWhitespace body[at] do
            at <- at + 1

        at

    /// The end (exclusive) of the container opened at `from` (`{` or `[`), byte by byte from `at` with the state
    /// the vector loop left: `depth` open containers, inside a string or not, the next byte escaped or not.
    let private containerEndScalar
        (body: ReadOnlySpan<byte>)
        (at: int)
        (depth: int)
        (inString: bool)
        (escaped: bool)
        : int =
        let mutable at = at
        let mutable depth = depth
        let mutable inString = inString
        let mutable escaped = escaped
        let mutable stop = -1

        while stop < 0 && at < body.Length do
            let b = body[at]

            if escaped then
                escaped <- false
            elif inString then
                if b = '\\'B then
                    escaped <- true
                elif b = '"'B then
                    inString <- false
            elif b = '"'B then
                inString <- true
            elif b = '{'B || b = '['B then
                depth <- depth + 1
            elif b = '}'B || b = ']'B then
                depth <- depth - 1

                if depth = 0 then
                    stop <- at + 1

            at <- at + 1

        stop

    /// XOR of every bit with all the bits below it: bit i is the parity of bits 0..i.
    let inline private prefixXor (bits: uint32) : uint32 =
        let mutable x = bits
        x <- x ^^^ (x <<< 1)
        x <- x ^^^ (x <<< 2)
        x <- x ^^^ (x <<< 4)
        x <- x ^^^ (x <<< 8)
        x ^^^ (x <<< 16)

    /// The end (exclusive) of the container opened at `from` (`{` or `[`); -1 when it is not closed. 32 bytes at a
    /// time (the way simdjson finds structure): per block, bit masks of quotes, backslashes and brackets; the bytes
    /// an odd run of backslashes escapes; the quotes left, whose running parity says which bytes are inside a string;
    /// the brackets outside strings, which alone move the depth. Most blocks of a request body hold no bracket
    /// outside a string and cost a dozen vector operations; a search for `"` then for its end cost two calls per
    /// string (a Claude Code request has hundreds). The tail, and hardware without 256-bit vectors, go byte by byte.
    let containerEnd (body: ReadOnlySpan<byte>) (from: int) : int =
        let mutable at = from + 1
        let mutable depth = 1
        let mutable inString = false
        // the first byte of the next block is escaped (an odd run of backslashes ended this one)
        let mutable carry = 0u
        let mutable stop = -1

        if Vector256.IsHardwareAccelerated then
            let quoteByte = Vector256.Create('"'B)
            let backslashByte = Vector256.Create('\\'B)
            let openBrace = Vector256.Create('{'B)
            let openBracket = Vector256.Create('['B)
            let closeBrace = Vector256.Create('}'B)
            let closeBracket = Vector256.Create(']'B)
            let evenBits = 0x55555555u

            while stop < 0 && at + 32 <= body.Length do
                let block = Vector256.Create<byte>(body.Slice(at, 32))
                let quotes = Vector256.Equals(block, quoteByte).ExtractMostSignificantBits()

                let opens =
                    (Vector256.Equals(block, openBrace) ||| Vector256.Equals(block, openBracket))
                        .ExtractMostSignificantBits()

                let closes =
                    (Vector256.Equals(block, closeBrace) ||| Vector256.Equals(block, closeBracket))
                        .ExtractMostSignificantBits()

                // the escaped bytes: every other byte after the start of a backslash run, the run's length decides
                let escaped =
                    let backslashes =
                        Vector256.Equals(block, backslashByte).ExtractMostSignificantBits()

                    if backslashes = 0u && carry = 0u then
                        0u
                    else
                        let backslashes = backslashes &&& ~~~carry
                        let followsEscape = (backslashes <<< 1) ||| carry
                        let oddStarts = backslashes &&& ~~~evenBits &&& ~~~followsEscape
                        let sum = uint64 oddStarts + uint64 backslashes
                        carry <- uint32 (sum >>> 32)
                        let invert = uint32 sum <<< 1
                        (evenBits ^^^ invert) &&& followsEscape

                let quotes = quotes &&& ~~~escaped
                let inside = prefixXor quotes ^^^ (if inString then 0xFFFFFFFFu else 0u)
                let mutable structural = (opens ||| closes) &&& ~~~inside

                while stop < 0 && structural <> 0u do
                    let i = BitOperations.TrailingZeroCount structural
                    structural <- structural &&& (structural - 1u)

                    if opens &&& (1u <<< i) <> 0u then
                        depth <- depth + 1
                    else
                        depth <- depth - 1

                        if depth = 0 then
                            stop <- at + i + 1

                if BitOperations.PopCount quotes &&& 1 = 1 then
                    inString <- not inString

                at <- at + 32

        if stop >= 0 then
            stop
        else
            containerEndScalar body at depth inString (carry <> 0u)

    /// The end (exclusive) of the value starting at `from`; -1 when it cannot be found.
    let private valueEnd (body: ReadOnlySpan<byte>) (from: int) : int =
        if from >= body.Length then
            -1
        else
            match body[from] with
            | '"'B ->
                match stringEnd body (from + 1) with
                | -1 -> -1
                | close -> close + 1
            | '{'B
            | '['B -> containerEnd body from
            | _ ->
                match body.Slice(from).IndexOfAny(scalarEnds) with
                | -1 -> body.Length
                | 0 -> -1
                | k -> from + k

    /// `members` for a body already known to be one valid JSON object (what `RequestFacts.inspect` checked), without
    /// a tokenizer: strings are skipped by a vectorised search for `"` and `\`, containers by counting brackets.
    /// ValueNone when the bytes do not look like that, or a member name has an escape (then `members` reads them).
    let private membersOfValid (body: ReadOnlySpan<byte>) : struct (Member list * int * int) voption =
        let found = ResizeArray<Member>(12)
        let openAt = skipWhitespace body 0
        let mutable closeAt = -1
        let mutable ok = openAt < body.Length && body[openAt] = '{'B
        let mutable at = openAt + 1

        while ok && closeAt < 0 do
            at <- skipWhitespace body at

            if at >= body.Length then
                ok <- false
            elif body[at] = '}'B && found.Count = 0 then
                closeAt <- at
            elif body[at] <> '"'B then
                ok <- false
            else
                let start = at
                let close = stringEnd body (start + 1)

                if close < 0 || body.Slice(start + 1, close - start - 1).IndexOf('\\'B) >= 0 then
                    ok <- false
                else
                    let name = Text.Encoding.UTF8.GetString(body.Slice(start + 1, close - start - 1))
                    at <- skipWhitespace body (close + 1)

                    if at >= body.Length || body[at] <> ':'B then
                        ok <- false
                    else
                        let stop = valueEnd body (skipWhitespace body (at + 1))

                        if stop < 0 then
                            ok <- false
                        else
                            found.Add {
                                Name = name
                                Start = start
                                Stop = stop
                            }

                            at <- skipWhitespace body stop

                            if at >= body.Length then ok <- false
                            elif body[at] = ','B then at <- at + 1
                            elif body[at] = '}'B then closeAt <- at
                            else ok <- false

        if ok && skipWhitespace body (closeAt + 1) = body.Length then
            ValueSome(struct (List.ofSeq found, openAt, closeAt))
        else
            ValueNone

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

    /// `edit` over the members a scan found (or its error).
    let private editMembers
        (body: ReadOnlySpan<byte>)
        (remove: string list)
        (prepend: (string * byte array) list)
        (scanned: Result<struct (Member list * int * int), string>)
        : Result<byte array * string list, string> =
        match scanned with
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
        editMembers body remove prepend (members body)

    /// `edit` of a body already validated as one JSON object in UTF-8 (a request `RequestFacts.inspect` accepted):
    /// the same result, found without validating the body again (a third of the work on a Claude Code request).
    /// A body that is not valid JSON is not refused here as `edit` would refuse it; what comes back for one is
    /// unspecified (an edit, or an error).
    let editValid
        (body: ReadOnlySpan<byte>)
        (remove: string list)
        (prepend: (string * byte array) list)
        : Result<byte array * string list, string> =
        match membersOfValid body with
        | ValueSome scanned -> editMembers body remove prepend (Ok scanned)
        | ValueNone -> editMembers body remove prepend (members body)
