namespace CcRelay.Core

open System
open System.Globalization

/// Where the decoder is: the key path of the node being read, and how to read environment variables.
type internal Cursor = {
    /// `providers[1].keys[0].key`; "" at the document root.
    Path: string
    Lookup: string -> string option
} with

    /// The path of a mapping entry below this one.
    member this.Child(key: string) : Cursor = {
        this with
            Path = if this.Path = "" then key else $"%s{this.Path}.%s{key}"
    }

    /// The path of a list item below this one (0-based, as in `providers[0]`).
    member this.Item(index: int) : Cursor = {
        this with
            Path = $"%s{this.Path}[%d{index}]"
    }

    /// The path as shown in messages.
    member this.Shown: string = if this.Path = "" then "(document)" else this.Path

/// Reads one node at a cursor.
type internal Read<'Value> = Cursor -> ConfigNode -> Decoded<'Value>

/// The entries of one mapping, looked up by key; unknown keys were already reported.
type internal Fields = {
    Cursor: Cursor
    At: Position
    Entries: Map<string, MappingEntry>
}

/// Typed readers for config nodes: scalars (YAML 1.2 core schema for plain scalars, `${…}` expansion of
/// string values), lists, maps and sections with unknown-key warnings.
[<RequireQualifiedAccess>]
module internal ConfigRead =

    // ---------------------------
    // Issues
    // ---------------------------

    /// An issue at a cursor and position.
    let issue (cursor: Cursor) (at: Position) (message: string) : ConfigIssue = {
        Path = cursor.Shown
        Position = Some at
        Message = message
    }

    /// An error at a cursor and position.
    let fail (cursor: Cursor) (at: Position) (message: string) : Decoded<'Value> =
        Decoded.error (issue cursor at message)

    /// A JSON-style quoted rendering of a value for messages.
    let quote (text: string) : string =
        let escaped = text.Replace("\\", "\\\\").Replace("\"", "\\\"")
        $"\"%s{escaped}\""

    /// Levenshtein distance (two rows).
    let private distance (a: string) (b: string) : int =
        let mutable previous = Array.init (b.Length + 1) id
        let mutable current = Array.zeroCreate (b.Length + 1)

        for i in 1 .. a.Length do
            current[0] <- i

            for j in 1 .. b.Length do
                let cost = if a[i - 1] = b[j - 1] then 0 else 1
                current[j] <- min (min (current[j - 1] + 1) (previous[j] + 1)) (previous[j - 1] + cost)

            let swap = previous
            previous <- current
            current <- swap

        previous[b.Length]

    /// The closest candidate to `word`, when one is close enough to be a likely typo.
    let suggest (candidates: string list) (word: string) : string option =
        let scored =
            candidates
            |> List.map (fun c -> c, distance (word.ToLowerInvariant()) (c.ToLowerInvariant()))

        match scored with
        | [] -> None
        | _ ->
            let best, score = scored |> List.minBy snd
            // A third of the length, at least 2: catches `lsten`, `max_body_byte`, `base-url`.
            if score <= max 2 (best.Length / 3) then Some best else None

    let private didYouMean (candidates: string list) (word: string) : string =
        match suggest candidates word with
        | Some s -> $"; did you mean \"%s{s}\"?"
        | None -> ""

    /// A human name for a node's kind, for "expected …, got …" messages.
    let private kind (node: ConfigNode) : string =
        match node with
        | Mapping _ -> "a mapping"
        | Sequence _ -> "a list"
        | Scalar(ScalarValue.Integer _, _) -> "an integer"
        | Scalar(ScalarValue.Float _, _) -> "a number"
        | Scalar(ScalarValue.Boolean _, _) -> "a boolean"
        | Scalar(ScalarValue.Null, _) -> "null"
        | Scalar((ScalarValue.String _ | ScalarValue.Plain _), _) -> "a string"
        | Scalar((ScalarValue.OffsetDateTime _ | ScalarValue.LocalDateTime _ | ScalarValue.LocalDate _ | ScalarValue.LocalTime _),
                 _) -> "a date or time"

    // ---------------------------
    // Scalars
    // ---------------------------

    /// YAML 1.2 core schema: the plain scalars that mean null.
    let private isNullText (text: string) : bool =
        match text with
        | ""
        | "~"
        | "null"
        | "Null"
        | "NULL" -> true
        | _ -> false

    /// A string-ish scalar after `${…}` expansion: the text, whether it was quoted, and its source text.
    type private Text = {
        Value: string
        Quoted: bool
        Source: string
    }

    /// `got "x"`, plus where it came from when `${…}` changed it.
    let private got (text: Text) : string =
        if text.Value = text.Source then
            $"got %s{quote text.Value}"
        else
            $"got %s{quote text.Value} (from %s{quote text.Source})"

    /// Expands a quoted or plain scalar's `${…}` references; an expansion problem is an error at `at`.
    let private expandText (cursor: Cursor) (at: Position) (quoted: bool) (source: string) : Decoded<Text> =
        match EnvExpand.expand cursor.Lookup source with
        | Ok value ->
            Decoded.ok {
                Value = value
                Quoted = quoted
                Source = source
            }
        | Error e -> fail cursor at (EnvExpand.describe e)

    /// The text of a quoted or plain scalar for a typed (non-string) field: inner None when it is null or
    /// expands to "" (so `timeout_ms: ${T:-}` means the default); outer None when the node is another kind.
    let private typedText (cursor: Cursor) (node: ConfigNode) : Decoded<Text option> option =
        match node with
        | Scalar(ScalarValue.Plain text, _) when isNullText text -> Some Decoded.none
        | Scalar(ScalarValue.Null, _) -> Some Decoded.none
        | Scalar(ScalarValue.Plain text, at) ->
            Some(
                expandText cursor at false text
                |> Decoded.map (fun t -> if t.Value.Length = 0 then None else Some t)
            )
        | Scalar(ScalarValue.String text, at) ->
            Some(
                expandText cursor at true text
                |> Decoded.map (fun t -> if t.Value.Length = 0 then None else Some t)
            )
        | _ -> None

    /// A typed (non-string) field: `ofText` reads the expanded text of a plain or quoted scalar, `ofNode` any
    /// other node; null, and text that expands to "", are None.
    let private typedScalar
        (ofText: Cursor -> ConfigNode -> Text -> Decoded<'Value option>)
        (ofNode: Cursor -> ConfigNode -> Decoded<'Value option>)
        : Read<'Value option> =
        fun cursor node ->
            match typedText cursor node with
            | Some text ->
                text
                |> Decoded.bind (fun t ->
                    match t with
                    | None -> Decoded.none
                    | Some t -> ofText cursor node t)
            | None -> ofNode cursor node

    /// A string value. Plain scalars are taken as written (`key: 0123` stays "0123"); TOML numbers and
    /// booleans are not strings. None for null.
    let optionalString: Read<string option> =
        fun cursor node ->
            match node with
            | Scalar(ScalarValue.Plain text, _) when isNullText text -> Decoded.none
            | Scalar(ScalarValue.Null, _) -> Decoded.none
            | Scalar(ScalarValue.Plain text, at) ->
                expandText cursor at false text |> Decoded.map (fun t -> Some t.Value)
            | Scalar(ScalarValue.String text, at) ->
                expandText cursor at true text |> Decoded.map (fun t -> Some t.Value)
            | other -> fail cursor (ConfigNode.position other) $"expected a string, got %s{kind other}"

    /// Parses YAML 1.2 core-schema integers: decimal with an optional sign, `0x…`, `0o…`.
    let tryParseInteger (text: string) : int64 option =
        let parse (digits: string) (styles: NumberStyles) =
            match Int64.TryParse(digits, styles, CultureInfo.InvariantCulture) with
            | true, value -> Some value
            | _ -> None

        if text.StartsWith "0x" && text.Length > 2 then
            parse (text.Substring 2) NumberStyles.AllowHexSpecifier
        elif
            text.StartsWith "0o"
            && text.Length > 2
            && text.Substring 2 |> Seq.forall (fun c -> c >= '0' && c <= '7')
        then
            text.Substring 2
            |> Seq.fold
                (fun (acc: int64 option) c ->
                    acc
                    |> Option.bind (fun v ->
                        if v > (Int64.MaxValue - 7L) / 8L then
                            None
                        else
                            Some(v * 8L + int64 (int c - int '0'))))
                (Some 0L)
        else
            let unsigned = text.TrimStart('+', '-')

            if
                unsigned.Length > 0
                && unsigned |> Seq.forall Char.IsAsciiDigit
                && text.Length - unsigned.Length <= 1
            then
                parse text NumberStyles.AllowLeadingSign
            else
                None

    /// How to read one kind of number (`optionalNumber`): what messages call it, its range, its syntax.
    type private Number<'Value> = {
        /// "an integer", "a number": what a value of another kind was expected to be.
        Expected: string
        /// What a quoted value is told after "expected …, got …".
        QuotedHint: string
        /// What a plain scalar that does not parse was expected to be (with its syntax).
        Syntax: string
        /// The allowed range, as "must be …" says it.
        Allowed: string
        InRange: 'Value -> bool
        Show: 'Value -> string
        /// Parses a plain scalar's expanded text.
        Parse: string -> 'Value option
        /// A typed scalar (a YAML or TOML number): Some value, Some error text (the "got …" part), or None
        /// when it is not a number at all.
        OfScalar: ScalarValue -> Result<'Value, string> option
    }

    /// A number in range, unquoted: a plain scalar is parsed after `${…}` expansion, a typed one converted.
    let private optionalNumber (number: Number<'Value>) : Read<'Value option> =
        let checkRange (cursor: Cursor) (at: Position) (value: 'Value) : Decoded<'Value option> =
            if number.InRange value then
                Decoded.ok (Some value)
            else
                fail cursor at $"must be %s{number.Allowed}, got %s{number.Show value}"

        typedScalar
            (fun cursor node t ->
                let at = ConfigNode.position node

                if t.Quoted then
                    fail cursor at $"expected %s{number.Expected}, %s{got t}; %s{number.QuotedHint}"
                else
                    match number.Parse t.Value with
                    | Some value -> checkRange cursor at value
                    | None -> fail cursor at $"expected %s{number.Syntax}, %s{got t}")
            (fun cursor node ->
                match node with
                | Scalar(scalar, at) ->
                    match number.OfScalar scalar with
                    | Some(Ok value) -> checkRange cursor at value
                    | Some(Error shown) -> fail cursor at $"expected %s{number.Syntax}, got %s{shown}"
                    | None -> fail cursor at $"expected %s{number.Expected}, got %s{kind node}"
                | other -> fail cursor (ConfigNode.position other) $"expected %s{number.Expected}, got %s{kind other}")

    /// An integer in `[minimum, maximum]`. A plain scalar is parsed after expansion.
    ///
    /// NOTE: a *quoted* number (`rpm_limit: "60"`) is an error, as in the Go project (yaml.v3 refuses a
    /// `!!str` for an int): quoting says "text". `rpm_limit: ${RPM}` (unquoted) is how to take an integer
    /// from the environment.
    let optionalInteger (minimum: int64) (maximum: int64) : Read<int64 option> =
        let allowed =
            if maximum = Int64.MaxValue then
                $">= %d{minimum}"
            else
                $"from %d{minimum} to %d{maximum}"

        optionalNumber {
            Expected = "an integer"
            QuotedHint = "remove the quotes to write a number"
            Syntax = $"an integer (%s{allowed}; decimal, 0x… or 0o…)"
            Allowed = allowed
            InRange = fun value -> value >= minimum && value <= maximum
            Show = fun value -> value.ToString(CultureInfo.InvariantCulture)
            Parse = tryParseInteger
            OfScalar =
                function
                | ScalarValue.Integer value -> Some(Ok value)
                | _ -> None
        }

    /// A decimal number in `[minimum, maximum]` (prices): an integer or a YAML 1.2 float (`3`, `0.30`,
    /// `.5`, `1.5e-1`), unquoted, as an exact decimal. `.inf` and `.nan` are refused.
    let optionalDecimal (minimum: decimal) (maximum: decimal) : Read<decimal option> =
        let show (d: decimal) =
            d.ToString(CultureInfo.InvariantCulture)

        let allowed = $"a number from %s{show minimum} to %s{show maximum}"

        optionalNumber {
            Expected = "a number"
            QuotedHint = "remove the quotes"
            Syntax = allowed
            Allowed = allowed
            InRange = fun value -> value >= minimum && value <= maximum
            Show = show
            Parse =
                fun text ->
                    match Decimal.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture) with
                    | true, value when text.Trim() = text -> Some value
                    | _ -> None
            OfScalar =
                function
                | ScalarValue.Integer value -> Some(Ok(decimal value))
                | ScalarValue.Float value when Double.IsFinite value && abs value < 1e15 -> Some(Ok(decimal value))
                | ScalarValue.Float value -> Some(Error $"%g{value}")
                | _ -> None
        }

    /// A boolean: `true`/`false` (also `True`, `TRUE`, `False`, `FALSE`), unquoted.
    let optionalBoolean: Read<bool option> =
        typedScalar
            (fun cursor node t ->
                match t.Value with
                | "true"
                | "True"
                | "TRUE" when not t.Quoted -> Decoded.ok (Some true)
                | "false"
                | "False"
                | "FALSE" when not t.Quoted -> Decoded.ok (Some false)
                | _ ->
                    let hint = if t.Quoted then "; remove the quotes" else ""
                    fail cursor (ConfigNode.position node) $"expected true or false, %s{got t}%s{hint}")
            (fun cursor node ->
                match node with
                | Scalar(ScalarValue.Boolean value, _) -> Decoded.ok (Some value)
                | other -> fail cursor (ConfigNode.position other) $"expected true or false, got %s{kind other}")

    /// One of a fixed set of spellings (case-sensitive, as documented).
    let optionalChoice (choices: (string * 'Value) list) : Read<'Value option> =
        fun cursor node ->
            optionalString cursor node
            |> Decoded.bind (fun text ->
                match text with
                | None -> Decoded.none
                | Some text ->
                    match choices |> List.tryFind (fun (name, _) -> name = text) with
                    | Some(_, value) -> Decoded.ok (Some value)
                    | None ->
                        let names = choices |> List.map fst |> List.distinct
                        let allowed = String.Join(", ", names)

                        fail
                            cursor
                            (ConfigNode.position node)
                            $"got %s{quote text}; allowed: %s{allowed}%s{didYouMean names text}")

    /// A value that must be present: `read` gives None → an error at the enclosing mapping.
    let required (fields: Fields) (key: string) (read: Read<'Value option>) : Decoded<'Value> =
        let cursor = fields.Cursor.Child key

        let decoded =
            match fields.Entries.TryFind key with
            | Some entry -> read cursor entry.Value
            | None -> Decoded.none

        match decoded.Value with
        | Some(Some value) -> {
            Value = Some value
            Findings = decoded.Findings
          }
        | Some None ->
            let at =
                fields.Entries.TryFind key
                |> Option.map (fun e -> ConfigNode.position e.Value)
                |> Option.defaultValue fields.At

            {
                Value = None
                Findings = decoded.Findings
            }
            |> Decoded.tell [
                {
                    Severity = Severity.Error
                    Issue = issue cursor at "is required"
                }
            ]
        | None -> {
            Value = None
            Findings = decoded.Findings
          }

    // ---------------------------
    // Collections and sections
    // ---------------------------

    /// A list; None when absent or null. Items are read at `path[i]`.
    let optionalList (item: Read<'Value>) : Read<'Value list option> =
        fun cursor node ->
            match node with
            | Scalar(ScalarValue.Null, _) -> Decoded.none
            | Scalar(ScalarValue.Plain text, _) when isNullText text -> Decoded.none
            | Sequence(items, _) ->
                items
                |> List.mapi (fun i n -> item (cursor.Item i) n)
                |> Decoded.sequence
                |> Decoded.map Some
            | other -> fail cursor (ConfigNode.position other) $"expected a list, got %s{kind other}"

    /// A mapping of free-form keys (e.g. `model_mapping`), in file order; None when absent or null.
    let optionalMap (value: Read<'Value>) : Read<(string * 'Value) list option> =
        fun cursor node ->
            match node with
            | Scalar(ScalarValue.Null, _) -> Decoded.none
            | Scalar(ScalarValue.Plain text, _) when isNullText text -> Decoded.none
            | Mapping(entries, _) ->
                entries
                |> List.map (fun e -> value (cursor.Child e.Key) e.Value |> Decoded.map (fun v -> e.Key, v))
                |> Decoded.sequence
                |> Decoded.map Some
            | other -> fail cursor (ConfigNode.position other) $"expected a mapping, got %s{kind other}"

    /// A non-empty string (for map values and list items).
    let nonEmptyString: Read<string> =
        fun cursor node ->
            optionalString cursor node
            |> Decoded.bind (fun text ->
                match text with
                | Some text when text.Length > 0 -> Decoded.ok text
                | _ -> fail cursor (ConfigNode.position node) "must be a non-empty string")

    /// A section with a known set of keys: an unknown key is a warning (with a suggestion when one is
    /// close); a null or absent section has no entries; a non-mapping is an error.
    let section (known: string list) : Read<Fields> =
        fun cursor node ->
            let empty = {
                Cursor = cursor
                At = ConfigNode.position node
                Entries = Map.empty
            }

            match node with
            | Scalar(ScalarValue.Null, _) -> Decoded.ok empty
            | Scalar(ScalarValue.Plain text, _) when isNullText text -> Decoded.ok empty
            | Mapping(entries, at) ->
                let unknown =
                    entries
                    |> List.filter (fun e -> not (List.contains e.Key known))
                    |> List.map (fun e -> {
                        Severity = Severity.Warning
                        Issue = issue (cursor.Child e.Key) e.KeyAt $"unknown key, ignored%s{didYouMean known e.Key}"
                    })

                {
                    Value =
                        Some {
                            Cursor = cursor
                            At = at
                            Entries = entries |> List.map (fun e -> e.Key, e) |> Map.ofList
                        }
                    Findings = unknown
                }
            | other ->
                { Value = Some empty; Findings = [] }
                |> Decoded.tell [
                    {
                        Severity = Severity.Error
                        Issue = issue cursor (ConfigNode.position other) $"expected a mapping, got %s{kind other}"
                    }
                ]

    /// Reads an optional field of a section (None when absent).
    let field (key: string) (read: Read<'Value option>) (fields: Fields) : Decoded<'Value option> =
        match fields.Entries.TryFind key with
        | Some entry -> read (fields.Cursor.Child key) entry.Value
        | None -> Decoded.none

    /// A nested section (`server.auth`); an absent one has no entries.
    let subsection (key: string) (known: string list) (fields: Fields) : Decoded<Fields> =
        let cursor = fields.Cursor.Child key

        match fields.Entries.TryFind key with
        | Some entry -> section known cursor entry.Value
        | None ->
            Decoded.ok {
                Cursor = cursor
                At = fields.At
                Entries = Map.empty
            }

    /// The entry for a key, when present.
    let entry (key: string) (fields: Fields) : MappingEntry option = fields.Entries.TryFind key

    /// Where a key's value starts; the section's own position when the key is absent.
    let valueAt (key: string) (fields: Fields) : Position =
        fields.Entries.TryFind key
        |> Option.map (fun e -> ConfigNode.position e.Value)
        |> Option.defaultValue fields.At

    /// Makes a total reader optional-shaped (for `field`): absent stays absent.
    let some (read: Read<'Value>) : Read<'Value option> =
        fun cursor node -> read cursor node |> Decoded.map Some
