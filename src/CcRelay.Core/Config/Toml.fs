namespace CcRelay.Core

open System.Text

/// A TOML syntax error: what is wrong and where (1-based line and column; a column counts UTF-16 code
/// units from the start of its line, and a leading byte-order mark does not count).
type TomlError = { Message: string; Position: Position }

/// TOML 1.0.0 (https://toml.io/en/v1.0.0) into the config node tree, checked against the official
/// toml-test suite.
///
/// - Tables become `Mapping`s and arrays `Sequence`s, in file order; every node and key has its position.
/// - Strings are `ScalarValue.String`; integers (64-bit), floats (with inf and nan) and booleans keep their
///   TOML type; date-times keep their text, normalised to `T` between date and time and an upper-case `Z`.
/// - The first error stops the parse: a TOML document that is wrong in one place is rarely right after it.
[<RequireQualifiedAccess>]
module Toml =

    /// Reads one `key = value` line into `table`, whose own key path (for messages) is `path`.
    let private keyValue (scanner: Scanner) (table: TomlTable) (path: string list) : unit =
        let key = scanner.Key TomlValues.MaxDepth

        if scanner.Peek <> '=' then
            scanner.Expected "'=' after the key"

        scanner.Advance 1
        scanner.SkipWhitespace()
        TomlTables.insert scanner table path key (TomlValues.value scanner 0)
        scanner.ExpectLineEnd "the value"

    /// Reads `[a.b]` or `[[a.b]]` and returns the table it opens, with its key path.
    let private header (scanner: Scanner) (root: TomlTable) : TomlTable * string list =
        let start = scanner.Index
        let isArray = scanner.PeekAt 1 = '['
        scanner.Advance(if isArray then 2 else 1)
        scanner.SkipWhitespace()
        let key = scanner.Key TomlValues.MaxDepth

        if scanner.Peek <> ']' then
            scanner.Expected(
                if isArray then
                    "']]' to close the header"
                else
                    "']' to close the header"
            )

        scanner.Advance 1

        if isArray then
            if scanner.Peek <> ']' then
                scanner.Expected "']]' to close the header"

            scanner.Advance 1

        let table = TomlTables.openTable scanner root key isArray (scanner.PositionOf start)
        scanner.ExpectLineEnd "the table header"
        table, key |> List.map _.Name

    /// Parses a TOML 1.0.0 document. A leading byte-order mark is skipped. The error says what is wrong
    /// and where.
    let parse (text: string) : Result<ConfigNode, TomlError> =
        let scanner = Scanner text
        let root = TomlTable({ Line = 1; Column = 1 }, TableOrigin.Header)

        try
            let mutable current = root
            let mutable path = []

            while not scanner.AtEnd do
                scanner.SkipWhitespace()

                match scanner.Peek with
                | _ when scanner.AtEnd -> ()
                | '#' -> scanner.SkipComment()
                | '\n'
                | '\r' -> scanner.TryNewline() |> ignore
                | '[' ->
                    let table, key = header scanner root
                    current <- table
                    path <- key
                | _ -> keyValue scanner current path

            Ok(TomlTables.toNode root)
        with TomlFailure(message, index) ->
            Error {
                Message = message
                Position = scanner.PositionOf index
            }

    /// Decodes UTF-8 bytes strictly: an invalid sequence is an error at its line and column (a TOML
    /// document must be valid UTF-8). A byte-order mark stays in the text; `parse` skips it.
    let decodeUtf8 (bytes: byte array) : Result<string, TomlError> =
        let strict = UTF8Encoding(false, true)

        try
            Ok(strict.GetString bytes)
        with :? DecoderFallbackException as e ->
            // Index is where the bad bytes start; the text before them decodes cleanly.
            let bad = max 0 (min e.Index bytes.Length)

            let lineStart =
                if bad = 0 then
                    0
                else
                    System.Array.LastIndexOf(bytes, 10uy, bad - 1) + 1

            let line = (bytes |> Seq.take bad |> Seq.filter ((=) 10uy) |> Seq.length) + 1
            // A byte-order mark does not count as a column, as in `parse`.
            let bom =
                if
                    lineStart = 0
                    && bad >= 3
                    && bytes[0] = 0xEFuy
                    && bytes[1] = 0xBBuy
                    && bytes[2] = 0xBFuy
                then
                    3
                else
                    0

            let column = strict.GetCharCount(bytes, lineStart + bom, bad - lineStart - bom) + 1

            Error {
                Message = "the file is not valid UTF-8"
                Position = { Line = line; Column = column }
            }

    /// `decodeUtf8` then `parse`: a TOML file's bytes into the node tree.
    let parseUtf8 (bytes: byte array) : Result<ConfigNode, TomlError> = decodeUtf8 bytes |> Result.bind parse
