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
                        let stop = scalarEnd body at b

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

    // ---------------------------
    // The fused edits' scan: only the members the edits need
    // ---------------------------

    // Per open object (depth ≤ maxDepth), `Slots` ints in the level buffer: where its records start in the member
    // buffer, whether it holds a wanted member, how many members it has had, the previous member (name index,
    // start, value start, stop, flags: 1 recorded, 2 wanted) and the pending one (name index, start, value start).
    [<Literal>]
    let private Slots = 11

    [<Literal>]
    let private From = 0

    [<Literal>]
    let private HasWanted = 1

    [<Literal>]
    let private Count = 2

    [<Literal>]
    let private PrevName = 3

    [<Literal>]
    let private PrevStart = 4

    [<Literal>]
    let private PrevValue = 5

    [<Literal>]
    let private PrevStop = 6

    [<Literal>]
    let private PrevFlags = 7

    [<Literal>]
    let private PendingName = 8

    [<Literal>]
    let private PendingStart = 9

    [<Literal>]
    let private PendingValue = 10

    /// The index in `wanted` of the (unescaped, ASCII-compared) name `name`, or -1.
    let private wantedIndex (name: ReadOnlySpan<byte>) (wanted: string array) : int =
        let mutable found = -1
        let mutable w = 0

        while found < 0 && w < wanted.Length do
            let candidate = wanted[w]

            if candidate.Length = name.Length then
                let mutable k = 0

                while k < name.Length && name[k] = byte candidate[k] do
                    k <- k + 1

                if k = name.Length then
                    found <- w

            w <- w + 1

        found

    /// Records member `(name, start, value, stop)` at `count` in the member buffer; the new count.
    let inline private put (members: int array) (count: int) (name: int) (start: int) (value: int) (stop: int) =
        let at = count * 4
        members[at] <- name
        members[at + 1] <- start
        members[at + 2] <- value
        members[at + 3] <- stop
        count + 1

    /// The pending member of the object whose slots start at `o` ends at `stop`: it is recorded when it is the
    /// object's first, a wanted one, or a neighbour of one (a wanted member records the previous one too); the
    /// new record count.
    let private finishMember (levels: int array) (members: int array) (recorded: int) (o: int) (stop: int) : int =
        let name = levels[o + PendingName]
        let start = levels[o + PendingStart]
        let value = levels[o + PendingValue]
        let isWanted = name >= 0
        let mutable recorded = recorded
        let mutable flags = if isWanted then 2 else 0

        if levels[o + Count] = 0 then
            recorded <- put members recorded name start value stop
            flags <- flags ||| 1
        else
            let previous = levels[o + PrevFlags]

            if isWanted && previous &&& 1 = 0 then
                recorded <-
                    put
                        members
                        recorded
                        levels[o + PrevName]
                        levels[o + PrevStart]
                        levels[o + PrevValue]
                        levels[o + PrevStop]

            if isWanted || previous &&& 2 <> 0 then
                recorded <- put members recorded name start value stop
                flags <- flags ||| 1

        if isWanted then
            levels[o + HasWanted] <- 1

        levels[o + Count] <- levels[o + Count] + 1
        levels[o + PrevName] <- name
        levels[o + PrevStart] <- start
        levels[o + PrevValue] <- value
        levels[o + PrevStop] <- stop
        levels[o + PrevFlags] <- flags
        recorded

    /// The members recorded from `from` to `recorded`, as a list.
    let private membersOf
        (members: int array)
        (wanted: string array)
        (depth: int)
        (from: int)
        (recorded: int)
        : JsonMember list =
        let mutable list = []

        for i in recorded - 1 .. -1 .. from do
            let at = i * 4
            let name = members[at]

            list <-
                {
                    Name = if name >= 0 then wanted[name] else ""
                    Depth = depth
                    Start = members[at + 1]
                    ValueStart = members[at + 2]
                    Stop = members[at + 3]
                }
                :: list

        list

    /// `scanWanted`'s own pass (ValueNone: leave the body to `scan`).
    let private scanNeeded
        (body: ReadOnlySpan<byte>)
        (maxDepth: int)
        (wanted: string array)
        (levels: int array)
        (members: int array)
        : (JsonMember list list * int * int) voption =
        let mutable objects = []
        let mutable recorded = 0
        let mutable at = 0
        let mutable ok = true
        let mutable depth = 0
        // bit d - 1: the container at depth d is an array
        let mutable arrays = 0UL
        /// 0: a value; 1: a key or '}' (object just opened); 2: a key; 3: ',' or the end; 4: a value or ']'
        let mutable expect = 0
        let mutable openAt = -1
        let mutable closeAt = -1
        let n = body.Length

        while ok && at < n do
            let b = body[at]

            if b <= ' 'B then
                if isSpace b then at <- at + 1 else ok <- false
            elif closeAt >= 0 then
                ok <- false
            elif (b = '}'B || b = ']'B) && expect <> 0 && expect <> 2 then
                let isArray = depth > 0 && (arrays >>> (depth - 1)) &&& 1UL = 1UL

                // a close of the right kind, and not right after a comma
                if depth = 0 || (b = ']'B) <> isArray || (expect = 4 && b = '}'B) then
                    ok <- false
                else
                    if not isArray && depth <= maxDepth then
                        let o = depth * Slots

                        // the last member, when not recorded yet
                        if levels[o + Count] > 0 && levels[o + PrevFlags] &&& 1 = 0 then
                            recorded <-
                                put
                                    members
                                    recorded
                                    levels[o + PrevName]
                                    levels[o + PrevStart]
                                    levels[o + PrevValue]
                                    levels[o + PrevStop]

                        let from = levels[o + From]

                        if depth = 1 || levels[o + HasWanted] = 1 then
                            objects <- membersOf members wanted depth from recorded :: objects

                        recorded <- from

                    if depth = 1 then
                        closeAt <- at

                    depth <- depth - 1
                    at <- at + 1
                    expect <- 3

                    if depth > 0 && depth <= maxDepth && (arrays >>> (depth - 1)) &&& 1UL = 0UL then
                        recorded <- finishMember levels members recorded (depth * Slots) at
            else
                match expect with
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
                                let o = depth * Slots
                                levels[o + PendingName] <- wantedIndex (body.Slice(at + 1, stop - at - 2)) wanted
                                levels[o + PendingStart] <- at

                            let mutable i = stop

                            while i < n && isSpace body[i] do
                                i <- i + 1

                            if i < n && body[i] = ':'B then
                                i <- i + 1

                                while i < n && isSpace body[i] do
                                    i <- i + 1

                                if depth <= maxDepth then
                                    levels[depth * Slots + PendingValue] <- i

                                at <- i
                                expect <- 0
                            else
                                ok <- false
                | 3 ->
                    if b = ','B && depth > 0 then
                        at <- at + 1

                        expect <- if (arrays >>> (depth - 1)) &&& 1UL = 1UL then 0 else 2
                    else
                        ok <- false
                | _ ->
                    if b = '{'B || b = '['B then
                        if depth >= FastMaxDepth || (depth = 0 && b = '['B) then
                            ok <- false
                        else
                            depth <- depth + 1
                            let bit = 1UL <<< (depth - 1)

                            if b = '['B then
                                arrays <- arrays ||| bit
                                expect <- 4
                            else
                                arrays <- arrays &&& ~~~bit
                                expect <- 1

                                if depth <= maxDepth then
                                    let o = depth * Slots
                                    levels[o + From] <- recorded
                                    levels[o + HasWanted] <- 0
                                    levels[o + Count] <- 0

                            if depth = 1 then
                                openAt <- at

                            at <- at + 1
                    elif depth = 0 then
                        ok <- false
                    else
                        let stop = scalarEnd body at b

                        if stop < 0 then
                            ok <- false
                        else
                            if depth <= maxDepth && (arrays >>> (depth - 1)) &&& 1UL = 0UL then
                                recorded <- finishMember levels members recorded (depth * Slots) stop

                            at <- stop
                            expect <- 3

        if ok && closeAt >= 0 && Text.Unicode.Utf8.IsValid body then
            ValueSome(List.rev objects, openAt, closeAt)
        else
            ValueNone

    /// `scan`'s answer with only the members `scanWanted`'s own pass records: per object, the wanted ones (named),
    /// their neighbours, the first and the last.
    let private keptOf (found: Result<JsonMember list list * int * int, string>) =
        found
        |> Result.map (fun (objects, openAt, closeAt) ->
            let kept (members: JsonMember list) =
                let all = Array.ofList members

                let named i =
                    i >= 0 && i < all.Length && all[i].Name.Length > 0

                [
                    for i in 0 .. all.Length - 1 do
                        if i = 0 || i = all.Length - 1 || named (i - 1) || named i || named (i + 1) then
                            all[i]
                ]

            List.map kept objects, openAt, closeAt)

    /// What the fused edits need from `scan`, in one pass that records only that: for every object `scan` lists,
    /// its wanted members, their neighbours (the member before and after each), and its first and last member —
    /// every member an edit reads, replaces, removes (with its separator) or inserts beside. The members in
    /// between are walked (validated, their strings skipped by `JsonScan.scanString`'s vectorised search) but not
    /// recorded, and nothing is allocated per member. Removing, setting or reading wanted members over these lists
    /// gives exactly what it gives over `scan`'s (a property holds the two together). Asks `scan` (and keeps the
    /// same members of its answer) when `wanted` is empty or not ASCII, or for anything its own pass does not read
    /// (as `scan`'s fast path does: an escaped member name it would compare, nesting deeper than 64, invalid JSON
    /// or UTF-8).
    let scanWanted
        (body: ReadOnlySpan<byte>)
        (maxDepth: int)
        (wanted: string list)
        : Result<JsonMember list list * int * int, string> =
        let ascii =
            not wanted.IsEmpty
            && wanted
               |> List.forall (fun name -> name |> String.forall (fun c -> c < '\u0080'))

        if not ascii then
            keptOf (scan body maxDepth wanted)
        else
            let names = Array.ofList wanted
            let levels = Buffers.ArrayPool<int>.Shared.Rent((FastMaxDepth + 1) * Slots)
            // a record per member at most, and a member takes at least four bytes (`"":0`)
            let members = Buffers.ArrayPool<int>.Shared.Rent(body.Length + 8)

            let found =
                try
                    scanNeeded body (min maxDepth FastMaxDepth) names levels members
                finally
                    Buffers.ArrayPool<int>.Shared.Return levels
                    Buffers.ArrayPool<int>.Shared.Return members

            match found with
            | ValueSome found -> Ok found
            | ValueNone -> keptOf (scan body maxDepth wanted)

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

        // every byte is written below
        let result = GC.AllocateUninitializedArray<byte> length
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
