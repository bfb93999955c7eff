namespace CcRelay.Core

open System
open System.Buffers
open System.Text
open System.Text.Json

/// What reading a Chat Completions answer back into the Anthropic shape needs from its request.
type ChatAnswerPlan = {
    /// The model the client asked for: the answer's `model`, whatever the upstream names. Claude Code drops
    /// the thinking blocks of an answer whose model is not the one it asked for from the next turn's history, so
    /// the reasoning the target wants echoed would never come back (tests/E2E `openai-chat`).
    Model: string
    /// The translated request's input estimate: `message_start`'s `input_tokens`, and the final usage when
    /// the upstream reports none.
    EstimatedInputTokens: int
    /// Tool names changed for the target → the client's (`TranslatedRequest.ToolNames`).
    ToolNames: Map<string, string>
    /// Whether reasoning is read at all (`reasoning_field` is not `none`).
    ReadsReasoning: bool
}

/// Chat Completions answers (JSON and errors) → Anthropic (protocols.md §6.2), and the pieces the stream
/// state machine shares with it: stop reasons, usage, tool names, error mapping.
[<RequireQualifiedAccess>]
module ChatAnswer =

    let private documentOptions = JsonDocumentOptions(MaxDepth = 512)

    /// `finish_reason` → `stop_reason`. Whether the turn called tools decides between `tool_use` and
    /// `end_turn`, not the reason: some servers say `stop` after tool calls (Ollama), and Claude Code would not
    /// run them; a `tool_calls` finish without a call would make it wait for tools that never come.
    let stopReason (finishReason: string) (calledTools: bool) : string =
        match finishReason with
        | "length" -> "max_tokens"
        | "content_filter" -> "refusal"
        | _ when calledTools -> "tool_use"
        | _ -> "end_turn"

    /// An OpenAI `usage` object in Anthropic's meaning: `input_tokens` excludes the cached part of the prompt
    /// (`prompt_tokens_details.cached_tokens`, or DeepSeek's `prompt_cache_hit_tokens`); `output_tokens` is
    /// `completion_tokens`, reasoning included.
    let usageOf (usage: JsonElement) : Usage =
        let usage = ValueSome usage
        let prompt = JsonRead.tokens usage "prompt_tokens"

        let cached =
            match
                JsonRead.tokens
                    (usage
                     |> ValueOption.bind (fun u -> JsonRead.tryProperty u "prompt_tokens_details"))
                    "cached_tokens"
            with
            | 0L -> JsonRead.tokens usage "prompt_cache_hit_tokens"
            | cached -> cached

        let cached = min cached prompt

        {
            InputTokens = prompt - cached
            OutputTokens = JsonRead.tokens usage "completion_tokens"
            CacheReadTokens = cached
            CacheWriteTokens = 0L
        }

    /// The reasoning text of a message or delta: `reasoning_content`, else `reasoning` (servers differ, and
    /// reading both costs nothing); None when `reasoning_field: none`.
    let reasoningOf (plan: ChatAnswerPlan) (message: JsonElement) : string option =
        if plan.ReadsReasoning then
            JsonRead.tryString message "reasoning_content"
            |> Option.orElse (JsonRead.tryString message "reasoning")
        else
            None

    /// `{"_raw_arguments":"<arguments>"}`, escaped as System.Text.Json escapes by default (written directly:
    /// the reflection-based serializer is not available to a trimmed, Native AOT build).
    let private rawArguments (arguments: string) : string =
        let buffer = ArrayBufferWriter<byte>()

        do
            use writer = new Utf8JsonWriter(buffer)
            writer.WriteStartObject()
            writer.WriteString("_raw_arguments", arguments)
            writer.WriteEndObject()

        Encoding.UTF8.GetString(buffer.WrittenSpan)

    /// A tool call's arguments as a JSON object: as they are when valid; an empty string is `{}`; anything
    /// else is kept whole under `_raw_arguments`, so the tool (and the model) see what went wrong instead of
    /// an empty input.
    let toolInput (arguments: string) : string =
        if String.IsNullOrWhiteSpace arguments then
            "{}"
        else
            try
                use document = JsonDocument.Parse(arguments, documentOptions)

                if document.RootElement.ValueKind = JsonValueKind.Object then
                    arguments
                else
                    rawArguments arguments
            with :? JsonException ->
                rawArguments arguments

    // ---------------------------
    // Errors
    // ---------------------------

    /// Numbers in an overflow message (`… maximum context length is 128000 tokens. However, your messages
    /// resulted in 130532 tokens …`): the prompt's size and the limit, when both are there.
    let private overflowNumbers (message: string) : (int64 * int64) option =
        let numbers =
            Text.RegularExpressions.Regex.Matches(message, "\\d+")
            |> Seq.choose (fun m ->
                match Int64.TryParse m.Value with
                | true, n when n >= 1000L -> Some n
                | _ -> None)
            |> List.ofSeq

        match numbers with
        | limit :: prompt :: _ when prompt > limit -> Some(prompt, limit)
        | first :: second :: _ when first > second -> Some(first, second)
        | _ -> None

    /// Whether an upstream message says the prompt is over the model's context window.
    let private isOverflow (code: string option) (message: string) : bool =
        code = Some "context_length_exceeded"
        || message.Contains("maximum context length", StringComparison.OrdinalIgnoreCase)
        || message.Contains("context length", StringComparison.OrdinalIgnoreCase)
           && message.Contains("exceed", StringComparison.OrdinalIgnoreCase)

    /// The Anthropic error type (and the status the relay answers) for an upstream status.
    let errorOfStatus (status: int) : int * ErrorType =
        match status with
        | 400
        | 422 -> 400, ErrorType.InvalidRequest
        | 401 -> 401, ErrorType.Authentication
        | 402
        | 403 -> 403, ErrorType.Permission
        | 404 -> 404, ErrorType.NotFound
        | 413 -> 413, ErrorType.RequestTooLarge
        | 429 -> 429, ErrorType.RateLimit
        | 503
        | 529 -> 529, ErrorType.Overloaded
        | 504 -> 504, ErrorType.Timeout
        | status when status >= 500 -> status, ErrorType.Api
        | status -> status, ErrorType.InvalidRequest

    /// An OpenAI error object (`{"message","type","code"}`, or a bare string) → the Anthropic type and message.
    /// Context overflows are worded as Anthropic words them (`prompt is too long: N tokens > M maximum`), the
    /// wording Claude Code compacts on (protocols.md §6.8); other messages are kept word for word.
    let describeError (status: int) (error: JsonElement voption) (fallback: string) : int * ErrorType * string =
        let message, code =
            match error with
            | ValueSome error when error.ValueKind = JsonValueKind.String -> error.GetString() |> string, None
            | ValueSome error ->
                (JsonRead.tryString error "message" |> Option.defaultValue fallback),
                (JsonRead.tryString error "code"
                 |> Option.orElse (
                     match JsonRead.tryProperty error "code" with
                     | ValueSome code when code.ValueKind = JsonValueKind.Number -> Some(code.GetRawText())
                     | _ -> None
                 ))
            | ValueNone -> fallback, None

        let status, errorType = errorOfStatus status

        if isOverflow code message then
            let wording =
                match overflowNumbers message with
                | Some(prompt, limit) -> $"prompt is too long: %d{prompt} tokens > %d{limit} maximum"
                | None -> "prompt is too long: " + message

            400, ErrorType.InvalidRequest, wording
        else
            status, errorType, message

    /// An error answer (any status ≥ 400, or a 200 whose body is only an `error`) in the Anthropic shape:
    /// `(status, envelope)`. A body that already is an Anthropic envelope goes out as it is.
    let errorBody (status: int) (body: ReadOnlySpan<byte>) : int * byte array =
        let text = Text.Encoding.UTF8.GetString(body).Trim()

        let fallback =
            if text = "" then
                $"upstream answered HTTP %d{status}"
            else
                text

        let parsed =
            try
                Some(JsonDocument.Parse(text, documentOptions))
            with :? JsonException ->
                None

        match parsed with
        | Some document ->
            use document = document
            let root = document.RootElement

            if JsonRead.tryString root "type" = Some "error" then
                status, body.ToArray()
            else
                let status = if status < 400 then 502 else status

                let status, errorType, message =
                    describeError status (JsonRead.tryProperty root "error") fallback

                status, ErrorEnvelope.toJson errorType message
        | None ->
            let status, errorType, message =
                describeError (if status < 400 then 502 else status) ValueNone fallback

            status, ErrorEnvelope.toJson errorType message

    // ---------------------------
    // The JSON answer
    // ---------------------------

    /// A `chat.completion` JSON answer as an Anthropic `Message` (`(status, body)`); an answer that is not one
    /// (an `error` body, something else) as an Anthropic error.
    let ofJson (plan: ChatAnswerPlan) (body: ReadOnlySpan<byte>) : int * byte array =
        let parsed =
            try
                Some(JsonDocument.Parse(ReadOnlyMemory(body.ToArray()), documentOptions))
            with :? JsonException ->
                None

        match parsed with
        | None -> errorBody 502 body
        | Some document ->
            use document = document
            let root = document.RootElement

            let choice =
                match JsonRead.tryProperty root "choices" with
                | ValueSome choices when choices.ValueKind = JsonValueKind.Array && choices.GetArrayLength() > 0 ->
                    ValueSome(choices[0])
                | _ -> ValueNone

            match choice, JsonRead.tryProperty root "error" with
            | ValueSome choice, _ ->
                // an absent message reads as an empty one (`default` is an Undefined element: no properties)
                let message =
                    JsonRead.tryProperty choice "message"
                    |> ValueOption.defaultValue Unchecked.defaultof<JsonElement>

                let thinking =
                    match reasoningOf plan message with
                    | Some text when text.Length > 0 -> [ AnswerBlock.Thinking(text, AnthropicOut.ReasoningSignature) ]
                    | _ -> []

                let text =
                    match JsonRead.tryString message "content" with
                    | Some text when text.Length > 0 -> [ AnswerBlock.Text text ]
                    | _ -> []

                let tools =
                    match JsonRead.tryProperty message "tool_calls" with
                    | ValueSome calls when calls.ValueKind = JsonValueKind.Array ->
                        calls.EnumerateArray()
                        |> Seq.mapi (fun i call ->
                            let func = JsonRead.tryProperty call "function"

                            let name =
                                func
                                |> ValueOption.bind (fun f -> JsonRead.tryString f "name" |> ValueOption.ofOption)
                                |> ValueOption.defaultValue ""

                            let arguments =
                                func
                                |> ValueOption.bind (fun f -> JsonRead.tryString f "arguments" |> ValueOption.ofOption)
                                |> ValueOption.defaultValue ""

                            AnswerBlock.ToolUse(
                                JsonRead.tryString call "id" |> Option.defaultValue $"toolu_cc_%d{i}",
                                ToolName.original plan.ToolNames name,
                                toolInput arguments
                            ))
                        |> List.ofSeq
                    | _ -> []

                let usage =
                    match JsonRead.tryProperty root "usage" with
                    | ValueSome usage -> usageOf usage
                    | ValueNone -> {
                        Usage.zero with
                            InputTokens = int64 plan.EstimatedInputTokens
                      }

                let finish = JsonRead.tryString choice "finish_reason" |> Option.defaultValue "stop"

                200,
                AnthropicOut.message {
                    Id = JsonRead.tryString root "id" |> Option.defaultValue "msg_cc_relay"
                    Model = plan.Model
                    Content = thinking @ text @ tools
                    StopReason = stopReason finish (not tools.IsEmpty)
                    Usage = usage
                }
            | ValueNone, ValueSome _ -> errorBody 502 body
            | ValueNone, ValueNone -> 502, ErrorEnvelope.toJson ErrorType.Api "the upstream's answer has no choices"
