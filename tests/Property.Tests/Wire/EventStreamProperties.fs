module CcRelay.Core.Properties.EventStreamProperties

open System
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators

// ---------------------------
// Generators
// ---------------------------

let private bytesOfLength (maxLength: int) : Gen<byte array> =
    gen {
        let! length = Gen.choose (0, maxLength)
        let! values = Gen.arrayOfLength length (Gen.choose (0, 255))
        return values |> Array.map byte
    }

/// A header value of any of the ten wire types, extremes included.
let private headerValue: Gen<EventStreamHeaderValue> =
    Gen.oneof [
        Gen.elements [ true; false ] |> Gen.map EventStreamHeaderValue.Bool
        Gen.choose (-128, 127) |> Gen.map (sbyte >> EventStreamHeaderValue.Byte)
        Gen.choose (-32768, 32767) |> Gen.map (int16 >> EventStreamHeaderValue.Short)
        Gen.oneof [
            Gen.elements [ Int32.MinValue; Int32.MaxValue; 0 ]
            Gen.choose (-100000, 100000)
        ]
        |> Gen.map EventStreamHeaderValue.Int
        bytesOfLength 8
        |> Gen.map (fun b -> Array.append b (Array.zeroCreate (8 - b.Length)))
        |> Gen.map (fun b -> EventStreamHeaderValue.Long(BitConverter.ToInt64(b, 0)))
        bytesOfLength 64 |> Gen.map EventStreamHeaderValue.Bytes
        stringOf 20 textPiece |> Gen.map EventStreamHeaderValue.String
        Gen.elements [ Int64.MinValue; Int64.MaxValue; 0L; 1700000000123L ]
        |> Gen.map EventStreamHeaderValue.Timestamp
        Gen.arrayOfLength 16 (Gen.choose (0, 255))
        |> Gen.map (fun b -> EventStreamHeaderValue.Uuid(Guid(Array.map byte b)))
    ]

let private headerName: Gen<string> =
    Gen.frequency [
        3, Gen.elements [ ":message-type"; ":event-type"; ":content-type"; ":exception-type"; "" ]
        2, stringOf 10 textPiece
    ]

let private message: Gen<EventStreamMessage> =
    gen {
        let! count = Gen.choose (0, 6)
        let! names = Gen.listOfLength count headerName
        let! values = Gen.listOfLength count headerValue

        let! payload = Gen.frequency [ 4, bytesOfLength 256; 1, bytesOfLength 4096 ]

        return {
            Headers = List.zip names values
            Payload = payload
        }
    }

/// Messages, their concatenated encoding, and that encoding cut at random points.
let private messagesWithChunks: Arbitrary<EventStreamMessage list * byte array list> =
    gen {
        let! count = Gen.choose (0, 5)
        let! messages = Gen.listOfLength count message
        let bytes = messages |> List.map EventStream.encode |> Array.concat
        let! cutCount = Gen.choose (0, 12)
        let! cuts = Gen.listOfLength cutCount (Gen.choose (0, bytes.Length))
        let points = (0 :: bytes.Length :: cuts) |> List.distinct |> List.sort

        let chunks = points |> List.pairwise |> List.map (fun (a, b) -> bytes[a .. b - 1])

        return messages, chunks
    }
    |> Check.arb

/// The host's loop: append each chunk, then read every whole message the buffer holds.
let private decodeChunked (chunks: byte array list) : Result<EventStreamMessage list, string> * int =
    let mutable buffer = [||]
    let mutable messages = []
    let mutable failure = None

    for chunk in chunks do
        buffer <- Array.append buffer chunk
        let mutable reading = failure.IsNone

        while reading do
            match EventStream.tryRead (ReadOnlySpan buffer) with
            | EventStreamRead.Message(message, consumed) ->
                messages <- message :: messages
                buffer <- buffer[consumed..]
            | EventStreamRead.NeedMore -> reading <- false
            | EventStreamRead.Corrupt reason ->
                failure <- Some reason
                reading <- false

    let result =
        match failure with
        | Some reason -> Error reason
        | None -> Ok(List.rev messages)

    result, buffer.Length

// ---------------------------
// Properties
// ---------------------------

[<Fact>]
let ``decoding an encoded message gives it back, consuming exactly its bytes`` () =
    Check.property (
        Prop.forAll (Check.arb message) (fun message ->
            let bytes = EventStream.encode message

            match EventStream.tryRead (ReadOnlySpan bytes) with
            | EventStreamRead.Message(decoded, consumed) ->
                Assert.Equal(bytes.Length, consumed)
                Assert.Equal(message, decoded)
            | other -> failwith $"expected the message back, got %A{other}")
    )

[<Fact>]
let ``messages fed in any split decode to exactly those messages`` () =
    Check.quick
        500
        (Prop.forAll messagesWithChunks (fun (messages, chunks) ->
            let decoded, left = decodeChunked chunks
            Assert.Equal(Ok messages, decoded)
            Assert.Equal(0, left)))

[<Fact>]
let ``any strict prefix of a message is NeedMore, never a message`` () =
    Check.property (
        Prop.forAll (Check.arb (Gen.zip message (Gen.choose (0, Int32.MaxValue)))) (fun (message, cut) ->
            let bytes = EventStream.encode message
            let prefix = bytes[.. (cut % bytes.Length) - 1]
            Assert.Equal(EventStreamRead.NeedMore, EventStream.tryRead (ReadOnlySpan prefix)))
    )

[<Fact>]
let ``flipping any bits of any one byte is detected, never read as a message`` () =
    let flipped =
        gen {
            let! message = message
            let bytes = EventStream.encode message
            let! at = Gen.choose (0, bytes.Length - 1)
            let! mask = Gen.choose (1, 255)
            return message, bytes, at, byte mask
        }

    Check.quick
        2000
        (Prop.forAll (Check.arb flipped) (fun (_, bytes, at, mask) ->
            let damaged = Array.copy bytes
            damaged[at] <- damaged[at] ^^^ mask

            match EventStream.tryRead (ReadOnlySpan damaged) with
            | EventStreamRead.Corrupt _ -> ()
            | other -> failwith $"byte {at} ^ {mask} of {bytes.Length} gave %A{other}"))

[<Fact>]
let ``a flipped byte inside a stream stops the reader at or before that message, never past it`` () =
    let damagedStream =
        gen {
            let! (messages, chunks) = messagesWithChunks.Generator
            let bytes = Array.concat chunks

            if bytes.Length = 0 then
                return messages, bytes, -1
            else
                let! at = Gen.choose (0, bytes.Length - 1)
                let! mask = Gen.choose (1, 255)
                let damaged = Array.copy bytes
                damaged[at] <- damaged[at] ^^^ byte mask
                return messages, damaged, at
        }

    Check.quick
        500
        (Prop.forAll (Check.arb damagedStream) (fun (messages, damaged, at) ->
            match decodeChunked [ damaged ] with
            | Ok decoded, _ when at < 0 -> Assert.Equal<EventStreamMessage list>(messages, decoded)
            | Ok decoded, _ -> failwith $"damage at {at} went unnoticed: {decoded.Length} of {messages.Length}"
            | Error _, _ -> ()))

[<Fact>]
let ``the message CRC of encode is the crc32 of every byte before it`` () =
    Check.property (
        Prop.forAll (Check.arb message) (fun message ->
            let bytes = EventStream.encode message

            let stored =
                Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(ReadOnlySpan(bytes, bytes.Length - 4, 4))

            Assert.Equal(stored, EventStream.crc32 (ReadOnlySpan(bytes, 0, bytes.Length - 4))))
    )
