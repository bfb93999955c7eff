namespace CcRelay.Core

open System
open System.Text.Json

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

    /// Every object's members at depth ≤ `maxDepth` (1: the top level only, whose nested values are skipped),
    /// grouped per object, with the top-level object's `{` and `}`. Error when the body is not one JSON object.
    /// `wanted`: when not empty, only these names are read (the others' `Name` is "", nothing is allocated for them).
    let scan
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

                        if frame.IsObject then
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

    /// Sets top-level members `(name, raw JSON)` in one splice over an object already scanned (`members`, its
    /// `{` at `openAt`): present members get the value in place, absent ones are added after the last member.
    let setMany
        (body: ReadOnlySpan<byte>)
        (members: JsonMember list)
        (openAt: int)
        (edits: (string * byte array) list)
        : byte array =
        let replacements =
            edits
            |> List.collect (fun (name, json) ->
                members
                |> List.filter (fun m -> m.Name = name)
                |> List.map (fun m -> m.ValueStart, m.Stop, json))

        let added =
            edits
            |> List.filter (fun (name, _) -> not (members |> List.exists (fun m -> m.Name = name)))

        let insertion =
            match added, List.tryLast members with
            | [], _ -> []
            | _, Some last -> [
                last.Stop,
                last.Stop,
                added
                |> List.map (fun (n, j) -> Array.concat [ ","B; nameBytes n; j ])
                |> Array.concat
              ]
            | _, None -> [
                openAt + 1,
                openAt + 1,
                added
                |> List.mapi (fun i (n, j) -> Array.concat [ (if i > 0 then ","B else [||]); nameBytes n; j ])
                |> Array.concat
              ]

        splice body (replacements @ insertion)

    /// The spans that remove the members of one object for which `remove` holds, with their separators, so
    /// the object stays valid JSON whichever positions they held.
    let private removals (members: JsonMember list) (remove: JsonMember -> bool) : (int * int) list =
        let members = Array.ofList members
        let n = members.Length
        let removed = members |> Array.map remove

        match Array.tryFindIndexBack not removed with
        | _ when not (Array.contains true removed) -> []
        | None -> [ members[0].Start, members[n - 1].Stop ]
        | Some lastKept -> [
            for i in 0 .. lastKept - 1 do
                if removed[i] then
                    members[i].Start, members[i + 1].Start
            if lastKept < n - 1 then
                members[lastKept].Stop, members[n - 1].Stop
          ]

    /// The body without the members named in `names`, at any depth up to `maxDepth` (members inside a removed
    /// one go with it). Also the number of members removed (nested ones inside removed ones too).
    let removeNamed (body: ReadOnlySpan<byte>) (maxDepth: int) (names: string list) : Result<byte array * int, string> =
        let remove (m: JsonMember) = m.Name.Length > 0

        match scan body maxDepth names with
        | Error e -> Error e
        | Ok(objects, _, _) ->
            let spans =
                objects
                |> List.collect (fun members -> removals members remove)
                |> List.sortBy fst

            // nested spans (a member inside a removed member) go with the outer one
            let outer =
                spans
                |> List.fold
                    (fun (kept, reach) (start, stop) ->
                        if start < reach then
                            kept, reach
                        else
                            (start, stop) :: kept, stop)
                    ([], -1)
                |> fst
                |> List.rev

            let count =
                objects
                |> List.sumBy (fun members -> members |> List.filter remove |> List.length)

            if outer.IsEmpty then
                Ok(body.ToArray(), 0)
            else
                Ok(splice body (outer |> List.map (fun (start, stop) -> start, stop, [||])), count)

    /// A JSON string literal of `text`.
    let stringLiteral (text: string) : byte array =
        Text.Encoding.UTF8.GetBytes("\"" + JsonEncodedText.Encode(text, relaxed).ToString() + "\"")
