module CcRelay.Core.Tests.Http1Tests

open System
open System.Text
open Xunit
open CcRelay.Core

let private bytes (text: string) : byte array = Encoding.Latin1.GetBytes text

/// Collects the header fields a parse reports, as text.
type private Fields() =
    let fields = ResizeArray<string * string>()
    member _.All = List.ofSeq fields

    interface IResponseHeaderSink with
        member _.Header(name, value) =
            fields.Add(Encoding.Latin1.GetString name, Encoding.Latin1.GetString value)

let private parseWith (forHead: bool) (head: string) : Result<ResponseHead, string> * (string * string) list =
    let fields = Fields()
    let result = Http1.parseResponseHead (ReadOnlySpan(bytes head)) forHead fields
    result, fields.All

let private parse (head: string) : ResponseHead =
    match parseWith false head with
    | Ok head, _ -> head
    | Error e, _ -> failwith $"expected a valid head, got: {e}"

let private parseError (head: string) : string =
    match parseWith false head with
    | Ok head, _ -> failwith $"expected an error, got {head}"
    | Error e, _ -> e

// ---------------------------
// headEnd
// ---------------------------

[<Theory>]
[<InlineData("HTTP/1.1 200 OK\r\n\r\n", 19)>]
[<InlineData("HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody", 25)>]
[<InlineData("HTTP/1.1 200 OK\nA: b\n\nbody", 22)>]
[<InlineData("HTTP/1.1 200 OK\r\nA: b\n\r\n", 24)>]
[<InlineData("HTTP/1.1 200 OK\r\nA: b\r\n", -1)>]
[<InlineData("HTTP/1.1 200 OK\r\nA: b\r\n\r", -1)>]
[<InlineData("", -1)>]
let ``headEnd finds the empty line that ends a head`` (text: string, expected: int) =
    Assert.Equal(expected, Http1.headEnd (ReadOnlySpan(bytes text)))

// ---------------------------
// Status line
// ---------------------------

[<Theory>]
[<InlineData("HTTP/1.1 200 OK\r\n", 200)>]
[<InlineData("HTTP/1.0 404 Not Found\r\n", 404)>]
[<InlineData("HTTP/1.1 529\r\n", 529)>]
[<InlineData("HTTP/1.1 100 Continue\r\n", 100)>]
[<InlineData("HTTP/2 200 OK\r\n", -1)>]
[<InlineData("HTTP/1.1 20 OK\r\n", -1)>]
[<InlineData("HTTP/1.1 2000 OK\r\n", -1)>]
[<InlineData("HTTP/1.1 099 Odd\r\n", -1)>]
[<InlineData("HTTP/1.1 600 Beyond\r\n", -1)>]
[<InlineData("http/1.1 200 OK\r\n", -1)>]
[<InlineData("ICY 200 OK\r\n", -1)>]
let ``the status line gives the status code, or -1`` (line: string, expected: int) =
    Assert.Equal(expected, Http1.status (ReadOnlySpan(bytes line)))

// ---------------------------
// Fields
// ---------------------------

[<Fact>]
let ``every field reaches the sink in order with optional whitespace trimmed`` () =
    let result, fields =
        parseWith
            false
            "HTTP/1.1 200 OK\r\nContent-Type:  application/json \r\nrequest-id:req_1\r\nX-Empty:\r\nx-Dup: a\r\nx-dup: b\r\nContent-Length: 2\r\n\r\n"

    Assert.True(Result.isOk result)

    Assert.Equal<(string * string) list>(
        [
            "Content-Type", "application/json"
            "request-id", "req_1"
            "X-Empty", ""
            "x-Dup", "a"
            "x-dup", "b"
            "Content-Length", "2"
        ],
        fields
    )

