namespace CcRelay.Core

open System
open System.Text.Json

/// What reading a Gemini answer back into the Anthropic shape needs from its request.
type GeminiAnswerPlan = {
    /// The model the client asked for: the answer's `model`, whatever Gemini's `modelVersion` says. Claude Code
    /// drops the thinking blocks of an answer whose model is not the one it asked for from the next turn's
    /// history, and with them the thought signatures Gemini 3 wants back (tests/E2E `gemini`).
    Model: string
    /// The translated request's input estimate: `message_start`'s `input_tokens`, and the final usage when
    /// Gemini reports none.
    EstimatedInputTokens: int
    /// Function names changed for Gemini → the client's (`TranslatedRequest.ToolNames`).
    ToolNames: Map<string, string>
}

/// Gemini's stop reasons, usage and errors in Anthropic's terms (protocols.md §6.6.5–6.6.7), and its
/// `countTokens` answer.
[<RequireQualifiedAccess>]
module GeminiAnswer =

    let private documentOptions = JsonDocumentOptions(MaxDepth = 512)

    /// `finishReason` → `stop_reason`. A turn that called functions is `tool_use` whatever the reason (Gemini
    /// says `STOP`), unless it was cut (`MAX_TOKENS`) or blocked.
    let stopReason (finishReason: string) (calledTools: bool) : string =
        match finishReason with
        | "MAX_TOKENS" -> "max_tokens"
        | "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" -> "refusal"
        | _ when calledTools -> "tool_use"
        | _ -> "end_turn"

    /// `usageMetadata` in Anthropic's meaning: `input_tokens` = prompt + tool-use prompt − cached;
    /// `cache_read_input_tokens` = cached; `output_tokens` = candidates + thoughts (reported outside candidates).
    let usageOf (usage: JsonElement) : Usage =
        let prompt =
            JsonRead.tokens (ValueSome usage) "promptTokenCount"
            + JsonRead.tokens (ValueSome usage) "toolUsePromptTokenCount"

        let cached =
            min (JsonRead.tokens (ValueSome usage) "cachedContentTokenCount") prompt

        {
            InputTokens = prompt - cached
            OutputTokens =
                JsonRead.tokens (ValueSome usage) "candidatesTokenCount"
                + JsonRead.tokens (ValueSome usage) "thoughtsTokenCount"
            CacheReadTokens = cached
            CacheWriteTokens = 0L
        }

    // ---------------------------
    // Errors
    // ---------------------------

    /// Google's `status` (else the HTTP status) → the relay's status and the Anthropic error type.
    let errorOf (status: int) (googleStatus: string option) (message: string) : int * ErrorType =
        match googleStatus with
        | Some "INVALID_ARGUMENT" when message.Contains("API key", StringComparison.OrdinalIgnoreCase) ->
            401, ErrorType.Authentication
        | Some "INVALID_ARGUMENT" -> 400, ErrorType.InvalidRequest
        | Some "FAILED_PRECONDITION" -> 403, ErrorType.Permission
        | Some "UNAUTHENTICATED" -> 401, ErrorType.Authentication
        | Some "PERMISSION_DENIED" -> 403, ErrorType.Permission
        | Some "NOT_FOUND" -> 404, ErrorType.NotFound
        | Some "RESOURCE_EXHAUSTED" -> 429, ErrorType.RateLimit
        | Some "UNAVAILABLE" -> 529, ErrorType.Overloaded
        | Some "DEADLINE_EXCEEDED" -> 504, ErrorType.Timeout
        | Some "INTERNAL" -> 500, ErrorType.Api
        | _ -> ChatAnswer.errorOfStatus status

    /// `The input token count (N) exceeds the maximum number of tokens allowed (M)` → Claude Code's
    /// compaction wording `prompt is too long: N tokens > M maximum` (protocols.md §6.8).
    let private overflow (message: string) : string option =
        if
            message.Contains("input token count", StringComparison.OrdinalIgnoreCase)
            && message.Contains("exceeds", StringComparison.OrdinalIgnoreCase)
        then
            let numbers =
                Text.RegularExpressions.Regex.Matches(message, "\\d+")
                |> Seq.choose (fun m ->
                    match Int64.TryParse m.Value with
                    | true, n -> Some n
                    | _ -> None)
                |> List.ofSeq

            match numbers with
            | prompt :: limit :: _ -> Some $"prompt is too long: %d{prompt} tokens > %d{limit} maximum"
            | _ -> Some("prompt is too long: " + message)
        else
            None

    /// A Google error object (`{"code","message","status","details"}`) → status, type and message.
    let describe (status: int) (error: JsonElement voption) (fallback: string) : int * ErrorType * string =
        let message, googleStatus =
            match error with
            | ValueSome error when error.ValueKind = JsonValueKind.Object ->
                (JsonRead.tryString error "message" |> Option.defaultValue fallback), JsonRead.tryString error "status"
            | _ -> fallback, None

        match overflow message with
        | Some wording -> 400, ErrorType.InvalidRequest, wording
        | None ->
            let status, errorType = errorOf status googleStatus message
            status, errorType, message

    let private parse (body: ReadOnlySpan<byte>) : JsonDocument option =
        try
            Some(JsonDocument.Parse(ReadOnlyMemory(body.ToArray()), documentOptions))
        with :? JsonException ->
            None

    /// An error answer in the Anthropic shape: `(status, envelope)`. Google's envelope is an object or, on
    /// some front ends, an array of one.
    let errorBody (status: int) (body: ReadOnlySpan<byte>) : int * byte array =
        let text = Text.Encoding.UTF8.GetString(body).Trim()

        let fallback =
            if text = "" then
                $"upstream answered HTTP %d{status}"
            else
                text

        let status = if status < 400 then 502 else status

        match parse body with
        | Some document ->
            use document = document

            let root =
                match document.RootElement.ValueKind with
                | JsonValueKind.Array when document.RootElement.GetArrayLength() > 0 -> document.RootElement[0]
                | _ -> document.RootElement

            if JsonRead.tryString root "type" = Some "error" then
                status, body.ToArray()
            else
                let status, errorType, message =
                    describe status (JsonRead.tryProperty root "error") fallback

                status, ErrorEnvelope.toJson errorType message
        | None ->
            let status, errorType = ChatAnswer.errorOfStatus status
            status, ErrorEnvelope.toJson errorType fallback

    /// The seconds a 429's `google.rpc.RetryInfo` asks to wait (`"retryDelay": "37s"`), rounded up.
    let retryAfterSeconds (body: ReadOnlySpan<byte>) : int option =
        match parse body with
        | Some document ->
            use document = document

            let root =
                match document.RootElement.ValueKind with
                | JsonValueKind.Array when document.RootElement.GetArrayLength() > 0 -> document.RootElement[0]
                | _ -> document.RootElement

            match
                JsonRead.tryProperty root "error"
                |> ValueOption.bind (fun e -> JsonRead.tryProperty e "details")
            with
            | ValueSome details when details.ValueKind = JsonValueKind.Array ->
                details.EnumerateArray()
                |> Seq.tryPick (fun detail ->
                    match JsonRead.tryString detail "retryDelay" with
                    | Some delay when delay.EndsWith('s') ->
                        match
                            Double.TryParse(
                                delay.TrimEnd('s'),
                                Globalization.NumberStyles.Float,
                                Globalization.CultureInfo.InvariantCulture
                            )
                        with
                        | true, seconds when seconds >= 0.0 && seconds < 86400.0 -> Some(int (ceil seconds))
                        | _ -> None
                    | _ -> None)
            | _ -> None
        | None -> None

    /// `countTokens`' `{"totalTokens": N}` as `{"input_tokens": N}`; None when the answer has no count.
    let countTokens (body: ReadOnlySpan<byte>) : byte array option =
        match parse body with
        | Some document ->
            use document = document

            match JsonRead.tryProperty document.RootElement "totalTokens" with
            | ValueSome total when total.ValueKind = JsonValueKind.Number ->
                match total.TryGetInt32() with
                | true, n when n >= 0 -> Some(AnthropicOut.countTokens n)
                | _ -> None
            | _ -> None
        | None -> None
