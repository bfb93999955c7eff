namespace CcRelay.Core

open System
open System.Text.Json
open CcRelay.Core.JsonScan

/// One member of a JSON object, located in the body's bytes.
[<Struct>]
type JsonMember = {
    /// The member's (unescaped) name.
    Name: string
    /// Its depth: 1 for the top-level object's members.
    Depth: int
    /// The index of the name's opening quote.
    Start: int
    /// The index of the value's first byte.
    ValueStart: int
    /// One past the value's last byte.
    Stop: int
}

/// Byte-level edits of a JSON body that keep every byte outside the edited spans as it was (no
/// re-serialisation): the member scan, splicing, setting a top-level member, removing members at any depth.
[<RequireQualifiedAccess>]
module JsonSpans =

    let private readerOptions =
        JsonReaderOptions(CommentHandling = JsonCommentHandling.Disallow, AllowTrailingCommas = false, MaxDepth = 512)

    let private relaxed = Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping

    /// An object being read: its members so far and the one whose value is pending.
    type private Frame = {
        IsObject: bool
        Members: ResizeArray<JsonMember>
        mutable PendingName: string
        mutable PendingStart: int
        mutable PendingValue: int
        /// The `{` of the object (or `[`).
        OpenAt: int
    }

    /// `scan` with `Utf8JsonReader` (any well-formed body; the precise error otherwise).
    let private scanWithReader
        (body: ReadOnlySpan<byte>)
        (maxDepth: int)
        (wanted: string list)
        : Result<JsonMember list list * int * int, string> =
        let mutable reader = Utf8JsonReader(body, readerOptions)
        let objects = ResizeArray<JsonMember list>()
        let stack = Collections.Generic.Stack<Frame>()
        let mutable openAt = -1
        let mutable closeAt = -1
        let mutable error: string option = None

        let finish (stop: int) =
            if stack.Count > 0 then
                let parent = stack.Peek()

                if parent.IsObject && parent.PendingStart >= 0 then
                    parent.Members.Add {
                        Name = parent.PendingName
                        Depth = stack.Count
                        Start = parent.PendingStart
                        ValueStart = parent.PendingValue
                        Stop = stop
                    }

                    parent.PendingStart <- -1

        try
            if not (reader.Read()) then
                error <- Some "the body is empty"
            elif reader.TokenType <> JsonTokenType.StartObject then
                error <- Some "the body is not a JSON object"
            else
                openAt <- int reader.TokenStartIndex

                stack.Push {
                    IsObject = true
                    Members = ResizeArray()
                    PendingName = ""
                    PendingStart = -1
                    PendingValue = -1
                    OpenAt = openAt
                }

                while stack.Count > 0 && reader.Read() do
                    match reader.TokenType with
                    | JsonTokenType.PropertyName ->
                        let frame = stack.Peek()

                        frame.PendingName <-
                            match wanted with
                            | [] -> reader.GetString() |> Option.ofObj |> Option.defaultValue ""
                            | names ->
                                let mutable found = ""

                                for name in names do
                                    if found.Length = 0 && reader.ValueTextEquals name then
                                        found <- name

                                found

                        frame.PendingStart <- int reader.TokenStartIndex
                        reader.Read() |> ignore
                        frame.PendingValue <- int reader.TokenStartIndex

                        match reader.TokenType with
                        | JsonTokenType.StartObject
                        | JsonTokenType.StartArray when stack.Count >= maxDepth ->
                            reader.Skip()
                            finish (int reader.BytesConsumed)
                        | JsonTokenType.StartObject
                        | JsonTokenType.StartArray ->
                            stack.Push {
                                IsObject = reader.TokenType = JsonTokenType.StartObject
                                Members = ResizeArray()
                                PendingName = ""
                                PendingStart = -1
                                PendingValue = -1
                                OpenAt = int reader.TokenStartIndex
                            }
                        | _ -> finish (int reader.BytesConsumed)
                    | JsonTokenType.StartObject
                    | JsonTokenType.StartArray when stack.Count >= maxDepth -> reader.Skip()
                    | JsonTokenType.StartObject
                    | JsonTokenType.StartArray ->
                        // an array item
                        stack.Push {
                            IsObject = reader.TokenType = JsonTokenType.StartObject
                            Members = ResizeArray()
                            PendingName = ""
                            PendingStart = -1
                            PendingValue = -1
                            OpenAt = int reader.TokenStartIndex
                        }
                    | JsonTokenType.EndObject
                    | JsonTokenType.EndArray ->
                        let frame = stack.Pop()

                        // the objects that hold a wanted member, and the top-level object (closed last)
                        if
                            frame.IsObject
                            && (wanted.IsEmpty
                                || stack.Count = 0
                                || frame.Members.Exists(fun m -> m.Name.Length > 0))
                        then
                            objects.Add(List.ofSeq frame.Members)

                        if stack.Count = 0 then
                            closeAt <- int reader.TokenStartIndex
                        else
                            finish (int reader.BytesConsumed)
                    | _ -> ()

                if closeAt >= 0 && reader.Read() then
                    error <- Some "the body has bytes after the JSON object"
        with
        | :? JsonException as e -> error <- Some $"the body is not valid JSON: %s{e.Message}"
        | :? InvalidOperationException as e -> error <- Some $"the body is not valid JSON: %s{e.Message}"

        match error with
        | Some e -> Error e
        | None when closeAt < 0 -> Error "the body is not valid JSON: the object is not closed"
        | None -> Ok(List.ofSeq objects, openAt, closeAt)

    // ---------------------------
    // Fast path: the reader's answer without a tokenizer
    // ---------------------------

    [<Literal>]
    let private FastMaxDepth = 64

    /// The open containers of a fast scan, one entry per depth (1: the top-level object).
    type private Levels = {
        IsArray: bool array
        /// Where the object's members start in the shared member list.
        MembersFrom: int array
        HasWanted: bool array
        PendingName: string array
        PendingStart: int array
        PendingValue: int array
    }

    /// `scan` without `Utf8JsonReader`: one pass whose string contents are skipped by a vectorised search.
    /// ValueNone for anything it does not read itself (not JSON, invalid UTF-8, an escaped member name it would
    /// have to compare, nesting deeper than 64): `scan` then asks the reader, which says exactly what is wrong.
    /// Whenever it answers, it gives the reader's answer (a property test holds the two together).
    let private scanFast
        (body: ReadOnlySpan<byte>)
        (maxDepth: int)
        (wanted: string list)
        : (JsonMember list list * int * int) voption =
        let wantedBytes = wanted |> List.map Text.Encoding.UTF8.GetBytes |> Array.ofList

        let levels = {
            IsArray = Array.zeroCreate (FastMaxDepth + 1)
            MembersFrom = Array.zeroCreate (FastMaxDepth + 1)
            HasWanted = Array.zeroCreate (FastMaxDepth + 1)
            PendingName = Array.create (FastMaxDepth + 1) ""
            PendingStart = Array.zeroCreate (FastMaxDepth + 1)
            PendingValue = Array.zeroCreate (FastMaxDepth + 1)
        }

        let members = ResizeArray<JsonMember>()
        let objects = ResizeArray<JsonMember list>()

        // the pending member of the object at `depth` ends at `stop`
        let finish (depth: int) (stop: int) =
            if depth <= maxDepth && not levels.IsArray[depth] then
                members.Add {
                    Name = levels.PendingName[depth]
                    Depth = depth
                    Start = levels.PendingStart[depth]
                    ValueStart = levels.PendingValue[depth]
                    Stop = stop
                }

        let mutable at = 0
        let mutable ok = true
        let mutable depth = 0
        /// 0: a value; 1: a key or '}' (object just opened); 2: a key; 3: ',' or the end; 4: a value or ']'
        let mutable expect = 0
        let mutable openAt = -1
        let mutable closeAt = -1

        while ok && at < body.Length do
            let b = body[at]

            if isSpace b then
                at <- at + 1
            elif closeAt >= 0 then
                ok <- false
            else
                match expect with
                | 1
                | 3
                | 4 when b = '}'B || b = ']'B ->
                    // a close: of the right kind, and not right after a comma
                    if depth = 0 || (b = ']'B) <> levels.IsArray[depth] || (expect = 1 && b = ']'B) then
                        ok <- false
                    elif expect = 4 && b = '}'B then
                        ok <- false
                    else
                        if not levels.IsArray[depth] && depth <= maxDepth then
                            let from = levels.MembersFrom[depth]

                            if wanted.IsEmpty || depth = 1 || levels.HasWanted[depth] then
                                objects.Add [ for i in from .. members.Count - 1 -> members[i] ]

                            members.RemoveRange(from, members.Count - from)

                        if depth = 1 then
                            closeAt <- at

                        depth <- depth - 1
                        at <- at + 1
                        expect <- 3

                        if depth > 0 then
                            finish depth at
                | 1
                | 2 ->
                    if b <> '"'B then
                        ok <- false
                    else
                        let struct (stop, escaped) = scanString body at

                        if stop < 0 || (escaped && depth <= maxDepth) then
                            ok <- false
                        else
                            if depth <= maxDepth then
                                let name = body.Slice(at + 1, stop - at - 2)

                                let found =
                                    if wanted.IsEmpty then
                                        Text.Encoding.UTF8.GetString name
                                    else
                                        let mutable found = ""

                                        for i in 0 .. wantedBytes.Length - 1 do
                                            if found.Length = 0 && name.SequenceEqual(ReadOnlySpan wantedBytes[i]) then
                                                found <- wanted[i]

                                        if found.Length > 0 then
                                            levels.HasWanted[depth] <- true

                                        found

                                levels.PendingName[depth] <- found
                                levels.PendingStart[depth] <- at

                            let mutable i = stop

                            while i < body.Length && isSpace body[i] do
                                i <- i + 1

                            if i < body.Length && body[i] = ':'B then
                                i <- i + 1

                                while i < body.Length && isSpace body[i] do
                                    i <- i + 1

                                levels.PendingValue[depth] <- i
                                at <- i
                                expect <- 0
                            else
                                ok <- false
                | 3 ->
                    if b = ','B && depth > 0 then
                        at <- at + 1
                        expect <- if levels.IsArray[depth] then 0 else 2
                    else
                        ok <- false
                | _ ->
                    if b = '{'B || b = '['B then
                        if depth >= FastMaxDepth || (depth = 0 && b = '['B) then
                            ok <- false
                        else
                            depth <- depth + 1
                            levels.IsArray[depth] <- b = '['B
                            levels.MembersFrom[depth] <- members.Count
                            levels.HasWanted[depth] <- false

                            if depth = 1 then
                                openAt <- at

                            at <- at + 1
                            expect <- if b = '['B then 4 else 1
                    elif depth = 0 then
                        ok <- false
                    else
                        let stop =
                            if b = '"'B then
                                let struct (stop, _) = scanString body at
                                stop
                            elif b = 't'B && body.Slice(at).StartsWith(ReadOnlySpan trueLiteral) then
                                at + 4
                            elif b = 'f'B && body.Slice(at).StartsWith(ReadOnlySpan falseLiteral) then
                                at + 5
                            elif b = 'n'B && body.Slice(at).StartsWith(ReadOnlySpan nullLiteral) then
                                at + 4
                            else
                                scanNumber body at

                        if stop < 0 then
                            ok <- false
                        else
                            finish depth stop
                            at <- stop
                            expect <- 3

        if ok && closeAt >= 0 && Text.Unicode.Utf8.IsValid body then
            ValueSome(List.ofSeq objects, openAt, closeAt)
        else
            ValueNone

    /// Every object's members at depth ≤ `maxDepth` (1: the top level only, whose nested values are skipped),
    /// grouped per object in the order they close, with the top-level object's `{` and `}`. Error when the body
    /// is not one JSON object. `wanted`: when not empty, only these names are read (the others' `Name` is "",
    /// nothing is allocated for them) and only the objects holding one of them are listed, and the top-level
    /// object (always last).
    let scan
        (body: ReadOnlySpan<byte>)
        (maxDepth: int)
        (wanted: string list)
        : Result<JsonMember list list * int * int, string> =
        match scanFast body maxDepth wanted with
        | ValueSome found -> Ok found
        | ValueNone -> scanWithReader body maxDepth wanted

    /// The scan without its fast path (for the property that holds the two together).
    let scanReader
        (body: ReadOnlySpan<byte>)
        (maxDepth: int)
        (wanted: string list)
        : Result<JsonMember list list * int * int, string> =
        scanWithReader body maxDepth wanted

    /// The top-level members, with the object's `{` and `}`.
    let topLevel (body: ReadOnlySpan<byte>) : Result<JsonMember list * int * int, string> =
        scan body 1 []
        |> Result.map (fun (objects, openAt, closeAt) ->
            // with depth 1 only the top-level object is recorded
            (objects |> List.tryLast |> Option.defaultValue []), openAt, closeAt)

    /// The body with the spans `(start, stop, replacement)` replaced (spans sorted by start, none overlapping).
    let splice (body: ReadOnlySpan<byte>) (edits: (int * int * byte array) list) : byte array =
        let edits = edits |> List.sortBy (fun (start, _, _) -> start)

        let length =
            body.Length
            + (edits |> List.sumBy (fun (start, stop, bytes) -> bytes.Length - (stop - start)))

        let result = Array.zeroCreate<byte> length
        let mutable from = 0
        let mutable at = 0

        for start, stop, bytes in edits do
            body.Slice(from, start - from).CopyTo(result.AsSpan(at))
            at <- at + start - from
            bytes.CopyTo(result.AsSpan(at))
            at <- at + bytes.Length
            from <- stop

        body.Slice(from).CopyTo(result.AsSpan(at))
        result

    /// `"name":` as UTF-8, the name JSON-escaped.
    let nameBytes (name: string) : byte array =
        Text.Encoding.UTF8.GetBytes("\"" + JsonEncodedText.Encode(name, relaxed).ToString() + "\":")

    /// The raw value bytes of a top-level member, when present (the last one, as JSON readers keep it).
    let value (body: ReadOnlySpan<byte>) (members: JsonMember list) (name: string) : byte array option =
        match members |> List.filter (fun m -> m.Name = name) |> List.tryLast with
        | Some m -> Some(body.Slice(m.ValueStart, m.Stop - m.ValueStart).ToArray())
        | None -> None

    /// Sets top-level member `name` to the raw JSON `json`: every occurrence's value is replaced in place; an
    /// absent member is added after the last one (or first in an empty object).
    let set (body: ReadOnlySpan<byte>) (name: string) (json: byte array) : Result<byte array, string> =
        match topLevel body with
        | Error e -> Error e
        | Ok(members, openAt, _) ->
            match members |> List.filter (fun m -> m.Name = name) with
            | [] ->
                match List.tryLast members with
                | Some last -> Ok(splice body [ last.Stop, last.Stop, Array.concat [ ","B; nameBytes name; json ] ])
                | None -> Ok(splice body [ openAt + 1, openAt + 1, Array.append (nameBytes name) json ])
            | found -> Ok(splice body (found |> List.map (fun m -> m.ValueStart, m.Stop, json)))

    /// A JSON string literal of `text`.
    let stringLiteral (text: string) : byte array =
        Text.Encoding.UTF8.GetBytes("\"" + JsonEncodedText.Encode(text, relaxed).ToString() + "\"")
