module CcRelay.Core.Properties.GeminiRequestProperties

open System
open System.Text.Json
open System.Text.Json.Nodes
open System.Text.RegularExpressions
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators

let private settings: GeminiSettings = {
    Endpoint = GeminiEndpoint.AiStudio
    Thinking = GeminiThinking.Auto
    OnDropped = DroppedPolicy.Report
}

let private str (value: string) : JsonNode = nonNull (JsonValue.Create value)

let private obj (pairs: (string * JsonNode) list) : JsonObject =
    let o = JsonObject()

    for key, value in pairs do
        o[key] <- value

    o

let private arr (nodes: JsonNode list) : JsonArray =
    let a = JsonArray()

    for n in nodes do
        a.Add n

    a

// ---------------------------
// JSON Schemas as tools bring them (Claude Code's own, MCP servers'), with every keyword Gemini refuses
// ---------------------------

let private scalarTypes = [ "string"; "number"; "integer"; "boolean"; "null" ]

let rec private schema (depth: int) : Gen<JsonNode> =
    let leaf =
        gen {
            let! t = Gen.elements scalarTypes

            let! extras =
                Gen.subListOf [
                    "format"
                    "pattern"
                    "exclusiveMinimum"
                    "minimum"
                    "title"
                    "default"
                    "examples"
                    "x-hint"
                    "deprecated"
                    "minLength"
                    "multipleOf"
                ]

            let node = obj [ "type", str t ]

            for extra in extras do
                match extra with
                | "format" -> node["format"] <- str "uri"
                | "pattern" -> node["pattern"] <- str "^[a-z]+$"
                | "exclusiveMinimum"
                | "minimum"
                | "minLength"
                | "multipleOf" -> node[extra] <- JsonValue.Create 1
                | "examples" -> node[extra] <- arr [ str "e" ]
                | "deprecated" -> node[extra] <- JsonValue.Create true
                | other -> node[other] <- str "t"

            return node :> JsonNode
        }

    let special =
        Gen.elements [
            (fun () -> obj [ "const", str "fixed" ] :> JsonNode)
            (fun () -> obj [ "enum", arr [ str "a"; str "b" ] ] :> JsonNode)
            (fun () ->
                obj [
                    "type", str "integer"
                    "enum", arr [ JsonValue.Create 1; JsonValue.Create 2 ]
                ]
                :> JsonNode)
            (fun () -> obj [ "type", arr [ str "string"; str "null" ] ] :> JsonNode)
            (fun () -> obj [ "type", arr [ str "string"; str "integer" ] ] :> JsonNode)
            (fun () -> obj [ "$ref", str "#/$defs/Thing" ] :> JsonNode)
            (fun () -> obj [ "$ref", str "#/definitions/Missing" ] :> JsonNode)
            (fun () -> obj [ "type", str "object"; "additionalProperties", JsonValue.Create true ] :> JsonNode)
            (fun () -> obj [ "type", str "object"; "propertyNames", obj [ "pattern", str "^x" ] ] :> JsonNode)
            (fun () -> obj [ "type", str "array" ] :> JsonNode)
            (fun () -> obj [] :> JsonNode)
            (fun () -> obj [ "not", obj [ "type", str "null" ] ] :> JsonNode)
        ]
        |> Gen.map (fun make -> make ())

    if depth <= 0 then
        Gen.oneof [ leaf; special ]
    else
        let child = schema (depth - 1)

        let objectSchema =
            gen {
                let! count = Gen.choose (0, 3)
                let! children = Gen.listOfLength count child
                let! required = Gen.subListOf [ "p0"; "p1"; "p2"; "ghost" ]
                let! extra = Gen.elements [ true; false ]
                let props = JsonObject()

                children |> List.iteri (fun i c -> props[$"p%d{i}"] <- c)

                let node =
                    obj [
                        "type", str "object"
                        "properties", props
                        "required", arr (required |> List.map str)
                    ]

                if extra then
                    node["additionalProperties"] <- JsonValue.Create false
                    node["patternProperties"] <- obj [ "^x-", obj [ "type", str "string" ] ]

                return node :> JsonNode
            }

        let arraySchema =
            gen {
                let! items = child
                let! tuple = Gen.elements [ true; false ]

                return
                    (if tuple then
                         obj [
                             "type", str "array"
                             "prefixItems", arr [ items ]
                             "uniqueItems", JsonValue.Create true
                         ]
                     else
                         obj [ "type", str "array"; "items", items; "minItems", JsonValue.Create 1 ])
                    :> JsonNode
            }

        let combined =
            gen {
                let! keyword = Gen.elements [ "anyOf"; "oneOf"; "allOf" ]
                let! a = child
                let! b = child
                let! withNull = Gen.elements [ true; false ]

                let branches =
                    if withNull then
                        [ a; b; obj [ "type", str "null" ] :> JsonNode ]
                    else
                        [ a; b ]

                return obj [ keyword, arr branches; "description", str "either" ] :> JsonNode
            }

        Gen.frequency [ 2, leaf; 1, special; 3, objectSchema; 2, arraySchema; 2, combined ]

