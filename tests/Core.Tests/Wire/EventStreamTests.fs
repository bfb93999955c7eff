module CcRelay.Core.Tests.EventStreamTests

open System
open System.Buffers.Binary
open System.Text
open Xunit
open CcRelay.Core

let private read (bytes: byte array) : EventStreamRead =
    EventStream.tryRead (ReadOnlySpan bytes)

/// A message with correct CRCs around any headers section and payload (bypasses `encode`'s checks).
let private frame (headers: byte array) (payload: byte array) : byte array =
    let total = 16 + headers.Length + payload.Length
    let out = Array.zeroCreate<byte> total
    BinaryPrimitives.WriteUInt32BigEndian(Span(out, 0, 4), uint32 total)
    BinaryPrimitives.WriteUInt32BigEndian(Span(out, 4, 4), uint32 headers.Length)
    BinaryPrimitives.WriteUInt32BigEndian(Span(out, 8, 4), EventStream.crc32 (ReadOnlySpan(out, 0, 8)))
    headers.CopyTo(out, 12)
    payload.CopyTo(out, 12 + headers.Length)
    BinaryPrimitives.WriteUInt32BigEndian(Span(out, total - 4, 4), EventStream.crc32 (ReadOnlySpan(out, 0, total - 4)))
    out

/// A prelude with a correct CRC for any two lengths, followed by `rest`.
let private prelude (total: uint32) (headersLength: uint32) (rest: int) : byte array =
    let out = Array.zeroCreate<byte>(12 + rest)
    BinaryPrimitives.WriteUInt32BigEndian(Span(out, 0, 4), total)
    BinaryPrimitives.WriteUInt32BigEndian(Span(out, 4, 4), headersLength)
    BinaryPrimitives.WriteUInt32BigEndian(Span(out, 8, 4), EventStream.crc32 (ReadOnlySpan(out, 0, 8)))
    out

let private expectMessage (bytes: byte array) : EventStreamMessage * int =
    match read bytes with
    | EventStreamRead.Message(message, consumed) -> message, consumed
    | other -> failwith $"expected a message, got %A{other}"

let private expectCorrupt (bytes: byte array) : string =
    match read bytes with
    | EventStreamRead.Corrupt reason -> reason
    | other -> failwith $"expected Corrupt, got %A{other}"

let private str (value: string) = EventStreamHeaderValue.String value

// A Bedrock chunk frame encoded by @smithy/eventstream-codec 4.5.2 (tests/Interop/eventstream.mjs):
// headers :event-type chunk, :content-type application/json, :message-type event;
// payload {"bytes":"eyJ0eXBlIjoicGluZyJ9","p":"abc"} (the event {"type":"ping"}).
let private smithyChunk =
    Convert.FromHexString(
        "000000850000004bfd2a78930b3a6576656e742d747970650700056368756e6b0d3a636f6e74656e742d7479706507001061"
        + "70706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b226279746573223a226579"
        + "4a306558426c496a6f6963476c755a794a39222c2270223a22616263227d730336a1"
    )

let private smithyChunkMessage = {
    Headers = [
        ":event-type", str "chunk"
        ":content-type", str "application/json"
        ":message-type", str "event"
    ]
    Payload = Encoding.UTF8.GetBytes """{"bytes":"eyJ0eXBlIjoicGluZyJ9","p":"abc"}"""
}

// Every header type, encoded by the same smithy codec, payload "hi".
let private smithyAllTypes =
    Convert.FromHexString(
        "0000006a00000058d3106943016200016601017902fb017303fed4016904075bcd15016c05ffdfffffffffffff0362696e"
        + "060004000102ff0373747207000668c3a96c6c6f027473080000018bcfe5687b0175090123456789abcdef0123456789ab"
        + "cdef686931801134"
    )

