module CcRelay.Core.Properties.RedactProperties

open System
open System.Text
open System.Text.Json.Nodes
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators

// ---------------------------
// Generators
// ---------------------------

/// A secret: a marker prefix no other generated text can form, then letters, digits and characters JSON,
/// URLs and headers treat specially.
let private secret: Gen<string> =
    gen {
        let! length = Gen.choose (4, 24)

        let! body =
            Gen.listOfLength
                length
                (Gen.elements [ 'A'; 'K'; 'Z'; '3'; '9'; '-'; '_'; '+'; '/'; '='; '"'; '\\'; '.'; '~' ])

        return "S3CR" + String(Array.ofList body)
    }

/// Harmless text: never contains "S3CR" (no 'S', no '3').
let private plainText: Gen<string> =
    stringOf 10 (Gen.elements [ "a"; "b"; "z"; "0"; "7"; " "; "-"; "_"; "\u00e9"; "\u4e2d"; "\\"; "\"" ])

let private sensitiveWord: Gen<string> =
    Gen.elements [
        "x-api-key"
        "authorization"
        "proxy-authorization"
        "cookie"
        "set-cookie"
        "token"
        "secret"
        "key"
        "password"
        "passwd"
        "credential"
    ]

/// A credential-like name: a sensitive word, recased, with harmless text around it.
let private sensitiveName: Gen<string> =
    gen {
        let! word = sensitiveWord |> Gen.bind recase
        let! before = Gen.elements [ ""; "x-"; "api_"; "client"; "refresh_"; "my." ]
        let! after = Gen.elements [ ""; "s"; "_id"; "-value"; "2" ]
        return before + word + after
    }

/// A harmless name: lower-case letters that spell none of the sensitive words.
let private plainName: Gen<string> =
    Gen.elements [
        "model"
        "messages"
        "role"
        "content"
        "type"
        "text"
        "x-request-id"
        "anthropic-beta"
        "beta"
        "q"
    ]

type private Json =
    | JString of string
    | JNumber of string
    | JBool of bool
    | JNull
    | JArray of Json list
    | JObject of (string * Json) list

let private escapeJson (text: string) : string =
    let builder = StringBuilder()

    for c in text do
        match c with
        | '"' -> builder.Append "\\\"" |> ignore
        | '\\' -> builder.Append "\\\\" |> ignore
        | c when c < ' ' -> builder.AppendFormat("\\u{0:x4}", int c) |> ignore
        | c -> builder.Append c |> ignore

    builder.ToString()

/// A property name as JSON text, sometimes with one character written as a \u escape.
let private nameText (name: string) : Gen<string> =
    gen {
        let! escapeAt = Gen.choose (-1, name.Length - 1)

        if escapeAt < 0 || name[escapeAt] = '"' || name[escapeAt] = '\\' then
            return "\"" + escapeJson name + "\""
        else
            return
                "\""
                + escapeJson (name.Substring(0, escapeAt))
                + $"\\u%04x{int name[escapeAt]}"
                + escapeJson (name.Substring(escapeAt + 1))
                + "\""
    }

let rec private render (json: Json) : Gen<string> =
    match json with
    | JString s -> Gen.constant ("\"" + escapeJson s + "\"")
    | JNumber n -> Gen.constant n
    | JBool b -> Gen.constant (if b then "true" else "false")
    | JNull -> Gen.constant "null"
    | JArray items ->
        items
        |> List.map render
        |> Gen.sequenceToList
        |> Gen.map (fun parts -> "[" + String.Join(",", parts) + "]")
    | JObject fields ->
        fields
        |> List.map (fun (name, value) ->
            gen {
                let! n = nameText name
                let! v = render value
                return n + ":" + v
            })
        |> Gen.sequenceToList
        |> Gen.map (fun parts -> "{" + String.Join(",", parts) + "}")

let private scalar: Gen<Json> =
    Gen.oneof [
        plainText |> Gen.map JString
        Gen.elements [ "0"; "64"; "-1.5"; "1e3" ] |> Gen.map JNumber
        Gen.elements [ true; false ] |> Gen.map JBool
        Gen.constant JNull
    ]

/// A value holding secrets only where the name rule must catch them.
let rec private value (size: int) (withSecrets: bool) : Gen<Json> =
    if size <= 0 then
        scalar
    else
        let field =
            Gen.frequency [
                3,
                gen {
                    let! name = plainName
                    let! v = value (size / 2) withSecrets
                    return name, v
                }
                (if withSecrets then 2 else 0),
                gen {
                    let! name = sensitiveName

                    let! v =
                        Gen.oneof [
                            secret |> Gen.map JString
                            secret |> Gen.map (fun s -> JArray [ JString s ])
                            secret |> Gen.map (fun s -> JObject [ "inner", JString s ])
                        ]

                    return name, v
                }
            ]

        Gen.frequency [
            2, scalar
            2, Gen.listOf field |> Gen.resize 5 |> Gen.map (List.distinctBy fst >> JObject)
            1, Gen.listOf (value (size / 2) withSecrets) |> Gen.resize 4 |> Gen.map JArray
        ]