/// A tool's `input_schema`: an object at the root, with `$defs` for the references in it.
let private inputSchema: Gen<JsonObject> =
    gen {
        let! count = Gen.choose (0, 4)
        let! children = Gen.listOfLength count (schema 3)
        let! thing = schema 2
        let props = JsonObject()
        children |> List.iteri (fun i c -> props[$"p%d{i}"] <- c)

        return
            obj [
                "$schema", str "http://json-schema.org/draft-07/schema#"
                "type", str "object"
                "properties", props
                "required", arr [ str "p0"; str "nope" ]
                "additionalProperties", JsonValue.Create false
                "$defs", obj [ "Thing", thing ]
            ]
    }

// ---------------------------
// What a strict Gemini server checks
// ---------------------------

/// What Gemini would refuse in a cleaned schema (`parameters`, `responseSchema`), else nothing.
let rec private schemaProblems (path: string) (node: JsonElement) : string list =
    if node.ValueKind <> JsonValueKind.Object then
        [ path + ": not an object" ]
    else
        let keys = node.EnumerateObject() |> Seq.map _.Name |> List.ofSeq

        let unknown =
            keys
            |> List.filter (fun k -> not (GeminiSchema.allowedKeys.Contains k))
            |> List.map (fun k -> $"%s{path}: Unknown name \"%s{k}\": Cannot find field.")

        let typeName =
            match node.TryGetProperty "type" with
            | true, t when t.ValueKind = JsonValueKind.String -> Some(string (t.GetString()))
            | true, _ -> Some "<not a string>"
            | _ -> None

        let typeProblems =
            match typeName with
            | Some t when not (GeminiSchema.typeNames.Contains t) -> [ $"%s{path}.type: invalid value %s{t}" ]
            | _ -> []

        let is t = typeName = Some t

        let enumProblems =
            match node.TryGetProperty "enum" with
            | true, values -> [
                if not (is "STRING") then
                    $"%s{path}.enum: only for STRING"
                for v in values.EnumerateArray() do
                    if v.ValueKind <> JsonValueKind.String then
                        $"%s{path}.enum: not a string"
              ]
            | _ -> []

        let properties =
            match node.TryGetProperty "properties" with
            | true, props -> props.EnumerateObject() |> Seq.map (fun p -> p.Name, p.Value) |> List.ofSeq
            | _ -> []

        let structure = [
            if (fst (node.TryGetProperty "properties")) && not (is "OBJECT") then
                $"%s{path}.properties: only for OBJECT"
            match node.TryGetProperty "required" with
            | true, names ->
                for n in names.EnumerateArray() do
                    let name = string (n.GetString())

                    if not (properties |> List.exists (fun (p, _) -> p = name)) then
                        $"%s{path}.required: property %s{name} is not defined"
            | _ -> ()
            if is "ARRAY" && not (fst (node.TryGetProperty "items")) then
                $"%s{path}.items: missing field"
            if (fst (node.TryGetProperty "items")) && not (is "ARRAY") then
                $"%s{path}.items: only for ARRAY"
            match node.TryGetProperty "format" with
            | true, f when not (is "STRING") || (f.GetString() <> "date-time" && f.GetString() <> "enum") ->
                $"%s{path}.format: only enum or date-time"
            | _ -> ()
            match node.TryGetProperty "nullable" with
            | true, n when n.ValueKind <> JsonValueKind.True && n.ValueKind <> JsonValueKind.False ->
                $"%s{path}.nullable: not a boolean"
            | _ -> ()
        ]

        let children = [
            for name, child in properties do
                yield! schemaProblems $"%s{path}.properties[%s{name}]" child
            match node.TryGetProperty "items" with
            | true, items -> yield! schemaProblems $"%s{path}.items" items
            | _ -> ()
            match node.TryGetProperty "anyOf" with
            | true, branches when branches.ValueKind = JsonValueKind.Array ->
                for i, branch in Seq.indexed (branches.EnumerateArray()) do
                    yield! schemaProblems $"%s{path}.anyOf[%d{i}]" branch
            | true, _ -> yield $"%s{path}.anyOf: not a list"
            | _ -> ()
        ]

        unknown @ typeProblems @ enumProblems @ structure @ children

