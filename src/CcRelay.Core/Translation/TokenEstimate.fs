namespace CcRelay.Core

open System
open System.Text.Json

/// A tiktoken encoding a translated request's tokens are counted in.
[<RequireQualifiedAccess>]
type TokenEncoding =
    /// `o200k_base`: GPT-4o, GPT-4.1, GPT-5, the o-series, and the default for other targets.
    | O200k
    /// `cl100k_base`: GPT-4 and GPT-3.5.
    | Cl100k

/// The input tokens of a translated request (`count_tokens` for a `type: openai` provider), counted the way
/// OpenAI documents its own accounting ("How to count tokens with tiktoken", OpenAI cookbook): 3 tokens per
/// message plus the tokens of each of its string fields (a `name` one more), 3 to prime the reply, and for
/// tools 7 per function (10 in cl100k) plus the tokens of `name:description`, 3 for the properties, 3 and
/// `name:type:description` per property, enum items 3 each (-3 for the list), 12 at the end. The text is counted
/// by `count` (the host's tokenizer: Core does no I/O and loads no data). Images count as
/// `ChatRequest.ImageTokens`; a reasoning item given back counts nothing (its content is encrypted). Other
/// targets' tokenizers differ: for them this is an approximation.
[<RequireQualifiedAccess>]
module TokenEstimate =

    let private documentOptions = JsonDocumentOptions(MaxDepth = 512)

    /// The encoding of a model: cl100k for GPT-4 (not 4o/4.1) and GPT-3.5, o200k for everything else.
    let encodingFor (model: string) : TokenEncoding =
        let model = model.ToLowerInvariant()

        if
            model.StartsWith("gpt-3.5", StringComparison.Ordinal)
            || (model.StartsWith("gpt-4", StringComparison.Ordinal)
                && not (model.StartsWith("gpt-4o", StringComparison.Ordinal))
                && not (model.StartsWith("gpt-4.", StringComparison.Ordinal)))
        then
            TokenEncoding.Cl100k
        else
            TokenEncoding.O200k

    let private text (count: string -> int) (element: JsonElement) : int =
        match element.ValueKind with
        | JsonValueKind.String -> count (element.GetString() |> string)
        | JsonValueKind.Undefined
        | JsonValueKind.Null -> 0
        | _ -> count (element.GetRawText())

    /// A content field: a string, or an array of parts (text counted, an image or file a fixed cost).
    let private content (count: string -> int) (element: JsonElement) : int =
        match element.ValueKind with
        | JsonValueKind.Array ->
            element.EnumerateArray()
            |> Seq.sumBy (fun part ->
                match JsonRead.tryString part "type" with
                | Some("text" | "input_text" | "output_text") ->
                    JsonRead.tryString part "text" |> Option.map count |> Option.defaultValue 0
                | Some("image_url" | "input_image" | "input_file" | "file") -> ChatRequest.ImageTokens
                | _ -> text count part)
        | _ -> text count element

    /// Tools in OpenAI's accounting; `flat`: Responses' `{type, name, description, parameters}`, else Chat's
    /// `{type, function: {…}}`.
    let private tools (count: string -> int) (encoding: TokenEncoding) (flat: bool) (root: JsonElement) : int =
        let trimmed (value: string) =
            if value.EndsWith '.' then
                value.Substring(0, value.Length - 1)
            else
                value

        match JsonRead.tryProperty root "tools" with
        | ValueSome tools when tools.ValueKind = JsonValueKind.Array && tools.GetArrayLength() > 0 ->
            let functionInit =
                match encoding with
                | TokenEncoding.O200k -> 7
                | TokenEncoding.Cl100k -> 10

            let each (tool: JsonElement) =
                let definition =
                    if flat then
                        ValueSome tool
                    else
                        JsonRead.tryProperty tool "function"

                match definition with
                | ValueNone -> text count tool
                | ValueSome f ->
                    let name = JsonRead.tryString f "name" |> Option.defaultValue ""
                    let description = JsonRead.tryString f "description" |> Option.defaultValue ""

                    let properties =
                        match
                            JsonRead.tryProperty f "parameters"
                            |> ValueOption.bind (fun p -> JsonRead.tryProperty p "properties")
                        with
                        | ValueSome properties when properties.ValueKind = JsonValueKind.Object ->
                            properties.EnumerateObject() |> List.ofSeq
                        | _ -> []

                    let property (p: JsonProperty) =
                        let schema = p.Value
                        let kind = JsonRead.tryString schema "type" |> Option.defaultValue ""
                        let description = JsonRead.tryString schema "description" |> Option.defaultValue ""

                        let enum =
                            match JsonRead.tryProperty schema "enum" with
                            | ValueSome items when items.ValueKind = JsonValueKind.Array ->
                                -3 + (items.EnumerateArray() |> Seq.sumBy (fun item -> 3 + text count item))
                            | _ -> 0

                        // nested schemas are outside the documented formula: their JSON is counted as it is
                        let nested =
                            [ "properties"; "items"; "anyOf"; "oneOf" ]
                            |> List.sumBy (fun key ->
                                match JsonRead.tryProperty schema key with
                                | ValueSome inner -> count (inner.GetRawText())
                                | ValueNone -> 0)

                        3 + enum + count $"%s{p.Name}:%s{kind}:%s{trimmed description}" + nested

                    functionInit
                    + count (name + ":" + trimmed description)
                    + (if properties.IsEmpty then
                           0
                       else
                           3 + List.sumBy property properties)

            (tools.EnumerateArray() |> Seq.sumBy each) + 12
        | _ -> 0

    /// A Chat Completions request's input tokens.
    let ofChat (count: string -> int) (encoding: TokenEncoding) (root: JsonElement) : int =
        let message (m: JsonElement) =
            3
            + (m.EnumerateObject()
               |> Seq.sumBy (fun field ->
                   match field.Name with
                   | "content" -> content count field.Value
                   | "name" -> text count field.Value + 1
                   | "tool_calls" when field.Value.ValueKind = JsonValueKind.Array ->
                       field.Value.EnumerateArray()
                       |> Seq.sumBy (fun call ->
                           match JsonRead.tryProperty call "function" with
                           | ValueSome f ->
                               3
                               + (JsonRead.tryString f "name" |> Option.map count |> Option.defaultValue 0)
                               + (JsonRead.tryString f "arguments" |> Option.map count |> Option.defaultValue 0)
                           | ValueNone -> 0)
                   | _ -> text count field.Value))

        let messages =
            match JsonRead.tryProperty root "messages" with
            | ValueSome messages when messages.ValueKind = JsonValueKind.Array ->
                messages.EnumerateArray() |> Seq.sumBy message
            | _ -> 0

        messages + 3 + tools count encoding false root

    /// A Responses request's input tokens: `instructions` as a developer message, then each input item.
    let ofResponses (count: string -> int) (encoding: TokenEncoding) (root: JsonElement) : int =
        let instructions =
            match JsonRead.tryString root "instructions" with
            | Some text -> 3 + count "developer" + count text
            | None -> 0

        let item (i: JsonElement) =
            match JsonRead.tryString i "type" with
            | Some "reasoning" -> 0
            | Some "function_call" ->
                3
                + (JsonRead.tryString i "name" |> Option.map count |> Option.defaultValue 0)
                + (JsonRead.tryString i "arguments" |> Option.map count |> Option.defaultValue 0)
            | Some "function_call_output" ->
                3
                + (match JsonRead.tryProperty i "output" with
                   | ValueSome output -> content count output
                   | ValueNone -> 0)
            | _ ->
                3
                + (JsonRead.tryString i "role" |> Option.map count |> Option.defaultValue 0)
                + (match JsonRead.tryProperty i "content" with
                   | ValueSome c -> content count c
                   | ValueNone -> 0)

        let input =
            match JsonRead.tryProperty root "input" with
            | ValueSome input when input.ValueKind = JsonValueKind.Array -> input.EnumerateArray() |> Seq.sumBy item
            | _ -> 0

        instructions + input + 3 + tools count encoding true root

    /// The input tokens of a translated request body (`responses`: the Responses shape, else Chat Completions),
    /// with `count` counting text in the model's encoding; None when the body is not a JSON object.
    let ofBody (count: Func<TokenEncoding, string, int>) (responses: bool) (body: ReadOnlySpan<byte>) : int option =
        try
            use document = JsonDocument.Parse(ReadOnlyMemory(body.ToArray()), documentOptions)
            let root = document.RootElement

            if root.ValueKind <> JsonValueKind.Object then
                None
            else
                let encoding =
                    encodingFor (JsonRead.tryString root "model" |> Option.defaultValue "")

                let counter (value: string) =
                    if value.Length = 0 then
                        0
                    else
                        count.Invoke(encoding, value)

                Some(
                    if responses then
                        ofResponses counter encoding root
                    else
                        ofChat counter encoding root
                )
        with :? JsonException ->
            None
