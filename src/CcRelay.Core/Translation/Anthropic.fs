namespace CcRelay.Core

open System
open System.Buffers
open System.Text.Encodings.Web
open System.Text.Json

/// The kind of content block a translated answer starts (protocols.md §1.6).
[<RequireQualifiedAccess>]
type StartedBlock =
    | Text
    | Thinking
    | ToolUse of Id: string * Name: string

/// One Anthropic stream event that a translated answer produces, in the order the client receives them.
/// Every target's state machine (Chat Completions now; Responses and Gemini later) emits these, and
/// `AnthropicOut.sse` writes them, so the events a client sees are spelled in one place.
[<RequireQualifiedAccess>]
type AnthropicEvent =
    /// `message_start`, with the relay's estimate of the input tokens (protocols.md §6.8).
    | MessageStart of Id: string * Model: string * EstimatedInputTokens: int64
    | BlockStart of Index: int * Block: StartedBlock
    | TextDelta of Index: int * Text: string
    | ThinkingDelta of Index: int * Thinking: string
    | SignatureDelta of Index: int * Signature: string
    | InputJsonDelta of Index: int * PartialJson: string
    | BlockStop of Index: int
    /// `message_delta` with the stop reason and the cumulative usage, in Anthropic's meaning.
    | MessageDelta of StopReason: string * Usage: Usage
    | MessageStop
    /// `error`: the stream failed; nothing follows it.
    | Error of ErrorType: ErrorType * Message: string

/// One content block of a translated, whole (non-streaming) answer.
[<RequireQualifiedAccess>]
type AnswerBlock =
    | Thinking of Thinking: string * Signature: string
    | Text of Text: string
    /// `Input` is a JSON object, already valid.
    | ToolUse of Id: string * Name: string * Input: string

/// A translated, whole answer: Anthropic's `Message`.
type AnswerMessage = {
    Id: string
    Model: string
    Content: AnswerBlock list
    StopReason: string
    Usage: Usage
}

