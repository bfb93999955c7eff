namespace CcRelay.Core

open System
open System.Buffers.Binary
open System.Text

/// The value of one event-stream header: the ten wire types 0..9 of `application/vnd.amazon.eventstream`.
/// Type 0 is `Bool true`, type 1 is `Bool false`; the others carry their value after the type byte.
[<RequireQualifiedAccess>]
type EventStreamHeaderValue =
    | Bool of bool
    | Byte of sbyte
    | Short of int16
    | Int of int32
    | Long of int64
    | Bytes of byte array
    | String of string
    /// Milliseconds since the Unix epoch.
    | Timestamp of int64
    /// Written as its 16 bytes in RFC 4122 (big-endian) order, as the AWS SDKs print it.
    | Uuid of Guid

/// One event-stream message: headers in wire order (a name may repeat) and the raw payload.
type EventStreamMessage = {
    Headers: (string * EventStreamHeaderValue) list
    Payload: byte array
}

/// The outcome of reading one message from the start of a buffer.
[<RequireQualifiedAccess>]
type EventStreamRead =
    /// The buffer holds only part of the next message: append more bytes and read again.
    | NeedMore
    /// A whole message, and how many bytes of the buffer it took.
    | Message of EventStreamMessage * Consumed: int
    /// The bytes can never become a valid message; the stream is unusable from here on.
    | Corrupt of Reason: string

