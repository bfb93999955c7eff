namespace CcRelay.Core

open System
open System.Text.Json

/// What reading a Responses answer back into the Anthropic shape needs from its request.
type ResponsesAnswerPlan = {
    /// The model the client asked for: the answer's `model`, whatever the upstream names (as for
    /// `ChatAnswerPlan.Model`: Claude Code drops the thinking of an answer naming another model from its next
    /// request, and with it the encrypted reasoning carried in it).
    Model: string
    /// The translated request's input estimate (`message_start`, and the usage when the upstream gives none).
    EstimatedInputTokens: int
    /// Tool names changed for the target → the client's.
    ToolNames: Map<string, string>
    /// The family of the provider that answers: it mints the reasoning envelopes (`ReasoningEnvelope`).
    Family: string
}

/// OpenAI Responses answers (JSON, errors) → Anthropic (protocols.md §6.5.5), and what the stream state
/// machine shares with it.
[<RequireQualifiedAccess>]
module ResponsesAnswer =

    let private documentOptions = JsonDocumentOptions(MaxDepth = 512)

    /// A Responses `usage` in Anthropic's meaning: `input_tokens` includes `cached_tokens`, which Anthropic
    /// counts apart (`cache_read_input_tokens`); `output_tokens` already includes the reasoning tokens.
    let usageOf (usage: JsonElement) : Usage =
        let usage = ValueSome usage
        let input = JsonRead.tokens usage "input_tokens"

        let cached =
            min
                input
                (JsonRead.tokens
                    (usage
                     |> ValueOption.bind (fun u -> JsonRead.tryProperty u "input_tokens_details"))
                    "cached_tokens")

        {
            InputTokens = input - cached
            OutputTokens = JsonRead.tokens usage "output_tokens"
            CacheReadTokens = cached
            CacheWriteTokens = 0L
        }

    /// A finished response's `stop_reason`: from its status and `incomplete_details.reason`, whether it called
    /// tools and whether it refused.
    let stopReason (status: string) (incompleteReason: string option) (calledTools: bool) (refused: bool) : string =
        match status, incompleteReason with
        | "incomplete", Some "max_output_tokens" -> "max_tokens"
        | "incomplete", Some "content_filter" -> "refusal"
        | _ when refused -> "refusal"
        | _ when calledTools -> "tool_use"
        | _ -> "end_turn"

    /// The status the relay would answer for a Responses error `code` (`response.failed`, an `error` event).
    let private statusOfCode (code: string option) : int =
        match code with
        | Some "rate_limit_exceeded" -> 429
        | Some("server_error" | "vector_store_timeout") -> 500
        | Some code when code.StartsWith("invalid_", StringComparison.Ordinal) -> 400
        | Some "context_length_exceeded" -> 400
        | _ -> 500

    /// A Responses error object (`response.error`, an `error` event: `{code, message}`) → the Anthropic type
    /// and message (overflows worded as Anthropic words them).
    let describeError (error: JsonElement) : ErrorType * string =
        let code = JsonRead.tryString error "code"

        let _, errorType, message =
            ChatAnswer.describeError (statusOfCode code) (ValueSome error) "the upstream failed"

        errorType, message

    /// The thinking block of a `reasoning` output item: its summary (or raw reasoning) text, parts joined by
    /// a blank line, and its envelope as the signature; None when it carries neither.
    let thinkingOf (plan: ResponsesAnswerPlan) (item: JsonElement) : AnswerBlock option =
        let texts (name: string) =
            match JsonRead.tryProperty item name with
            | ValueSome parts when parts.ValueKind = JsonValueKind.Array ->
                parts.EnumerateArray()
                |> Seq.choose (fun p -> JsonRead.tryString p "text")
                |> List.ofSeq
            | _ -> []

        let text =
            match texts "summary" with
            | [] -> texts "content"
            | summary -> summary
            |> String.concat "\n\n"

        let signature =
            match JsonRead.tryString item "id", JsonRead.tryString item "encrypted_content" with
            | Some id, Some encrypted when encrypted.Length > 0 -> ReasoningEnvelope.mint plan.Family id encrypted
            | _ -> ""

        if text.Length = 0 && signature.Length = 0 then
            None
        else
            Some(AnswerBlock.Thinking(text, signature))

    /// A `response` object as an Anthropic `Message`; a failed one as an Anthropic error.
    let ofResponse (plan: ResponsesAnswerPlan) (response: JsonElement) : int * byte array =
        match JsonRead.tryString response "status", JsonRead.tryProperty response "error" with
        | Some "failed", error
        | _, (ValueSome _ as error) ->
            let errorType, message =
                match error with
                | ValueSome error -> describeError error
                | ValueNone -> ErrorType.Api, "the upstream's response failed"

            let status =
                match errorType with
                | ErrorType.RateLimit -> 429
                | ErrorType.InvalidRequest -> 400
                | _ -> 502

            status, ErrorEnvelope.toJson errorType message
        | status, ValueNone ->
            let mutable refused = false

            let blocks =
                match JsonRead.tryProperty response "output" with
                | ValueSome output when output.ValueKind = JsonValueKind.Array ->
                    output.EnumerateArray()
                    |> Seq.collect (fun item ->
                        match JsonRead.tryString item "type" with
                        | Some "reasoning" -> thinkingOf plan item |> Option.toList
                        | Some "message" ->
                            match JsonRead.tryProperty item "content" with
                            | ValueSome parts when parts.ValueKind = JsonValueKind.Array ->
                                parts.EnumerateArray()
                                |> Seq.choose (fun part ->
                                    match JsonRead.tryString part "type" with
                                    | Some "output_text" -> JsonRead.tryString part "text"
                                    | Some "refusal" ->
                                        refused <- true
                                        JsonRead.tryString part "refusal"
                                    | _ -> None)
                                |> Seq.filter (fun text -> text.Length > 0)
                                |> Seq.map AnswerBlock.Text
                                |> List.ofSeq
                            | _ -> []
                        | Some "function_call" -> [
                            AnswerBlock.ToolUse(
                                JsonRead.tryString item "call_id"
                                |> Option.orElse (JsonRead.tryString item "id")
                                |> Option.defaultValue "toolu_cc_relay",
                                ToolName.original
                                    plan.ToolNames
                                    (JsonRead.tryString item "name" |> Option.defaultValue ""),
                                ChatAnswer.toolInput (JsonRead.tryString item "arguments" |> Option.defaultValue "")
                            )
                          ]
                        | _ -> [])
                    |> List.ofSeq
                | _ -> []

            let calledTools = blocks |> List.exists (fun b -> b.IsToolUse)

            let incomplete =
                JsonRead.tryProperty response "incomplete_details"
                |> ValueOption.bind (fun d -> JsonRead.tryString d "reason" |> ValueOption.ofOption)
                |> ValueOption.toOption

            let usage =
                match JsonRead.tryProperty response "usage" with
                | ValueSome usage -> usageOf usage
                | ValueNone -> {
                    Usage.zero with
                        InputTokens = int64 plan.EstimatedInputTokens
                  }

            200,
            AnthropicOut.message {
                Id = JsonRead.tryString response "id" |> Option.defaultValue "msg_cc_relay"
                Model = plan.Model
                Content = blocks
                StopReason = stopReason (defaultArg status "completed") incomplete calledTools refused
                Usage = usage
            }

    /// The message of a 400 refusing a reasoning item given back (`invalid_encrypted_content`: another
    /// organisation's ciphertext, or a damaged one; an item id that does not match): it is worded as Anthropic
    /// words a rejected thinking signature, so that the relay retries once without thinking (`Affinity`) and
    /// Claude Code, if it sees it, strips its thinking blocks and retries (protocols.md §6.8).
    let private reasoningRejected (status: int) (body: ReadOnlySpan<byte>) : string option =
        if status <> 400 then
            None
        else
            try
                use document = JsonDocument.Parse(ReadOnlyMemory(body.ToArray()), documentOptions)

                match JsonRead.tryProperty document.RootElement "error" with
                | ValueSome error when error.ValueKind = JsonValueKind.Object ->
                    let message = JsonRead.tryString error "message" |> Option.defaultValue ""

                    if
                        JsonRead.tryString error "code" = Some "invalid_encrypted_content"
                        || message.Contains("encrypted content", StringComparison.OrdinalIgnoreCase)
                    then
                        Some message
                    else
                        None
                | _ -> None
            with :? JsonException ->
                None

    /// A Responses JSON answer (`(status, body)` from the upstream) in the Anthropic shape: an error status as
    /// an Anthropic error (as Chat Completions errors: the same `{"error": {…}}` shape), a response as a Message.
    let ofJson (plan: ResponsesAnswerPlan) (status: int) (body: ReadOnlySpan<byte>) : int * byte array =
        if status >= 400 then
            match reasoningRejected status body with
            | Some message ->
                400,
                ErrorEnvelope.toJson ErrorType.InvalidRequest ("Invalid `signature` in `thinking` block: " + message)
            | None -> ChatAnswer.errorBody status body
        else
            let parsed =
                try
                    Some(JsonDocument.Parse(ReadOnlyMemory(body.ToArray()), documentOptions))
                with :? JsonException ->
                    None

            match parsed with
            | None -> ChatAnswer.errorBody 502 body
            | Some document ->
                use document = document
                let root = document.RootElement

                if
                    root.ValueKind = JsonValueKind.Object
                    && (JsonRead.tryProperty root "output").IsSome
                then
                    ofResponse plan root
                else
                    ChatAnswer.errorBody 502 body
