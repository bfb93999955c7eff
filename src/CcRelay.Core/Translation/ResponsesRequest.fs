namespace CcRelay.Core

open System
open System.Buffers
open System.Text
open System.Text.Encodings.Web
open System.Text.Json

/// An OpenAI Responses reasoning item carried through Claude Code inside a thinking block's signature
/// (protocols.md §6.5.6): `ccrelay-rs1:` + base64url of `{"id","ec","up"}` — the item's `rs_…` id, its
/// `encrypted_content`, and the family of the provider that minted it (only that family can decrypt it).
[<RequireQualifiedAccess>]
module ReasoningEnvelope =

    /// The signature prefix that marks a relay-made envelope.
    [<Literal>]
    let Prefix = "ccrelay-rs1:"

    /// The envelope of reasoning item `id` with `encryptedContent`, minted by the provider family `minter`.
    let mint (minter: string) (id: string) (encryptedContent: string) : string =
        let buffer = ArrayBufferWriter<byte>(encryptedContent.Length + id.Length + 64)

        do
            use writer = new Utf8JsonWriter(buffer)
            writer.WriteStartObject()
            writer.WriteString("id", id)
            writer.WriteString("ec", encryptedContent)
            writer.WriteString("up", minter)
            writer.WriteEndObject()

        Prefix + System.Buffers.Text.Base64Url.EncodeToString buffer.WrittenSpan

    /// `(id, encryptedContent, minter)` of an envelope; None for any other signature (Anthropic's, a Chat
    /// Completions target's, a damaged one).
    let tryRead (signature: string) : (string * string * string) option =
        if not (signature.StartsWith(Prefix, StringComparison.Ordinal)) then
            None
        else
            let decoded =
                try
                    Some(System.Buffers.Text.Base64Url.DecodeFromChars(signature.AsSpan(Prefix.Length)))
                with :? FormatException ->
                    None

            match decoded with
            | None -> None
            | Some bytes ->
                try
                    use document = JsonDocument.Parse(ReadOnlyMemory bytes)
                    let root = document.RootElement

                    match JsonRead.tryString root "id", JsonRead.tryString root "ec", JsonRead.tryString root "up" with
                    | Some id, Some ec, Some up when id.Length > 0 && ec.Length > 0 -> Some(id, ec, up)
                    | _ -> None
                with :? JsonException ->
                    None


