namespace CcRelay.Core

open System
open System.Collections.Frozen

/// How a response body is delimited (RFC 9112 §6.3).
[<RequireQualifiedAccess; Struct>]
type BodyFraming =
    /// No body: a response to HEAD, a 1xx, 204 or 304, or `Content-Length: 0`.
    | Empty
    /// Exactly this many bytes (`Content-Length`).
    | Length of length: int64
    /// `Transfer-Encoding: chunked`.
    | Chunked
    /// Until the upstream closes the connection (no length, or a transfer coding other than chunked).
    | UntilClose

/// What a parsed response head tells the client that reads it.
[<Struct>]
type ResponseHead = {
    Status: int
    /// The `x` of `HTTP/1.x`.
    Minor: int
    /// A 1xx other than 101 (100 Continue, 103 Early Hints): not the answer; the final head follows it.
    Interim: bool
    Framing: BodyFraming
    /// Whether the connection may carry another request once this body has been read to its end.
    KeepAlive: bool
}

/// Receives a response head's header fields as the parser finds them. The spans are valid only during the call.
[<AllowNullLiteral>]
type IResponseHeaderSink =
    abstract Header: name: ReadOnlySpan<byte> * value: ReadOnlySpan<byte> -> unit

/// HTTP/1.1 response parsing for the relay's upstream client (RFC 9112): where a head ends, what it says, how its
/// body is framed. Pure functions over bytes; the host does the I/O.
[<RequireQualifiedAccess>]
module Http1 =

    [<Literal>]
    let private Cr = 13uy

    [<Literal>]
    let private Lf = 10uy

    [<Literal>]
    let private Sp = 32uy

    [<Literal>]
    let private Tab = 9uy

    /// The offset just past the empty line that ends a head, or -1 while the head is incomplete.
    /// Lines end in CRLF; a bare LF is accepted too (RFC 9112 §2.2).
    let headEnd (buffer: ReadOnlySpan<byte>) : int =
        let mutable from = 0
        let mutable result = -1

        while result < 0 && from < buffer.Length do
            let lf = buffer.Slice(from).IndexOf Lf

            if lf < 0 then
                from <- buffer.Length
            else
                let next = from + lf + 1

                if next < buffer.Length && buffer[next] = Lf then
                    result <- next + 1
                elif next + 1 < buffer.Length && buffer[next] = Cr && buffer[next + 1] = Lf then
                    result <- next + 2
                else
                    from <- next

        result

    let private isDigit (b: byte) = b >= '0'B && b <= '9'B

    // NOTE: built once; a `"…"B` literal evaluated on the hot path builds a new array each time
    let private tokenSymbols: byte array = "!#$%&'*+-.^_`|~"B
    let private versionPrefix: byte array = "HTTP/1."B

    /// tchar (RFC 9110 §5.6.2): what a field name is made of.
    let private isTokenChar (b: byte) =
        (b >= 'a'B && b <= 'z'B)
        || (b >= 'A'B && b <= 'Z'B)
        || isDigit b
        || ReadOnlySpan(tokenSymbols).IndexOf b >= 0

    let private contentLengthName: byte array = "content-length"B
    let private transferEncodingName: byte array = "transfer-encoding"B
    let private connectionName: byte array = "connection"B
    let private chunkedToken: byte array = "chunked"B
    let private closeToken: byte array = "close"B
    let private keepAliveToken: byte array = "keep-alive"B

    let private equalsIgnoreCase (a: ReadOnlySpan<byte>) (b: byte array) =
        a.Length = b.Length && Text.Ascii.EqualsIgnoreCase(a, ReadOnlySpan b)

    let private trimOws (value: ReadOnlySpan<byte>) =
        let mutable start = 0
        let mutable finish = value.Length

        while start < finish && (value[start] = Sp || value[start] = Tab) do
            start <- start + 1

        while finish > start && (value[finish - 1] = Sp || value[finish - 1] = Tab) do
            finish <- finish - 1

        value.Slice(start, finish - start)

    /// The status code of a head's status line (`HTTP/1.x NNN reason`), or -1 when the line is not one.
    let status (head: ReadOnlySpan<byte>) : int =
        // "HTTP/1.1 200" is the shortest valid line: 12 bytes
        if
            head.Length >= 12
            && head.StartsWith(ReadOnlySpan versionPrefix)
            && isDigit head[7]
            && head[8] = Sp
            && isDigit head[9]
            && isDigit head[10]
            && isDigit head[11]
            && (head.Length = 12 || head[12] = Sp || head[12] = Cr || head[12] = Lf)
            && head[9] >= '1'B
            && head[9] <= '5'B
        then
            int (head[9] - '0'B) * 100 + int (head[10] - '0'B) * 10 + int (head[11] - '0'B)
        else
            -1

    /// Reads a Content-Length field value: one number, or a list of identical ones (RFC 9110 §8.6). -1 when invalid.
    let private contentLength (value: ReadOnlySpan<byte>) : int64 =
        let mutable result = -2L // -2: no element yet
        let mutable rest = value

        while result <> -1L && not rest.IsEmpty do
            let comma = rest.IndexOf 44uy
            let element = trimOws (if comma < 0 then rest else rest.Slice(0, comma))

            rest <-
                if comma < 0 then
                    ReadOnlySpan.Empty
                else
                    rest.Slice(comma + 1)
            // 18 digits cannot overflow an int64
            let mutable number = if element.IsEmpty || element.Length > 18 then -1L else 0L
            let mutable k = 0

            while number >= 0L && k < element.Length do
                let b = element[k]
                number <- if isDigit b then number * 10L + int64 (b - '0'B) else -1L
                k <- k + 1

            result <-
                if number < 0L then -1L
                elif result = -2L || result = number then number
                else -1L

        if result = -2L then -1L else result

    /// Whether a list field (comma-separated, RFC 9110 §5.6.1) holds `token`, case-insensitively.
    let private hasToken (value: ReadOnlySpan<byte>) (token: byte array) : bool =
        let mutable rest = value
        let mutable found = false

        while not found && not rest.IsEmpty do
            let comma = rest.IndexOf ','B
            let element = if comma < 0 then rest else rest.Slice(0, comma)
            found <- equalsIgnoreCase (trimOws element) token

            rest <-
                if comma < 0 then
                    ReadOnlySpan.Empty
                else
                    rest.Slice(comma + 1)

        found

    /// The last non-empty element of a list field (empty when there is none).
    let private lastToken (value: ReadOnlySpan<byte>) : ReadOnlySpan<byte> =
        let mutable rest = value
        let mutable last = ReadOnlySpan.Empty

        while not rest.IsEmpty do
            let comma = rest.LastIndexOf ','B
            let element = trimOws (if comma < 0 then rest else rest.Slice(comma + 1))

            if not element.IsEmpty then
                last <- element
                rest <- ReadOnlySpan.Empty
            else
                rest <-
                    if comma < 0 then
                        ReadOnlySpan.Empty
                    else
                        rest.Slice(0, comma)

        last

    /// Parses a complete head (as delimited by `headEnd`): its status line and header fields, each passed to
    /// `sink` (null: fields are only checked; an interim head's fields never reach it). `forHead`: the request was a HEAD, so the answer has no body.
    /// Framing and connection reuse follow RFC 9112 §6.3 and §9.3; a message the RFC calls unrecoverable
    /// (conflicting lengths, an invalid field line) is an error naming what is wrong.
    let parseResponseHead
        (head: ReadOnlySpan<byte>)
        (forHead: bool)
        (sink: IResponseHeaderSink)
        : Result<ResponseHead, string> =
        let code = status head

        if code < 0 then
            Error "invalid status line"
        elif code = 101 then
            // the relay never asks to switch protocols
            Error "an unexpected 101 Switching Protocols"
        else
            let minor = int (head[7] - '0'B)
            let mutable error: string | null = null
            let mutable length = -2L // -2: none seen
            let mutable transferCoding = false
            let mutable chunkedLast = false
            let mutable close = false
            let mutable keepAlive = false
            let firstLf = head.IndexOf Lf
            let mutable rest = head.Slice(firstLf + 1)

            while isNull error && not rest.IsEmpty do
                let lf = rest.IndexOf Lf
                let lineWithCr = if lf < 0 then rest else rest.Slice(0, lf)

                let line =
                    if not lineWithCr.IsEmpty && lineWithCr[lineWithCr.Length - 1] = Cr then
                        lineWithCr.Slice(0, lineWithCr.Length - 1)
                    else
                        lineWithCr

                rest <- if lf < 0 then ReadOnlySpan.Empty else rest.Slice(lf + 1)

                if not line.IsEmpty then
                    let colon = line.IndexOf ':'B

                    if line[0] = Sp || line[0] = Tab then
                        error <- "obsolete line folding in a header field"
                    elif colon <= 0 then
                        error <- "a header line without a field name and colon"
                    else
                        let name = line.Slice(0, colon)
                        let value = trimOws (line.Slice(colon + 1))
                        let mutable valid = true

                        for k in 0 .. name.Length - 1 do
                            if not (isTokenChar name[k]) then
                                valid <- false

                        for k in 0 .. value.Length - 1 do
                            let b = value[k]

                            if (b < Sp && b <> Tab) || b = 127uy then
                                valid <- false

                        if not valid then
                            error <- "an invalid character in a header field"
                        else
                            if equalsIgnoreCase name contentLengthName then
                                let parsed = contentLength value

                                if parsed < 0L || (length >= 0L && length <> parsed) then
                                    error <- "an invalid or conflicting Content-Length"
                                else
                                    length <- parsed
                            elif equalsIgnoreCase name transferEncodingName then
                                let last = lastToken value

                                // several Transfer-Encoding lines form one list: the last line's last coding counts
                                if not last.IsEmpty then
                                    transferCoding <- true
                                    chunkedLast <- equalsIgnoreCase last chunkedToken
                            elif equalsIgnoreCase name connectionName then
                                close <- close || hasToken value closeToken
                                keepAlive <- keepAlive || hasToken value keepAliveToken

                            // an interim head's fields are checked, not reported: they are not the answer's
                            if isNull error && not (isNull sink) && code >= 200 then
                                sink.Header(name, value)

            match error with
            | NonNull error -> Error error
            | Null ->
                let framing =
                    if forHead || code < 200 || code = 204 || code = 304 then
                        BodyFraming.Empty
                    elif transferCoding then
                        (if chunkedLast then
                             BodyFraming.Chunked
                         else
                             BodyFraming.UntilClose)
                    elif length = 0L then
                        BodyFraming.Empty
                    elif length > 0L then
                        BodyFraming.Length length
                    else
                        BodyFraming.UntilClose

                let persistent = if minor >= 1 then not close else keepAlive && not close

                Ok {
                    Status = code
                    Minor = minor
                    Interim = code < 200
                    Framing = framing
                    // both a transfer coding and a length: the connection must be closed after (RFC 9112 §6.3 ¶3)
                    KeepAlive =
                        persistent
                        && framing <> BodyFraming.UntilClose
                        && not (transferCoding && length >= 0L)
                }

