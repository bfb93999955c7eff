namespace CcRelay.Core

open System
open System.Globalization
open System.Text

/// TOML 1.0.0 values: strings, integers, floats, booleans, date-times, arrays and inline tables.
[<RequireQualifiedAccess>]
module internal TomlValues =

    /// A value nests at most this deep (arrays, inline tables and the dotted keys inside them), and a key
    /// has at most this many parts, so a hostile file cannot exhaust the stack: a document is at most
    /// three times this deep (header, dotted key, value).
    [<Literal>]
    let MaxDepth = 128

    let private isDigit (c: char) : bool = c >= '0' && c <= '9'
    let private isOctal (c: char) : bool = c >= '0' && c <= '7'
    let private isBinary (c: char) : bool = c = '0' || c = '1'

    /// The character at an index; NUL past the end.
    let private charAt (text: string) (at: int) : char =
        if at < text.Length then text[at] else '\000'

    /// True when `count` ASCII digits start at `at`.
    let private digitsAt (text: string) (at: int) (count: int) : bool =
        let mutable all = at + count <= text.Length
        let mutable k = at

        while all && k < at + count do
            all <- isDigit text[k]
            k <- k + 1

        all

    /// The number written by the two digits at `at`.
    let private twoDigits (text: string) (at: int) : int =
        (int text[at] - int '0') * 10 + (int text[at + 1] - int '0')

    /// True when the text at the scanner starts with `word`.
    let private startsWith (scanner: Scanner) (word: string) : bool =
        String.CompareOrdinal(scanner.Text, scanner.Index, word, 0, word.Length) = 0

    // ---------------------------
    // Numbers
    // ---------------------------

    /// Reads one or more digits with single underscores between them, appending the digits to `into`.
    let private digits (scanner: Scanner) (isDigitChar: char -> bool) (what: string) (into: StringBuilder) : unit =
        if not (isDigitChar scanner.Peek) then
            scanner.Expected what

        let mutable more = true

        while more do
            let c = scanner.Peek

            if isDigitChar c then
                into.Append c |> ignore
                scanner.Advance 1
            elif c = '_' && isDigitChar (scanner.PeekAt 1) then
                scanner.Advance 1
            elif c = '_' then
                scanner.Fail(scanner.Index, "an underscore in a number must sit between two digits")
            else
                more <- false

    /// `0x…`, `0o…` or `0b…`: unsigned, at most 2^63 - 1.
    let private radixInteger (scanner: Scanner) (buffer: StringBuilder) : ScalarValue =
        let start = scanner.Index

        let radix, isDigitChar, what =
            match scanner.PeekAt 1 with
            | 'x' -> 16L, Char.IsAsciiHexDigit, "a hex digit"
            | 'o' -> 8L, isOctal, "an octal digit (0-7)"
            | _ -> 2L, isBinary, "a binary digit (0 or 1)"

        scanner.Advance 2
        digits scanner isDigitChar what buffer
        let mutable value = 0L

        for k in 0 .. buffer.Length - 1 do
            let c = buffer[k]

            let digit =
                if c <= '9' then
                    int64 c - int64 '0'
                else
                    int64 (Char.ToLowerInvariant c) - int64 'a' + 10L

            if value > (Int64.MaxValue - digit) / radix then
                scanner.Fail(start, "the integer does not fit in 64 bits (at most 0x7fffffffffffffff)")

            value <- value * radix + digit

        ScalarValue.Integer value

    /// A decimal integer or a float, with an optional sign; also `inf` and `nan`.
    let private number (scanner: Scanner) (buffer: StringBuilder) : ScalarValue =
        let start = scanner.Index
        let sign = scanner.Peek

        if sign = '+' || sign = '-' then
            buffer.Append sign |> ignore
            scanner.Advance 1

        if startsWith scanner "inf" then
            scanner.Advance 3

            ScalarValue.Float(
                if sign = '-' then
                    Double.NegativeInfinity
                else
                    Double.PositiveInfinity
            )
        elif startsWith scanner "nan" then
            scanner.Advance 3
            ScalarValue.Float Double.NaN
        else
            let integerStart = buffer.Length
            digits scanner isDigit "a digit" buffer

            if buffer.Length - integerStart > 1 && buffer[integerStart] = '0' then
                scanner.Fail(start, "leading zeros are not allowed in a decimal number")

            let mutable isFloat = false

            if scanner.Peek = '.' then
                isFloat <- true
                buffer.Append '.' |> ignore
                scanner.Advance 1
                digits scanner isDigit "a digit after the decimal point" buffer

            if scanner.Peek = 'e' || scanner.Peek = 'E' then
                isFloat <- true
                buffer.Append 'e' |> ignore
                scanner.Advance 1

                if scanner.Peek = '+' || scanner.Peek = '-' then
                    buffer.Append scanner.Peek |> ignore
                    scanner.Advance 1

                digits scanner isDigit "a digit in the exponent" buffer

            let written = buffer.ToString()

            if isFloat then
                ScalarValue.Float(Double.Parse(written, NumberStyles.Float, CultureInfo.InvariantCulture))
            else
                match Int64.TryParse(written, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture) with
                | true, value -> ScalarValue.Integer value
                | _ ->
                    scanner.Fail(
                        start,
                        "the integer does not fit in 64 bits (-9223372036854775808 to 9223372036854775807)"
                    )

    // ---------------------------
    // Dates and times
    // ---------------------------

    let private daysIn (year: int) (month: int) : int =
        match month with
        | 2 when year % 4 = 0 && (year % 100 <> 0 || year % 400 = 0) -> 29
        | 2 -> 28
        | 4
        | 6
        | 9
        | 11 -> 30
        | _ -> 31

    /// `HH:MM:SS` with an optional fraction; returns it as written.
    let private timeOfDay (scanner: Scanner) : string =
        let text = scanner.Text
        let start = scanner.Index

        if
            not (
                digitsAt text start 2
                && charAt text (start + 2) = ':'
                && digitsAt text (start + 3) 2
                && charAt text (start + 5) = ':'
                && digitsAt text (start + 6) 2
            )
        then
            scanner.Fail(start, "a time is written HH:MM:SS (seconds are required), with two digits each")

        if twoDigits text start > 23 then
            scanner.Fail(start, "the hour must be from 00 to 23")

        if twoDigits text (start + 3) > 59 then
            scanner.Fail(start + 3, "the minute must be from 00 to 59")

        if twoDigits text (start + 6) > 60 then
            scanner.Fail(start + 6, "the second must be from 00 to 60")

        scanner.Index <- start + 8

        if scanner.Peek = '.' then
            scanner.Advance 1

            if not (isDigit scanner.Peek) then
                scanner.Expected "a digit after the decimal point of the seconds"

            while isDigit scanner.Peek do
                scanner.Advance 1

        text.Substring(start, scanner.Index - start)

    /// A local date, local date-time or offset date-time (`YYYY-MM-DD…`). The text is normalised: `T`
    /// between date and time, upper-case `Z`.
    let private dateTime (scanner: Scanner) : ScalarValue =
        let text = scanner.Text
        let start = scanner.Index

        if
            not (
                charAt text (start + 4) = '-'
                && digitsAt text (start + 5) 2
                && charAt text (start + 7) = '-'
                && digitsAt text (start + 8) 2
            )
        then
            scanner.Fail(start, "a date is written YYYY-MM-DD, with two-digit month and day")

        let year = twoDigits text start * 100 + twoDigits text (start + 2)
        let month = twoDigits text (start + 5)
        let day = twoDigits text (start + 8)

        if month < 1 || month > 12 then
            scanner.Fail(start + 5, "the month must be from 01 to 12")

        if day < 1 || day > daysIn year month then
            scanner.Fail(start + 8, $"the day must be from 01 to %02d{daysIn year month} in %04d{year}-%02d{month}")

        let date = text.Substring(start, 10)
        scanner.Index <- start + 10

        let timeFollows =
            match scanner.Peek with
            | 'T'
            | 't' -> true
            // A space separates date and time only when a time follows; otherwise the date ends there.
            | ' ' -> digitsAt text (start + 11) 2 && charAt text (start + 13) = ':'
            | _ -> false

        if not timeFollows then
            ScalarValue.LocalDate date
        else
            scanner.Advance 1
            let time = timeOfDay scanner

            match scanner.Peek with
            | 'Z'
            | 'z' ->
                scanner.Advance 1
                ScalarValue.OffsetDateTime $"%s{date}T%s{time}Z"
            | '+'
            | '-' ->
                let at = scanner.Index

                if
                    not (
                        digitsAt text (at + 1) 2
                        && charAt text (at + 3) = ':'
                        && digitsAt text (at + 4) 2
                    )
                then
                    scanner.Fail(at, "a time offset is written Z, +HH:MM or -HH:MM")

                if twoDigits text (at + 1) > 23 || twoDigits text (at + 4) > 59 then
                    scanner.Fail(at, "a time offset must be from -23:59 to +23:59")

                scanner.Index <- at + 6
                ScalarValue.OffsetDateTime $"%s{date}T%s{time}%s{text.Substring(at, 6)}"
            | _ -> ScalarValue.LocalDateTime $"%s{date}T%s{time}"

    // ---------------------------
    // Values, arrays, inline tables
    // ---------------------------

    let private checkDepth (scanner: Scanner) (depth: int) : unit =
        if depth >= MaxDepth then
            scanner.Fail(
                scanner.Index,
                $"values may nest at most %d{MaxDepth} levels deep (arrays, inline tables and their dotted keys)"
            )

    /// The value at the scanner, `depth` arrays or inline tables deep.
    let rec value (scanner: Scanner) (depth: int) : ConfigNode =
        let start = scanner.Index
        let at = scanner.PositionOf start
        let text = scanner.Text

        let scalar (value: ScalarValue) : ConfigNode = Scalar(value, at)

        match scanner.Peek with
        | '"' when scanner.PeekAt 1 = '"' && scanner.PeekAt 2 = '"' ->
            scalar (ScalarValue.String(scanner.MultilineString '"'))
        | '"' -> scalar (ScalarValue.String(scanner.BasicString()))
        | '\'' when scanner.PeekAt 1 = '\'' && scanner.PeekAt 2 = '\'' ->
            scalar (ScalarValue.String(scanner.MultilineString '\''))
        | '\'' -> scalar (ScalarValue.String(scanner.LiteralString()))
        | '[' -> array scanner depth at
        | '{' -> inlineTable scanner depth at
        | 't' when startsWith scanner "true" ->
            scanner.Advance 4
            scalar (ScalarValue.Boolean true)
        | 'f' when startsWith scanner "false" ->
            scanner.Advance 5
            scalar (ScalarValue.Boolean false)
        | c when isDigit c && digitsAt text start 4 && charAt text (start + 4) = '-' -> scalar (dateTime scanner)
        | c when isDigit c && digitsAt text start 2 && charAt text (start + 2) = ':' ->
            scalar (ScalarValue.LocalTime(timeOfDay scanner))
        | '0' when
            (let next = scanner.PeekAt 1
             next = 'x' || next = 'o' || next = 'b')
            ->
            scalar (radixInteger scanner (scanner.NumberBuffer.Clear()))
        | c when isDigit c || c = '+' || c = '-' -> scalar (number scanner (scanner.NumberBuffer.Clear()))
        | 'i' when startsWith scanner "inf" -> scalar (number scanner (scanner.NumberBuffer.Clear()))
        | 'n' when startsWith scanner "nan" -> scalar (number scanner (scanner.NumberBuffer.Clear()))
        | _ ->
            scanner.Expected
                "a value: a \"string\", a number, true or false (lower case), a date-time, an [array] or an { inline table }"

    /// `[ value, … ]`: newlines and comments allowed between items, a trailing comma allowed.
    and private array (scanner: Scanner) (depth: int) (at: Position) : ConfigNode =
        checkDepth scanner depth
        scanner.Advance 1
        let items = ResizeArray<ConfigNode>()
        let mutable closed = false

        while not closed do
            scanner.SkipTrivia()

            if scanner.Peek = ']' then
                scanner.Advance 1
                closed <- true
            else
                items.Add(value scanner (depth + 1))
                scanner.SkipTrivia()

                match scanner.Peek with
                | ',' -> scanner.Advance 1
                | ']' ->
                    scanner.Advance 1
                    closed <- true
                | _ -> scanner.Expected "',' or ']' after an array item"

        Sequence(List.ofSeq items, at)

    /// `{ key = value, … }` on one line, without a trailing comma; closed once written.
    and private inlineTable (scanner: Scanner) (depth: int) (at: Position) : ConfigNode =
        checkDepth scanner depth
        scanner.Advance 1
        let table = TomlTable(at, TableOrigin.Header)

        let failOnNewline () =
            if scanner.Peek = '\n' || scanner.Peek = '\r' then
                scanner.Fail(
                    scanner.Index,
                    "an inline table must be on one line (newlines may only appear inside its values)"
                )

        scanner.SkipWhitespace()
        failOnNewline ()
        let mutable closed = scanner.Peek = '}'

        if closed then
            scanner.Advance 1

        while not closed do
            let key = scanner.Key MaxDepth

            if scanner.Peek <> '=' then
                scanner.Expected "'=' after the key"

            scanner.Advance 1
            scanner.SkipWhitespace()
            // Each dotted part nests one table deeper, so it counts towards the depth too.
            TomlTables.insert scanner table [] key (value scanner (depth + List.length key))
            scanner.SkipWhitespace()
            failOnNewline ()

            match scanner.Peek with
            | ',' ->
                scanner.Advance 1
                scanner.SkipWhitespace()
                failOnNewline ()

                if scanner.Peek = '}' then
                    scanner.Fail(scanner.Index, "a trailing comma is not allowed in an inline table")
            | '}' ->
                scanner.Advance 1
                closed <- true
            | _ -> scanner.Expected "',' or '}' after an inline-table entry"

        TomlTables.toNode table
