module CcRelay.Core.Properties.Generators

open System
open FsCheck
open FsCheck.FSharp

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
