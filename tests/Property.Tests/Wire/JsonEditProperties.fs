module CcRelay.Core.Properties.JsonEditProperties

open System
open System.Text
open System.Text.Json
open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators

/// The top-level members of an object: each name (unescaped) and its raw bytes, from the name's opening quote
/// to the end of its value, read independently of JsonEdit.
let members (body: byte array) : (string * byte array) list =
    let mutable reader = Utf8JsonReader(ReadOnlySpan body)
    let found = ResizeArray()
    reader.Read() |> ignore

    while reader.Read() && reader.CurrentDepth > 0 do
        if reader.TokenType = JsonTokenType.PropertyName then
            let start = int reader.TokenStartIndex
            let name = nonNull (reader.GetString())
            reader.Read() |> ignore

            if
                reader.TokenType = JsonTokenType.StartObject
                || reader.TokenType = JsonTokenType.StartArray
            then
                reader.Skip()

            found.Add(name, body[start .. int reader.BytesConsumed - 1])

    List.ofSeq found

/// Whether bytes are one JSON document.
let isJson (body: byte array) : bool =
    try
        use _ = JsonDocument.Parse(ReadOnlyMemory body)
        true
    with :? JsonException ->
        false

let private prependable: (string * byte array) list =
    [
        "anthropic_version", "\"bedrock-2023-05-31\""
        "anthropic_beta", "[\"a\",\"b\"]"
        "n", "-1.5e3"
        "o", "{\"x\":[null,true]}"
        "quo\"te", "false"
    ]
    |> List.map (fun (name, value) -> name, Encoding.UTF8.GetBytes value)

/// A rendered object (random whitespace and escapes), names to remove (some present, some not), members to prepend.
let private editCase =
    gen {
        let! members = topLevelMembers
        let! withModel = Gen.elements [ false; true ]
        let! at = Gen.choose (0, members.Length)
        let before, after = List.splitAt at members

        let members =
            if withModel then
                before @ [ "model", JNull ] @ after
            else
                members

        let! text = renderJson (JObject members)
        let! present = Gen.subListOf (members |> List.map fst |> List.distinct)
        let! absent = Gen.subListOf [ "absent"; "Stream"; "" ]
        let! prepend = Gen.subListOf prependable
        return Encoding.UTF8.GetBytes text, present @ absent, prepend
    }
    |> Check.arb

let private edit (body: byte array) remove prepend =
    match JsonEdit.edit (ReadOnlySpan body) remove prepend with
    | Ok result -> result
    | Error e -> failwith $"expected an edit, got %s{e}"

[<Fact>]
let ``edit removes and prepends members and keeps every other member byte for byte, in order`` () =
    Check.property (
        Prop.forAll editCase (fun (body, remove, prepend) ->
            let result, removed = edit body remove prepend
            Assert.True(isJson result, Encoding.UTF8.GetString result)

            let before = members body
            let after = members result
            let kept = before |> List.filter (fun (name, _) -> not (List.contains name remove))

            Assert.Equal<string list>(prepend |> List.map fst, after |> List.take prepend.Length |> List.map fst)

            let rest = after |> List.skip prepend.Length
            Assert.Equal(kept.Length, rest.Length)
            List.iter2 (fun (n1, b1: byte array) (n2, b2) -> Assert.True(n1 = n2 && b1 = b2)) kept rest

            let expectedRemoved =
                before
                |> List.map fst
                |> List.filter (fun n -> List.contains n remove)
                |> List.distinct

            Assert.Equal<string list>(expectedRemoved, removed))
    )

[<Fact>]
let ``edit with nothing to remove or add gives the body back`` () =
    Check.property (
        Prop.forAll editCase (fun (body, _, _) ->
            let result, removed = edit body [] []
            Assert.Equal<byte array>(body, result)
            Assert.Empty(removed))
    )

[<Fact>]
let ``edit keeps the bytes before the first member and after the last kept one`` () =
    Check.property (
        Prop.forAll editCase (fun (body, remove, _) ->
            let result, _ = edit body remove []
            let open' = Array.IndexOf(body, byte '{')
            Assert.True(result.AsSpan().StartsWith(ReadOnlySpan(body, 0, open' + 1)))
            let close = Array.LastIndexOf(body, byte '}')
            Assert.True(result.AsSpan().EndsWith(ReadOnlySpan(body, close, body.Length - close))))
    )

[<Fact>]
let ``editValid gives what edit gives on every valid body`` () =
    Check.property (
        Prop.forAll editCase (fun (body, remove, prepend) ->
            let expected, expectedRemoved = edit body remove prepend

            match JsonEdit.editValid (ReadOnlySpan body) remove prepend with
            | Ok(result, removed) ->
                Assert.Equal<byte array>(expected, result)
                Assert.Equal<string list>(expectedRemoved, removed)
            | Error e -> failwith $"expected an edit, got %s{e}")
    )

/// A container value as JSON text whose strings are runs of backslashes, quotes and brackets (escaped as JSON needs),
/// long enough to cross the 32-byte blocks editValid's container scan reads.
let private trickyContainer =
    let encoder = Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping

    let text =
        gen {
            let! pieces =
                Gen.listOf (Gen.elements [ "\\"; "\\\\"; "\""; "["; "]"; "{"; "}"; "a"; " "; "\\\"" ])

            return String.concat "" pieces
        }

    let rec value depth =
        if depth = 0 then
            text
            |> Gen.map (fun t -> JsonSerializer.Serialize(t, JsonSerializerOptions(Encoder = encoder)))
        else
            Gen.frequency [
                3, value 0
                1,
                Gen.listOf (value (depth - 1))
                |> Gen.map (fun items -> "[" + String.concat "," items + "]")
                1,
                Gen.listOf (Gen.zip text (value (depth - 1)))
                |> Gen.map (fun members ->
                    let rendered =
                        members
                        |> List.map (fun (name, v) ->
                            JsonSerializer.Serialize(name, JsonSerializerOptions(Encoder = encoder))
                            + ":"
                            + v)

                    "{" + String.concat "," rendered + "}")
            ]

    gen {
        let! items = Gen.listOf (value 3)
        return "[" + String.concat "," items + "]"
    }

// NOTE: the scan's own answer is checked, not only editValid's: a scan that fails falls back to the reader, so
// editValid's output alone would hide a scan that gives up
[<Fact>]
let ``the container scan ends containers whose strings hold backslash runs, quotes and brackets where they end`` () =
    Check.property (
        Prop.forAll
            (gen {
                let! pad = Gen.choose (0, 40)
                let! container = trickyContainer
                return pad, container
             }
             |> Check.arb)
            (fun (pad, container) ->
                let prefix = $"{{\"pad\":\"%s{String('a', pad)}\",\"v\":"
                let body = Encoding.UTF8.GetBytes(prefix + container + ",\"z\":1}")
                let start = Encoding.UTF8.GetByteCount prefix
                let stop = start + Encoding.UTF8.GetByteCount container
                Assert.Equal(stop, JsonEdit.containerEnd (ReadOnlySpan body) start)
                let expected, _ = edit body [ "v" ] []

                match JsonEdit.editValid (ReadOnlySpan body) [ "v" ] [] with
                | Ok(result, removed) ->
                    Assert.Equal<byte array>(expected, result)
                    Assert.Equal<string list>([ "v" ], removed)
                | Error e -> failwith $"expected an edit, got %s{e}")
    )