/// When a pooled connection may carry another request.
[<RequireQualifiedAccess>]
type PooledReuse =
    /// Past its lifetime or idle timeout: close it.
    | Expired
    /// Idle only briefly: use it as it is.
    | Reuse
    /// Idle long enough that the upstream may have closed it meanwhile: use it if its socket is not at its end.
    | ReuseIfOpen

/// The HTTP/1.1 client's own rules: what it writes itself, when it reuses a connection, when it sends again.
[<RequireQualifiedAccess>]
module Http1Client =

    /// Fields the client writes itself (`Host`, `Content-Length`) or that would break its framing of the
    /// request (`Transfer-Encoding`, `Connection`): never copied from the request's header collections.
    let private ownFields: FrozenSet<string> =
        FrozenSet.ToFrozenSet(
            [ "host"; "content-length"; "transfer-encoding"; "connection" ],
            StringComparer.OrdinalIgnoreCase
        )

    let writesItself (name: string) : bool = ownFields.Contains name

    /// An idle connection older than this is checked for the upstream having closed it.
    let checkAfterIdle: TimeSpan = TimeSpan.FromSeconds 1.0

    /// Whether a connection `age` old and idle for `idle` may be reused.
    let reuse (lifetime: TimeSpan) (idleTimeout: TimeSpan) (age: TimeSpan) (idle: TimeSpan) : PooledReuse =
        if age >= lifetime || idle >= idleTimeout then
            PooledReuse.Expired
        elif idle < checkAfterIdle then
            PooledReuse.Reuse
        else
            PooledReuse.ReuseIfOpen

    /// Whether a failed request is sent again on a new connection: only once, only when it failed on a reused
    /// connection (which the upstream may have closed while idle) before any byte of the answer arrived, and
    /// never after the caller cancelled. Nothing of it was answered, so the upstream did not act on it.
    let sendAgain (attempt: int) (reused: bool) (nothingReceived: bool) (cancelled: bool) : bool =
        attempt = 0 && reused && nothingReceived && not cancelled

