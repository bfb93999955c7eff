module CcRelay.Core.Properties.TomlProperties

open System
open System.Globalization
open System.Text
open CcRelay.Core
open CcRelay.Core.Properties.Generators
open FsCheck
open FsCheck.FSharp
open Xunit

// ---------------------------
// Generated trees (positions do not matter: the renderer ignores them and `same` does not compare them)
// ---------------------------

let private nowhere: Position = { Line = 1; Column = 1 }

/// Keys: bare ones, and any text (dots, quotes, spaces, control characters, astral characters, empty).
let private key: Gen<string> =
    Gen.frequency [
        3, Gen.elements [ "a"; "b"; "name"; "rpm_limit"; "base-url"; "0"; "1x"; "true" ]
        1, anyText
    ]

let private int64s: Gen<int64> =
    Gen.frequency [
        3, Gen.choose (-1000, 1000) |> Gen.map int64
        3, Gen.choose64 (Int64.MinValue, Int64.MaxValue)
        1, Gen.elements [ Int64.MinValue; Int64.MaxValue; 0L ]
    ]

let private floats: Gen<float> =
    Gen.frequency [
        3, Gen.choose (-10000, 10000) |> Gen.map (fun n -> float n / 64.0)
        3,
        Gen.choose64 (Int64.MinValue, Int64.MaxValue)
        |> Gen.map BitConverter.Int64BitsToDouble
        1, Gen.elements [ 0.0; -0.0; nan; infinity; -infinity; Double.Epsilon; Double.MaxValue; 1e300 ]
    ]

/// Date-times in the normalised form the parser keeps (`T`, upper-case `Z`).
let private dateTimes: Gen<ScalarValue> =
    gen {
        let! day = Gen.choose (0, 3_652_058) // 0001-01-01 .. 9999-12-31
        let! seconds = Gen.choose (0, 86_399)
        let! fraction = Gen.elements [ ""; ".5"; ".123"; ".000001" ]
        let! offset = Gen.elements [ "Z"; "+05:30"; "-08:00"; "+00:00" ]

        let date =
            DateOnly.FromDayNumber(day).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)

        let time =
            TimeOnly
                .FromTimeSpan(TimeSpan.FromSeconds(float seconds))
                .ToString("HH:mm:ss", CultureInfo.InvariantCulture)
            + fraction

        return!
            Gen.elements [
                ScalarValue.OffsetDateTime $"%s{date}T%s{time}%s{offset}"
                ScalarValue.LocalDateTime $"%s{date}T%s{time}"
                ScalarValue.LocalDate date
                ScalarValue.LocalTime time
            ]
    }

let private scalar: Gen<ConfigNode> =
    Gen.frequency [
        3, anyText |> Gen.map ScalarValue.String
        2, int64s |> Gen.map ScalarValue.Integer
        2, floats |> Gen.map ScalarValue.Float
        1, Gen.elements [ true; false ] |> Gen.map ScalarValue.Boolean
        1, dateTimes
    ]
    |> Gen.map (fun value -> Scalar(value, nowhere))

let rec private mapping (depth: int) : Gen<ConfigNode> =
    gen {
        let! count = Gen.choose (0, 4)
        let! keys = Gen.listOfLength count key
        let! values = Gen.listOfLength count (node (depth - 1))

        let entries =
            List.zip keys values
            |> List.distinctBy fst
            |> List.map (fun (k, v) -> { Key = k; KeyAt = nowhere; Value = v })

        return Mapping(entries, nowhere)
    }

and private node (depth: int) : Gen<ConfigNode> =
    if depth <= 0 then
        scalar
    else
        Gen.frequency [
            5, scalar
            2,
            Gen.listOf (node (depth - 1))
            |> Gen.resize 3
            |> Gen.map (fun items -> Sequence(items, nowhere))
            2, mapping depth
            // Non-empty arrays of tables: rendered as [[…]] headers or inline.
            1,
            Gen.nonEmptyListOf (mapping depth)
            |> Gen.resize 3
            |> Gen.map (fun items -> Sequence(items, nowhere))
        ]

// ---------------------------
// A small TOML renderer; it varies the spelling of the same tree with a seeded Random
// ---------------------------

let private isBare (key: string) : bool =
    key.Length > 0
    && key |> Seq.forall (fun c -> Char.IsAsciiLetterOrDigit c || c = '_' || c = '-')

