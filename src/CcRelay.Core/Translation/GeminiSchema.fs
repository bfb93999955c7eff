namespace CcRelay.Core

open System
open System.Text
open System.Text.Json
open System.Text.Json.Nodes

/// What a Gemini answer leaves in Anthropic blocks so that the next turn can give it back: tool-use ids that
/// name the Gemini function, and thought signatures inside thinking-block signatures (protocols.md §6.6.2–3).
[<RequireQualifiedAccess>]
module GeminiWire =

    /// The prefix of a thinking-block signature that carries a Gemini `thoughtSignature` (possibly empty: a
    /// thought run without one). Only a Gemini provider reads it back; any other target leaves the block out
    /// (Anthropic refuses it as an invalid signature, which the thinking-signature affinity handles).
    [<Literal>]
    let SignaturePrefix = "cc-relay:gemini:v1:"

    /// The value Gemini documents for a function call that has no genuine signature (history made by another
    /// model): it skips the validation (protocols.md §6.6.2).
    [<Literal>]
    let SkipSignature = "skip_thought_signature_validator"

    /// The Gemini signature a thinking block's signature carries, when it is one of ours.
    let signatureOf (signature: string) : string option =
        if signature.StartsWith(SignaturePrefix, StringComparison.Ordinal) then
            Some(signature.Substring SignaturePrefix.Length)
        else
            None

    let private hex (text: string) : string =
        Convert.ToHexStringLower(Encoding.UTF8.GetBytes text)

    let private unhex (text: string) : string option =
        if text.Length % 2 = 0 && text |> String.forall Uri.IsHexDigit then
            try
                Some(Encoding.UTF8.GetString(Convert.FromHexString text))
            with :? FormatException ->
                None
        else
            None

    /// The tool-use id the relay gives a Gemini function call: `toolu_gm_<hex name>_<hex id or x>_<nonce>_<position>`.
    /// Gemini's calls usually have no id; this one names the function (a `tool_result` carries only the id,
    /// and `functionResponse` needs the name), keeps Gemini's own id when it gave one, and is unique by the
    /// answer's nonce (hex) and the call's position in it.
    let toolId (name: string) (upstreamId: string option) (nonce: string) (position: int) : string =
        let id =
            match upstreamId with
            | Some id when id.Length > 0 -> hex id
            | _ -> "x"

        $"toolu_gm_%s{hex name}_%s{id}_%s{nonce}_%d{position}"

    /// The Gemini function name, Gemini's own call id and the position a `toolId` encodes; None for any other id.
    let tryParseToolId (id: string) : (string * string option * int) option =
        match id.Split '_' with
        | [| "toolu"; "gm"; name; upstream; _; position |] ->
            match unhex name, Int32.TryParse position with
            | Some name, (true, position) when name.Length > 0 ->
                let upstream =
                    if upstream = "x" then
                        Some None
                    else
                        unhex upstream |> Option.map Some

                upstream |> Option.map (fun upstream -> name, upstream, position)
            | _ -> None
        | _ -> None

    let private allowed (c: char) : bool =
        (c >= 'a' && c <= 'z')
        || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9')
        || c = '_'
        || c = '-'

    /// A function name as Gemini accepts it (letters, digits, `_` and `-`, starting with a letter or `_`, at
    /// most 63): the name itself when it is one, else its allowed characters (others `_`), cut to 54, then `_`
    /// and 8 hex digits of the SHA-256 of the original, so that names stay apart.
    let functionName (name: string) : string =
        let startsWell = name.Length > 0 && (Char.IsAsciiLetter name[0] || name[0] = '_')

        if startsWell && name.Length <= 63 && String.forall allowed name then
            name
        else
            let clean = String.map (fun c -> if allowed c then c else '_') name

            let clean =
                if clean.Length > 0 && (Char.IsAsciiLetter clean[0] || clean[0] = '_') then
                    clean
                else
                    "_" + clean

            let head = if clean.Length > 54 then clean.Substring(0, 54) else clean

            let hash =
                Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes name)
                |> Convert.ToHexStringLower

            head + "_" + hash.Substring(0, 8)