/// Where a chunked body decoder stands (RFC 9112 §7.1).
type ChunkPhase =
    /// Reading a chunk-size line's hex digits.
    | Size = 0
    /// Skipping a chunk extension (or whitespace) up to the line's end.
    | Extension = 1
    /// After the size line's CR, expecting its LF.
    | SizeLf = 2
    /// Inside chunk data.
    | Data = 3
    /// After chunk data, expecting CR (or a bare LF).
    | DataCr = 4
    /// After chunk data's CR, expecting LF.
    | DataLf = 5
    /// At the start of a trailer line (or the final empty line).
    | TrailerStart = 6
    /// Inside a trailer field line (trailers are skipped, not relayed).
    | Trailer = 7
    /// After the final empty line's CR, expecting LF.
    | TrailerLf = 8
    /// The body ended; bytes after it belong to the next response.
    | Done = 9
    /// The framing is broken; the connection cannot be used further.
    | Invalid = 10

/// A chunked-body decoder's state: a value, advanced by `Chunked.step`.
[<Struct>]
type ChunkDecoder = {
    Phase: ChunkPhase
    /// Data bytes left in the current chunk (Data), or the size read so far (Size, Extension, SizeLf).
    Remaining: int64
    /// Hex digits read on the current size line.
    Digits: int
}

