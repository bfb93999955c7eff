namespace CcRelay.Core

open System
open System.Buffers
open System.Text.Encodings.Web
open System.Text.Json


/// Tool names as OpenAI accepts them (`^[A-Za-z0-9_-]{1,64}$`).
[<RequireQualifiedAccess>]
module ToolName =

    let private allowed (c: char) : bool =
        (c >= 'a' && c <= 'z')
        || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9')
        || c = '_'
        || c = '-'

    /// The name sent to the target: the name itself when OpenAI accepts it, else its allowed characters
    /// (others become `_`), cut to 55, then `_` and 8 hex digits of the SHA-256 of the original name (as
    /// LiteLLM does), so that two long names that share their first 55 characters stay apart.
    let forTarget (name: string) : string =
        if name.Length >= 1 && name.Length <= 64 && String.forall allowed name then
            name
        else
            let clean = String.map (fun c -> if allowed c then c else '_') name
            let head = if clean.Length > 55 then clean.Substring(0, 55) else clean

            let hash =
                Security.Cryptography.SHA256.HashData(Text.Encoding.UTF8.GetBytes name)
                |> Convert.ToHexStringLower

            head + "_" + hash.Substring(0, 8)

    /// The client's name for a tool the target called by `name`: `names` maps the target's spelling back (a
    /// translated request's `ToolNames`), else the name is the client's own.
    let original (names: Map<string, string>) (name: string) : string =
        names |> Map.tryFind name |> Option.defaultValue name

