namespace CcRelay.Core

open System
open System.Collections.Generic

/// How a table came to exist; decides what a later header or dotted key may do with it.
[<RequireQualifiedAccess>]
type internal TableOrigin =
    /// Created as the parent of a header (`a` for `[a.b]`); one later `[a]` may still define it.
    | Implicit
    /// Defined by `[header]`, or one element of `[[header]]`; the document root is one too.
    | Header
    /// Created by a dotted key (`a.b = 1` creates `a`): more dotted keys may add to it and `[a.c]` may
    /// define a sub-table of it, but `[a]` may not define it.
    | Dotted

/// A table while the document is read: its entries in file order, still open to additions.
[<Sealed>]
type internal TomlTable(at: Position, origin: TableOrigin) =
    let entries = Dictionary<string, TomlEntry>(StringComparer.Ordinal)
    let order = ResizeArray<TomlEntry>()

    /// Where the table starts: its header, or the key that created it.
    member val At: Position = at with get, set

    /// How the table came to exist (an implicit table becomes a header table when a header defines it).
    member val Origin: TableOrigin = origin with get, set

    /// The entry for a key, when present.
    member _.Find(key: string) : TomlEntry voption =
        match entries.TryGetValue key with
        | true, entry -> ValueSome entry
        | _ -> ValueNone

    /// Adds an entry; the caller checked the key is new.
    member _.Add(entry: TomlEntry) : unit =
        entries.Add(entry.Key, entry)
        order.Add entry

    /// The entries in file order.
    member _.Entries: IReadOnlyList<TomlEntry> = order

/// What a key holds while the document is read.
and internal TomlItem =
    /// A scalar, an array or an inline table: complete, and closed to additions.
    | Value of ConfigNode
    | Table of TomlTable
    /// `[[name]]` elements; a header below `name` adds to the last one.
    | TableArray of At: Position * Tables: ResizeArray<TomlTable>

/// One key of a table and what it holds.
and internal TomlEntry = {
    Key: string
    KeyAt: Position
    Item: TomlItem
}