/// What one `Chunked.step` did: input consumed, and where in it the body data it found lies.
[<Struct>]
type ChunkStep = {
    Decoder: ChunkDecoder
    /// Input bytes consumed (framing and data). The bytes after them were not looked at.
    Consumed: int
    /// Offset of the data run in the input; meaningful when DataLength > 0.
    DataStart: int
    DataLength: int
}

/// Chunked transfer decoding as a pure step function, so the host can decode straight out of its read buffer.
[<RequireQualifiedAccess>]
module Chunked =

    let start: ChunkDecoder = {
        Phase = ChunkPhase.Size
        Remaining = 0L
        Digits = 0
    }

    /// Where a size line's end leads: trailers after the last chunk (size 0), else the chunk's data.
    let private afterSizeLine (digits: int) (size: int64) : ChunkPhase =
        if digits = 0 then ChunkPhase.Invalid
        elif size = 0L then ChunkPhase.TrailerStart
        else ChunkPhase.Data

    let private hexValue (b: byte) =
        if b >= '0'B && b <= '9'B then int (b - '0'B)
        elif b >= 'a'B && b <= 'f'B then int (b - 'a'B) + 10
        elif b >= 'A'B && b <= 'F'B then int (b - 'A'B) + 10
        else -1

    /// Consumes chunk framing from `input` up to one contiguous run of at most `maxData` body bytes, and stops
    /// right after that run, at the body's end (Done), at broken framing (Invalid), or at the input's end.
    /// Never consumes a byte past the body's end.
    let step (decoder: ChunkDecoder) (input: ReadOnlySpan<byte>) (maxData: int) : ChunkStep =
        let mutable phase = decoder.Phase
        let mutable remaining = decoder.Remaining
        let mutable digits = decoder.Digits
        let mutable i = 0
        let mutable dataStart = 0
        let mutable dataLength = 0
        let mutable stop = false

        while not stop && i < input.Length do
            let b = input[i]

            match phase with
            | ChunkPhase.Size ->
                let v = hexValue b

                if v >= 0 then
                    // 15 hex digits stay far below int64's range
                    if digits >= 15 then
                        phase <- ChunkPhase.Invalid
                    else
                        remaining <- remaining * 16L + int64 v
                        digits <- digits + 1
                        i <- i + 1
                elif b = ';'B || b = 32uy || b = 9uy then
                    phase <- ChunkPhase.Extension
                    i <- i + 1
                elif b = 13uy then
                    phase <- ChunkPhase.SizeLf
                    i <- i + 1
                elif b = 10uy then
                    phase <- afterSizeLine digits remaining
                    i <- i + 1
                else
                    phase <- ChunkPhase.Invalid
            | ChunkPhase.Extension ->
                if b = 10uy then
                    phase <- afterSizeLine digits remaining
                elif b = 13uy then
                    phase <- ChunkPhase.SizeLf

                i <- i + 1
            | ChunkPhase.SizeLf ->
                if b = 10uy then
                    phase <- afterSizeLine digits remaining
                    i <- i + 1
                else
                    phase <- ChunkPhase.Invalid
            | ChunkPhase.Data ->
                let n = int (min remaining (int64 (min (input.Length - i) maxData)))

                if n > 0 then
                    dataStart <- i
                    dataLength <- n
                    remaining <- remaining - int64 n
                    i <- i + n

                if remaining = 0L then
                    phase <- ChunkPhase.DataCr

                stop <- true
            | ChunkPhase.DataCr ->
                if b = 13uy then
                    phase <- ChunkPhase.DataLf
                    i <- i + 1
                elif b = 10uy then
                    phase <- ChunkPhase.Size
                    digits <- 0
                    i <- i + 1
                else
                    phase <- ChunkPhase.Invalid
            | ChunkPhase.DataLf ->
                if b = 10uy then
                    phase <- ChunkPhase.Size
                    digits <- 0
                    i <- i + 1
                else
                    phase <- ChunkPhase.Invalid
            | ChunkPhase.TrailerStart ->
                if b = 13uy then phase <- ChunkPhase.TrailerLf
                elif b = 10uy then phase <- ChunkPhase.Done
                else phase <- ChunkPhase.Trailer

                i <- i + 1
            | ChunkPhase.Trailer ->
                if b = 10uy then
                    phase <- ChunkPhase.TrailerStart

                i <- i + 1
            | ChunkPhase.TrailerLf ->
                if b = 10uy then
                    phase <- ChunkPhase.Done
                    i <- i + 1
                else
                    phase <- ChunkPhase.Invalid
            | _ -> ()

            if phase = ChunkPhase.Done || phase = ChunkPhase.Invalid then
                stop <- true

        // a data run found with the input exhausted, or Data reached at the input's end: nothing more to do
        {
            Decoder = {
                Phase = phase
                Remaining = remaining
                Digits = digits
            }
            Consumed = i
            DataStart = dataStart
            DataLength = dataLength
        }

    /// Accounts for `count` data bytes the host read straight into its own buffer while in Data
    /// (at most `Remaining` of them).
    let skipData (decoder: ChunkDecoder) (count: int) : ChunkDecoder =
        let remaining = decoder.Remaining - int64 count

        if remaining = 0L then
            {
                decoder with
                    Phase = ChunkPhase.DataCr
                    Remaining = 0L
            }
        else
            { decoder with Remaining = remaining }
