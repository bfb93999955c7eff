module CcRelay.Core.Properties.Generators

open System
open FsCheck
open FsCheck.FSharp
open CcRelay.Core

// ---------------------------
// Basics
// ---------------------------

/// A string built from pieces drawn from `piece`, at most `maxPieces` long.
let stringOf (maxPieces: int) (piece: Gen<string>) : Gen<string> =
    gen {
        let! count = Gen.choose (0, maxPieces)
        let! pieces = Gen.listOfLength count piece
        return String.Concat pieces
    }

/// The same ASCII text with each letter's case chosen at random.
let recase (text: string) : Gen<string> =
    gen {
        let! upper = Gen.listOfLength text.Length (Gen.elements [ false; true ])

        return
            Seq.zip text upper
            |> Seq.map (fun (c, up) ->
                if up then
                    Char.ToUpperInvariant c
                else
                    Char.ToLowerInvariant c)
            |> String.Concat
    }

/// Text pieces that exercise encoders and parsers: ASCII, punctuation that JSON/SSE care about, BMP letters,
/// astral characters (surrogate pairs), and control characters. Never a lone surrogate.
let textPiece: Gen<string> =
    Gen.frequency [
        6, Gen.elements [ "a"; "b"; "z"; "Q"; "0"; "7"; "-"; "_"; "."; " " ]
        2, Gen.elements [ "\""; "\\"; "/"; ":"; "{"; "}"; "["; "]"; ","; "'"; "<"; ">"; "&" ]
        2,
        Gen.elements [
            "\u00e9"
            "\u00df"
            "\u4e2d"
            "\u6587"
            "\u0416"
            "\u2028"
            "\u2029"
            "\ufeff"
            "\uffff"
        ]
        1, Gen.elements [ "\U0001F600"; "\U0001F511"; "\U00010348" ]
        1, Gen.elements [ "\u0000"; "\u0001"; "\b"; "\t"; "\f"; "\u001f"; "\u007f" ]
    ]

/// Text without CR or LF (an SSE field value).
let lineText: Gen<string> =
    stringOf 12 (textPiece |> Gen.map (fun s -> s.Replace("\u0000", "")))

/// Any text, line breaks included.
let anyText: Gen<string> =
    stringOf 12 (Gen.frequency [ 8, textPiece; 1, Gen.elements [ "\n"; "\r"; "\r\n" ] ])

// ---------------------------
// Headers
// ---------------------------

let hopByHopNames = [
    "connection"
    "keep-alive"
    "proxy-authenticate"
    "proxy-authorization"
    "proxy-connection"
    "te"
    "trailer"
    "transfer-encoding"
    "upgrade"
    "alt-svc"
    "http2-settings"
    "upgrade-insecure-requests"
]

let credentialNames = [ "x-api-key"; "authorization" ]

let relayOwnedRequestNames =
    [ "host"; "content-length"; "accept-encoding"; "expect" ] @ credentialNames

let endToEndNames = [
    "content-type"
    "anthropic-version"
    "anthropic-beta"
    "user-agent"
    "accept"
    "x-request-id"
    "x-claude-code-session-id"
    "request-id"
    "retry-after"
    "anthropic-ratelimit-requests-remaining"
    "cache-control"
    "tex"
    "connections"
    "x-te"
]

/// A random RFC 9110 token-ish header name.
let tokenName: Gen<string> =
    gen {
        let! first = Gen.elements [ 'a' .. 'z' ]

        let! rest =
            Gen.listOf (Gen.elements ([ 'a' .. 'z' ] @ [ '0' .. '9' ] @ [ '-'; '_'; '.' ]))

        return String(first :: rest |> List.toArray)
    }

let pseudoName: Gen<string> =
    Gen.oneof [
        Gen.elements [ ":authority"; ":path"; ":method"; ":scheme"; ":status"; ":protocol" ]
        tokenName |> Gen.map ((+) ":")
    ]

/// Header names across every class the relay distinguishes, in lower case.
let headerName: Gen<string> =
    Gen.frequency [
        3, Gen.elements hopByHopNames
        2, Gen.elements relayOwnedRequestNames
        3, Gen.elements endToEndNames
        1, pseudoName
        2, tokenName
    ]

// ---------------------------
// SSE
// ---------------------------

let anthropicEventNames = [
    "message_start"
    "content_block_start"
    "content_block_delta"
    "content_block_stop"
    "message_delta"
    "message_stop"
    "ping"
    "error"
]

/// Text for an SSE field value: no CR or LF, NUL allowed.
let fieldText: Gen<string> = stringOf 10 textPiece

