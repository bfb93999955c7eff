namespace CcRelay.Core

open System
open System.Globalization
open System.Text

/// Raised inside the parser at a text index; `Toml.parse` catches it and returns a `TomlError`.
///
/// NOTE: recursive descent over a string with an index is fastest and clearest when a failure can leave
/// from any depth at once. The exception never escapes `Toml.parse`, so callers only see `Result`.
exception internal TomlFailure of Reason: string * Index: int

/// One part of a (possibly dotted) key: its text and where it starts.
[<Struct>]
type internal KeyPart = { Name: string; Index: int }

/// The text being parsed and the parser's place in it, with the lexical rules of TOML 1.0.0: whitespace,
/// newlines, comments, the four kinds of string and keys.
[<Sealed>]
type internal Scanner(text: string) =

    /// A byte-order mark is allowed (and skipped) only as the very first character.
    let bom = text.Length > 0 && text[0] = '\uFEFF'

    /// The index of the first character of every line, for turning indexes into positions.
    let lineStarts =
        let starts = ResizeArray<int>()
        starts.Add(if bom then 1 else 0)
        let mutable next = text.IndexOf '\n'

        while next >= 0 do
            starts.Add(next + 1)

            next <-
                if next + 1 < text.Length then
                    text.IndexOf('\n', next + 1)
                else
                    -1

        starts.ToArray()

    /// The value of an ASCII hex digit (the caller checked it is one).
    let hexValue (c: char) : int =
        if c <= '9' then int c - int '0'
        elif c >= 'a' then int c - int 'a' + 10
        else int c - int 'A' + 10

    /// Reused for strings with escapes or line-ending backslashes.
    let buffer = StringBuilder()

    let mutable index = if bom then 1 else 0

    /// Reused for the digits of a number.
    member val NumberBuffer: StringBuilder = StringBuilder()

    /// The whole text.
    member _.Text: string = text

    /// The index of the next character.
    member _.Index
        with get (): int = index
        and set (value: int) = index <- value

    /// True when every character was consumed.
    member _.AtEnd: bool = index >= text.Length

    /// The next character; NUL at the end (a NUL in the text is never valid TOML, so callers that accept
    /// a character never confuse the two).
    member _.Peek: char = if index < text.Length then text[index] else '\000'

    /// The character `offset` places ahead; NUL past the end.
    member _.PeekAt(offset: int) : char =
        let at = index + offset
        if at < text.Length then text[at] else '\000'

    /// Consumes `count` characters.
    member _.Advance(count: int) : unit = index <- index + count

    /// The 1-based line and column of a text index.
    member _.PositionOf(at: int) : Position =
        let found = Array.BinarySearch(lineStarts, at)
        let line = if found >= 0 then found else ~~~found - 1
        let line = max line 0

        {
            Line = line + 1
            Column = at - lineStarts[line] + 1
        }

    /// Fails at a text index.
    member _.Fail(at: int, message: string) : 'Value = raise (TomlFailure(message, at))

    /// The character at a text index, described for a message.
    member _.Describe(at: int) : string =
        if at >= text.Length then
            "the end of the file"
        else
            match text[at] with
            | '\n' -> "a newline"
            | '\r' -> "a carriage return"
            | '\t' -> "a tab"
            | c when c < ' ' || c = '\u007F' -> $"the control character U+%04X{int c}"
            | c when
                c >= '\u0080'
                && (Char.IsWhiteSpace c || Char.GetUnicodeCategory c = UnicodeCategory.Format)
                ->
                $"the invisible character U+%04X{int c}"
            | c when
                Char.IsSurrogate c
                && at + 1 < text.Length
                && Char.IsSurrogatePair(c, text[at + 1])
                ->
                $"'%s{text.Substring(at, 2)}'"
            | c -> $"'%c{c}'"

    /// Fails at the current character, saying what was expected and what was found.
    member this.Expected(what: string) : 'Value =
        this.Fail(index, $"expected %s{what}, found %s{this.Describe index}")

    // ---------------------------
    // Whitespace, newlines, comments
    // ---------------------------

    /// Skips spaces and tabs (the only whitespace TOML has).
    member _.SkipWhitespace() : unit =
        while index < text.Length && (text[index] = ' ' || text[index] = '\t') do
            index <- index + 1

    /// Consumes one newline (LF or CRLF) if there is one; a carriage return alone is an error.
    member this.TryNewline() : bool =
        match this.Peek with
        | '\n' ->
            index <- index + 1
            true
        | '\r' when this.PeekAt 1 = '\n' ->
            index <- index + 2
            true
        | '\r' when index < text.Length -> this.Fail(index, "a carriage return must be followed by a line feed")
        | _ -> false

    /// Consumes one non-ASCII character, checking that a surrogate is half of a pair.
    member this.SkipNonAscii() : unit =
        let c = text[index]

        if
            Char.IsHighSurrogate c
            && index + 1 < text.Length
            && Char.IsLowSurrogate text[index + 1]
        then
            index <- index + 2
        elif Char.IsSurrogate c then
            this.Fail(index, "invalid Unicode: an unpaired surrogate")
        else
            index <- index + 1

    /// Consumes a comment from `#` up to (not including) the end of its line. Control characters other
    /// than tab are not allowed in a comment.
    member this.SkipComment() : unit =
        index <- index + 1
        let mutable inComment = true

        while inComment && index < text.Length do
            let c = text[index]

            if c = '\n' || (c = '\r' && this.PeekAt 1 = '\n') then
                inComment <- false
            elif c >= ' ' && c < '\u007F' || c = '\t' then
                index <- index + 1
            elif c >= '\u0080' then
                this.SkipNonAscii()
            else
                this.Fail(index, $"%s{this.Describe index} is not allowed in a comment")

    /// Skips whitespace, newlines and comments (inside arrays).
    member this.SkipTrivia() : unit =
        let mutable more = true

        while more do
            this.SkipWhitespace()

            if this.Peek = '#' then
                this.SkipComment()
            elif not (this.TryNewline()) then
                more <- false

    /// After a key/value pair or a table header: optional whitespace and comment, then a newline or the end.
    member this.ExpectLineEnd(after: string) : unit =
        this.SkipWhitespace()

        if this.Peek = '#' then
            this.SkipComment()

        if not this.AtEnd && not (this.TryNewline()) then
            this.Fail(index, $"expected the end of the line after %s{after}, found %s{this.Describe index}")

    // ---------------------------
    // Strings
    // ---------------------------

    /// Fails for a character not allowed in a string: control characters other than tab.
    member private this.FailInString(at: int) : 'Value =
        match text[at] with
        | '\n'
        | '\r' ->
            this.Fail(at, "a single-line string cannot contain a newline; use \"\"\" or ''' for multi-line strings")
        | _ -> this.Fail(at, $"%s{this.Describe at} is not allowed in a string; write it as an escape")

    /// Appends `text[from .. index)` to the buffer.
    member private _.Flush(from: int) : unit =
        if index > from then
            buffer.Append(text, from, index - from) |> ignore

    /// Reads `digits` hex digits after `\u` or `\U` and appends the Unicode scalar value they name.
    member private this.UnicodeEscape(escapeAt: int, digits: int) : unit =
        let mutable code = 0

        for k in 0 .. digits - 1 do
            let c = this.PeekAt k

            if not (Char.IsAsciiHexDigit c) then
                this.Fail(escapeAt, $"\\%c{text[escapeAt + 1]} needs exactly %d{digits} hex digits")

            // Eight hex digits can exceed int; anything above 0x10FFFF is rejected below anyway.
            code <- min 0x110000 (code * 16 + hexValue c)

        if code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF) then
            this.Fail(escapeAt, $"%s{text.Substring(escapeAt, digits + 2)} is not a Unicode scalar value")

        buffer.Append(Char.ConvertFromUtf32 code) |> ignore
        index <- index + digits

    /// Reads one escape sequence at `\` into the buffer.
    member private this.Escape() : unit =
        let escapeAt = index
        index <- index + 2

        match this.PeekAt -1 with
        | 'b' -> buffer.Append '\b' |> ignore
        | 't' -> buffer.Append '\t' |> ignore
        | 'n' -> buffer.Append '\n' |> ignore
        | 'f' -> buffer.Append '\f' |> ignore
        | 'r' -> buffer.Append '\r' |> ignore
        | '"' -> buffer.Append '"' |> ignore
        | '\\' -> buffer.Append '\\' |> ignore
        | 'u' -> this.UnicodeEscape(escapeAt, 4)
        | 'U' -> this.UnicodeEscape(escapeAt, 8)
        | _ when escapeAt + 1 >= text.Length -> this.Fail(escapeAt, "the string is not closed")
        | _ ->
            this.Fail(
                escapeAt,
                $"invalid escape: a backslash followed by %s{this.Describe(escapeAt + 1)}; allowed: \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX"
            )

    /// A single-line basic string at `"`: escapes are decoded.
    member this.BasicString() : string =
        let start = index
        index <- index + 1
        buffer.Clear() |> ignore
        let mutable segment = index
        let mutable result = None

        while result.IsNone do
            if index >= text.Length then
                this.Fail(start, "the string is not closed")

            match text[index] with
            | '"' ->
                this.Flush segment
                index <- index + 1
                result <- Some(buffer.ToString())
            | '\\' ->
                this.Flush segment
                this.Escape()
                segment <- index
            | c when c >= ' ' && c < '\u007F' || c = '\t' -> index <- index + 1
            | c when c >= '\u0080' -> this.SkipNonAscii()
            | _ -> this.FailInString index

        result.Value

    /// A single-line literal string at `'`: taken as written.
    member this.LiteralString() : string =
        let start = index
        index <- index + 1
        let contentStart = index
        let mutable closed = false

        while not closed do
            if index >= text.Length then
                this.Fail(start, "the string is not closed")

            match text[index] with
            | '\'' -> closed <- true
            | c when c >= ' ' && c < '\u007F' || c = '\t' -> index <- index + 1
            | c when c >= '\u0080' -> this.SkipNonAscii()
            | _ -> this.FailInString index

        index <- index + 1
        text.Substring(contentStart, index - 1 - contentStart)

    /// At a run of `quote` characters inside a multi-line string: true when it closes the string. One or
    /// two quotes are content; three to five close it, the first one or two of them being content.
    member private this.ClosesMultiline(quote: char) : bool =
        let mutable run = 0

        while this.PeekAt run = quote do
            run <- run + 1

        if run < 3 then
            index <- index + run
            false
        elif run > 5 then
            this.Fail(
                index + 5,
                $"too many %c{quote} characters: at most two may come before the closing %s{String(quote, 3)}"
            )
        else
            index <- index + run - 3
            true

    /// Skips the whitespace and newlines after a line-ending backslash; true when `\` starts one.
    member private this.LineEndingBackslash() : bool =
        let mutable k = 1

        while this.PeekAt k = ' ' || this.PeekAt k = '\t' do
            k <- k + 1

        match this.PeekAt k with
        | '\n'
        | '\r' ->
            index <- index + k
            let mutable more = true

            while more do
                this.SkipWhitespace()
                more <- this.TryNewline()

            true
        | _ -> false

    /// A multi-line string at `"""` (basic: escapes and line-ending backslashes) or `'''` (literal). A
    /// newline right after the opening quotes is dropped; other newlines are kept as written.
    member this.MultilineString(quote: char) : string =
        let start = index
        index <- index + 3
        this.TryNewline() |> ignore
        buffer.Clear() |> ignore
        let mutable segment = index
        let mutable closed = false

        while not closed do
            if index >= text.Length then
                this.Fail(start, "the multi-line string is not closed")

            match text[index] with
            | c when c = quote ->
                if this.ClosesMultiline quote then
                    this.Flush segment
                    index <- index + 3
                    closed <- true
            | '\\' when quote = '"' ->
                this.Flush segment

                if not (this.LineEndingBackslash()) then
                    this.Escape()

                segment <- index
            | c when c >= ' ' && c < '\u007F' || c = '\t' || c = '\n' -> index <- index + 1
            | '\r' when this.PeekAt 1 = '\n' -> index <- index + 2
            | c when c >= '\u0080' -> this.SkipNonAscii()
            | '\r' -> this.Fail(index, "a carriage return must be followed by a line feed")
            | _ -> this.Fail(index, $"%s{this.Describe index} is not allowed in a string; write it as an escape")

        buffer.ToString()

    // ---------------------------
    // Keys
    // ---------------------------

    /// One key part: bare (`A-Za-z0-9_-`), basic-quoted or literal-quoted.
    member this.KeyPart() : KeyPart =
        let start = index

        match this.Peek with
        | '"'
        | '\'' as quote when this.PeekAt 1 = quote && this.PeekAt 2 = quote ->
            this.Fail(start, "a key cannot be a multi-line string")
        | '"' -> {
            Name = this.BasicString()
            Index = start
          }
        | '\'' -> {
            Name = this.LiteralString()
            Index = start
          }
        | _ ->
            while index < text.Length
                  && (Char.IsAsciiLetterOrDigit text[index] || text[index] = '_' || text[index] = '-') do
                index <- index + 1

            if index = start then
                this.Expected "a key (letters, digits, '_' and '-', or a quoted string)"

            {
                Name = text.Substring(start, index - start)
                Index = start
            }

    /// A key of one or more parts separated by dots (whitespace around the dots is allowed).
    member this.Key(maxParts: int) : KeyPart list =
        let mutable reversed = [ this.KeyPart() ]
        let mutable count = 1
        this.SkipWhitespace()

        while this.Peek = '.' do
            index <- index + 1
            this.SkipWhitespace()

            if count >= maxParts then
                this.Fail(index, $"a key may have at most %d{maxParts} parts")

            reversed <- this.KeyPart() :: reversed
            count <- count + 1
            this.SkipWhitespace()

        List.rev reversed