/// The inside of a basic string: quotes, backslashes and control characters escaped. With `rawNewlines`
/// (for `"""` strings) a line feed is written as it is, except first, where the parser would drop it.
let private escape (rawNewlines: bool) (text: string) : string =
    let out = StringBuilder()

    for i in 0 .. text.Length - 1 do
        match text[i] with
        | '"' -> out.Append "\\\"" |> ignore
        | '\\' -> out.Append "\\\\" |> ignore
        | '\n' when rawNewlines && i > 0 -> out.Append '\n' |> ignore
        | '\b' -> out.Append "\\b" |> ignore
        | '\t' -> out.Append "\\t" |> ignore
        | '\n' -> out.Append "\\n" |> ignore
        | '\f' -> out.Append "\\f" |> ignore
        | '\r' -> out.Append "\\r" |> ignore
        | c when c < ' ' || c = '\u007F' -> out.Append $"\\u%04X{int c}" |> ignore
        | c -> out.Append c |> ignore

    out.ToString()

let private basic (text: string) : string = "\"" + escape false text + "\""

/// True when a literal ('…') string can hold the text as it is.
let private literalSafe (text: string) : bool =
    text
    |> Seq.forall (fun c -> c <> '\'' && (c >= ' ' && c <> '\u007F' || c = '\t'))

let private renderKey (random: Random) (key: string) : string =
    if isBare key && random.Next 4 > 0 then key
    elif literalSafe key && random.Next 2 = 0 then $"'%s{key}'"
    else basic key

let private renderString (random: Random) (text: string) : string =
    match random.Next 4 with
    | 0 when literalSafe text -> $"'%s{text}'"
    | 1 when literalSafe text -> $"'''%s{text}'''"
    // Multi-line basic, after a newline the parser drops.
    | 2 -> "\"\"\"\n" + escape true text + "\"\"\""
    | _ -> basic text

let private renderFloat (value: float) : string =
    if Double.IsNaN value then
        "nan"
    elif Double.IsPositiveInfinity value then
        "+inf"
    elif Double.IsNegativeInfinity value then
        "-inf"
    else
        let written = value.ToString("R", CultureInfo.InvariantCulture)

        if written.Contains '.' || written.Contains 'E' then
            written
        else
            written + ".0"

let private renderInteger (random: Random) (value: int64) : string =
    match random.Next 5 with
    | 0 when value >= 0L -> "0x" + value.ToString("x", CultureInfo.InvariantCulture)
    | 1 when value >= 0L -> "0o" + Convert.ToString(value, 8)
    | 2 when value >= 0L -> "0b" + Convert.ToString(value, 2)
    | 3 when value > 0L -> "+" + string value
    | _ -> string value

let private renderScalar (random: Random) (value: ScalarValue) : string =
    match value with
    | ScalarValue.String text -> renderString random text
    | ScalarValue.Integer n -> renderInteger random n
    | ScalarValue.Float f -> renderFloat f
    | ScalarValue.Boolean b -> if b then "true" else "false"
    // The parser normalises these; write them the other allowed ways too.
    | ScalarValue.OffsetDateTime text
    | ScalarValue.LocalDateTime text when random.Next 2 = 0 -> text.Replace('T', ' ').Replace('Z', 'z')
    | ScalarValue.OffsetDateTime text
    | ScalarValue.LocalDateTime text
    | ScalarValue.LocalDate text
    | ScalarValue.LocalTime text
    | ScalarValue.Plain text -> text
    | ScalarValue.Null -> failwith "TOML has no null"

/// A value written inline: scalars, arrays (sometimes over several lines, with comments and a trailing
/// comma) and inline tables.
let rec private renderInline (random: Random) (node: ConfigNode) : string =
    match node with
    | Scalar(value, _) -> renderScalar random value
    | Sequence(items, _) ->
        let items = items |> List.map (renderInline random)

        if random.Next 3 = 0 then
            "[ # items\n  "
            + String.Join(",\n  ", items)
            + (if items.IsEmpty then "" else ",")
            + "\n]"
        else
            "[" + String.Join(", ", items) + "]"
    | Mapping([], _) -> "{}"
    | Mapping(entries, _) ->
        let pairs =
            entries
            |> List.map (fun e -> renderKey random e.Key + " = " + renderInline random e.Value)

        "{ " + String.Join(", ", pairs) + " }"

/// How an entry of a table is written.
type private Style =
    | Line
    | Dotted
    | Header
    | ArrayOfTables