/// Text for an `id:` value: no CR, LF or NUL (the parser ignores an id with NUL).
let idText: Gen<string> = lineText

let sseEventName: Gen<string> =
    Gen.frequency [ 4, Gen.elements anthropicEventNames; 1, lineText ]

let retryValue: Gen<int> =
    Gen.frequency [ 4, Gen.choose (0, 100_000); 1, Gen.elements [ 0; Int32.MaxValue ] ]

/// An event `format` can write: no line breaks in the name or id, a non-negative retry, data lines joined by `\n`.
let sseEvent: Gen<SseEvent> =
    gen {
        let! event = Gen.optionOf sseEventName
        let! lineCount = Gen.frequency [ 4, Gen.constant 1; 2, Gen.choose (2, 4) ]
        let! lines = Gen.listOfLength lineCount fieldText
        let! id = Gen.frequency [ 3, Gen.constant None; 1, Gen.map Some idText ]
        let! retry = Gen.frequency [ 3, Gen.constant None; 1, Gen.map Some retryValue ]

        return {
            Event = event
            Data = String.Join("\n", lines)
            Id = id
            Retry = retry
        }
    }

let sseEvents: Gen<SseEvent list> =
    Gen.sized (fun size -> Gen.choose (0, min 12 (1 + size / 8)))
    |> Gen.bind (fun n -> Gen.listOfLength n sseEvent)

let private afterColon: Gen<string> = Gen.elements [ ""; " "; " "; "  " ]

/// One line of a raw event stream, without its line end: every kind of field, well-formed or not.
let rawSseLine: Gen<string> =
    let field (name: string) (value: Gen<string>) =
        gen {
            let! space = afterColon
            let! value = value
            return name + ":" + space + value
        }

    Gen.frequency [
        5, field "data" fieldText
        2, field "event" sseEventName
        1, field "id" fieldText
        1,
        field
            "retry"
            (Gen.oneof [
                retryValue |> Gen.map string
                Gen.elements [ ""; "abc"; "12a"; "-5"; "+5"; " 5"; "99999999999"; "2147483648"; "\u0661" ]
            ])
        1, Gen.map ((+) ":") fieldText
        1,
        Gen.elements [
            "data"
            "event"
            "id"
            "retry"
            "foo"
            "Data: x"
            "EVENT: y"
            "dat: z"
            "foo: bar"
        ]
        4, Gen.constant ""
    ]

let sseLineEnd: Gen<string> = Gen.elements [ "\n"; "\r\n"; "\r" ]

/// A raw event stream with mixed line ends, possibly ending in an unterminated line.
let rawSseStream: Gen<string> =
    gen {
        let! count = Gen.sized (fun size -> Gen.choose (0, min 40 (2 + size / 3)))
        let! lines = Gen.listOfLength count (Gen.zip rawSseLine sseLineEnd)
        let! tail = Gen.frequency [ 3, Gen.constant ""; 1, rawSseLine ]

        return
            (lines |> List.map (fun (line, lineEnd) -> line + lineEnd) |> String.Concat)
            + tail
    }

/// Splits `bytes` into chunks at random points (sometimes one byte at a time).
let chunksOf (bytes: byte array) : Gen<byte array list> =
    let cutAt (cuts: int list) =
        let points = (0 :: cuts @ [ bytes.Length ]) |> List.distinct |> List.sort

        points |> List.pairwise |> List.map (fun (a, b) -> bytes[a .. b - 1])

    Gen.frequency [
        1, Gen.constant [ for b in bytes -> [| b |] ]
        6, Gen.listOf (Gen.choose (0, bytes.Length)) |> Gen.map cutAt
    ]

// ---------------------------
// JSON request bodies
// ---------------------------

/// A JSON value as a tree, so a generated body can be compared with what a parser reads back.
type Json =
    | JNull
    | JBool of bool
    | JNumber of string
    | JString of string
    | JArray of Json list
    | JObject of (string * Json) list

let private hex4 (upper: bool) (c: char) : string =
    (int c).ToString(if upper then "X4" else "x4")

/// One character as it may legally appear inside a JSON string, with a random choice of escape.
let private jsonChar (c: char) : Gen<string> =
    let unicode =
        Gen.elements [ false; true ] |> Gen.map (fun upper -> "\\u" + hex4 upper c)

    match c with
    | '"' -> Gen.oneof [ Gen.constant "\\\""; unicode ]
    | '\\' -> Gen.oneof [ Gen.constant "\\\\"; unicode ]
    | '/' -> Gen.elements [ "/"; "\\/" ]
    | '\b' -> Gen.oneof [ Gen.constant "\\b"; unicode ]
    | '\f' -> Gen.oneof [ Gen.constant "\\f"; unicode ]
    | '\n' -> Gen.oneof [ Gen.constant "\\n"; unicode ]
    | '\r' -> Gen.oneof [ Gen.constant "\\r"; unicode ]
    | '\t' -> Gen.oneof [ Gen.constant "\\t"; unicode ]
    | c when c < ' ' -> unicode
    | c -> Gen.frequency [ 4, Gen.constant (string c); 1, unicode ]