let private functionNameRule = Regex("^[A-Za-z_][A-Za-z0-9_-]{0,62}$")

let private partKeys =
    set [
        "text"
        "thought"
        "thoughtSignature"
        "inlineData"
        "fileData"
        "functionCall"
        "functionResponse"
    ]

/// What a strict Gemini server refuses in a `generateContent` body: unknown fields, roles other than user
/// and model, empty contents or text, a function response whose name is not a call of the previous model
/// turn, function names Gemini refuses, schemas with keywords it refuses.
let private requestProblems (body: JsonElement) : string list = [
    for property in body.EnumerateObject() do
        if
            not (
                Set.contains
                    property.Name
                    (set [ "contents"; "systemInstruction"; "tools"; "toolConfig"; "generationConfig" ])
            )
        then
            $"Unknown name \"%s{property.Name}\": Cannot find field."

    let mutable calls: string list = []

    for i, content in Seq.indexed (body.GetProperty("contents").EnumerateArray()) do
        let role = string (content.GetProperty("role").GetString())

        if role <> "user" && role <> "model" then
            $"contents[%d{i}].role: %s{role}"

        let parts = List.ofSeq (content.GetProperty("parts").EnumerateArray())

        if parts.IsEmpty then
            $"contents[%d{i}].parts: must not be empty"

        let mutable answered = []

        for part in parts do
            for p in part.EnumerateObject() do
                if not (partKeys.Contains p.Name) then
                    $"contents[%d{i}].parts: Unknown name \"%s{p.Name}\""

            match part.TryGetProperty "text" with
            | true, t when t.GetString() = "" -> $"contents[%d{i}]: empty text"
            | _ -> ()

            match part.TryGetProperty "functionCall" with
            | true, call ->
                if role <> "model" then
                    $"contents[%d{i}]: a functionCall in a user turn"

                let name = string (call.GetProperty("name").GetString())

                if not (functionNameRule.IsMatch name) then
                    $"function name %s{name}"

                if call.GetProperty("args").ValueKind <> JsonValueKind.Object then
                    "functionCall.args: not an object"
            | _ -> ()

            match part.TryGetProperty "functionResponse" with
            | true, response ->
                let name = string (response.GetProperty("name").GetString())

                if not (List.contains name calls) then
                    $"functionResponse %s{name} answers no call of the previous model turn"

                answered <- name :: answered
                let payload = response.GetProperty "response"

                if payload.ValueKind <> JsonValueKind.Object then
                    "functionResponse.response: not an object"
            | _ -> ()

        calls <-
            if role = "model" then
                parts
                |> List.choose (fun p ->
                    match p.TryGetProperty "functionCall" with
                    | true, call -> Some(string (call.GetProperty("name").GetString()))
                    | _ -> None)
            else
                []

    match body.TryGetProperty "tools" with
    | true, tools ->
        for tool in tools.EnumerateArray() do
            match tool.TryGetProperty "functionDeclarations" with
            | true, declarations ->
                for declaration in declarations.EnumerateArray() do
                    let name = string (declaration.GetProperty("name").GetString())

                    if not (functionNameRule.IsMatch name) then
                        $"declaration name %s{name}"

                    match declaration.TryGetProperty "parameters" with
                    | true, parameters ->
                        if parameters.GetProperty("type").GetString() <> "OBJECT" then
                            "parameters: schema should be of type OBJECT"

                        match parameters.TryGetProperty "properties" with
                        | true, props when props.EnumerateObject() |> Seq.isEmpty |> not -> ()
                        | _ -> "parameters.properties: should be non-empty for OBJECT type"

                        yield! schemaProblems $"%s{name}.parameters" parameters
                    | _ -> ()
            | _ -> ()
    | _ -> ()
]