let private allTypesMessage = {
    Headers = [
        "b", EventStreamHeaderValue.Bool true
        "f", EventStreamHeaderValue.Bool false
        "y", EventStreamHeaderValue.Byte -5y
        "s", EventStreamHeaderValue.Short -300s
        "i", EventStreamHeaderValue.Int 123456789
        "l", EventStreamHeaderValue.Long -9007199254740993L
        "bin", EventStreamHeaderValue.Bytes [| 0uy; 1uy; 2uy; 255uy |]
        "str", str "héllo"
        "ts", EventStreamHeaderValue.Timestamp 1700000000123L
        "u", EventStreamHeaderValue.Uuid(Guid "01234567-89ab-cdef-0123-456789abcdef")
    ]
    Payload = "hi"B
}

// ---------------------------
// crc32
// ---------------------------

[<Fact>]
let ``crc32 is the IEEE CRC-32 (check value of "123456789")`` () =
    Assert.Equal(0xCBF43926u, EventStream.crc32 (ReadOnlySpan "123456789"B))
    Assert.Equal(0u, EventStream.crc32 ReadOnlySpan.Empty)

// ---------------------------
// tryRead: known frames
// ---------------------------

[<Fact>]
let ``a Bedrock chunk frame encoded by smithy decodes to its headers and payload`` () =
    let message, consumed = expectMessage smithyChunk
    Assert.Equal(smithyChunk.Length, consumed)
    Assert.Equal(smithyChunkMessage, message)

[<Fact>]
let ``every header type decodes from smithy's encoding`` () =
    let message, consumed = expectMessage smithyAllTypes
    Assert.Equal(0x6a, consumed)
    Assert.Equal<(string * EventStreamHeaderValue) list>(allTypesMessage.Headers, message.Headers)
    Assert.Equal<byte array>(allTypesMessage.Payload, message.Payload)

[<Fact>]
let ``encode writes the same bytes as smithy`` () =
    Assert.Equal<byte array>(smithyChunk, EventStream.encode smithyChunkMessage)
    Assert.Equal<byte array>(smithyAllTypes, EventStream.encode allTypesMessage)

[<Fact>]
let ``the smallest message is 16 bytes with no headers and no payload`` () =
    let bytes = EventStream.encode { Headers = []; Payload = [||] }
    Assert.Equal(16, bytes.Length)
    let message, consumed = expectMessage bytes
    Assert.Equal(16, consumed)
    Assert.Empty message.Headers
    Assert.Empty message.Payload

[<Fact>]
let ``bytes after the message are left for the next read`` () =
    let both = Array.append smithyChunk smithyAllTypes
    let _, consumed = expectMessage both
    Assert.Equal(smithyChunk.Length, consumed)
    let second, _ = expectMessage (both[consumed..])
    Assert.Equal<(string * EventStreamHeaderValue) list>(allTypesMessage.Headers, second.Headers)

[<Fact>]
let ``a repeated header name is kept in wire order`` () =
    let message = {
        Headers = [ "a", str "1"; "a", EventStreamHeaderValue.Int 2; "a", str "3" ]
        Payload = [||]
    }

    let decoded, _ = expectMessage (EventStream.encode message)
    Assert.Equal(message, decoded)

// ---------------------------
// tryRead: incomplete input
// ---------------------------

[<Fact>]
let ``every strict prefix of a message needs more`` () =
    for length in 0 .. smithyChunk.Length - 1 do
        Assert.Equal(EventStreamRead.NeedMore, read smithyChunk[.. length - 1])

// ---------------------------
// tryRead: corruption
// ---------------------------

[<Fact>]
let ``a bad prelude CRC is corrupt before the length is trusted`` () =
    let bytes = Array.copy smithyChunk
    bytes[3] <- 0xFFuy // the length now claims more than was sent: no waiting for it
    Assert.Equal("prelude CRC mismatch", expectCorrupt bytes[..11])

[<Fact>]
let ``a bad message CRC is corrupt`` () =
    let bytes = Array.copy smithyChunk
    bytes[bytes.Length - 6] <- bytes[bytes.Length - 6] ^^^ 1uy
    Assert.Equal("message CRC mismatch", expectCorrupt bytes)