/// Writes what translated answers send to the client: Anthropic SSE events and `Message` JSON.
[<RequireQualifiedAccess>]
module AnthropicOut =

    /// The signature the relay gives a thinking block it made from a translated target's reasoning. A later
    /// request that replays a block with it gets its text echoed back to the target as reasoning; any other
    /// signature (Anthropic's own) is never sent to a translated target. Anthropic rejects it as an invalid
    /// signature, which the thinking-signature affinity already handles (`Affinity`).
    [<Literal>]
    let ReasoningSignature = "cc-relay:reasoning:v1"

    // NOTE: relaxed escaping keeps non-ASCII text as UTF-8 (a Chinese answer escaped as \uXXXX is six times the
    // bytes); the JSON is as valid, and the client is not an HTML page.
    let private writerOptions =
        JsonWriterOptions(Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, Indented = false)

    let private usageObject (writer: Utf8JsonWriter) (name: string) (usage: Usage) : unit =
        writer.WriteStartObject name
        writer.WriteNumber("input_tokens", usage.InputTokens)
        writer.WriteNumber("cache_creation_input_tokens", usage.CacheWriteTokens)
        writer.WriteNumber("cache_read_input_tokens", usage.CacheReadTokens)
        writer.WriteNumber("output_tokens", usage.OutputTokens)
        writer.WriteEndObject()

    let private eventName (event: AnthropicEvent) : string =
        match event with
        | AnthropicEvent.MessageStart _ -> "message_start"
        | AnthropicEvent.BlockStart _ -> "content_block_start"
        | AnthropicEvent.TextDelta _
        | AnthropicEvent.ThinkingDelta _
        | AnthropicEvent.SignatureDelta _
        | AnthropicEvent.InputJsonDelta _ -> "content_block_delta"
        | AnthropicEvent.BlockStop _ -> "content_block_stop"
        | AnthropicEvent.MessageDelta _ -> "message_delta"
        | AnthropicEvent.MessageStop -> "message_stop"
        | AnthropicEvent.Error _ -> "error"

    let private delta (writer: Utf8JsonWriter) (index: int) (kind: string) (field: string) (value: string) =
        writer.WriteNumber("index", index)
        writer.WriteStartObject "delta"
        writer.WriteString("type", kind)
        writer.WriteString(field, value)
        writer.WriteEndObject()

    let private data (writer: Utf8JsonWriter) (event: AnthropicEvent) : unit =
        writer.WriteStartObject()
        writer.WriteString("type", eventName event)

        match event with
        | AnthropicEvent.MessageStart(id, model, estimate) ->
            writer.WriteStartObject "message"
            writer.WriteString("id", id)
            writer.WriteString("type", "message")
            writer.WriteString("role", "assistant")
            writer.WriteString("model", model)
            writer.WriteStartArray "content"
            writer.WriteEndArray()
            writer.WriteNull "stop_reason"
            writer.WriteNull "stop_sequence"

            usageObject writer "usage" {
                Usage.zero with
                    InputTokens = estimate
            }

            writer.WriteEndObject()
        | AnthropicEvent.BlockStart(index, block) ->
            writer.WriteNumber("index", index)
            writer.WriteStartObject "content_block"

            match block with
            | StartedBlock.Text ->
                writer.WriteString("type", "text")
                writer.WriteString("text", "")
            | StartedBlock.Thinking ->
                writer.WriteString("type", "thinking")
                writer.WriteString("thinking", "")
                writer.WriteString("signature", "")
            | StartedBlock.ToolUse(id, name) ->
                writer.WriteString("type", "tool_use")
                writer.WriteString("id", id)
                writer.WriteString("name", name)
                writer.WriteStartObject "input"
                writer.WriteEndObject()

            writer.WriteEndObject()
        | AnthropicEvent.TextDelta(index, text) -> delta writer index "text_delta" "text" text
        | AnthropicEvent.ThinkingDelta(index, text) -> delta writer index "thinking_delta" "thinking" text
        | AnthropicEvent.SignatureDelta(index, signature) -> delta writer index "signature_delta" "signature" signature
        | AnthropicEvent.InputJsonDelta(index, json) -> delta writer index "input_json_delta" "partial_json" json
        | AnthropicEvent.BlockStop index -> writer.WriteNumber("index", index)
        | AnthropicEvent.MessageDelta(stopReason, usage) ->
            writer.WriteStartObject "delta"
            writer.WriteString("stop_reason", stopReason)
            writer.WriteNull "stop_sequence"
            writer.WriteEndObject()
            usageObject writer "usage" usage
        | AnthropicEvent.MessageStop -> ()
        | AnthropicEvent.Error(errorType, message) ->
            writer.WriteStartObject "error"
            writer.WriteString("type", ErrorEnvelope.wireName errorType)
            writer.WriteString("message", message)
            writer.WriteEndObject()

        writer.WriteEndObject()

    /// Appends one event as SSE (`event: …\ndata: {…}\n\n`) to `buffer`.
    let writeSse (buffer: ArrayBufferWriter<byte>) (event: AnthropicEvent) : unit =
        buffer.Write("event: "B)
        buffer.Write(Text.Encoding.UTF8.GetBytes(eventName event))
        buffer.Write("\ndata: "B)

        do
            use writer = new Utf8JsonWriter(buffer, writerOptions)
            data writer event
            writer.Flush()

        buffer.Write("\n\n"B)

    /// The events as SSE bytes, in order.
    let sse (events: AnthropicEvent list) : byte array =
        match events with
        | [] -> Array.Empty()
        | events ->
            let buffer = ArrayBufferWriter<byte>(256)

            for event in events do
                writeSse buffer event

            buffer.WrittenSpan.ToArray()

    /// The answer as Anthropic `Message` JSON.
    let message (answer: AnswerMessage) : byte array =
        let buffer = ArrayBufferWriter<byte>(512)

        do
            use writer = new Utf8JsonWriter(buffer, writerOptions)
            writer.WriteStartObject()
            writer.WriteString("id", answer.Id)
            writer.WriteString("type", "message")
            writer.WriteString("role", "assistant")
            writer.WriteString("model", answer.Model)
            writer.WriteStartArray "content"

            for block in answer.Content do
                writer.WriteStartObject()

                match block with
                | AnswerBlock.Thinking(thinking, signature) ->
                    writer.WriteString("type", "thinking")
                    writer.WriteString("thinking", thinking)
                    writer.WriteString("signature", signature)
                | AnswerBlock.Text text ->
                    writer.WriteString("type", "text")
                    writer.WriteString("text", text)
                | AnswerBlock.ToolUse(id, name, input) ->
                    writer.WriteString("type", "tool_use")
                    writer.WriteString("id", id)
                    writer.WriteString("name", name)
                    writer.WritePropertyName "input"
                    writer.WriteRawValue(input, skipInputValidation = false)

                writer.WriteEndObject()

            writer.WriteEndArray()
            writer.WriteString("stop_reason", answer.StopReason)
            writer.WriteNull "stop_sequence"
            usageObject writer "usage" answer.Usage
            writer.WriteEndObject()
            writer.Flush()

        buffer.WrittenSpan.ToArray()

    /// `{"input_tokens": N}`: a `count_tokens` answer.
    let countTokens (inputTokens: int) : byte array =
        Text.Encoding.UTF8.GetBytes($"{{\"input_tokens\":%d{inputTokens}}}")