// ---------------------------
// Conversations
// ---------------------------

let private names = [
    "Bash"
    "Read"
    "mcp__github__create_or_update_file_with_a_really_long_name_that_goes_past_sixty_four"
    "has space"
    "9starts-with-digit"
]

let private textBlock (text: string) : JsonNode =
    obj [ "type", str "text"; "text", str text ] :> JsonNode

/// A Claude Code-like conversation: tools with wild schemas, assistant turns with thinking (Gemini's carriers,
/// another family's), text, parallel tool calls (some with ids the relay minted), each answered in the next
/// user turn (results first or after text, errors, images).
let private conversation: Gen<JsonObject> =
    gen {
        let! turns = Gen.choose (0, 3)
        let messages = JsonArray()
        let used = Collections.Generic.HashSet<string>()
        messages.Add(obj [ "role", str "user"; "content", str "start" ])

        for turn in 1..turns do
            let! calls = Gen.choose (0, 3)
            let! withText = Gen.elements [ true; false ]
            let! text = jsonText

            let! thinking =
                Gen.elements [ None; Some(GeminiWire.SignaturePrefix + "SIG"); Some "EqQBAnthropic" ]

            let! thinkingText = Gen.elements [ ""; "thought" ]
            let content = JsonArray()

            match thinking with
            | Some signature ->
                content.Add(
                    obj [
                        "type", str "thinking"
                        "thinking", str thinkingText
                        "signature", str signature
                    ]
                )
            | None -> ()

            if withText || calls = 0 then
                content.Add(textBlock text)

            let! minted = Gen.elements [ true; false ]
            let ids = ResizeArray<string>()

            for k in 1..calls do
                let! name = Gen.elements names
                used.Add name |> ignore

                let id =
                    if minted then
                        GeminiWire.toolId (GeminiWire.functionName name) None "ab12" k
                    else
                        $"toolu_%d{turn}_%d{k}"

                ids.Add id

                content.Add(
                    obj [
                        "type", str "tool_use"
                        "id", str id
                        "name", str name
                        "input", obj [ "arg", str text ]
                    ]
                )

            messages.Add(obj [ "role", str "assistant"; "content", content ])
            let reply = JsonArray()
            let! textFirst = Gen.elements [ true; false ]

            if textFirst then
                reply.Add(textBlock "before")

            for id in ids do
                let! isError = Gen.elements [ true; false ]
                let! withImage = Gen.elements [ true; false ]

                let result: JsonNode =
                    if withImage then
                        arr [
                            textBlock "out"
                            obj [
                                "type", str "image"
                                "source",
                                obj [ "type", str "base64"; "media_type", str "image/png"; "data", str "AAAA" ]
                            ]
                        ]
                    else
                        str "out"

                reply.Add(
                    obj [
                        "type", str "tool_result"
                        "tool_use_id", str id
                        "is_error", JsonValue.Create isError
                        "content", result
                    ]
                )

            if not textFirst || ids.Count = 0 then
                reply.Add(textBlock "after")

            messages.Add(obj [ "role", str "user"; "content", reply ])

        let tools = JsonArray()

        for name in used do
            let! schema = inputSchema
            tools.Add(obj [ "name", str name; "description", str "d"; "input_schema", schema ])

        let! thinking = Gen.elements [ "adaptive"; "enabled"; "disabled" ]

        return
            obj [
                "model", str "claude-sonnet-4-6"
                "max_tokens", JsonValue.Create 1000
                "stream", JsonValue.Create true
                "system", arr [ textBlock "attribution"; textBlock "you are helpful" ]
                "thinking", obj [ "type", str thinking; "budget_tokens", JsonValue.Create 2048 ]
                "messages", messages
                "tools", tools
                "tool_choice", obj [ "type", str "auto" ]
                "metadata", obj [ "user_id", str "u" ]
            ]
    }