/// Anthropic Messages request → OpenAI Chat Completions request (protocols.md §6.1).
[<RequireQualifiedAccess>]
module ChatRequest =

    /// What one image costs in the input estimate (about Anthropic's figure for a 1.15-megapixel image).
    [<Literal>]
    let ImageTokens = RequestFrame.ImageTokens

    /// The request fields no Chat Completions server takes, reported by their own names when present.
    let private unsupportedFields = [
        "context_management"
        "container"
        "mcp_servers"
        "service_tier"
        "inference_geo"
    ]

    /// A server tool's capability name: its `type` without the date suffix (`web_search_20250305` → `web_search`).
    let serverToolName (toolType: string) : string =
        let cut = toolType.LastIndexOf '_'

        if
            cut > 0
            && toolType.Length - cut - 1 = 8
            && toolType.Substring(cut + 1) |> String.forall Char.IsAsciiDigit
        then
            toolType.Substring(0, cut)
        else
            toolType

    /// A `thinking.budget_tokens` as an OpenAI `reasoning_effort`.
    let effortOfBudget (budget: int) : string =
        if budget < 4096 then "low"
        elif budget < 16384 then "medium"
        else "high"

    /// Mutable accumulators of one translation (local to `translate`).
    type private Context = {
        Settings: OpenAiSettings
        EchoReasoning: bool
        /// A tool-call turn without reasoning still gets `reasoning_content: ""` (`reasoning_echo.fill_missing`).
        FillMissing: bool
        Notes: RequestNotes
    }

    /// The text of a block list or string (`system`, a `tool_result`'s content), text blocks joined by `\n`.
    let private textOf (context: Context) (content: JsonElement) : string =
        match content.ValueKind with
        | JsonValueKind.String -> content.GetString() |> Option.ofObj |> Option.defaultValue ""
        | JsonValueKind.Array ->
            content.EnumerateArray()
            |> Seq.choose (fun block ->
                RequestFrame.noteCacheControl context.Notes block

                match JsonRead.tryString block "type" with
                | Some "text" -> JsonRead.tryString block "text"
                | _ -> None)
            |> String.concat "\n"
        | _ -> ""

    /// An `image` block as an `image_url` part: base64 as a data URL, a URL as it is.
    let private writeImage (context: Context) (writer: Utf8JsonWriter) (block: JsonElement) : unit =
        match JsonRead.tryProperty block "source" with
        | ValueSome source ->
            let url =
                match JsonRead.tryString source "type" with
                | Some "base64" ->
                    let data = JsonRead.tryString source "data" |> Option.defaultValue ""

                    let mediaType =
                        JsonRead.tryString source "media_type" |> Option.defaultValue "image/png"

                    context.Notes.ImageBytes <- context.Notes.ImageBytes + int64 data.Length
                    Some("data:" + mediaType + ";base64," + data)
                | Some "url" -> JsonRead.tryString source "url"
                | _ -> None

            match url with
            | Some url ->
                context.Notes.Images <- context.Notes.Images + 1
                writer.WriteStartObject()
                writer.WriteString("type", "image_url")
                writer.WriteStartObject "image_url"
                writer.WriteString("url", url)
                writer.WriteEndObject()
                writer.WriteEndObject()
            | None -> RequestFrame.drop context.Notes "image_source"
        | ValueNone -> RequestFrame.drop context.Notes "image_source"

    /// A user turn's parts other than tool results: text and images (others reported).
    type private Part =
        | TextPart of string
        | ImagePart of JsonElement

    let private userParts (context: Context) (block: JsonElement) : Part list =
        RequestFrame.noteCacheControl context.Notes block

        match JsonRead.tryString block "type" with
        | Some "text" -> [ TextPart(JsonRead.tryString block "text" |> Option.defaultValue "") ]
        | Some "image" -> [ ImagePart block ]
        | Some "document" ->
            match JsonRead.tryProperty block "source" with
            // a plain-text document is text
            | ValueSome source when JsonRead.tryString source "type" = Some "text" -> [
                TextPart(JsonRead.tryString source "data" |> Option.defaultValue "")
              ]
            | _ ->
                RequestFrame.drop context.Notes "document"
                []
        | Some "thinking"
        | Some "redacted_thinking" -> []
        | Some other ->
            RequestFrame.drop context.Notes other
            []
        | None -> []

    let private writeUser (context: Context) (writer: Utf8JsonWriter) (parts: Part list) : unit =
        match parts with
        | [] -> ()
        | parts ->
            writer.WriteStartObject()
            writer.WriteString("role", "user")

            if parts |> List.forall (fun p -> p.IsTextPart) then
                parts
                |> List.map (fun p ->
                    match p with
                    | TextPart text -> text
                    | ImagePart _ -> "")
                |> String.concat "\n"
                |> fun text -> writer.WriteString("content", text)
            else
                writer.WriteStartArray "content"

                for part in parts do
                    match part with
                    | TextPart text ->
                        writer.WriteStartObject()
                        writer.WriteString("type", "text")
                        writer.WriteString("text", text)
                        writer.WriteEndObject()
                    | ImagePart image -> writeImage context writer image

                writer.WriteEndArray()

            writer.WriteEndObject()

    /// A user turn: one `tool` message per tool result first (in order), then the rest of the turn, with any
    /// images the tool results carried (a `tool` message holds text only).
    let private userTurn (context: Context) (writer: Utf8JsonWriter) (content: JsonElement) : unit =
        match content.ValueKind with
        | JsonValueKind.String -> writeUser context writer [ TextPart(content.GetString() |> string) ]
        | JsonValueKind.Array ->
            let blocks = content.EnumerateArray() |> List.ofSeq
            let mutable carried = []

            for block in blocks do
                if JsonRead.tryString block "type" = Some "tool_result" then
                    RequestFrame.noteCacheControl context.Notes block
                    let result = JsonRead.tryProperty block "content"

                    let text =
                        match result with
                        | ValueSome result -> textOf context result
                        | ValueNone -> ""

                    match result with
                    | ValueSome result when result.ValueKind = JsonValueKind.Array ->
                        for inner in result.EnumerateArray() do
                            match JsonRead.tryString inner "type" with
                            | Some "image" -> carried <- ImagePart inner :: carried
                            | Some "text"
                            | None -> ()
                            | Some other -> RequestFrame.drop context.Notes other
                    | _ -> ()

                    let isError =
                        match JsonRead.tryProperty block "is_error" with
                        | ValueSome value -> value.ValueKind = JsonValueKind.True
                        | ValueNone -> false

                    writer.WriteStartObject()
                    writer.WriteString("role", "tool")
                    writer.WriteString("tool_call_id", JsonRead.tryString block "tool_use_id" |> Option.defaultValue "")
                    // NOTE: a tool message has no error flag; the prefix is how the model learns the call failed
                    writer.WriteString("content", (if isError then "Error: " + text else text))
                    writer.WriteEndObject()

            let rest =
                blocks
                |> List.filter (fun b -> JsonRead.tryString b "type" <> Some "tool_result")
                |> List.collect (userParts context)

            writeUser context writer (rest @ List.rev carried)
        | _ -> ()

    /// A mid-conversation system message (Claude Code's `mid-conversation-system` beta: `{role: "system"}` among
    /// the messages), as the provider's `mid_conversation_system` says: a `system` message in place, a `user`
    /// message in place with the text inside `<system-reminder>…</system-reminder>` (what Claude Code itself
    /// falls back to when a server refuses the beta), or left out and reported as `system_message`. Its text
    /// blocks are joined by `\n`; any other block is reported by its type.
    let private systemTurn (context: Context) (writer: Utf8JsonWriter) (content: JsonElement) : unit =
        let text = RequestFrame.systemMessageText context.Notes content

        if text.Length > 0 then
            match context.Settings.MidSystem with
            | MidSystem.InPlace ->
                writer.WriteStartObject()
                writer.WriteString("role", "system")
                writer.WriteString("content", text)
                writer.WriteEndObject()
            | MidSystem.AsUser ->
                writer.WriteStartObject()
                writer.WriteString("role", "user")
                writer.WriteString("content", "<system-reminder>\n" + text + "\n</system-reminder>")
                writer.WriteEndObject()
            | MidSystem.Drop -> RequestFrame.drop context.Notes "system_message"

    /// An assistant turn: its text, its tool calls, and the reasoning the target itself produced earlier.
    let private assistantTurn (context: Context) (writer: Utf8JsonWriter) (content: JsonElement) : unit =
        match content.ValueKind with
        | JsonValueKind.String ->
            writer.WriteStartObject()
            writer.WriteString("role", "assistant")
            writer.WriteString("content", content.GetString())
            writer.WriteEndObject()
        | JsonValueKind.Array ->
            let texts = ResizeArray<string>()
            let reasoning = ResizeArray<string>()
            let calls = ResizeArray<JsonElement>()

            for block in content.EnumerateArray() do
                RequestFrame.noteCacheControl context.Notes block

                match JsonRead.tryString block "type" with
                | Some "text" -> texts.Add(JsonRead.tryString block "text" |> Option.defaultValue "")
                | Some "tool_use" -> calls.Add block
                | Some "thinking" when
                    context.EchoReasoning
                    && JsonRead.tryString block "signature" = Some AnthropicOut.ReasoningSignature
                    ->
                    reasoning.Add(JsonRead.tryString block "thinking" |> Option.defaultValue "")
                // another family's reasoning (Anthropic's signed blocks) is never sent to this target: reported
                | Some "thinking"
                | Some "redacted_thinking" -> RequestFrame.noteThinkingLeftOut context.Notes block
                | Some "server_tool_use" ->
                    RequestFrame.drop
                        context.Notes
                        (JsonRead.tryString block "name" |> Option.defaultValue "server_tool_use")
                | Some other when other.EndsWith("_tool_result", StringComparison.Ordinal) -> ()
                | Some other -> RequestFrame.drop context.Notes other
                | None -> ()

            if texts.Count > 0 || calls.Count > 0 then
                writer.WriteStartObject()
                writer.WriteString("role", "assistant")

                if texts.Count > 0 then
                    writer.WriteString("content", String.concat "\n" texts)
                else
                    writer.WriteNull "content"

                match context.Settings.ReasoningField with
                | ReasoningField.ReasoningContent when reasoning.Count > 0 || (calls.Count > 0 && context.FillMissing) ->
                    // DeepSeek refuses a tool turn whose reasoning_content is missing, even an empty one (§6.7)
                    writer.WriteString("reasoning_content", String.concat "" reasoning)
                | ReasoningField.Reasoning when reasoning.Count > 0 ->
                    writer.WriteString("reasoning", String.concat "" reasoning)
                | _ -> ()

                if calls.Count > 0 then
                    writer.WriteStartArray "tool_calls"

                    for call in calls do
                        writer.WriteStartObject()
                        writer.WriteString("id", JsonRead.tryString call "id" |> Option.defaultValue "")
                        writer.WriteString("type", "function")
                        writer.WriteStartObject "function"

                        writer.WriteString(
                            "name",
                            RequestFrame.toolName
                                ToolName.forTarget
                                context.Notes
                                (JsonRead.tryString call "name" |> Option.defaultValue "")
                        )

                        let arguments =
                            match JsonRead.tryProperty call "input" with
                            | ValueSome input -> input.GetRawText()
                            | ValueNone -> "{}"

                        writer.WriteString("arguments", arguments)
                        writer.WriteEndObject()
                        writer.WriteEndObject()

                    writer.WriteEndArray()

                writer.WriteEndObject()
        | _ -> ()

    let private writeTools (context: Context) (writer: Utf8JsonWriter) (root: JsonElement) : unit =
        let custom =
            match JsonRead.tryProperty root "tools" with
            | ValueSome tools when tools.ValueKind = JsonValueKind.Array ->
                tools.EnumerateArray()
                |> Seq.filter (fun tool ->
                    match JsonRead.tryString tool "type" with
                    | None
                    | Some "custom" -> true
                    | Some serverTool ->
                        RequestFrame.drop context.Notes (serverToolName serverTool)
                        false)
                |> List.ofSeq
            | _ -> []

        if not custom.IsEmpty then
            writer.WriteStartArray "tools"

            for tool in custom do
                RequestFrame.noteCacheControl context.Notes tool
                writer.WriteStartObject()
                writer.WriteString("type", "function")
                writer.WriteStartObject "function"

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

                writer.WriteEndObject()
                writer.WriteEndObject()

            writer.WriteEndArray()

            match JsonRead.tryProperty root "tool_choice" with
            | ValueSome choice ->
                match JsonRead.tryString choice "type" with
                | Some "auto" -> writer.WriteString("tool_choice", "auto")
                | Some "any" -> writer.WriteString("tool_choice", "required")
                | Some "none" -> writer.WriteString("tool_choice", "none")
                | Some "tool" ->
                    writer.WriteStartObject "tool_choice"
                    writer.WriteString("type", "function")
                    writer.WriteStartObject "function"

                    writer.WriteString(
                        "name",
                        RequestFrame.toolName
                            ToolName.forTarget
                            context.Notes
                            (JsonRead.tryString choice "name" |> Option.defaultValue "")
                    )

                    writer.WriteEndObject()
                    writer.WriteEndObject()
                | _ -> ()

                match JsonRead.tryProperty choice "disable_parallel_tool_use" with
                | ValueSome value when value.ValueKind = JsonValueKind.True ->
                    writer.WriteBoolean("parallel_tool_calls", false)
                | _ -> ()
            | ValueNone -> ()

    /// `thinking` (and `output_config.effort`) → the provider's thinking control.
    let private writeThinking (context: Context) (writer: Utf8JsonWriter) (root: JsonElement) : unit =
        let thinking = JsonRead.tryProperty root "thinking"

        let kind =
            thinking
            |> ValueOption.bind (fun t -> JsonRead.tryString t "type" |> ValueOption.ofOption)

        let effort () =
            match kind with
            | ValueSome "enabled" ->
                match thinking |> ValueOption.bind (fun t -> JsonRead.tryProperty t "budget_tokens") with
                | ValueSome budget when budget.ValueKind = JsonValueKind.Number -> effortOfBudget (budget.GetInt32())
                | _ -> "medium"
            | _ ->
                match
                    JsonRead.tryProperty root "output_config"
                    |> ValueOption.bind (fun c -> JsonRead.tryString c "effort" |> ValueOption.ofOption)
                with
                | ValueSome("low" | "medium" | "high" as effort) -> effort
                | ValueSome "max" -> "high"
                | _ -> "medium"

        match context.Settings.Thinking, kind with
        | _, ValueNone -> ()
        | ThinkingControl.NoControl, ValueSome("enabled" | "adaptive") -> RequestFrame.drop context.Notes "thinking"
        | ThinkingControl.NoControl, ValueSome _ -> ()
        | ThinkingControl.ReasoningEffort, ValueSome("enabled" | "adaptive") ->
            writer.WriteString("reasoning_effort", effort ())
        | ThinkingControl.ReasoningEffort, ValueSome _ -> ()
        | ThinkingControl.ThinkingField, ValueSome kind ->
            writer.WriteStartObject "thinking"
            writer.WriteString("type", (if kind = "disabled" then "disabled" else "enabled"))
            writer.WriteEndObject()

    /// `output_config.format` (or the older `output_format`) `json_schema` → `response_format`.
    let private writeResponseFormat (context: Context) (writer: Utf8JsonWriter) (root: JsonElement) : unit =
        let format =
            JsonRead.tryProperty root "output_config"
            |> ValueOption.bind (fun c -> JsonRead.tryProperty c "format")
            |> ValueOption.orElse (JsonRead.tryProperty root "output_format")

        match format with
        | ValueSome format when JsonRead.tryString format "type" = Some "json_schema" ->
            match JsonRead.tryProperty format "schema" with
            | ValueSome schema ->
                writer.WriteStartObject "response_format"
                writer.WriteString("type", "json_schema")
                writer.WriteStartObject "json_schema"
                writer.WriteString("name", "response")
                writer.WritePropertyName "schema"
                schema.WriteTo writer
                writer.WriteEndObject()
                writer.WriteEndObject()
            | ValueNone -> RequestFrame.drop context.Notes "output_format"
        | ValueSome _ -> RequestFrame.drop context.Notes "output_format"
        | ValueNone -> ()

    let private copyNumber (writer: Utf8JsonWriter) (root: JsonElement) (from: string) (target: string) : unit =
        match JsonRead.tryProperty root from with
        | ValueSome value when value.ValueKind = JsonValueKind.Number ->
            writer.WritePropertyName target
            value.WriteTo writer
        | _ -> ()

    let private write (context: Context) (model: string) (root: JsonElement) (writer: Utf8JsonWriter) =
        writer.WriteStartObject()
        writer.WriteString("model", model)
        writer.WriteStartArray "messages"

        match JsonRead.tryProperty root "system" with
        | ValueSome system ->
            let text = textOf context system

            if text.Length > 0 then
                writer.WriteStartObject()
                writer.WriteString("role", "system")
                writer.WriteString("content", text)
                writer.WriteEndObject()
        | ValueNone -> ()

        for message in (JsonRead.tryProperty root "messages").Value.EnumerateArray() do
            match JsonRead.tryString message "role", JsonRead.tryProperty message "content" with
            | Some "user", ValueSome content -> userTurn context writer content
            | Some "assistant", ValueSome content -> assistantTurn context writer content
            | Some "system", ValueSome content -> systemTurn context writer content
            | _ -> ()

        writer.WriteEndArray()

        let maxTokensName =
            match context.Settings.MaxTokensField with
            | MaxTokensField.MaxTokens -> "max_tokens"
            | MaxTokensField.MaxCompletionTokens -> "max_completion_tokens"

        copyNumber writer root "max_tokens" maxTokensName
        copyNumber writer root "temperature" "temperature"
        copyNumber writer root "top_p" "top_p"

        if (JsonRead.tryProperty root "top_k").IsSome then
            RequestFrame.drop context.Notes "top_k"

        match JsonRead.tryProperty root "stop_sequences" with
        | ValueSome stops when stops.ValueKind = JsonValueKind.Array && stops.GetArrayLength() > 0 ->
            // OpenAI takes at most 4
            if stops.GetArrayLength() > 4 then
                RequestFrame.drop context.Notes "stop_sequences"

            writer.WriteStartArray "stop"

            for stop in stops.EnumerateArray() |> Seq.truncate 4 do
                stop.WriteTo writer

            writer.WriteEndArray()
        | _ -> ()

        match
            JsonRead.tryProperty root "metadata"
            |> ValueOption.bind (fun m -> JsonRead.tryString m "user_id" |> ValueOption.ofOption)
        with
        | ValueSome user -> writer.WriteString("user", user)
        | ValueNone -> ()

        writeTools context writer root
        writeThinking context writer root
        writeResponseFormat context writer root

        match JsonRead.tryProperty root "stream" with
        | ValueSome value when value.ValueKind = JsonValueKind.True ->
            writer.WriteBoolean("stream", true)

            if context.Settings.StreamUsage then
                writer.WriteStartObject "stream_options"
                writer.WriteBoolean("include_usage", true)
                writer.WriteEndObject()
        | _ -> ()

        if (JsonRead.tryProperty root "cache_control").IsSome then
            RequestFrame.drop context.Notes "cache_control"

        for field in unsupportedFields do
            if (JsonRead.tryProperty root field).IsSome then
                RequestFrame.drop context.Notes field

        writer.WriteEndObject()

    /// Translates an Anthropic Messages body for `model` on a provider with `settings`, with the pipeline's
    /// translation fix-ups (`reasoning_echo`). `fixups.EchoReasoning`: the target's own earlier reasoning
    /// (thinking blocks with `AnthropicOut.ReasoningSignature`) is sent back on its assistant turns; false when the
    /// conversation's thinking must be stripped (another family minted it) or a pipeline turns it off. An error
    /// names what is wrong with the body.
    let translateWith
        (fixups: TranslationFixups)
        (settings: OpenAiSettings)
        (model: string)
        (body: ReadOnlySpan<byte>)
        : Result<TranslatedRequest, string> =
        let bodyLength = body.Length

        RequestFrame.read body (fun root _ ->
            let context = {
                Settings = settings
                EchoReasoning = fixups.EchoReasoning
                FillMissing = fixups.FillMissingReasoning
                Notes = RequestFrame.notes ()
            }

            let written =
                RequestFrame.write bodyLength (fun writer -> write context model root writer)

            Ok(RequestFrame.translated written context.Notes))

    /// `translateWith` the default fix-ups, echoing reasoning when `echoReasoning`.
    let translate
        (settings: OpenAiSettings)
        (model: string)
        (echoReasoning: bool)
        (body: ReadOnlySpan<byte>)
        : Result<TranslatedRequest, string> =
        translateWith
            {
                TranslationFixups.defaults with
                    EchoReasoning = echoReasoning
            }
            settings
            model
            body