[<Theory>]
[<InlineData(0u, 0u)>]
[<InlineData(15u, 0u)>]
[<InlineData(16777217u, 0u)>]
[<InlineData(4294967295u, 0u)>]
[<InlineData(16u, 1u)>]
[<InlineData(100u, 85u)>]
[<InlineData(100u, 4294967295u)>]
let ``an impossible length is corrupt as soon as the prelude is there`` (total: uint32, headersLength: uint32) =
    expectCorrupt (prelude total headersLength 0) |> ignore

[<Fact>]
let ``a length at the 16 MiB limit is accepted (needs more)`` () =
    Assert.Equal(EventStreamRead.NeedMore, read (prelude 16777216u 0u 100))

[<Theory>]
[<InlineData("05616263", "name")>] // name longer than the section
[<InlineData("0161", "name")>] // no type byte
[<InlineData("01610a", "unknown value type 10")>]
[<InlineData("016104000000", "value runs past")>] // int with 3 bytes
[<InlineData("0161070005616263", "value runs past")>] // string of 5 with 3 bytes
[<InlineData("01610700", "value runs past")>] // string length cut
[<InlineData("016107000261ff", "not UTF-8")>] // string with an invalid byte
[<InlineData("01ff0000", "not UTF-8")>] // name with an invalid byte
let ``malformed headers are corrupt`` (headersHex: string, reasonPart: string) =
    let reason = expectCorrupt (frame (Convert.FromHexString headersHex) [||])
    Assert.Contains(reasonPart, reason)

[<Fact>]
let ``a byte-array header may be empty and a string may use the full 2-byte length`` () =
    let big = String('x', 40000)

    let headers =
        Array.concat [
            Convert.FromHexString "0162060000"
            Convert.FromHexString "0173079c40"
            Encoding.ASCII.GetBytes big
        ]

    let message, _ = expectMessage (frame headers [||])

    Assert.Equal<(string * EventStreamHeaderValue) list>(
        [ "b", EventStreamHeaderValue.Bytes [||]; "s", str big ],
        message.Headers
    )

// ---------------------------
// encode limits and stringHeader
// ---------------------------

[<Fact>]
let ``encode refuses what the format cannot carry`` () =
    let tooLongName = {
        Headers = [ String('n', 256), str "" ]
        Payload = [||]
    }

    let tooLongValue = {
        Headers = [ "v", str (String('v', 32768)) ]
        Payload = [||]
    }

    let tooLongBytes = {
        Headers = [ "v", EventStreamHeaderValue.Bytes(Array.zeroCreate 32768) ]
        Payload = [||]
    }

    let loneSurrogate = {
        Headers = [ "v", str (string (char 0xD800)) ]
        Payload = [||]
    }

    let tooBig = {
        Headers = []
        Payload = Array.zeroCreate (16777216 - 15)
    }

    for message in [ tooLongName; tooLongValue; tooLongBytes; loneSurrogate; tooBig ] do
        Assert.ThrowsAny<ArgumentException>(fun () -> EventStream.encode message |> ignore)
        |> ignore

[<Fact>]
let ``encode accepts the limits themselves`` () =
    let message = {
        Headers = [ String('n', 255), str (String('v', 32767)) ]
        Payload = Array.zeroCreate 1000
    }

    let decoded, _ = expectMessage (EventStream.encode message)
    Assert.Equal(message, decoded)

[<Fact>]
let ``stringHeader finds the first string header of that name`` () =
    let message = {
        Headers = [
            ":event-type", EventStreamHeaderValue.Int 1
            ":event-type", str "chunk"
            ":event-type", str "other"
        ]
        Payload = [||]
    }

    Assert.Equal(Some "chunk", EventStream.stringHeader ":event-type" message)
    Assert.Equal(None, EventStream.stringHeader ":EVENT-TYPE" message)
    Assert.Equal(None, EventStream.stringHeader ":message-type" message)