[<Theory>]
[<InlineData("HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", "obsolete line folding")>]
[<InlineData("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "without a field name")>]
[<InlineData("HTTP/1.1 200 OK\r\n: empty name\r\n\r\n", "without a field name")>]
[<InlineData("HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n", "invalid character")>]
[<InlineData("HTTP/1.1 200 OK\r\nx-ctl: a\u0001b\r\n\r\n", "invalid character")>]
[<InlineData("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "Content-Length")>]
[<InlineData("HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "Content-Length")>]
[<InlineData("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length")>]
[<InlineData("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", "Content-Length")>]
[<InlineData("HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456789\r\n\r\n", "Content-Length")>]
[<InlineData("HTTP/1.1 2x0 OK\r\n\r\n", "status line")>]
[<InlineData("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "101 Switching Protocols")>]
let ``an unrecoverable head is an error naming what is wrong`` (head: string, expected: string) =
    Assert.Contains(expected, parseError head)

[<Fact>]
let ``a field that breaks the head stops the fields before it reaches the sink`` () =
    let _, fields =
        parseWith false "HTTP/1.1 200 OK\r\na: 1\r\nbad name: 2\r\nc: 3\r\n\r\n"

    Assert.Equal<(string * string) list>([ "a", "1" ], fields)

[<Fact>]
let ``an interim head is marked, and its fields are checked but never reach the sink`` () =
    match parseWith false "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" with
    | Ok head, fields ->
        Assert.True head.Interim
        Assert.Empty fields
    | Error e, _ -> failwith e

    Assert.False (parse "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").Interim
    Assert.Contains("invalid character", parseError "HTTP/1.1 100 Continue\r\nbad name: x\r\n\r\n")

[<Theory>]
[<InlineData("HTTP/1.0 200 OK\r\n\r\n", 0)>]
[<InlineData("HTTP/1.1 200 OK\r\n\r\n", 1)>]
let ``the head says its minor version`` (head: string, minor: int) = Assert.Equal(minor, (parse head).Minor)

// ---------------------------
// Framing and reuse (RFC 9112 §6.3, §9.3)
// ---------------------------

[<Fact>]
let ``a Content-Length frames the body, and a list of one repeated value is that value`` () =
    Assert.Equal(BodyFraming.Length 5L, (parse "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n").Framing)

    Assert.Equal(
        BodyFraming.Length 5L,
        (parse "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\ncontent-length: 5\r\n\r\n").Framing
    )

    Assert.Equal(BodyFraming.Empty, (parse "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").Framing)

[<Fact>]
let ``chunked as the final transfer coding frames the body by chunks`` () =
    let head = parse "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    Assert.Equal(BodyFraming.Chunked, head.Framing)
    Assert.True head.KeepAlive
    Assert.Equal(BodyFraming.Chunked, (parse "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, CHUNKED\r\n\r\n").Framing)

    Assert.Equal(
        BodyFraming.Chunked,
        (parse "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n").Framing
    )

[<Fact>]
let ``a transfer coding that does not end in chunked runs until close`` () =
    let head = parse "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
    Assert.Equal(BodyFraming.UntilClose, head.Framing)
    Assert.False head.KeepAlive

[<Fact>]
let ``Transfer-Encoding overrides Content-Length and the connection is not reused`` () =
    let head =
        parse "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n"

    Assert.Equal(BodyFraming.Chunked, head.Framing)
    Assert.False head.KeepAlive

[<Fact>]
let ``no length and no coding: the body runs until the upstream closes`` () =
    let head = parse "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
    Assert.Equal(BodyFraming.UntilClose, head.Framing)
    Assert.False head.KeepAlive

[<Theory>]
[<InlineData("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n")>]
[<InlineData("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n")>]
[<InlineData("HTTP/1.1 100 Continue\r\n\r\n")>]
[<InlineData("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")>]
let ``1xx, 204 and 304 have no body whatever their fields say`` (head: string) =
    let parsed = parse head
    Assert.Equal(BodyFraming.Empty, parsed.Framing)
    Assert.True parsed.KeepAlive

[<Fact>]
let ``an answer to HEAD has no body whatever its fields say`` () =
    match parseWith true "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" with
    | Ok head, _ ->
        Assert.Equal(BodyFraming.Empty, head.Framing)
        Assert.True head.KeepAlive
    | Error e, _ -> failwith e

[<Theory>]
[<InlineData("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true)>]
[<InlineData("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false)>]
[<InlineData("HTTP/1.1 200 OK\r\nConnection: Upgrade, Close\r\nContent-Length: 0\r\n\r\n", false)>]
[<InlineData("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true)>]
[<InlineData("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false)>]
[<InlineData("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n", true)>]
[<InlineData("HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n", false)>]
let ``the connection is reused on HTTP/1.1 unless closed, on HTTP/1.0 only when kept alive``
    (head: string, expected: bool)
    =
    Assert.Equal(expected, (parse head).KeepAlive)

// ---------------------------
// Chunked decoding
// ---------------------------

/// Decodes `input` in one buffer with steps of at most `maxData` data bytes: the data, the final decoder, and the bytes consumed.
let private decodeAll (maxData: int) (input: byte array) : byte array * ChunkDecoder * int =
    let data = ResizeArray<byte>()
    let mutable decoder = Chunked.start
    let mutable offset = 0
    let mutable progress = true

    while progress
          && offset < input.Length
          && decoder.Phase <> ChunkPhase.Done
          && decoder.Phase <> ChunkPhase.Invalid do
        let step =
            Chunked.step decoder (ReadOnlySpan(input, offset, input.Length - offset)) maxData

        data.AddRange(input[offset + step.DataStart .. offset + step.DataStart + step.DataLength - 1])
        decoder <- step.Decoder
        offset <- offset + step.Consumed
        progress <- step.Consumed > 0

    data.ToArray(), decoder, offset

[<Theory>]
[<InlineData("5\r\nhello\r\n0\r\n\r\n", "hello")>]
[<InlineData("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world")>]
[<InlineData("0000A\r\n0123456789\r\n0\r\n\r\n", "0123456789")>]
[<InlineData("a;name=value;x\r\n0123456789\r\n0;last\r\n\r\n", "0123456789")>]
[<InlineData("5 \r\nhello\r\n0\r\n\r\n", "hello")>]
[<InlineData("5\nhello\n0\n\n", "hello")>]
[<InlineData("5\r\nhello\r\n0\r\nx-trailer: 1\r\nx-other: 2\r\n\r\n", "hello")>]
[<InlineData("0\r\n\r\n", "")>]
let ``chunked bodies decode to their data and end after the last chunk and trailers``
    (encoded: string, expected: string)
    =
    for maxData in [ 1; 3; 4096 ] do
        let data, decoder, consumed =
            decodeAll maxData (bytes (encoded + "HTTP/1.1 200 next"))

        Assert.Equal(expected, Encoding.Latin1.GetString data)
        Assert.Equal(ChunkPhase.Done, decoder.Phase)
        Assert.Equal(encoded.Length, consumed)

[<Theory>]
[<InlineData("x\r\n")>]
[<InlineData("\r\nhello")>]
[<InlineData("5\r\nhelloX\r\n")>]
[<InlineData("5\r\nhello\rX")>]
[<InlineData("5\rX")>]
[<InlineData("1000000000000000\r\n")>]
[<InlineData("5\r\nhello\r\n0\r\n\rX")>]
let ``broken chunk framing is Invalid, never more data`` (encoded: string) =
    let data, decoder, _ = decodeAll 4096 (bytes encoded)
    Assert.Equal(ChunkPhase.Invalid, decoder.Phase)
    Assert.True(data.Length <= 5)

[<Fact>]
let ``a step stops right after one data run, so a host can copy it before reading on`` () =
    let step =
        Chunked.step Chunked.start (ReadOnlySpan(bytes "3\r\nabc\r\n3\r\ndef\r\n")) 4096

    Assert.Equal(3, step.DataStart)
    Assert.Equal(3, step.DataLength)
    Assert.Equal(6, step.Consumed)
    Assert.Equal(ChunkPhase.DataCr, step.Decoder.Phase)

[<Fact>]
let ``data read straight into a host buffer is accounted with skipData`` () =
    let step = Chunked.step Chunked.start (ReadOnlySpan(bytes "a\r\n")) 4096
    Assert.Equal(ChunkPhase.Data, step.Decoder.Phase)
    Assert.Equal(10L, step.Decoder.Remaining)
    let partly = Chunked.skipData step.Decoder 4
    Assert.Equal(ChunkPhase.Data, partly.Phase)
    Assert.Equal(6L, partly.Remaining)
    let whole = Chunked.skipData partly 6
    Assert.Equal(ChunkPhase.DataCr, whole.Phase)
    let rest = Chunked.step whole (ReadOnlySpan(bytes "\r\n0\r\n\r\n")) 4096
    Assert.Equal(ChunkPhase.Done, rest.Decoder.Phase)

// ---------------------------
// The client's own rules
// ---------------------------

[<Theory>]
[<InlineData("Host", true)>]
[<InlineData("content-length", true)>]
[<InlineData("Transfer-Encoding", true)>]
[<InlineData("CONNECTION", true)>]
[<InlineData("Content-Type", false)>]
[<InlineData("x-api-key", false)>]
[<InlineData("traceparent", false)>]
let ``the client writes Host and Content-Length itself and never copies framing fields``
    (name: string, expected: bool)
    =
    Assert.Equal(expected, Http1Client.writesItself name)

let private seconds (s: float) = TimeSpan.FromSeconds s

[<Theory>]
[<InlineData(10.0, 0.5, "Reuse")>]
[<InlineData(10.0, 1.0, "ReuseIfOpen")>]
[<InlineData(10.0, 89.0, "ReuseIfOpen")>]
[<InlineData(100.0, 90.0, "Expired")>]
[<InlineData(300.0, 0.1, "Expired")>]
let ``a pooled connection is reused within its lifetime and idle timeout, checked once idle a second``
    (age: float, idle: float, expected: string)
    =
    let verdict =
        Http1Client.reuse (seconds 300.0) (seconds 90.0) (seconds age) (seconds idle)

    Assert.Equal(expected, string verdict)

[<Theory>]
[<InlineData(0, true, true, false, true)>]
[<InlineData(1, true, true, false, false)>]
[<InlineData(0, false, true, false, false)>]
[<InlineData(0, true, false, false, false)>]
[<InlineData(0, true, true, true, false)>]
let ``a request is sent again only once, only when a reused connection failed before any answer, never after cancellation``
    (attempt: int, reused: bool, nothingReceived: bool, cancelled: bool, expected: bool)
    =
    Assert.Equal(expected, Http1Client.sendAgain attempt reused nothingReceived cancelled)