/// JSON Schema (as Claude Code and MCP servers write it) → the OpenAPI subset Gemini's `parameters` and
/// `responseSchema` accept (protocols.md §6.6.1). An allow-list: what Gemini would refuse is converted
/// (`$ref` inlined, `allOf` merged, `oneOf` and `anyOf` with `null` made `anyOf`/`nullable`, type arrays
/// split, `const` an `enum`) or left out, with a hint in the description where the model loses something
/// (a pattern, a format, an exclusive bound, a non-string enum).
[<RequireQualifiedAccess>]
module GeminiSchema =

    /// The keys a cleaned schema may hold.
    let allowedKeys: Set<string> =
        set [
            "type"
            "format"
            "description"
            "nullable"
            "enum"
            "items"
            "minItems"
            "maxItems"
            "properties"
            "required"
            "minProperties"
            "maxProperties"
            "minLength"
            "maxLength"
            "minimum"
            "maximum"
            "anyOf"
        ]

    /// Gemini's type names.
    let typeNames: Set<string> =
        set [ "STRING"; "NUMBER"; "INTEGER"; "BOOLEAN"; "ARRAY"; "OBJECT" ]

    let private typeName (jsonType: string) : string option =
        match jsonType with
        | "string" -> Some "STRING"
        | "number" -> Some "NUMBER"
        | "integer" -> Some "INTEGER"
        | "boolean" -> Some "BOOLEAN"
        | "array" -> Some "ARRAY"
        | "object" -> Some "OBJECT"
        | _ -> None

    /// How deep `$ref`s are followed (a recursive schema is cut there, as a free-form object).
    [<Literal>]
    let private MaxRefDepth = 6

    [<Literal>]
    let private MaxDepth = 40

    let private scalarText (value: JsonElement) : string =
        match value.ValueKind with
        | JsonValueKind.String -> value.GetString() |> string
        | _ -> value.GetRawText()

    /// Resolves a local `$ref` (`#/$defs/X`, `#/definitions/X`, any JSON pointer into the root).
    let private resolve (root: JsonElement) (reference: string) : JsonElement voption =
        if reference.StartsWith("#/", StringComparison.Ordinal) then
            reference.Substring(2).Split('/')
            |> Array.fold
                (fun (at: JsonElement voption) segment ->
                    let segment = segment.Replace("~1", "/").Replace("~0", "~")
                    at |> ValueOption.bind (fun e -> JsonRead.tryProperty e segment))
                (ValueSome root)
        elif reference = "#" then
            ValueSome root
        else
            ValueNone

    let private str (text: string) : JsonNode = nonNull (JsonValue.Create text)

    let private arrayOf (nodes: JsonNode list) : JsonArray =
        let array = JsonArray()

        for node in nodes do
            array.Add node

        array

    let private number (value: JsonElement) : JsonNode option =
        match value.ValueKind with
        | JsonValueKind.Number -> Some(JsonValue.Create(value.GetDouble()))
        | _ -> None

    let private count (value: JsonElement) : JsonNode option =
        match value.ValueKind with
        | JsonValueKind.Number ->
            match value.TryGetInt64() with
            | true, n when n >= 0L -> Some(JsonValue.Create n)
            | _ -> None
        | _ -> None

    /// Cleans one schema. `withHints`: what is lost is noted in the description; `refs`: how many `$ref`s led here.
    let rec private clean
        (withHints: bool)
        (root: JsonElement)
        (refs: int)
        (depth: int)
        (schema: JsonElement)
        : JsonObject =
        let result = JsonObject()
        let hints = ResizeArray<string>()

        if schema.ValueKind <> JsonValueKind.Object || depth > MaxDepth then
            result
        else
            match JsonRead.tryString schema "$ref" with
            | Some reference ->
                match resolve root reference with
                | ValueSome target when refs < MaxRefDepth ->
                    let inlined = clean withHints root (refs + 1) (depth + 1) target

                    match JsonRead.tryString schema "description" with
                    | Some description when description.Length > 0 -> inlined["description"] <- str description
                    | _ -> ()

                    inlined
                | _ ->
                    result["type"] <- str ("OBJECT")
                    result["description"] <- str ("(a recursive or unresolved schema reference: " + reference + ")")
                    result
            | None ->
                // allOf: every branch's properties and requirements, merged over this schema's own
                let merged =
                    match JsonRead.tryProperty schema "allOf" with
                    | ValueSome branches when branches.ValueKind = JsonValueKind.Array ->
                        branches.EnumerateArray()
                        |> Seq.map (clean withHints root refs (depth + 1))
                        |> List.ofSeq
                    | _ -> []

                let mutable nullable =
                    match JsonRead.tryProperty schema "nullable" with
                    | ValueSome value -> value.ValueKind = JsonValueKind.True
                    | ValueNone -> false

                // the type: a name, or a type array (its `null` makes the schema nullable)
                let types =
                    match JsonRead.tryProperty schema "type" with
                    | ValueSome t when t.ValueKind = JsonValueKind.String -> [ t.GetString() |> string ]
                    | ValueSome t when t.ValueKind = JsonValueKind.Array ->
                        t.EnumerateArray()
                        |> Seq.filter (fun e -> e.ValueKind = JsonValueKind.String)
                        |> Seq.map (fun e -> e.GetString() |> string)
                        |> List.ofSeq
                    | _ -> []

                if List.contains "null" types then
                    nullable <- true

                let types = types |> List.choose typeName |> List.distinct

                // anyOf / oneOf: `null` branches make it nullable; one branch left is the schema itself
                let branches =
                    [ "anyOf"; "oneOf" ]
                    |> List.collect (fun key ->
                        match JsonRead.tryProperty schema key with
                        | ValueSome list when list.ValueKind = JsonValueKind.Array ->
                            List.ofSeq (list.EnumerateArray())
                        | _ -> [])
                    |> List.filter (fun branch ->
                        if JsonRead.tryString branch "type" = Some "null" then
                            nullable <- true
                            false
                        else
                            true)
                    |> List.map (clean withHints root refs (depth + 1))

                let description =
                    JsonRead.tryString schema "description"
                    |> Option.orElse (JsonRead.tryString schema "title")

                match branches, types with
                | [ single ], [] ->
                    for KeyValue(key, value) in List.ofSeq single do
                        single.Remove key |> ignore
                        result[key] <- value
                | [], _ -> ()
                | many, _ -> result["anyOf"] <- arrayOf (many |> List.map (fun b -> b :> JsonNode))

                match types with
                | [ single ] -> result["type"] <- str single
                | [] -> ()
                | many when not (result.ContainsKey "anyOf") ->
                    result["anyOf"] <-
                        arrayOf (
                            many
                            |> List.map (fun t ->
                                let branch = JsonObject()
                                branch["type"] <- str t
                                branch :> JsonNode)
                        )
                | _ -> ()

                // const and enum: Gemini takes string enums only
                let enumValues =
                    match JsonRead.tryProperty schema "const", JsonRead.tryProperty schema "enum" with
                    | ValueSome value, _ -> Some [ value ]
                    | _, ValueSome values when values.ValueKind = JsonValueKind.Array ->
                        Some(List.ofSeq (values.EnumerateArray()))
                    | _ -> None

                match enumValues with
                | Some values when
                    not values.IsEmpty
                    && values |> List.forall (fun v -> v.ValueKind = JsonValueKind.String)
                    ->
                    result["type"] <- str ("STRING")
                    result["enum"] <- arrayOf (values |> List.map (fun v -> str (scalarText v)))
                | Some values when not values.IsEmpty ->
                    hints.Add(
                        "one of: "
                        + (values |> List.map (fun v -> v.GetRawText()) |> String.concat ", ")
                    )
                | _ -> ()

                // properties and required (only names that exist)
                let properties =
                    match JsonRead.tryProperty schema "properties" with
                    | ValueSome props when props.ValueKind = JsonValueKind.Object ->
                        props.EnumerateObject()
                        |> Seq.map (fun p -> p.Name, clean withHints root refs (depth + 1) p.Value)
                        |> List.ofSeq
                    | _ -> []

                let mergedProperties =
                    merged
                    |> List.collect (fun m ->
                        match m["properties"] with
                        | :? JsonObject as props -> [
                            for KeyValue(name, value) in List.ofSeq props do
                                props.Remove name |> ignore

                                match value with
                                | :? JsonObject as value -> name, value
                                | _ -> ()
                          ]
                        | _ -> [])

                let allProperties = (properties @ mergedProperties) |> List.distinctBy fst

                let required =
                    let own =
                        match JsonRead.tryProperty schema "required" with
                        | ValueSome names when names.ValueKind = JsonValueKind.Array ->
                            names.EnumerateArray()
                            |> Seq.filter (fun n -> n.ValueKind = JsonValueKind.String)
                            |> Seq.map (fun n -> n.GetString() |> string)
                            |> List.ofSeq
                        | _ -> []

                    let fromMerged =
                        merged
                        |> List.collect (fun m ->
                            match m["required"] with
                            | :? JsonArray as names ->
                                names
                                |> Seq.choose (fun n ->
                                    match n with
                                    | null -> None
                                    | n -> Some(n.GetValue<string>()))
                                |> List.ofSeq
                            | _ -> [])

                    (own @ fromMerged)
                    |> List.distinct
                    |> List.filter (fun name -> allProperties |> List.exists (fun (p, _) -> p = name))

                if not allProperties.IsEmpty then
                    let props = JsonObject()

                    for name, value in allProperties do
                        props[name] <- value

                    result["properties"] <- props

                    if not (result.ContainsKey "type") && not (result.ContainsKey "anyOf") then
                        result["type"] <- str ("OBJECT")

                if not required.IsEmpty then
                    result["required"] <- arrayOf (required |> List.map str)

                if not (result.ContainsKey "type") && not (result.ContainsKey "anyOf") then
                    match merged |> List.tryPick (fun m -> m["type"] |> Option.ofObj) with
                    | Some t -> result["type"] <- str (t.GetValue<string>())
                    | None -> ()

                // items: one schema (a tuple's first); an array without items gets a free-form one
                match JsonRead.tryProperty schema "items" with
                | ValueSome items when items.ValueKind = JsonValueKind.Object ->
                    result["items"] <- clean withHints root refs (depth + 1) items
                | ValueSome items when items.ValueKind = JsonValueKind.Array && items.GetArrayLength() > 0 ->
                    result["items"] <- clean withHints root refs (depth + 1) items[0]
                | _ ->
                    match JsonRead.tryProperty schema "prefixItems" with
                    | ValueSome items when items.ValueKind = JsonValueKind.Array && items.GetArrayLength() > 0 ->
                        result["items"] <- clean withHints root refs (depth + 1) items[0]
                    | _ -> ()

                if result.ContainsKey "items" && not (result.ContainsKey "type") then
                    result["type"] <- str ("ARRAY")

                let isType (name: string) =
                    match result["type"] with
                    | null -> false
                    | t -> t.GetValue<string>() = name

                if isType "ARRAY" && not (result.ContainsKey "items") then
                    result["items"] <- JsonObject()

                if not (isType "ARRAY") then
                    result.Remove "items" |> ignore

                if not (isType "OBJECT") then
                    result.Remove "properties" |> ignore
                    result.Remove "required" |> ignore

                // bounds Gemini takes, and hints for those it does not
                let copy (key: string) (read: JsonElement -> JsonNode option) =
                    match JsonRead.tryProperty schema key with
                    | ValueSome value ->
                        match read value with
                        | Some node -> result[key] <- node
                        | None -> ()
                    | ValueNone -> ()

                if isType "NUMBER" || isType "INTEGER" then
                    copy "minimum" number
                    copy "maximum" number

                    for key, word in [ "exclusiveMinimum", "greater than"; "exclusiveMaximum", "less than" ] do
                        match JsonRead.tryProperty schema key with
                        | ValueSome value when value.ValueKind = JsonValueKind.Number ->
                            hints.Add(word + " " + value.GetRawText())
                        | _ -> ()

                if isType "ARRAY" then
                    copy "minItems" count
                    copy "maxItems" count

                if isType "STRING" then
                    copy "minLength" count
                    copy "maxLength" count

                    match JsonRead.tryString schema "format" with
                    | Some("date-time" | "enum" as format) -> result["format"] <- str format
                    | Some format -> hints.Add("format: " + format)
                    | None -> ()

                    match JsonRead.tryString schema "pattern" with
                    | Some pattern -> hints.Add("pattern: " + pattern)
                    | None -> ()

                if nullable then
                    result["nullable"] <- JsonValue.Create true

                let text =
                    match description, (if withHints then List.ofSeq hints else []) with
                    | Some d, [] -> Some d
                    | Some d, hints -> Some(d + " (" + String.concat "; " hints + ")")
                    | None, [] -> None
                    | None, hints -> Some("(" + String.concat "; " hints + ")")

                match text with
                | Some text when text.Length > 0 -> result["description"] <- str text
                | _ -> ()

                result

    /// A tool's `input_schema` as Gemini `parameters`; None when it has no parameters (Gemini refuses an
    /// OBJECT without properties, so the declaration goes without `parameters`). `withHints`: what the cleaning
    /// loses is noted in the descriptions (`gemini_schema_clean.hints`).
    let parametersWith (withHints: bool) (schema: JsonElement) : JsonObject option =
        let cleaned = clean withHints schema 0 0 schema

        match cleaned["type"], cleaned["properties"] with
        | NonNull t, (:? JsonObject as props) when t.GetValue<string>() = "OBJECT" && props.Count > 0 -> Some cleaned
        | _ -> None

    /// `parametersWith` hints.
    let parameters (schema: JsonElement) : JsonObject option = parametersWith true schema

    /// A schema for `responseSchema` (structured output): any type, as cleaned (`withHints`: as `parametersWith`).
    let responseWith (withHints: bool) (schema: JsonElement) : JsonObject = clean withHints schema 0 0 schema

    /// `responseWith` hints.
    let response (schema: JsonElement) : JsonObject = responseWith true schema