/// Anthropic Messages request → OpenAI Responses request (protocols.md §6.5.2). The relay is stateless towards
/// the upstream: the whole history goes every time, `store: false`, and the encrypted reasoning is asked for
/// (`include: ["reasoning.encrypted_content"]`) so that it can be given back on the next turn.
[<RequireQualifiedAccess>]
module ResponsesRequest =

    /// The smallest `max_output_tokens` OpenAI accepts (Claude Code's probes send `max_tokens: 1`).
    [<Literal>]
    let MinOutputTokens = 16

    /// The request fields the Responses API has no equivalent for, reported by their own names when present.
    let private unsupportedFields = [
        "context_management"
        "container"
        "mcp_servers"
        "service_tier"
        "inference_geo"
        "top_k"
        "stop_sequences"
    ]

    /// Claude Code's attribution block in `system` (`x-anthropic-billing-header: …`): left out so that the
    /// instructions stay the same from turn to turn (OpenAI caches by prefix).
    let private isAttribution (text: string) : bool =
        text.StartsWith("x-anthropic-billing-header:", StringComparison.Ordinal)

    type private Context = {
        /// The family of the provider the request goes to: only its own reasoning is given back.
        Family: string
        EchoReasoning: bool
        Notes: RequestNotes
    }

    let private text (block: JsonElement) : string =
        JsonRead.tryString block "text" |> Option.defaultValue ""

    /// `system` as `instructions`: a string, or its text blocks joined by `\n` (the attribution block left out).
    let private instructions (context: Context) (system: JsonElement) : string =
        match system.ValueKind with
        | JsonValueKind.String -> system.GetString() |> string
        | JsonValueKind.Array ->
            system.EnumerateArray()
            |> Seq.choose (fun block ->
                RequestFrame.noteCacheControl context.Notes block

                match JsonRead.tryString block "type" with
                | Some "text" when not (isAttribution (text block)) -> Some(text block)
                | _ -> None)
            |> String.concat "\n"
        | _ -> ""

    /// An input part of a user message or a tool output: `input_text`, `input_image`, `input_file`; false when
    /// the block is none of those (reported).
    let private writePart (context: Context) (writer: Utf8JsonWriter) (block: JsonElement) : unit =
        RequestFrame.noteCacheControl context.Notes block
        let source = JsonRead.tryProperty block "source"

        let sourceField name =
            source
            |> ValueOption.bind (fun s -> JsonRead.tryString s name |> ValueOption.ofOption)

        let inputText (value: string) =
            writer.WriteStartObject()
            writer.WriteString("type", "input_text")
            writer.WriteString("text", value)
            writer.WriteEndObject()

        match JsonRead.tryString block "type" with
        | Some "text" -> inputText (text block)
        | Some "image" ->
            let url =
                match sourceField "type" with
                | ValueSome "base64" ->
                    let data = sourceField "data" |> ValueOption.defaultValue ""
                    context.Notes.ImageBytes <- context.Notes.ImageBytes + int64 data.Length

                    ValueSome(
                        "data:"
                        + (sourceField "media_type" |> ValueOption.defaultValue "image/png")
                        + ";base64,"
                        + data
                    )
                | ValueSome "url" -> sourceField "url"
                | _ -> ValueNone

            match url with
            | ValueSome url ->
                context.Notes.Images <- context.Notes.Images + 1
                writer.WriteStartObject()
                writer.WriteString("type", "input_image")
                writer.WriteString("image_url", url)
                writer.WriteEndObject()
            | ValueNone -> RequestFrame.drop context.Notes "image_source"
        | Some "document" ->
            match sourceField "type" with
            | ValueSome "text" -> inputText (sourceField "data" |> ValueOption.defaultValue "")
            | ValueSome "base64" ->
                let data = sourceField "data" |> ValueOption.defaultValue ""
                context.Notes.ImageBytes <- context.Notes.ImageBytes + int64 data.Length
                context.Notes.Images <- context.Notes.Images + 1
                writer.WriteStartObject()
                writer.WriteString("type", "input_file")

                writer.WriteString("filename", JsonRead.tryString block "title" |> Option.defaultValue "document.pdf")

                writer.WriteString(
                    "file_data",
                    "data:"
                    + (sourceField "media_type" |> ValueOption.defaultValue "application/pdf")
                    + ";base64,"
                    + data
                )

                writer.WriteEndObject()
            | ValueSome "url" ->
                context.Notes.Images <- context.Notes.Images + 1
                writer.WriteStartObject()
                writer.WriteString("type", "input_file")
                writer.WriteString("file_url", sourceField "url" |> ValueOption.defaultValue "")
                writer.WriteEndObject()
            | _ -> RequestFrame.drop context.Notes "document"
        | Some other -> RequestFrame.drop context.Notes other
        | None -> ()

    let private isPart (block: JsonElement) : bool =
        match JsonRead.tryString block "type" with
        | Some("text" | "image" | "document") -> true
        | _ -> false

    /// A mid-conversation system message (Claude Code's `mid-conversation-system` beta: `{role: "system"}` among the
    /// messages), in place, as a `developer` message item (what OpenAI's reasoning models take for system text);
    /// its text blocks as `input_text` parts, anything else reported as for a user turn.
    let private systemTurn (context: Context) (writer: Utf8JsonWriter) (content: JsonElement) : unit =
        let blocks =
            match content.ValueKind with
            | JsonValueKind.Array -> content.EnumerateArray() |> List.ofSeq
            | _ -> []

        if content.ValueKind = JsonValueKind.String || not blocks.IsEmpty then
            writer.WriteStartObject()
            writer.WriteString("type", "message")
            writer.WriteString("role", "developer")

            if content.ValueKind = JsonValueKind.String then
                writer.WriteString("content", content.GetString())
            else
                writer.WriteStartArray "content"

                for block in blocks do
                    writePart context writer block

                writer.WriteEndArray()

            writer.WriteEndObject()

    /// A user turn: a `function_call_output` per tool result first (in order), then a user message with the
    /// rest of the turn.
    let private userTurn (context: Context) (writer: Utf8JsonWriter) (content: JsonElement) : unit =
        let message (blocks: JsonElement list) =
            if not blocks.IsEmpty then
                writer.WriteStartObject()
                writer.WriteString("type", "message")
                writer.WriteString("role", "user")
                writer.WriteStartArray "content"

                for block in blocks do
                    writePart context writer block

                writer.WriteEndArray()
                writer.WriteEndObject()

        match content.ValueKind with
        | JsonValueKind.String ->
            writer.WriteStartObject()
            writer.WriteString("type", "message")
            writer.WriteString("role", "user")
            writer.WriteString("content", content.GetString())
            writer.WriteEndObject()
        | JsonValueKind.Array ->
            let blocks = content.EnumerateArray() |> List.ofSeq

            for block in blocks do
                if JsonRead.tryString block "type" = Some "tool_result" then
                    RequestFrame.noteCacheControl context.Notes block

                    let isError =
                        match JsonRead.tryProperty block "is_error" with
                        | ValueSome value -> value.ValueKind = JsonValueKind.True
                        | ValueNone -> false

                    // NOTE: a function output has no error flag; the prefix is how the model learns the call failed
                    let prefix = if isError then "Error: " else ""
                    writer.WriteStartObject()
                    writer.WriteString("type", "function_call_output")
                    writer.WriteString("call_id", JsonRead.tryString block "tool_use_id" |> Option.defaultValue "")

                    match JsonRead.tryProperty block "content" with
                    | ValueSome result when result.ValueKind = JsonValueKind.Array ->
                        let parts = result.EnumerateArray() |> List.ofSeq

                        if parts |> List.forall (fun p -> JsonRead.tryString p "type" = Some "text") then
                            writer.WriteString("output", prefix + (parts |> List.map text |> String.concat "\n"))
                        else
                            writer.WriteStartArray "output"

                            if isError then
                                writer.WriteStartObject()
                                writer.WriteString("type", "input_text")
                                writer.WriteString("text", prefix)
                                writer.WriteEndObject()

                            for part in parts do
                                writePart context writer part

                            writer.WriteEndArray()
                    | ValueSome result when result.ValueKind = JsonValueKind.String ->
                        writer.WriteString("output", prefix + result.GetString())
                    | _ -> writer.WriteString("output", prefix)

                    writer.WriteEndObject()

            blocks
            |> List.filter (fun block ->
                match JsonRead.tryString block "type" with
                | Some "tool_result"
                | Some "thinking"
                | Some "redacted_thinking" -> false
                | Some other when not (isPart block) ->
                    RequestFrame.drop context.Notes other
                    false
                | _ -> true)
            |> message
        | _ -> ()

    /// An assistant turn, item by item in the order of its blocks: its own reasoning (an envelope this provider
    /// family minted) as a `reasoning` item directly before the item that followed it (OpenAI refuses a reasoning
    /// item without its following item, so one that nothing followed is left out); text as an assistant message;
    /// each tool use as a `function_call`.
    let private assistantTurn (context: Context) (writer: Utf8JsonWriter) (content: JsonElement) : unit =
        let texts = ResizeArray<string>()
        let reasoning = ResizeArray<string * string>()

        let flushReasoning () =
            for id, encrypted in reasoning do
                // ciphertext is not text the model reads as written: left out of the estimate, as image data is
                context.Notes.ImageBytes <- context.Notes.ImageBytes + int64 encrypted.Length
                writer.WriteStartObject()
                writer.WriteString("type", "reasoning")
                writer.WriteString("id", id)
                writer.WriteStartArray "summary"
                writer.WriteEndArray()
                writer.WriteString("encrypted_content", encrypted)
                writer.WriteEndObject()

            reasoning.Clear()

        let flushText () =
            if texts.Count > 0 then
                flushReasoning ()
                writer.WriteStartObject()
                writer.WriteString("type", "message")
                writer.WriteString("role", "assistant")
                writer.WriteStartArray "content"
                writer.WriteStartObject()
                writer.WriteString("type", "output_text")
                writer.WriteString("text", String.concat "\n" texts)
                writer.WriteEndObject()
                writer.WriteEndArray()
                writer.WriteEndObject()
                texts.Clear()

        match content.ValueKind with
        | JsonValueKind.String ->
            texts.Add(content.GetString() |> string)
            flushText ()
        | JsonValueKind.Array ->
            for block in content.EnumerateArray() do
                RequestFrame.noteCacheControl context.Notes block

                match JsonRead.tryString block "type" with
                | Some "text" -> texts.Add(text block)
                | Some "thinking" ->
                    match JsonRead.tryString block "signature" |> Option.bind ReasoningEnvelope.tryRead with
                    | Some(id, encrypted, minter) when context.EchoReasoning && minter = context.Family ->
                        flushText ()
                        reasoning.Add((id, encrypted))
                    // another family's reasoning (Anthropic's signed blocks, another provider's) is never sent here:
                    // reported
                    | _ -> RequestFrame.noteThinkingLeftOut context.Notes block
                | Some "redacted_thinking" -> RequestFrame.noteThinkingLeftOut context.Notes block
                | Some "tool_use" ->
                    flushText ()
                    flushReasoning ()
                    writer.WriteStartObject()
                    writer.WriteString("type", "function_call")
                    writer.WriteString("call_id", JsonRead.tryString block "id" |> Option.defaultValue "")

                    writer.WriteString(
                        "name",
                        RequestFrame.toolName
                            ToolName.forTarget
                            context.Notes
                            (JsonRead.tryString block "name" |> Option.defaultValue "")
                    )

                    writer.WriteString(
                        "arguments",
                        match JsonRead.tryProperty block "input" with
                        | ValueSome input -> input.GetRawText()
                        | ValueNone -> "{}"
                    )

                    writer.WriteEndObject()
                | Some "server_tool_use" ->
                    RequestFrame.drop
                        context.Notes
                        (JsonRead.tryString block "name" |> Option.defaultValue "server_tool_use")
                | Some other when other.EndsWith("_tool_result", StringComparison.Ordinal) -> ()
                | Some other -> RequestFrame.drop context.Notes other
                | None -> ()

            flushText ()
        | _ -> ()

    let private writeTools (context: Context) (writer: Utf8JsonWriter) (root: JsonElement) : unit =
        let tools =
            match JsonRead.tryProperty root "tools" with
            | ValueSome tools when tools.ValueKind = JsonValueKind.Array -> tools.EnumerateArray() |> List.ofSeq
            | _ -> []

        let custom, server =
            tools
            |> List.partition (fun tool ->
                match JsonRead.tryString tool "type" with
                | None
                | Some "custom" -> true
                | Some _ -> false)

        let webSearch =
            server
            |> List.filter (fun tool ->
                let name =
                    ChatRequest.serverToolName (JsonRead.tryString tool "type" |> Option.defaultValue "")

                if name = "web_search" then
                    true
                else
                    RequestFrame.drop context.Notes name
                    false)
            |> List.tryHead

        if not custom.IsEmpty || webSearch.IsSome then
            writer.WriteStartArray "tools"

            for tool in custom do
                RequestFrame.noteCacheControl context.Notes tool
                writer.WriteStartObject()
                writer.WriteString("type", "function")

                writer.WriteString(
                    "name",
                    RequestFrame.toolName
                        ToolName.forTarget
                        context.Notes
                        (JsonRead.tryString tool "name" |> Option.defaultValue "")
                )

                match JsonRead.tryString tool "description" with
                | Some description -> writer.WriteString("description", description)
                | None -> ()

                writer.WritePropertyName "parameters"

                match JsonRead.tryProperty tool "input_schema" with
                | ValueSome schema -> schema.WriteTo writer
                | ValueNone ->
                    writer.WriteStartObject()
                    writer.WriteString("type", "object")
                    writer.WriteEndObject()

                // Responses turns strict mode on when it is not said, which rewrites `required` (§6.5.2)
                writer.WriteBoolean(
                    "strict",
                    match JsonRead.tryProperty tool "strict" with
                    | ValueSome value -> value.ValueKind = JsonValueKind.True
                    | ValueNone -> false
                )

                writer.WriteEndObject()

            match webSearch with
            | Some _ ->
                // the target's own search stands in for Anthropic's (its results arrive as cited text)
                writer.WriteStartObject()
                writer.WriteString("type", "web_search")
                writer.WriteEndObject()
            | None -> ()

            writer.WriteEndArray()

            match JsonRead.tryProperty root "tool_choice" with
            | ValueSome choice ->
                match JsonRead.tryString choice "type" with
                | Some "auto" -> writer.WriteString("tool_choice", "auto")
                | Some "any" -> writer.WriteString("tool_choice", "required")
                | Some "none" -> writer.WriteString("tool_choice", "none")
                | Some "tool" ->
                    let name = JsonRead.tryString choice "name" |> Option.defaultValue ""
                    writer.WriteStartObject "tool_choice"

                    if name.StartsWith("web_search", StringComparison.Ordinal) && webSearch.IsSome then
                        writer.WriteString("type", "web_search")
                    else
                        writer.WriteString("type", "function")
                        writer.WriteString("name", RequestFrame.toolName ToolName.forTarget context.Notes name)

                    writer.WriteEndObject()
                | _ -> ()

                match JsonRead.tryProperty choice "disable_parallel_tool_use" with
                | ValueSome value when value.ValueKind = JsonValueKind.True ->
                    writer.WriteBoolean("parallel_tool_calls", false)
                | _ -> ()
            | ValueNone -> ()

    /// `thinking` (and `output_config.effort`) → `reasoning: {effort, summary: "auto"}`; true when reasoning was
    /// asked for. The summary is what streams as visible thinking.
    let private writeReasoning (writer: Utf8JsonWriter) (root: JsonElement) : bool =
        let thinking = JsonRead.tryProperty root "thinking"

        let kind =
            thinking
            |> ValueOption.bind (fun t -> JsonRead.tryString t "type" |> ValueOption.ofOption)

        let effort =
            match kind with
            | ValueSome "enabled" ->
                match thinking |> ValueOption.bind (fun t -> JsonRead.tryProperty t "budget_tokens") with
                | ValueSome budget when budget.ValueKind = JsonValueKind.Number ->
                    ValueSome(ChatRequest.effortOfBudget (budget.GetInt32()))
                | _ -> ValueSome "medium"
            | ValueSome "adaptive" ->
                match
                    JsonRead.tryProperty root "output_config"
                    |> ValueOption.bind (fun c -> JsonRead.tryString c "effort" |> ValueOption.ofOption)
                with
                | ValueSome("low" | "medium" | "high" as effort) -> ValueSome effort
                | ValueSome "max" -> ValueSome "high"
                | _ -> ValueSome "medium"
            | _ -> ValueNone

        match effort with
        | ValueSome effort ->
            writer.WriteStartObject "reasoning"
            writer.WriteString("effort", effort)
            writer.WriteString("summary", "auto")
            writer.WriteEndObject()
            true
        | ValueNone -> false

    /// `output_config.format` (or `output_format`) `json_schema` → `text.format`.
    let private writeTextFormat (context: Context) (writer: Utf8JsonWriter) (root: JsonElement) : unit =
        let format =
            JsonRead.tryProperty root "output_config"
            |> ValueOption.bind (fun c -> JsonRead.tryProperty c "format")
            |> ValueOption.orElse (JsonRead.tryProperty root "output_format")

        match format with
        | ValueSome format when JsonRead.tryString format "type" = Some "json_schema" ->
            match JsonRead.tryProperty format "schema" with
            | ValueSome schema ->
                writer.WriteStartObject "text"
                writer.WriteStartObject "format"
                writer.WriteString("type", "json_schema")
                writer.WriteString("name", "response")
                writer.WritePropertyName "schema"
                schema.WriteTo writer
                writer.WriteBoolean("strict", false)
                writer.WriteEndObject()
                writer.WriteEndObject()
            | ValueNone -> RequestFrame.drop context.Notes "output_format"
        | ValueSome _ -> RequestFrame.drop context.Notes "output_format"
        | ValueNone -> ()

    /// A stable key of at most 64 characters for `prompt_cache_key` (Claude Code's `user_id` is longer).
    let private cacheKey (userId: string) : string =
        if userId.Length <= 64 then
            userId
        else
            "cc-"
            + (Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes userId)
               |> Convert.ToHexStringLower)
                .Substring(0, 40)

    let private write (context: Context) (model: string) (root: JsonElement) (writer: Utf8JsonWriter) =
        writer.WriteStartObject()
        writer.WriteString("model", model)

        match JsonRead.tryProperty root "system" with
        | ValueSome system ->
            match instructions context system with
            | "" -> ()
            | text -> writer.WriteString("instructions", text)
        | ValueNone -> ()

        writer.WriteStartArray "input"

        for message in (JsonRead.tryProperty root "messages").Value.EnumerateArray() do
            match JsonRead.tryString message "role", JsonRead.tryProperty message "content" with
            | Some "user", ValueSome content -> userTurn context writer content
            | Some "assistant", ValueSome content -> assistantTurn context writer content
            | Some "system", ValueSome content -> systemTurn context writer content
            | _ -> ()

        writer.WriteEndArray()

        match JsonRead.tryProperty root "max_tokens" with
        | ValueSome value when value.ValueKind = JsonValueKind.Number ->
            match value.TryGetInt64() with
            | true, n -> writer.WriteNumber("max_output_tokens", max (int64 MinOutputTokens) n)
            | _ -> ()
        | _ -> ()

        writeTools context writer root
        let reasons = writeReasoning writer root

        // reasoning models refuse sampling parameters (§6.5.2); other models take them
        for name in [ "temperature"; "top_p" ] do
            match JsonRead.tryProperty root name with
            | ValueSome value when value.ValueKind = JsonValueKind.Number ->
                if reasons then
                    RequestFrame.drop context.Notes name
                else
                    writer.WritePropertyName name
                    value.WriteTo writer
            | _ -> ()

        writeTextFormat context writer root

        match
            JsonRead.tryProperty root "metadata"
            |> ValueOption.bind (fun m -> JsonRead.tryString m "user_id" |> ValueOption.ofOption)
        with
        | ValueSome user when user.Length > 0 -> writer.WriteString("prompt_cache_key", cacheKey user)
        | _ -> ()

        writer.WriteBoolean("store", false)
        writer.WriteStartArray "include"
        writer.WriteStringValue "reasoning.encrypted_content"
        writer.WriteEndArray()

        match JsonRead.tryProperty root "stream" with
        | ValueSome value when value.ValueKind = JsonValueKind.True -> writer.WriteBoolean("stream", true)
        | _ -> ()

        if (JsonRead.tryProperty root "cache_control").IsSome then
            RequestFrame.drop context.Notes "cache_control"

        for field in unsupportedFields do
            match JsonRead.tryProperty root field with
            | ValueSome value when value.ValueKind = JsonValueKind.Array && value.GetArrayLength() = 0 -> ()
            | ValueSome _ -> RequestFrame.drop context.Notes field
            | ValueNone -> ()

        writer.WriteEndObject()

    /// Translates an Anthropic Messages body for `model` on a provider of family `family`, with the pipeline's
    /// translation fix-ups. `fixups.EchoReasoning`: reasoning envelopes this family minted are given back as
    /// `reasoning` items; false when the conversation's thinking must be stripped or a pipeline turns it off. An
    /// error names what is wrong with the body.
    let translateWith
        (fixups: TranslationFixups)
        (family: string)
        (model: string)
        (body: ReadOnlySpan<byte>)
        : Result<TranslatedRequest, string> =
        let bodyLength = body.Length

        RequestFrame.read body (fun root _ ->
            let context = {
                Family = family
                EchoReasoning = fixups.EchoReasoning
                Notes = RequestFrame.notes ()
            }

            let written =
                RequestFrame.write bodyLength (fun writer -> write context model root writer)

            Ok(RequestFrame.translated written context.Notes))

    /// `translateWith` the default fix-ups, echoing reasoning when `echoReasoning`.
    let translate
        (family: string)
        (model: string)
        (echoReasoning: bool)
        (body: ReadOnlySpan<byte>)
        : Result<TranslatedRequest, string> =
        translateWith
            {
                TranslationFixups.defaults with
                    EchoReasoning = echoReasoning
            }
            family
            model
            body