/// The AWS event-stream binary framing (protocols.md §2.6), big-endian throughout:
///
///     total length (4) | headers length (4) | prelude CRC (4) | headers | payload | message CRC (4)
///
/// The prelude CRC covers the first 8 bytes, the message CRC every byte before it.
[<RequireQualifiedAccess>]
module EventStream =

    /// The bytes every message spends outside its headers and payload: prelude, prelude CRC, message CRC.
    [<Literal>]
    let Overhead = 16

    [<Literal>]
    let private PreludeLength = 12

    /// The largest message the reader accepts (the AWS SDKs' limit): a larger length is read as corruption,
    /// so a flipped length byte cannot make the relay buffer gigabytes.
    [<Literal>]
    let MaxMessageLength = 16777216

    /// The largest header name (1-byte length).
    [<Literal>]
    let MaxHeaderNameLength = 255

    /// The largest string or byte-array header value `encode` writes (the AWS SDKs' limit; the 2-byte
    /// length field would allow 65535, which the reader accepts).
    [<Literal>]
    let MaxHeaderValueLength = 32767

    // NOTE: CRC-32 is our own table rather than System.IO.Hashing: Core stays at FSharp.Core plus one
    // package, and event-stream messages are a few hundred bytes, where a byte-wise table is fast enough.
    let private crcTable: uint32 array =
        Array.init 256 (fun n ->
            let mutable c = uint32 n

            for _ in 1..8 do
                c <-
                    if c &&& 1u <> 0u then
                        0xEDB88320u ^^^ (c >>> 1)
                    else
                        c >>> 1

            c)

    /// The standard CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, as in zlib and gzip) of the bytes.
    let crc32 (data: ReadOnlySpan<byte>) : uint32 =
        let table = crcTable
        let mutable crc = 0xFFFFFFFFu

        for i in 0 .. data.Length - 1 do
            crc <- table[int ((crc ^^^ uint32 data[i]) &&& 0xFFu)] ^^^ (crc >>> 8)

        ~~~crc

    let private strictUtf8 = UTF8Encoding(false, true)

    let private tryUtf8 (bytes: ReadOnlySpan<byte>) : string option =
        try
            Some(strictUtf8.GetString bytes)
        with :? ArgumentException ->
            None

    /// The size of a value of this type that the type alone fixes (for byte arrays and strings: their
    /// 2-byte length), or -1 for an unknown type.
    let private fixedSize (valueType: byte) : int =
        match valueType with
        | 0uy
        | 1uy -> 0
        | 2uy -> 1
        | 3uy -> 2
        | 4uy -> 4
        | 5uy
        | 8uy -> 8
        | 6uy
        | 7uy -> 2
        | 9uy -> 16
        | _ -> -1

    /// Decodes a value of a known type from exactly its bytes (length prefix included); None for a string
    /// that is not UTF-8.
    let private decodeValue (valueType: byte) (value: ReadOnlySpan<byte>) : EventStreamHeaderValue option =
        match valueType with
        | 0uy -> Some(EventStreamHeaderValue.Bool true)
        | 1uy -> Some(EventStreamHeaderValue.Bool false)
        | 2uy -> Some(EventStreamHeaderValue.Byte(sbyte value[0]))
        | 3uy -> Some(EventStreamHeaderValue.Short(BinaryPrimitives.ReadInt16BigEndian value))
        | 4uy -> Some(EventStreamHeaderValue.Int(BinaryPrimitives.ReadInt32BigEndian value))
        | 5uy -> Some(EventStreamHeaderValue.Long(BinaryPrimitives.ReadInt64BigEndian value))
        | 6uy -> Some(EventStreamHeaderValue.Bytes(value.Slice(2).ToArray()))
        | 7uy -> tryUtf8 (value.Slice 2) |> Option.map EventStreamHeaderValue.String
        | 8uy -> Some(EventStreamHeaderValue.Timestamp(BinaryPrimitives.ReadInt64BigEndian value))
        | _ -> Some(EventStreamHeaderValue.Uuid(Guid(value, true)))

    /// Parses the headers section; Error carries the reason it is malformed.
    let private readHeaders (section: ReadOnlySpan<byte>) : Result<(string * EventStreamHeaderValue) list, string> =
        let headers = ResizeArray<string * EventStreamHeaderValue>()
        let mutable error = None
        let mutable i = 0

        while error.IsNone && i < section.Length do
            let nameLength = int section[i]
            // the value starts after the name-length byte, the name and the type byte
            let valueStart = i + 2 + nameLength

            if valueStart > section.Length then
                error <- Some "header name runs past the headers section"
            else
                let valueType = section[valueStart - 1]
                let size = fixedSize valueType
                let available = section.Length - valueStart

                let size =
                    if (valueType = 6uy || valueType = 7uy) && available >= 2 then
                        2 + int (BinaryPrimitives.ReadUInt16BigEndian(section.Slice valueStart))
                    else
                        size

                if size < 0 then
                    error <- Some $"header has unknown value type {valueType}"
                elif available < size then
                    error <- Some "header value runs past the headers section"
                else
                    match tryUtf8 (section.Slice(i + 1, nameLength)) with
                    | None -> error <- Some "header name is not UTF-8"
                    | Some name ->
                        match decodeValue valueType (section.Slice(valueStart, size)) with
                        | None -> error <- Some "header string value is not UTF-8"
                        | Some value ->
                            headers.Add(name, value)
                            i <- valueStart + size

        match error with
        | Some reason -> Error reason
        | None -> Ok(List.ofSeq headers)

    /// Reads one message from the start of `buffer`. NeedMore while the prelude or the message is incomplete;
    /// Corrupt on a bad prelude CRC (checked first, so a damaged length is never waited for), an impossible
    /// length (total under 16 or over 16 MiB, headers longer than total − 16), a bad message CRC or
    /// malformed headers. Bytes after the message are left alone: `Consumed` says where the next one starts.
    let tryRead (buffer: ReadOnlySpan<byte>) : EventStreamRead =
        if buffer.Length < PreludeLength then
            EventStreamRead.NeedMore
        else
            let total = BinaryPrimitives.ReadUInt32BigEndian buffer
            let headersLength = BinaryPrimitives.ReadUInt32BigEndian(buffer.Slice 4)
            let preludeCrc = BinaryPrimitives.ReadUInt32BigEndian(buffer.Slice 8)

            if crc32 (buffer.Slice(0, 8)) <> preludeCrc then
                EventStreamRead.Corrupt "prelude CRC mismatch"
            elif total < uint32 Overhead then
                EventStreamRead.Corrupt $"message length {total} is below the 16-byte minimum"
            elif total > uint32 MaxMessageLength then
                EventStreamRead.Corrupt $"message length {total} exceeds 16 MiB"
            elif headersLength > total - uint32 Overhead then
                EventStreamRead.Corrupt $"headers length {headersLength} does not fit in message length {total}"
            elif buffer.Length < int total then
                EventStreamRead.NeedMore
            else
                let total = int total
                let headersLength = int headersLength
                let messageCrc = BinaryPrimitives.ReadUInt32BigEndian(buffer.Slice(total - 4))

                if crc32 (buffer.Slice(0, total - 4)) <> messageCrc then
                    EventStreamRead.Corrupt "message CRC mismatch"
                else
                    match readHeaders (buffer.Slice(PreludeLength, headersLength)) with
                    | Error reason -> EventStreamRead.Corrupt reason
                    | Ok headers ->
                        let payloadStart = PreludeLength + headersLength
                        let payload = buffer.Slice(payloadStart, total - 4 - payloadStart).ToArray()
                        EventStreamRead.Message({ Headers = headers; Payload = payload }, total)

    let private valueLength (value: EventStreamHeaderValue) : int =
        match value with
        | EventStreamHeaderValue.Bool _ -> 0
        | EventStreamHeaderValue.Byte _ -> 1
        | EventStreamHeaderValue.Short _ -> 2
        | EventStreamHeaderValue.Int _ -> 4
        | EventStreamHeaderValue.Long _
        | EventStreamHeaderValue.Timestamp _ -> 8
        | EventStreamHeaderValue.Bytes bytes -> 2 + bytes.Length
        | EventStreamHeaderValue.String text -> 2 + strictUtf8.GetByteCount text
        | EventStreamHeaderValue.Uuid _ -> 16

    let private writeHeader (target: Span<byte>) (name: string) (value: EventStreamHeaderValue) : int =
        let nameLength = Encoding.UTF8.GetBytes(name.AsSpan(), target.Slice 1)
        target[0] <- byte nameLength
        let typeAt = 1 + nameLength
        let data = target.Slice(typeAt + 1)

        match value with
        | EventStreamHeaderValue.Bool true -> target[typeAt] <- 0uy
        | EventStreamHeaderValue.Bool false -> target[typeAt] <- 1uy
        | EventStreamHeaderValue.Byte b ->
            target[typeAt] <- 2uy
            data[0] <- byte b
        | EventStreamHeaderValue.Short s ->
            target[typeAt] <- 3uy
            BinaryPrimitives.WriteInt16BigEndian(data, s)
        | EventStreamHeaderValue.Int n ->
            target[typeAt] <- 4uy
            BinaryPrimitives.WriteInt32BigEndian(data, n)
        | EventStreamHeaderValue.Long n ->
            target[typeAt] <- 5uy
            BinaryPrimitives.WriteInt64BigEndian(data, n)
        | EventStreamHeaderValue.Bytes bytes ->
            target[typeAt] <- 6uy
            BinaryPrimitives.WriteUInt16BigEndian(data, uint16 bytes.Length)
            bytes.CopyTo(data.Slice 2)
        | EventStreamHeaderValue.String text ->
            target[typeAt] <- 7uy
            let length = Encoding.UTF8.GetBytes(text.AsSpan(), data.Slice 2)
            BinaryPrimitives.WriteUInt16BigEndian(data, uint16 length)
        | EventStreamHeaderValue.Timestamp ms ->
            target[typeAt] <- 8uy
            BinaryPrimitives.WriteInt64BigEndian(data, ms)
        | EventStreamHeaderValue.Uuid uuid ->
            target[typeAt] <- 9uy
            uuid.TryWriteBytes(data, true) |> ignore

        2 + nameLength + valueLength value

    /// The wire bytes of a message. Throws `ArgumentException` for what the format cannot carry: a header
    /// name over 255 UTF-8 bytes, a string or byte-array value over 32767 bytes, a message over 16 MiB.
    /// Strings must be valid UTF-16 (no lone surrogates).
    let encode (message: EventStreamMessage) : byte array =
        let mutable headersLength = 0

        for name, value in message.Headers do
            let nameLength = strictUtf8.GetByteCount name

            if nameLength > MaxHeaderNameLength then
                invalidArg (nameof message) $"header name '{name}' is over {MaxHeaderNameLength} UTF-8 bytes"

            let length = valueLength value

            if length - 2 > MaxHeaderValueLength then
                invalidArg (nameof message) $"header '{name}' value is over {MaxHeaderValueLength} bytes"

            headersLength <- headersLength + 2 + nameLength + length

        let total = int64 Overhead + int64 headersLength + int64 message.Payload.Length

        if total > int64 MaxMessageLength then
            invalidArg (nameof message) $"message of {total} bytes is over 16 MiB"

        let out = Array.zeroCreate<byte>(int total)
        let span = Span out
        BinaryPrimitives.WriteUInt32BigEndian(span, uint32 total)
        BinaryPrimitives.WriteUInt32BigEndian(span.Slice 4, uint32 headersLength)
        BinaryPrimitives.WriteUInt32BigEndian(span.Slice 8, crc32 (ReadOnlySpan(out, 0, 8)))
        let mutable position = PreludeLength

        for name, value in message.Headers do
            position <- position + writeHeader (span.Slice position) name value

        message.Payload.CopyTo(span.Slice position)
        let crcAt = int total - 4
        BinaryPrimitives.WriteUInt32BigEndian(span.Slice crcAt, crc32 (ReadOnlySpan(out, 0, crcAt)))
        out

    /// The value of the first string header called `name` (ordinal match), if any.
    let stringHeader (name: string) (message: EventStreamMessage) : string option =
        message.Headers
        |> List.tryPick (fun (headerName, value) ->
            match value with
            | EventStreamHeaderValue.String text when String.Equals(headerName, name, StringComparison.Ordinal) ->
                Some text
            | _ -> None)