let private document (withSecrets: bool) : Gen<string> =
    gen {
        let! size = Gen.choose (0, 12)
        let! root = value size withSecrets

        let! root =
            match root with
            | JObject _ -> Gen.constant root
            | other ->
                gen {
                    let! name = sensitiveName
                    let! s = secret
                    return JObject [ "wrapped", other; name, JString s ]
                }

        return! render root
    }

let private noSecret (output: string) (secrets: string list) =
    Assert.DoesNotContain("S3CR", output)

    for s in secrets do
        Assert.DoesNotContain(s, output)

// ---------------------------
// Properties
// ---------------------------

[<Fact>]
let ``no secret under a credential-like JSON name survives, at any cut`` () =
    let case =
        gen {
            let! doc = document true
            let! limit = Gen.choose (0, doc.Length + 40)
            return doc, limit
        }
        |> Check.arb

    Check.quick
        1000
        (Prop.forAll case (fun (doc, limit) ->
            let output = Redact.json [] limit (ReadOnlySpan(Encoding.UTF8.GetBytes doc))
            noSecret output []))

[<Fact>]
let ``no known secret survives in any JSON string`` () =
    let case =
        gen {
            let! known = secret
            let! before = plainText
            let! after = plainText
            let! doc = document false
            return known, before, after, doc
        }
        |> Check.arb

    Check.property (
        Prop.forAll case (fun (known, before, after, doc) ->
            let body =
                "{\"content\":\""
                + escapeJson (before + known + after)
                + "\",\"nested\":"
                + doc
                + ",\""
                + escapeJson known
                + "\":1}"

            let output =
                Redact.json [ known ] 100_000 (ReadOnlySpan(Encoding.UTF8.GetBytes body))

            noSecret output [ known ])
    )

[<Fact>]
let ``without credentials the JSON is kept as it was`` () =
    Check.property (
        Prop.forAll (document false |> Gen.filter (fun d -> not (d.Contains "S3CR")) |> Check.arb) (fun doc ->
            let output = Redact.json [] 1_000_000 (ReadOnlySpan(Encoding.UTF8.GetBytes doc))
            Assert.True(JsonNode.DeepEquals(JsonNode.Parse doc, JsonNode.Parse output), $"%s{doc}\n%s{output}"))
    )

[<Fact>]
let ``no secret survives in SSE text, at any cut`` () =
    let case =
        gen {
            let! events = Gen.listOfLength 3 (document true)
            let! ending = Gen.elements [ "\n\n"; "\r\n\r\n" ]

            let text =
                events
                |> List.map (fun d ->
                    "event: message_delta"
                    + ending.Substring(0, ending.Length / 2)
                    + "data: "
                    + d
                    + ending)
                |> String.concat ""

            let! cut = Gen.choose (0, text.Length)
            let! limit = Gen.choose (0, text.Length + 40)
            return text.Substring(0, cut), limit
        }
        |> Check.arb

    Check.quick
        500
        (Prop.forAll case (fun (text, limit) ->
            let output = Redact.sse [] limit (ReadOnlySpan(Encoding.UTF8.GetBytes text))
            noSecret output []))

[<Fact>]
let ``no secret survives in headers, by name or by value`` () =
    let case =
        gen {
            let! sensitive = Gen.listOf (Gen.zip sensitiveName secret) |> Gen.resize 5
            let! plain = Gen.listOf (Gen.zip plainName plainText) |> Gen.resize 5
            let! known = secret
            let! carrier = plainName
            let! shuffled = Gen.shuffle (sensitive @ plain @ [ carrier, "v " + known + " v" ])
            return List.ofArray shuffled, known
        }
        |> Check.arb

    Check.property (
        Prop.forAll case (fun (headers, known) ->
            let output = Redact.headers [ known ] headers
            noSecret output [ known ]

            for name, value in headers do
                if not (Redact.isSensitive name) && not (value.Contains "S3CR") then
                    Assert.Contains(name + ": " + value, output))
    )

[<Fact>]
let ``no secret survives in a query string, names and values percent-encoded or not`` () =
    let case =
        gen {
            let! sensitive = Gen.listOf (Gen.zip sensitiveName secret) |> Gen.resize 4
            let! plain = Gen.listOf (Gen.zip plainName plainText) |> Gen.resize 4
            let! known = secret
            let! pairs = Gen.shuffle (sensitive @ plain @ [ "q", known ])
            let! encodeNames = Gen.elements [ false; true ]

            let query =
                pairs
                |> Array.map (fun (name, value) ->
                    let name = if encodeNames then Uri.EscapeDataString name else name
                    name + "=" + Uri.EscapeDataString value)
                |> String.concat "&"

            return "?" + query, known
        }
        |> Check.arb

    Check.property (
        Prop.forAll case (fun (query, known) ->
            let output = Redact.query [ known ] query
            noSecret (Uri.UnescapeDataString output) [ known ])
    )