/// The document being built, with TOML 1.0.0's rules on defining tables: a table is defined once; a
/// header may define a table that only exists as a parent; dotted keys may only add to tables that
/// dotted keys created; inline tables and arrays written as values are closed.
[<RequireQualifiedAccess>]
module internal TomlTables =

    /// A key as written in a document: bare when possible, else quoted.
    let showKey (path: string list) : string =
        let show (part: string) =
            if
                part.Length > 0
                && part |> Seq.forall (fun c -> Char.IsAsciiLetterOrDigit c || c = '_' || c = '-')
            then
                part
            else
                "\"" + part.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\""

        path |> List.map show |> String.concat "."

    /// What an existing entry is, and where, for "already defined" messages.
    let private describe (entry: TomlEntry) : string =
        match entry.Item with
        | Value(Mapping(_, at)) -> $"an inline table (line %d{at.Line}), which cannot be extended"
        | Value(Sequence(_, at)) -> $"an array written as a value (line %d{at.Line}), which cannot be extended"
        | Value _ -> $"a value (line %d{entry.KeyAt.Line})"
        | Table table ->
            match table.Origin with
            | TableOrigin.Dotted -> $"a table made by dotted keys (line %d{table.At.Line})"
            | TableOrigin.Header -> $"a table defined at line %d{table.At.Line}"
            | TableOrigin.Implicit -> $"a table (line %d{table.At.Line})"
        | TableArray(at, _) -> $"an array of tables (line %d{at.Line})"

    /// A new entry holding `item` under `part`.
    let private entry (scanner: Scanner) (part: KeyPart) (item: TomlItem) : TomlEntry = {
        Key = part.Name
        KeyAt = scanner.PositionOf part.Index
        Item = item
    }

    /// The table that `[key]` (`isArray = false`) or `[[key]]` (`isArray = true`) opens, creating its
    /// parents as implicit tables. A parent that is an array of tables means its last element.
    let openTable (scanner: Scanner) (root: TomlTable) (key: KeyPart list) (isArray: bool) (at: Position) : TomlTable =
        // Only for messages: formatting it for every header would cost more than the header itself.
        let header () =
            let shown = key |> List.map _.Name |> showKey
            if isArray then $"[[%s{shown}]]" else $"[%s{shown}]"

        let rec walk (table: TomlTable) (parts: KeyPart list) (path: string list) : TomlTable =
            match parts with
            | [] -> table
            | [ last ] ->
                let path = path @ [ last.Name ]

                match table.Find last.Name, isArray with
                | ValueNone, false ->
                    let child = TomlTable(at, TableOrigin.Header)
                    table.Add(entry scanner last (Table child))
                    child
                | ValueNone, true ->
                    let child = TomlTable(at, TableOrigin.Header)
                    table.Add(entry scanner last (TableArray(at, ResizeArray [ child ])))
                    child
                | ValueSome { Item = Table child }, false when child.Origin = TableOrigin.Implicit ->
                    child.Origin <- TableOrigin.Header
                    child.At <- at
                    child
                | ValueSome { Item = TableArray(_, tables) }, true ->
                    let child = TomlTable(at, TableOrigin.Header)
                    tables.Add child
                    child
                | ValueSome existing, _ ->
                    scanner.Fail(
                        last.Index,
                        $"%s{header ()} defines %s{showKey path} again: it is already %s{describe existing}"
                    )
            | part :: rest ->
                let path = path @ [ part.Name ]

                match table.Find part.Name with
                | ValueNone ->
                    let child = TomlTable(scanner.PositionOf part.Index, TableOrigin.Implicit)
                    table.Add(entry scanner part (Table child))
                    walk child rest path
                | ValueSome { Item = Table child } -> walk child rest path
                | ValueSome { Item = TableArray(_, tables) } -> walk tables[tables.Count - 1] rest path
                | ValueSome existing ->
                    scanner.Fail(
                        part.Index,
                        $"%s{header ()} cannot add a table to %s{showKey path}: it is already %s{describe existing}"
                    )

        walk root key []

    /// Sets `key = value` in `table` (whose own key path, for messages, is `prefix`). Each dotted part
    /// before the last names a table that dotted keys made, or makes one.
    let insert
        (scanner: Scanner)
        (table: TomlTable)
        (prefix: string list)
        (key: KeyPart list)
        (value: ConfigNode)
        : unit =
        let rec walk (table: TomlTable) (parts: KeyPart list) (path: string list) : unit =
            match parts with
            | [] -> ()
            | [ last ] ->
                match table.Find last.Name with
                | ValueNone -> table.Add(entry scanner last (Value value))
                | ValueSome existing ->
                    let path = path @ [ last.Name ]

                    scanner.Fail(
                        last.Index,
                        $"the key %s{showKey path} is already defined: it is %s{describe existing}"
                    )
            | part :: rest ->
                let path = path @ [ part.Name ]

                match table.Find part.Name with
                | ValueNone ->
                    let child = TomlTable(scanner.PositionOf part.Index, TableOrigin.Dotted)
                    table.Add(entry scanner part (Table child))
                    walk child rest path
                | ValueSome { Item = Table child } when child.Origin = TableOrigin.Dotted -> walk child rest path
                | ValueSome existing ->
                    scanner.Fail(
                        part.Index,
                        $"the dotted key cannot add to %s{showKey path}: it is already %s{describe existing}"
                    )

        walk table key prefix

    /// The finished node tree of a table.
    let rec toNode (table: TomlTable) : ConfigNode =
        let entries = [
            for e in table.Entries ->
                {
                    Key = e.Key
                    KeyAt = e.KeyAt
                    Value = itemNode e.Item
                }
        ]

        Mapping(entries, table.At)

    and private itemNode (item: TomlItem) : ConfigNode =
        match item with
        | Value node -> node
        | Table table -> toNode table
        | TableArray(at, tables) -> Sequence([ for t in tables -> toNode t ], at)