/// A JSON string literal for `text`, quotes included, each character raw or escaped at random.
/// Surrogate pairs are kept together (raw) or escaped as two `\uXXXX`.
let jsonStringLiteral (text: string) : Gen<string> =
    let rec units (i: int) : string list =
        if i >= text.Length then
            []
        elif Char.IsHighSurrogate text[i] && i + 1 < text.Length then
            text.Substring(i, 2) :: units (i + 2)
        else
            string text[i] :: units (i + 1)

    units 0
    |> Gen.collectToList (fun unit ->
        if unit.Length = 2 then
            Gen.elements [ unit; "\\u" + hex4 true unit[0] + "\\u" + hex4 false unit[1] ]
        else
            jsonChar unit[0])
    |> Gen.map (fun parts -> "\"" + String.Concat parts + "\"")

let private whitespace: Gen<string> =
    Gen.frequency [
        6, Gen.constant ""
        2, Gen.constant " "
        1, Gen.elements [ "\n"; "\t"; "\r\n  "; "  " ]
    ]

/// Renders a JSON tree as text, with random whitespace and random (valid) escapes.
let rec renderJson (json: Json) : Gen<string> =
    let around (inner: Gen<string>) =
        Gen.map3 (fun a s b -> a + s + b) whitespace inner whitespace

    let joined (open': string) (close: string) (items: Gen<string> list) =
        Gen.sequenceToList items
        |> Gen.map (fun parts -> open' + String.Join(",", parts) + close)

    match json with
    | JNull -> around (Gen.constant "null")
    | JBool b -> around (Gen.constant (if b then "true" else "false"))
    | JNumber n -> around (Gen.constant n)
    | JString s -> around (jsonStringLiteral s)
    | JArray items -> around (items |> List.map renderJson |> joined "[" "]")
    | JObject members ->
        members
        |> List.map (fun (key, value) ->
            Gen.map2 (fun k v -> k + ":" + v) (around (jsonStringLiteral key)) (renderJson value))
        |> joined "{" "}"
        |> around

/// Non-empty text with quotes, backslashes, controls, BMP and astral characters.
let jsonText: Gen<string> = stringOf 8 textPiece

let modelName: Gen<string> =
    Gen.frequency [
        2, Gen.elements [ "claude-sonnet-4-6"; "claude-opus-4-6"; "GLM-5"; "MiniMax-M2.5"; "m" ]
        3, jsonText |> Gen.map (fun s -> "m" + s)
    ]

let private jsonKey: Gen<string> =
    Gen.frequency [
        4,
        Gen.elements [
            "messages"
            "system"
            "max_tokens"
            "metadata"
            "tools"
            "thinking"
            "stream"
            "Model"
            "models"
            "mode"
            "model_"
            " model"
        ]
        1, jsonText
    ]

let private jsonLeaf: Gen<Json> =
    Gen.oneof [
        Gen.constant JNull
        Gen.elements [ JBool true; JBool false ]
        Gen.elements [ "0"; "-1"; "42"; "3.14"; "1e10"; "-0.5E-3"; "123456789012345678901234567890" ]
        |> Gen.map JNumber
        jsonText |> Gen.map JString
    ]

/// Any JSON value; nested objects may have `model` keys of their own.
let rec jsonValue (size: int) : Gen<Json> =
    if size <= 1 then
        jsonLeaf
    else
        let child = jsonValue (size / 3)

        Gen.frequency [
            3, jsonLeaf
            1, Gen.listOf child |> Gen.resize 4 |> Gen.map JArray
            1,
            Gen.listOf (Gen.zip (Gen.frequency [ 4, jsonKey; 1, Gen.constant "model" ]) child)
            |> Gen.resize 4
            |> Gen.map JObject
        ]

/// Top-level members that are not `model`.
let topLevelMembers: Gen<(string * Json) list> =
    Gen.sized (fun size ->
        Gen.listOf (Gen.zip jsonKey (jsonValue size))
        |> Gen.resize 6
        |> Gen.map (List.filter (fun (key, _) -> key <> "model")))

/// A request body: other members, with the top-level `model` placed anywhere among them.
let requestBody: Gen<Json * string> =
    gen {
        let! members = topLevelMembers
        let! model = modelName
        let! at = Gen.choose (0, members.Length)
        let before, after = List.splitAt at members
        return JObject(before @ [ "model", JString model ] @ after), model
    }

// ---------------------------
// Auth
// ---------------------------

/// A secret as an operator or a client would write one: non-empty, no surrounding whitespace
/// (a bearer token is trimmed), any characters inside.
let secret: Gen<string> =
    gen {
        let! first = Gen.elements [ "s"; "k"; "S"; "7"; "\u00e9" ]
        let! middle = stringOf 8 (textPiece |> Gen.map (fun s -> s.Replace("\u0000", "")))
        let! last = Gen.elements [ "x"; "Y"; "0"; "-"; "\u4e2d" ]
        return first + middle + last
    }

/// A value close to `value` but different: re-cased, extended, shortened or padded.
let nearMiss (value: string) : Gen<string> =
    Gen.elements [
        value.ToUpperInvariant()
        value.ToLowerInvariant()
        value + "x"
        "x" + value
        value.Substring(0, value.Length - 1)
        value + " "
        " " + value
        value.Substring(1)
    ]
    |> Gen.map (fun v -> if v = value then value + "!" else v)

let authSettings: Gen<AuthSettings> =
    gen {
        let! apiKey =
            Gen.frequency [ 2, Gen.constant None; 1, Gen.constant (Some ""); 4, Gen.map Some secret ]

        let! allowBearer = Gen.elements [ false; true ]
        let! sameSecret = Gen.frequency [ 6, Gen.constant false; 1, Gen.constant true ]

        let! bearerSecret =
            match apiKey with
            | Some key when sameSecret && key <> "" -> Gen.constant (Some key)
            | _ -> Gen.frequency [ 2, Gen.constant None; 1, Gen.constant (Some ""); 3, Gen.map Some secret ]

        return {
            ApiKey = apiKey
            AllowBearer = allowBearer
            BearerSecret = bearerSecret
        }
    }

/// A credential a client might present to a relay with `settings`: one of its secrets, a near miss, or a
/// foreign one (the user's own key or subscription token).
let presentedSecret (settings: AuthSettings) : Gen<string> =
    let own =
        [ settings.ApiKey; settings.BearerSecret ]
        |> List.choose id
        |> List.filter (fun s -> s <> "")

    Gen.frequency [
        if not own.IsEmpty then
            3, Gen.elements own
            2, Gen.elements own |> Gen.bind nearMiss
        2, secret
    ]

/// An `Authorization` header value carrying `token` (scheme in any case, optional extra spaces).
let bearerHeader (token: string) : Gen<string> =
    Gen.map3
        (fun scheme gap pad -> pad + scheme + gap + token + pad)
        (recase "Bearer")
        (Gen.elements [ " "; " "; "  " ])
        (Gen.elements [ ""; ""; " " ])

/// The raw `x-api-key` and `Authorization` header values of a request.
let presentedHeaders (settings: AuthSettings) : Gen<string option * string option> =
    let apiKey =
        Gen.frequency [
            2, Gen.constant None
            1, Gen.constant (Some "")
            5, presentedSecret settings |> Gen.map Some
        ]

    let authorization =
        Gen.frequency [
            2, Gen.constant None
            1,
            Gen.elements [
                Some ""
                Some "Bearer "
                Some "Bearer"
                Some "Basic dXNlcjpwYXNz"
                Some "Token abc"
            ]
            5, presentedSecret settings |> Gen.bind bearerHeader |> Gen.map Some
        ]

    Gen.zip apiKey authorization

// ---------------------------
// Models
// ---------------------------

/// A catalogue as `Models.catalogue` builds it: distinct ids, in a meaningful (config) order.
let catalogue: Gen<ModelInfo list> =
    Gen.sized (fun size -> Gen.choose (0, min 60 (size + 1)))
    |> Gen.bind (fun n -> Gen.listOfLength n (Gen.elements [ "claude"; "glm"; "m"; "MiniMax"; "\u00e9"; "a b" ]))
    |> Gen.map (List.mapi (fun i stem -> $"%s{stem}-%d{i}"))
    |> Gen.bind Gen.shuffle
    |> Gen.map (fun ids ->
        ids
        |> Seq.map (fun id -> {
            Id = id
            DisplayName = id
            CreatedAt = DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero)
            Provider = "p"
        })
        |> List.ofSeq)

/// A page size, small enough to need several pages.
let pageLimit: Gen<int> =
    Gen.frequency [ 5, Gen.choose (1, 7); 1, Gen.choose (8, 70); 1, Gen.elements [ 1; 1000 ] ]