/// `prefix.key = value` lines for a mapping written with dotted keys (non-empty mappings only).
let rec private renderDotted
    (random: Random)
    (out: StringBuilder)
    (prefix: string)
    (entries: MappingEntry list)
    : unit =
    for e in entries do
        let key = prefix + "." + renderKey random e.Key

        match e.Value with
        | Mapping(_ :: _ as inner, _) when random.Next 2 = 0 -> renderDotted random out key inner
        | value ->
            out.Append(key).Append(" = ").Append(renderInline random value).Append('\n')
            |> ignore

/// Writes a table's entries under the current header and returns them in the order the parser will
/// report: entries written on lines first, then those written under their own headers.
let rec private renderTable
    (random: Random)
    (out: StringBuilder)
    (path: string list)
    (entries: MappingEntry list)
    : MappingEntry list =
    let styled =
        entries
        |> List.map (fun e ->
            let style =
                match e.Value with
                | Mapping(_ :: _, _) when random.Next 4 = 0 -> Dotted
                | Mapping _ when random.Next 3 = 0 -> Line
                | Mapping _ -> Header
                | Sequence(items, _) when
                    not items.IsEmpty
                    && items |> List.forall (fun i -> i.IsMapping)
                    && random.Next 3 > 0
                    ->
                    ArrayOfTables
                | _ -> Line

            e, style)

    let onLines, underHeaders =
        styled |> List.partition (fun (_, style) -> style = Line || style = Dotted)

    for e, style in onLines do
        match style, e.Value with
        | Dotted, Mapping(inner, _) -> renderDotted random out (renderKey random e.Key) inner
        | _ ->
            out.Append(renderKey random e.Key).Append(" = ").Append(renderInline random e.Value).Append('\n')
            |> ignore

    let headed =
        underHeaders
        |> List.map (fun (e, style) ->
            let path = path @ [ renderKey random e.Key ]
            let name = String.Join(".", path)

            match style, e.Value with
            | ArrayOfTables, Sequence(items, at) ->
                let items =
                    items
                    |> List.map (fun item ->
                        out.Append("\n[[").Append(name).Append("]]\n") |> ignore

                        match item with
                        | Mapping(inner, itemAt) -> Mapping(renderTable random out path inner, itemAt)
                        | other -> other)

                { e with Value = Sequence(items, at) }
            | _, Mapping(inner, at) ->
                out.Append("\n[").Append(name).Append("]\n") |> ignore

                {
                    e with
                        Value = Mapping(renderTable random out path inner, at)
                }
            | _ -> e)

    (onLines |> List.map fst) @ headed

/// The TOML text of a document, and the document in the order the parser will report its entries.
let private render (seed: int) (document: ConfigNode) : string * ConfigNode =
    let random = Random seed
    let out = StringBuilder()

    match document with
    | Mapping(entries, at) ->
        let ordered = renderTable random out [] entries
        out.ToString(), Mapping(ordered, at)
    | other -> failwith $"a document is a mapping, got %A{other}"

/// Equal trees, ignoring positions; NaN equals NaN and -0.0 differs from 0.0.
let rec private same (a: ConfigNode) (b: ConfigNode) : bool =
    match a, b with
    | Scalar(ScalarValue.Float x, _), Scalar(ScalarValue.Float y, _) ->
        (Double.IsNaN x && Double.IsNaN y)
        || (x = y && Double.IsNegative x = Double.IsNegative y)
    | Scalar(x, _), Scalar(y, _) -> x = y
    | Sequence(xs, _), Sequence(ys, _) -> xs.Length = ys.Length && List.forall2 same xs ys
    | Mapping(xs, _), Mapping(ys, _) ->
        xs.Length = ys.Length
        && List.forall2 (fun (x: MappingEntry) (y: MappingEntry) -> x.Key = y.Key && same x.Value y.Value) xs ys
    | _ -> false

[<Fact>]
let ``rendering a tree to TOML and parsing it gives the tree back`` () =
    let cases = Gen.zip (Gen.choose (0, Int32.MaxValue)) (mapping 4) |> Check.arb

    Check.quick
        500
        (Prop.forAll cases (fun (seed, document) ->
            let text, expected = render seed document

            match Toml.parse text with
            | Ok parsed ->
                same expected parsed
                |> Prop.label $"parsed differs from the tree; TOML:\n%s{text}"
            | Error e ->
                false
                |> Prop.label $"rejected at %d{e.Position.Line}:%d{e.Position.Column}: %s{e.Message}; TOML:\n%s{text}"))
