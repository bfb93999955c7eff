namespace CcRelay.Core

open System

/// Scanning JSON bytes without a tokenizer, for the fast paths that read a body in one pass: `RequestFacts.tryFast`
/// (the request's facts) and `JsonSpans` (the pipelines' member scan). Their results must equal `Utf8JsonReader`'s
/// (properties in tests/Property.Tests); the callers fall back to the reader when a scan says -1.
module internal JsonScan =

    // Bytes that end a run of plain string content: the closing quote, an escape, a control character.
    let stringStops =
        Buffers.SearchValues.Create(ReadOnlySpan [| yield '"'B; yield '\\'B; for b in 0uy .. 31uy -> b |])

    let trueLiteral: byte array = "true"B
    let falseLiteral: byte array = "false"B
    let nullLiteral: byte array = "null"B

    let isHex (b: byte) =
        (b >= '0'B && b <= '9'B) || (b >= 'a'B && b <= 'f'B) || (b >= 'A'B && b <= 'F'B)

    let isDigit (b: byte) = b >= '0'B && b <= '9'B

    let inline isSpace (b: byte) =
        b = ' 'B || b = '\n'B || b = '\r'B || b = '\t'B

    /// The end (exclusive) of the string whose opening quote is at `start`, and whether it has escapes;
    /// -1 when it is not a valid JSON string. Plain runs are skipped with a vectorised search.
    let scanString (body: ReadOnlySpan<byte>) (start: int) : struct (int * bool) =
        let mutable i = start + 1
        let mutable result = -2
        let mutable escaped = false

        while result = -2 do
            let k = body.Slice(i).IndexOfAny(stringStops)

            if k < 0 then
                result <- -1
            else
                let j = i + k

                if body[j] = '"'B then
                    result <- j + 1
                elif body[j] = '\\'B && j + 1 < body.Length then
                    escaped <- true

                    match body[j + 1] with
                    | '"'B
                    | '\\'B
                    | '/'B
                    | 'b'B
                    | 'f'B
                    | 'n'B
                    | 'r'B
                    | 't'B -> i <- j + 2
                    | 'u'B when
                        j + 5 < body.Length
                        && isHex body[j + 2]
                        && isHex body[j + 3]
                        && isHex body[j + 4]
                        && isHex body[j + 5]
                        ->
                        i <- j + 6
                    | _ -> result <- -1
                else
                    result <- -1

        struct (result, escaped)

    /// The end (exclusive) of the number starting at `start` (RFC 8259's grammar), or -1.
    let scanNumber (body: ReadOnlySpan<byte>) (start: int) : int =
        let n = body.Length
        let mutable i = start

        if i < n && body[i] = '-'B then
            i <- i + 1

        if i >= n || not (isDigit body[i]) then
            -1
        else
            if body[i] = '0'B then
                i <- i + 1
            else
                while i < n && isDigit body[i] do
                    i <- i + 1

            let mutable ok = true

            if i < n && body[i] = '.'B then
                i <- i + 1
                ok <- i < n && isDigit body[i]

                while i < n && isDigit body[i] do
                    i <- i + 1

            if ok && i < n && (body[i] = 'e'B || body[i] = 'E'B) then
                i <- i + 1

                if i < n && (body[i] = '+'B || body[i] = '-'B) then
                    i <- i + 1

                ok <- i < n && isDigit body[i]

                while i < n && isDigit body[i] do
                    i <- i + 1

            if ok then i else -1


    /// The end (exclusive) of the string, `true`, `false`, `null` or number whose first byte `b` is at `at`, or -1.
    let scalarEnd (body: ReadOnlySpan<byte>) (at: int) (b: byte) : int =
        if b = '"'B then
            let struct (stop, _) = scanString body at
            stop
        elif b = 't'B && body.Slice(at).StartsWith(ReadOnlySpan trueLiteral) then
            at + 4
        elif b = 'f'B && body.Slice(at).StartsWith(ReadOnlySpan falseLiteral) then
            at + 5
        elif b = 'n'B && body.Slice(at).StartsWith(ReadOnlySpan nullLiteral) then
            at + 4
        else
            scanNumber body at
