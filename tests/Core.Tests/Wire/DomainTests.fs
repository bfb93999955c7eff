module CcRelay.Core.Tests.DomainTests

open System
open System.Text
open System.Text.Json
open Xunit
open CcRelay.Core

let private utf8 (bytes: byte array) : string = Encoding.UTF8.GetString bytes

let private allErrorTypes = [
    ErrorType.InvalidRequest
    ErrorType.Authentication
    ErrorType.Permission
    ErrorType.NotFound
    ErrorType.MethodNotAllowed
    ErrorType.RequestTooLarge
    ErrorType.RateLimit
    ErrorType.Api
    ErrorType.Timeout
    ErrorType.Overloaded
]

// ---------------------------
// ErrorEnvelope
// ---------------------------

[<Fact>]
let ``every error type has Anthropic's wire name and status`` () =
    let table =
        allErrorTypes
        |> List.map (fun t -> ErrorEnvelope.wireName t, ErrorEnvelope.status t)

    Assert.Equal<(string * int) list>(
        [
            "invalid_request_error", 400
            "authentication_error", 401
            "permission_error", 403
            "not_found_error", 404
            "invalid_request_error", 405
            "request_too_large", 413
            "rate_limit_error", 429
            "api_error", 502
            "timeout_error", 504
            "overloaded_error", 529
        ],
        table
    )

[<Fact>]
let ``toJson writes exactly the Anthropic envelope`` () =
    let json = ErrorEnvelope.toJson ErrorType.NotFound "model: no such model" |> utf8

    Assert.Equal("""{"type":"error","error":{"type":"not_found_error","message":"model: no such model"}}""", json)

[<Fact>]
let ``toJson escapes line breaks and backslashes in the message`` () =
    let json = ErrorEnvelope.toJson ErrorType.Api "a\nb\\c\td" |> utf8

    Assert.Equal("""{"type":"error","error":{"type":"api_error","message":"a\nb\\c\td"}}""", json)

[<Theory>]
[<InlineData("plain")>]
[<InlineData("with \"quotes\" and 'apostrophes'")>]
[<InlineData("<script>&amp;</script>")>]
[<InlineData("caf\u00e9 \u4e2d\u6587 \U0001F600")>]
[<InlineData("control \u0000\u0001\u001f and \u2028")>]
[<InlineData("")>]
let ``toJson keeps any message intact through a JSON parser`` (message: string) =
    use doc = JsonDocument.Parse(ErrorEnvelope.toJson ErrorType.InvalidRequest message)
    let root = doc.RootElement

    Assert.Equal("error", root.GetProperty("type").GetString())
    Assert.Equal("invalid_request_error", root.GetProperty("error").GetProperty("type").GetString())
    Assert.Equal(message, root.GetProperty("error").GetProperty("message").GetString())
    Assert.Equal(2, root.EnumerateObject() |> Seq.length)
    Assert.Equal(2, root.GetProperty("error").EnumerateObject() |> Seq.length)

[<Fact>]
let ``toJson does not throw on a lone surrogate in the message`` () =
    use doc = JsonDocument.Parse(ErrorEnvelope.toJson ErrorType.Api "cut \ud83d")

    Assert.Equal("cut \ufffd", doc.RootElement.GetProperty("error").GetProperty("message").GetString())

[<Fact>]
let ``toSseEvent is one complete error event carrying the JSON envelope`` () =
    let bytes = ErrorEnvelope.toSseEvent ErrorType.Overloaded "Overloaded"

    Assert.Equal(
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        utf8 bytes
    )

[<Fact>]
let ``toSseEvent stays a single frame when the message has line breaks`` () =
    let message = "line one\nline two\r\nline three\rend"
    let bytes = ErrorEnvelope.toSseEvent ErrorType.Api message

    Assert.Equal(bytes.Length, Sse.findEventEnd (ReadOnlySpan bytes))
    Assert.Equal(FrameKind.Error, Sse.frameKind (ReadOnlySpan bytes))

    match Sse.parse (ReadOnlySpan bytes) with
    | [ event ] ->
        Assert.Equal(Some "error", event.Event)
        Assert.Equal<byte array>(ErrorEnvelope.toJson ErrorType.Api message, Encoding.UTF8.GetBytes event.Data)
    | events -> failwith $"expected one event, got %A{events}"

// ---------------------------
// KeyId
// ---------------------------

/// FNV-1a 64 over the UTF-8 bytes, written independently of the module under test.
let private fnv1a64 (bytes: byte array) : uint64 =
    bytes
    |> Array.fold (fun hash b -> (hash ^^^ uint64 b) * 1099511628211UL) 14695981039346656037UL

[<Theory>]
// Published FNV-1a 64 test vectors (Landon Curt Noll's FNV test suite), first 8 hex digits.
[<InlineData("", "cbf29ce4")>]
[<InlineData("a", "af63dc4c")>]
[<InlineData("foobar", "85944171")>]
let ``KeyId is the first 8 hex digits of FNV-1a 64 over the key's bytes`` (secret: string, expected: string) =
    Assert.Equal(expected, KeyId.ofSecret secret)

[<Theory>]
[<InlineData("sk-ant-api03-abcdefghijklmnopqrstuvwxyz")>]
[<InlineData("cl\u00e9-\u4e2d\u6587-\U0001F511")>]
let ``KeyId hashes UTF-8 like the Go relay`` (secret: string) =
    let expected =
        (fnv1a64 (Encoding.UTF8.GetBytes secret)).ToString("x16").Substring(0, 8)

    Assert.Equal(expected, KeyId.ofSecret secret)

[<Fact>]
let ``KeyId is stable, short, lowercase hex and looks like an id`` () =
    let id = KeyId.ofSecret "sk-ant-secret"

    Assert.Equal(id, KeyId.ofSecret "sk-ant-secret")
    Assert.Equal(8, id.Length)
    Assert.True(id |> Seq.forall (fun c -> Char.IsAsciiDigit c || (c >= 'a' && c <= 'f')))
    Assert.True(KeyId.looksLikeId id)
    Assert.DoesNotContain("secret", id)

[<Fact>]
let ``KeyId keeps leading zero digits`` () =
    // Find a secret whose hash has a zero top nibble; the id must still be 8 digits long.
    let secret =
        Seq.initInfinite (fun i -> $"k%d{i}")
        |> Seq.find (fun s -> fnv1a64 (Encoding.UTF8.GetBytes s) >>> 60 = 0UL)

    let id = KeyId.ofSecret secret

    Assert.Equal(8, id.Length)
    Assert.StartsWith("0", id)

[<Fact>]
let ``different keys get different ids`` () =
    let ids =
        [ "sk-1"; "sk-2"; "sk-ant-a"; "sk-ant-b"; "key"; "Key"; "KEY" ]
        |> List.map KeyId.ofSecret

    Assert.Equal(ids.Length, List.distinct ids |> List.length)

[<Theory>]
[<InlineData("0123abcd", true)>]
[<InlineData("ABCDEF01", true)>]
[<InlineData("0123abc", false)>]
[<InlineData("0123abcde", false)>]
[<InlineData("0123abcg", false)>]
[<InlineData("", false)>]
let ``looksLikeId accepts exactly eight hex digits`` (value: string, expected: bool) =
    Assert.Equal(expected, KeyId.looksLikeId value)
