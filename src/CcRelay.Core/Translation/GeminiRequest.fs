namespace CcRelay.Core

open System
open System.Buffers
open System.Text.Encodings.Web
open System.Text.Json
open System.Text.Json.Nodes

/// What a Gemini request is for.
[<RequireQualifiedAccess>]
type GeminiRequestKind =
    /// `generateContent` / `streamGenerateContent`.
    | Generate
    /// AI Studio `countTokens`: the request wrapped as `{"generateContentRequest": {"model": "models/…", …}}`.
    | CountAiStudio
    /// Vertex AI `countTokens`: `contents`, `systemInstruction` and `tools` at the top level.
    | CountVertex


/// Anthropic Messages request → Gemini `generateContent` request (protocols.md §6.4, §6.6).
[<RequireQualifiedAccess>]
module GeminiRequest =

    /// Gemini takes at most 5 stop sequences.
    [<Literal>]
    let MaxStopSequences = 5

    let private unsupportedFields = [
        "context_management"
        "container"
        "mcp_servers"
        "service_tier"
        "inference_geo"
    ]

    /// One part of a Gemini content.
    type private Part =
        | Text of Text: string
        | Inline of MimeType: string * Data: string
        | File of MimeType: string * Uri: string
        | Call of Name: string * Args: string * Id: string option
        | Response of Name: string * Id: string option * IsError: bool * Output: string

    /// Mutable accumulators of one translation (local to `translate`).
    type private Context = {
        Settings: GeminiSettings
        Model: string
        /// The pipeline's translation fix-ups (`reasoning_echo`, `gemini_schema_clean`).
        Fixups: TranslationFixups
        Notes: RequestNotes
        /// tool_use id → Gemini function name (from the request's own assistant turns).
        CallNames: Collections.Generic.Dictionary<string, string>
    }

    let private text (element: JsonElement) (name: string) : string =
        JsonRead.tryString element name |> Option.defaultValue ""

    /// The media type of a URL by its extension (Gemini's `fileData` needs one).
    let private mimeOfUrl (url: string) (fallback: string) : string =
        let path =
            match Uri.TryCreate(url, UriKind.Absolute) with
            | true, NonNull uri -> uri.AbsolutePath.ToLowerInvariant()
            | _ -> url.ToLowerInvariant()

        if path.EndsWith(".png", StringComparison.Ordinal) then
            "image/png"
        elif path.EndsWith(".gif", StringComparison.Ordinal) then
            "image/gif"
        elif path.EndsWith(".webp", StringComparison.Ordinal) then
            "image/webp"
        elif
            path.EndsWith(".jpg", StringComparison.Ordinal)
            || path.EndsWith(".jpeg", StringComparison.Ordinal)
        then
            "image/jpeg"
        elif path.EndsWith(".pdf", StringComparison.Ordinal) then
            "application/pdf"
        else
            fallback

    /// An image or document source as a part: base64 inline, a URL as `fileData`, plain text as text.
    let private sourcePart (context: Context) (kind: string) (block: JsonElement) : Part list =
        match JsonRead.tryProperty block "source" with
        | ValueSome source ->
            match JsonRead.tryString source "type" with
            | Some "base64" ->
                let data = text source "data"

                let mediaType =
                    JsonRead.tryString source "media_type"
                    |> Option.defaultValue (if kind = "image" then "image/png" else "application/pdf")

                context.Notes.ImageBytes <- context.Notes.ImageBytes + int64 data.Length
                context.Notes.Images <- context.Notes.Images + 1
                [ Inline(mediaType, data) ]
            | Some "url" ->
                let url = text source "url"
                context.Notes.Images <- context.Notes.Images + 1

                [
                    File(mimeOfUrl url (if kind = "image" then "image/jpeg" else "application/pdf"), url)
                ]
            | Some "text" when kind = "document" -> [ Text(text source "data") ]
            | Some "content" when kind = "document" ->
                match JsonRead.tryProperty source "content" with
                | ValueSome content when content.ValueKind = JsonValueKind.Array ->
                    content.EnumerateArray()
                    |> Seq.choose (fun b ->
                        match JsonRead.tryString b "type" with
                        | Some "text" -> Some(Text(text b "text"))
                        | _ -> None)
                    |> List.ofSeq
                | _ -> []
            | _ ->
                RequestFrame.drop context.Notes kind
                []
        | ValueNone ->
            RequestFrame.drop context.Notes kind
            []

    /// The text of a `tool_result`'s content, and the images it carries.
    let private resultContent (context: Context) (content: JsonElement voption) : string * Part list =
        match content with
        | ValueSome content when content.ValueKind = JsonValueKind.String -> content.GetString() |> string, []
        | ValueSome content when content.ValueKind = JsonValueKind.Array ->
            let texts = ResizeArray<string>()
            let media = ResizeArray<Part>()

            for block in content.EnumerateArray() do
                match JsonRead.tryString block "type" with
                | Some "text" -> texts.Add(text block "text")
                | Some("image" | "document" as kind) -> media.AddRange(sourcePart context kind block)
                | Some other -> RequestFrame.drop context.Notes other
                | None -> ()

            String.concat "\n" texts, List.ofSeq media
        | _ -> "", []

    /// The function name a `tool_result` answers: its `tool_use` in this request, else the name its id encodes.
    let private nameOfCall (context: Context) (id: string) : string * string option =
        let encoded = GeminiWire.tryParseToolId id

        let upstreamId =
            match encoded with
            | Some(_, upstreamId, _) -> upstreamId
            | None -> None

        match context.CallNames.TryGetValue id with
        | true, name -> name, upstreamId
        | _ ->
            match encoded with
            | Some(name, _, _) -> name, upstreamId
            | None -> GeminiWire.functionName id, None

    /// A user turn: one `functionResponse` per tool result first (in order), then the rest, then the media
    /// the results carried (a function response holds no image).
    let private userParts (context: Context) (content: JsonElement) : Part list =
        match content.ValueKind with
        | JsonValueKind.String -> [ Text(content.GetString() |> string) ]
        | JsonValueKind.Array ->
            let blocks = List.ofSeq (content.EnumerateArray())
            let media = ResizeArray<Part>()

            let responses =
                blocks
                |> List.filter (fun b -> JsonRead.tryString b "type" = Some "tool_result")
                |> List.map (fun block ->
                    RequestFrame.noteCacheControl context.Notes block
                    let name, id = nameOfCall context (text block "tool_use_id")
                    let output, carried = resultContent context (JsonRead.tryProperty block "content")
                    media.AddRange carried

                    let isError =
                        match JsonRead.tryProperty block "is_error" with
                        | ValueSome value -> value.ValueKind = JsonValueKind.True
                        | ValueNone -> false

                    Response(name, id, isError, output))

            let rest =
                blocks
                |> List.collect (fun block ->
                    RequestFrame.noteCacheControl context.Notes block

                    match JsonRead.tryString block "type" with
                    | Some "text" -> [ Text(text block "text") ]
                    | Some("image" | "document" as kind) -> sourcePart context kind block
                    | Some "tool_result"
                    | Some "thinking"
                    | Some "redacted_thinking"
                    | None -> []
                    | Some other ->
                        RequestFrame.drop context.Notes other
                        [])

            responses @ rest @ List.ofSeq media
        | _ -> []

    /// An assistant turn's parts, with the thought signatures it carries placed where Gemini gave them
    /// (`GeminiWire`): a thinking block's signature goes on the next part (the function call it came with, or
    /// the text after a thought run), or on the last part when none follows (a signature Gemini put on the
    /// answer's last text part); the thought text is not sent back.
    let private modelParts (context: Context) (content: JsonElement) : (Part * string option) list =
        match content.ValueKind with
        | JsonValueKind.String -> [ Text(content.GetString() |> string), None ]
        | JsonValueKind.Array ->
            let parts = ResizeArray<Part * string option>()
            let mutable pending: string option = None

            let add (part: Part) =
                parts.Add(part, pending)
                pending <- None

            for block in content.EnumerateArray() do
                RequestFrame.noteCacheControl context.Notes block

                match JsonRead.tryString block "type" with
                | Some "text" -> add (Text(text block "text"))
                | Some "tool_use" ->
                    let id = text block "id"

                    let name =
                        match context.CallNames.TryGetValue id with
                        | true, name -> name
                        | _ -> GeminiWire.functionName (text block "name")

                    let args =
                        match JsonRead.tryProperty block "input" with
                        | ValueSome input when input.ValueKind = JsonValueKind.Object -> input.GetRawText()
                        | _ -> "{}"

                    let upstreamId =
                        match GeminiWire.tryParseToolId id with
                        | Some(_, upstreamId, _) -> upstreamId
                        | None -> None

                    add (Call(name, args, upstreamId))
                | Some "thinking" when context.Fixups.EchoReasoning ->
                    match GeminiWire.signatureOf (text block "signature") with
                    | Some signature ->
                        // NOTE: the thought text itself is not sent back: Gemini takes thought parts, but replayed
                        // thoughts confuse the model (google-gemini/gemini-cli#705 removed them from its history);
                        // only the signature matters, and it belongs on the part that follows
                        if signature.Length > 0 then
                            pending <- Some signature
                    // another target's reasoning is never sent to Gemini: reported
                    | None -> RequestFrame.noteThinkingLeftOut context.Notes block
                | Some "thinking"
                | Some "redacted_thinking" -> RequestFrame.noteThinkingLeftOut context.Notes block
                | Some "server_tool_use" -> RequestFrame.drop context.Notes (text block "name")
                | Some other when other.EndsWith("_tool_result", StringComparison.Ordinal) -> ()
                | Some other -> RequestFrame.drop context.Notes other
                | None -> ()

            match pending with
            | Some signature when parts.Count > 0 ->
                let last, own = parts[parts.Count - 1]
                parts[parts.Count - 1] <- (last, own |> Option.orElse (Some signature))
            | _ -> ()

            // the first call of a step without a genuine signature (history made by another model) gets the
            // value Gemini documents for skipping its validation (`reasoning_echo.fill_missing`)
            match parts |> Seq.tryFindIndex (fun (part, _) -> part.IsCall) with
            | Some first when (snd parts[first]).IsNone && context.Fixups.FillMissingReasoning ->
                parts[first] <- (fst parts[first], Some GeminiWire.SkipSignature)
            | _ -> ()

            List.ofSeq parts
        | _ -> []

    let private writePart (writer: Utf8JsonWriter) (part: Part) (signature: string option) : unit =
        writer.WriteStartObject()

        match part with
        | Text text -> writer.WriteString("text", text)
        | Inline(mime, data) ->
            writer.WriteStartObject "inlineData"
            writer.WriteString("mimeType", mime)
            writer.WriteString("data", data)
            writer.WriteEndObject()
        | File(mime, uri) ->
            writer.WriteStartObject "fileData"
            writer.WriteString("mimeType", mime)
            writer.WriteString("fileUri", uri)
            writer.WriteEndObject()
        | Call(name, args, id) ->
            writer.WriteStartObject "functionCall"

            match id with
            | Some id -> writer.WriteString("id", id)
            | None -> ()

            writer.WriteString("name", name)
            writer.WritePropertyName "args"
            writer.WriteRawValue(args, skipInputValidation = true)
            writer.WriteEndObject()
        | Response(name, id, isError, output) ->
            writer.WriteStartObject "functionResponse"

            match id with
            | Some id -> writer.WriteString("id", id)
            | None -> ()

            writer.WriteString("name", name)
            writer.WriteStartObject "response"
            // Gemini: "output" for the function's output, "error" for error details
            writer.WriteString((if isError then "error" else "output"), output)
            writer.WriteEndObject()
            writer.WriteEndObject()

        match signature with
        | Some s -> writer.WriteString("thoughtSignature", s)
        | None -> ()

        writer.WriteEndObject()

    /// Whether a part is worth sending (Gemini refuses an empty text part).
    let private meaningful (part: Part, _: string option) : bool =
        match part with
        | Text "" -> false
        | _ -> true

    /// A mid-conversation system message (Claude Code's `mid-conversation-system` beta: `{role: "system"}` among the
    /// messages). Gemini's contents have no system role and `systemInstruction` is one, at the top: it becomes a user
    /// turn in place, its text blocks joined by `\n` inside `<system-reminder>…</system-reminder>` (what Claude Code
    /// itself falls back to when a server refuses the beta); any other block is reported by its type.
    let private systemParts (context: Context) (content: JsonElement) : Part list =
        let text = RequestFrame.systemMessageText context.Notes content

        if text.Length > 0 then
            [ Text("<system-reminder>\n" + text + "\n</system-reminder>") ]
        else
            []

    let private writeContents (context: Context) (writer: Utf8JsonWriter) (messages: JsonElement) : unit =
        writer.WriteStartArray "contents"

        for message in messages.EnumerateArray() do
            let role, parts =
                match JsonRead.tryString message "role", JsonRead.tryProperty message "content" with
                | Some "user", ValueSome content -> "user", userParts context content |> List.map (fun p -> p, None)
                | Some "assistant", ValueSome content -> "model", modelParts context content
                | Some "system", ValueSome content -> "user", systemParts context content |> List.map (fun p -> p, None)
                | Some("user" | "assistant" | "system"), ValueNone -> "", []
                | role, _ ->
                    // a message Gemini has no place for is reported, never lost silently
                    RequestFrame.drop context.Notes ("message_role:" + defaultArg role "none")
                    "", []

            match List.filter meaningful parts with
            | [] -> ()
            | parts ->
                writer.WriteStartObject()
                writer.WriteString("role", role)
                writer.WriteStartArray "parts"

                for part, signature in parts do
                    writePart writer part signature

                writer.WriteEndArray()
                writer.WriteEndObject()

        writer.WriteEndArray()

    let private writeSystem (context: Context) (writer: Utf8JsonWriter) (root: JsonElement) : unit =
        let texts =
            match JsonRead.tryProperty root "system" with
            | ValueSome system when system.ValueKind = JsonValueKind.String -> [ system.GetString() |> string ]
            | ValueSome system when system.ValueKind = JsonValueKind.Array ->
                system.EnumerateArray()
                |> Seq.choose (fun block ->
                    RequestFrame.noteCacheControl context.Notes block

                    match JsonRead.tryString block "type" with
                    | Some "text" -> JsonRead.tryString block "text"
                    | _ -> None)
                |> List.ofSeq
            | _ -> []
            |> List.filter (fun t -> t.Length > 0)

        if not texts.IsEmpty then
            writer.WriteStartObject "systemInstruction"
            writer.WriteStartArray "parts"

            for text in texts do
                writer.WriteStartObject()
                writer.WriteString("text", text)
                writer.WriteEndObject()

            writer.WriteEndArray()
            writer.WriteEndObject()

    let private writeTools (context: Context) (writer: Utf8JsonWriter) (root: JsonElement) : unit =
        let tools =
            match JsonRead.tryProperty root "tools" with
            | ValueSome tools when tools.ValueKind = JsonValueKind.Array -> List.ofSeq (tools.EnumerateArray())
            | _ -> []

        let custom, server =
            tools
            |> List.partition (fun tool ->
                match JsonRead.tryString tool "type" with
                | None
                | Some "custom" -> true
                | Some _ -> false)

        let search =
            server
            |> List.filter (fun tool ->
                let name = ChatRequest.serverToolName (text tool "type")

                // Google Search is Gemini's own web search; it cannot be combined with function declarations
                if name = "web_search" && custom.IsEmpty then
                    true
                else
                    RequestFrame.drop context.Notes name
                    false)

        if not custom.IsEmpty || not search.IsEmpty then
            writer.WriteStartArray "tools"

            if not custom.IsEmpty then
                writer.WriteStartObject()
                writer.WriteStartArray "functionDeclarations"

                for tool in custom do
                    RequestFrame.noteCacheControl context.Notes tool
                    writer.WriteStartObject()

                    writer.WriteString(
                        "name",
                        RequestFrame.toolName GeminiWire.functionName context.Notes (text tool "name")
                    )

                    match JsonRead.tryString tool "description" with
                    | Some description when description.Length > 0 -> writer.WriteString("description", description)
                    | _ -> ()

                    match context.Fixups.GeminiSchema, JsonRead.tryProperty tool "input_schema" with
                    | GeminiSchemaMode.JsonSchema, ValueSome schema when schema.ValueKind = JsonValueKind.Object ->
                        // the schema as the client wrote it (`gemini_schema_clean: {mode: json_schema}`)
                        writer.WritePropertyName "parametersJsonSchema"
                        schema.WriteTo writer
                    | GeminiSchemaMode.JsonSchema, _ -> ()
                    | GeminiSchemaMode.OpenApi, schema ->
                        match
                            schema
                            |> ValueOption.toOption
                            |> Option.bind (GeminiSchema.parametersWith context.Fixups.SchemaHints)
                        with
                        | Some parameters ->
                            writer.WritePropertyName "parameters"
                            parameters.WriteTo writer
                        | None -> ()

                    writer.WriteEndObject()

                writer.WriteEndArray()
                writer.WriteEndObject()

            if not search.IsEmpty then
                writer.WriteStartObject()
                writer.WriteStartObject "googleSearch"
                writer.WriteEndObject()
                writer.WriteEndObject()

            writer.WriteEndArray()

        if not custom.IsEmpty then
            match JsonRead.tryProperty root "tool_choice" with
            | ValueSome choice ->
                let mode, allowed =
                    match JsonRead.tryString choice "type" with
                    | Some "any" -> Some "ANY", None
                    | Some "none" -> Some "NONE", None
                    | Some "tool" ->
                        Some "ANY",
                        Some(RequestFrame.toolName GeminiWire.functionName context.Notes (text choice "name"))
                    | Some "auto" -> Some "AUTO", None
                    | _ -> None, None

                match mode with
                | Some mode ->
                    writer.WriteStartObject "toolConfig"
                    writer.WriteStartObject "functionCallingConfig"
                    writer.WriteString("mode", mode)

                    match allowed with
                    | Some name ->
                        writer.WriteStartArray "allowedFunctionNames"
                        writer.WriteStringValue name
                        writer.WriteEndArray()
                    | None -> ()

                    writer.WriteEndObject()
                    writer.WriteEndObject()
                | None -> ()

                match JsonRead.tryProperty choice "disable_parallel_tool_use" with
                | ValueSome value when value.ValueKind = JsonValueKind.True ->
                    RequestFrame.drop context.Notes "disable_parallel_tool_use"
                | _ -> ()
            | ValueNone -> ()

    /// Whether Gemini 3's `thinkingLevel` is the control (else 2.5's `thinkingBudget`).
    let usesThinkingLevel (settings: GeminiSettings) (model: string) : bool =
        match settings.Thinking with
        | GeminiThinking.Level -> true
        | GeminiThinking.Budget
        | GeminiThinking.NoControl -> false
        | GeminiThinking.Auto -> model.Contains("gemini-3", StringComparison.OrdinalIgnoreCase)

    /// `thinking` → `thinkingConfig` (with `includeThoughts`), when asked for.
    let private thinkingConfig (context: Context) (root: JsonElement) : (Utf8JsonWriter -> unit) option =
        let thinking = JsonRead.tryProperty root "thinking"

        let kind =
            thinking
            |> ValueOption.bind (fun t -> JsonRead.tryString t "type" |> ValueOption.ofOption)

        let budget =
            match thinking |> ValueOption.bind (fun t -> JsonRead.tryProperty t "budget_tokens") with
            | ValueSome b when b.ValueKind = JsonValueKind.Number ->
                match b.TryGetInt32() with
                | true, n -> Some n
                | _ -> None
            | _ -> None

        let effort =
            JsonRead.tryProperty root "output_config"
            |> ValueOption.bind (fun c -> JsonRead.tryString c "effort" |> ValueOption.ofOption)

        match kind with
        | ValueSome("enabled" | "adaptive" as kind) ->
            if context.Settings.Thinking = GeminiThinking.NoControl then
                RequestFrame.drop context.Notes "thinking"
                None
            else
                Some(fun writer ->
                    writer.WriteStartObject "thinkingConfig"
                    writer.WriteBoolean("includeThoughts", true)

                    if usesThinkingLevel context.Settings context.Model then
                        let level =
                            match kind, budget, effort with
                            | "enabled", Some budget, _ -> if budget < 8192 then "low" else "high"
                            | _, _, ValueSome "low" -> "low"
                            | _ -> "high"

                        writer.WriteString("thinkingLevel", level)
                    else
                        match kind, budget with
                        | "enabled", Some budget ->
                            // Gemini refuses a budget over the model's range (2.5 Flash: 24576, 2.5 Pro: 32768)
                            let most =
                                if context.Model.Contains("flash", StringComparison.OrdinalIgnoreCase) then
                                    24576
                                else
                                    32768

                            writer.WriteNumber("thinkingBudget", min budget most)
                        // dynamic thinking: the model decides
                        | _ -> writer.WriteNumber("thinkingBudget", -1)

                    writer.WriteEndObject())
        | _ -> None

    let private writeGenerationConfig (context: Context) (writer: Utf8JsonWriter) (root: JsonElement) : unit =
        let number (from: string) =
            match JsonRead.tryProperty root from with
            | ValueSome value when value.ValueKind = JsonValueKind.Number -> Some value
            | _ -> None

        let stops =
            match JsonRead.tryProperty root "stop_sequences" with
            | ValueSome stops when stops.ValueKind = JsonValueKind.Array ->
                let all =
                    stops.EnumerateArray()
                    |> Seq.filter (fun s -> s.ValueKind = JsonValueKind.String)
                    |> Seq.map (fun s -> s.GetString() |> string)
                    |> List.ofSeq

                if all.Length > MaxStopSequences then
                    RequestFrame.drop context.Notes "stop_sequences"

                List.truncate MaxStopSequences all
            | _ -> []

        let format =
            JsonRead.tryProperty root "output_config"
            |> ValueOption.bind (fun c -> JsonRead.tryProperty c "format")
            |> ValueOption.orElse (JsonRead.tryProperty root "output_format")

        let schema =
            match format with
            | ValueSome format when JsonRead.tryString format "type" = Some "json_schema" ->
                match JsonRead.tryProperty format "schema" with
                | ValueSome schema when context.Fixups.GeminiSchema = GeminiSchemaMode.JsonSchema ->
                    Some("responseJsonSchema", (fun (w: Utf8JsonWriter) -> schema.WriteTo w))
                | ValueSome schema ->
                    let cleaned = GeminiSchema.responseWith context.Fixups.SchemaHints schema
                    Some("responseSchema", (fun (w: Utf8JsonWriter) -> cleaned.WriteTo w))
                | ValueNone ->
                    RequestFrame.drop context.Notes "output_format"
                    None
            | ValueSome _ ->
                RequestFrame.drop context.Notes "output_format"
                None
            | ValueNone -> None

        let numbers = [
            "max_tokens", "maxOutputTokens"
            "temperature", "temperature"
            "top_p", "topP"
            "top_k", "topK"
        ]

        let thinking = thinkingConfig context root

        let any =
            numbers |> List.exists (fun (from, _) -> (number from).IsSome)
            || not stops.IsEmpty
            || schema.IsSome
            || thinking.IsSome

        if any then
            writer.WriteStartObject "generationConfig"

            for from, target in numbers do
                match number from with
                | Some value ->
                    writer.WritePropertyName target
                    value.WriteTo writer
                | None -> ()

            if not stops.IsEmpty then
                writer.WriteStartArray "stopSequences"

                for stop in stops do
                    writer.WriteStringValue stop

                writer.WriteEndArray()

            match schema with
            | Some(field, schema) ->
                writer.WriteString("responseMimeType", "application/json")
                writer.WritePropertyName field
                schema writer
            | None -> ()

            match thinking with
            | Some write -> write writer
            | None -> ()

            writer.WriteEndObject()

    /// The request's own tool_use ids → their Gemini function names (a tool_result names only its id).
    let private collectCalls (context: Context) (messages: JsonElement) : unit =
        for message in messages.EnumerateArray() do
            match JsonRead.tryString message "role", JsonRead.tryProperty message "content" with
            | Some "assistant", ValueSome content when content.ValueKind = JsonValueKind.Array ->
                for block in content.EnumerateArray() do
                    if JsonRead.tryString block "type" = Some "tool_use" then
                        context.CallNames[text block "id"] <-
                            RequestFrame.toolName GeminiWire.functionName context.Notes (text block "name")
            | _ -> ()

    let private write
        (context: Context)
        (kind: GeminiRequestKind)
        (root: JsonElement)
        (messages: JsonElement)
        (writer: Utf8JsonWriter)
        =
        writer.WriteStartObject()

        if kind = GeminiRequestKind.CountAiStudio then
            writer.WriteStartObject "generateContentRequest"
            writer.WriteString("model", "models/" + context.Model)

        writeContents context writer messages
        writeSystem context writer root
        writeTools context writer root

        if kind <> GeminiRequestKind.CountVertex then
            writeGenerationConfig context writer root

        if kind = GeminiRequestKind.CountAiStudio then
            writer.WriteEndObject()

        if (JsonRead.tryProperty root "cache_control").IsSome then
            RequestFrame.drop context.Notes "cache_control"

        for field in unsupportedFields do
            if (JsonRead.tryProperty root field).IsSome then
                RequestFrame.drop context.Notes field

        writer.WriteEndObject()

    /// Translates an Anthropic Messages body for Gemini `model` on a provider with `settings`, with the pipeline's
    /// translation fix-ups. `fixups.EchoReasoning`: the thought signatures Gemini gave on earlier turns (thinking
    /// blocks signed `GeminiWire.SignaturePrefix…`) are given back; false when the conversation's thinking must be
    /// left out (another family minted it) or a pipeline turns it off. An error names what is wrong with the body.
    let translateWith
        (fixups: TranslationFixups)
        (settings: GeminiSettings)
        (model: string)
        (kind: GeminiRequestKind)
        (body: ReadOnlySpan<byte>)
        : Result<TranslatedRequest, string> =
        let bodyLength = body.Length

        RequestFrame.read body (fun root messages ->
            let context = {
                Settings = settings
                Model = model
                Fixups = fixups
                Notes = RequestFrame.notes ()
                CallNames = Collections.Generic.Dictionary()
            }

            collectCalls context messages

            let written =
                RequestFrame.write bodyLength (fun writer -> write context kind root messages writer)

            Ok(RequestFrame.translated written context.Notes))

    /// `translateWith` the default fix-ups, giving signatures back when `echoSignatures`.
    let translate
        (settings: GeminiSettings)
        (model: string)
        (kind: GeminiRequestKind)
        (echoSignatures: bool)
        (body: ReadOnlySpan<byte>)
        : Result<TranslatedRequest, string> =
        translateWith
            {
                TranslationFixups.defaults with
                    EchoReasoning = echoSignatures
            }
            settings
            model
            kind
            body