[<Fact>]
let ``any JSON Schema a tool brings is cleaned to one a strict Gemini accepts`` () =
    Check.property (
        Prop.forAll (Check.arb inputSchema) (fun schema ->
            let element = JsonDocument.Parse(schema.ToJsonString()).RootElement

            match GeminiSchema.parameters element with
            | Some cleaned ->
                let problems =
                    schemaProblems "parameters" (JsonDocument.Parse(cleaned.ToJsonString()).RootElement)

                Assert.True(problems.IsEmpty, String.concat "\n" problems + "\n" + cleaned.ToJsonString())
            // no parameters only when the tool has none
            | None -> Assert.Equal(0, (nonNull schema["properties"]).AsObject().Count))
    )

[<Fact>]
let ``any Claude Code-like conversation translates to a request a strict Gemini server accepts`` () =
    Check.property (
        Prop.forAll (Check.arb conversation) (fun request ->
            let bytes = Text.Encoding.UTF8.GetBytes(request.ToJsonString())

            for model in [ "gemini-2.5-pro"; "gemini-3-pro-preview" ] do
                for echo in [ true; false ] do
                    match
                        GeminiRequest.translate settings model GeminiRequestKind.Generate echo (ReadOnlySpan bytes)
                    with
                    | Ok translated ->
                        let body = JsonDocument.Parse(translated.Body: byte array).RootElement
                        let problems = requestProblems body
                        Assert.True(problems.IsEmpty, String.concat "\n" problems + "\n" + body.GetRawText())
                    | Error e -> failwith e)
    )

[<Fact>]
let ``a tool-use id round-trips to its Gemini function name, Gemini's own id and its position`` () =
    let cases =
        gen {
            let! name = jsonText |> Gen.map (fun s -> "f" + s)
            let! upstream = Gen.oneof [ Gen.constant None; jsonText |> Gen.map Some ]
            let! nonce = Gen.elements [ "0"; "ab12"; "ffffffffffff" ]
            let! position = Gen.choose (0, 10_000)
            return name, upstream, nonce, position
        }

    Check.property (
        Prop.forAll (Check.arb cases) (fun (name, upstream, nonce, position) ->
            let id = GeminiWire.toolId name upstream nonce position
            Assert.Matches("^[a-zA-Z0-9_-]+$", id)
            let upstream = upstream |> Option.filter (fun u -> u.Length > 0)
            Assert.Equal(Some(name, upstream, position), GeminiWire.tryParseToolId id))
    )

/// Any translation fix-ups.
let private fixups: Gen<TranslationFixups> =
    gen {
        let! echo = Gen.elements [ true; false ]
        let! fill = Gen.elements [ true; false ]
        let! mode = Gen.elements [ GeminiSchemaMode.OpenApi; GeminiSchemaMode.JsonSchema ]
        let! hints = Gen.elements [ true; false ]

        return {
            EchoReasoning = echo
            FillMissingReasoning = fill
            GeminiSchema = mode
            SchemaHints = hints
        }
    }

/// Every part's thought signature in a translated body.
let private signatures (body: JsonElement) : string list = [
    for content in body.GetProperty("contents").EnumerateArray() do
        for part in content.GetProperty("parts").EnumerateArray() do
            match part.TryGetProperty "thoughtSignature" with
            | true, s -> string (s.GetString())
            | _ -> ()
]

[<Fact>]
let ``translation fix-ups: the defaults are the translation as it was; any other setting stays within what it names``
    ()
    =
    Check.property (
        Prop.forAll (Check.arb (Gen.zip conversation fixups)) (fun (request, fixups) ->
            let bytes = Text.Encoding.UTF8.GetBytes(request.ToJsonString())

            let translate fixups =
                match
                    GeminiRequest.translateWith
                        fixups
                        settings
                        "gemini-3-pro-preview"
                        GeminiRequestKind.Generate
                        (ReadOnlySpan bytes)
                with
                | Ok translated -> JsonDocument.Parse(translated.Body: byte array).RootElement
                | Error e -> failwith e

            let plain =
                match
                    GeminiRequest.translate
                        settings
                        "gemini-3-pro-preview"
                        GeminiRequestKind.Generate
                        true
                        (ReadOnlySpan bytes)
                with
                | Ok translated -> translated.Body
                | Error e -> failwith e

            let defaults = translate TranslationFixups.defaults
            Assert.Equal(Text.Encoding.UTF8.GetString plain, defaults.GetRawText())

            let tuned = translate fixups

            // the schema mode touches the tools only; the echo settings the contents only
            if fixups.GeminiSchema = GeminiSchemaMode.OpenApi then
                let problems = requestProblems tuned
                Assert.True(problems.IsEmpty, String.concat "\n" problems + "\n" + tuned.GetRawText())
            else
                let tools = request["tools"] |> nonNull

                let declarations =
                    match tuned.TryGetProperty "tools" with
                    | true, t -> t[0].GetProperty("functionDeclarations").EnumerateArray() |> List.ofSeq
                    | _ -> []

                Assert.Equal(tools.AsArray().Count, declarations.Length)

                for tool, declaration in Seq.zip (tools.AsArray()) declarations do
                    Assert.False(declaration.TryGetProperty "parameters" |> fst)

                    // the schema as the client wrote it (the same JSON; the writer may escape differently)
                    Assert.True(
                        JsonNode.DeepEquals(
                            (nonNull tool)["input_schema"],
                            JsonNode.Parse(declaration.GetProperty("parametersJsonSchema").GetRawText())
                        )
                    )

            Assert.Equal(
                (translate {
                    fixups with
                        GeminiSchema = GeminiSchemaMode.OpenApi
                        SchemaHints = true
                })
                    .GetProperty("contents")
                    .GetRawText(),
                tuned.GetProperty("contents").GetRawText()
            )

            let own = signatures tuned |> List.filter (fun s -> s <> GeminiWire.SkipSignature)
            let skips = signatures tuned |> List.filter (fun s -> s = GeminiWire.SkipSignature)

            if not fixups.EchoReasoning then
                Assert.Empty own

            if not fixups.FillMissingReasoning then
                Assert.Empty skips

            Assert.Equal<string list>(
                signatures (
                    translate {
                        TranslationFixups.defaults with
                            EchoReasoning = fixups.EchoReasoning
                            FillMissingReasoning = true
                    }
                )
                |> List.filter (fun s -> s <> GeminiWire.SkipSignature),
                own
            ))
    )
