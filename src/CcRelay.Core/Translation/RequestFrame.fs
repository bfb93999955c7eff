namespace CcRelay.Core

open System
open System.Buffers
open System.Text.Encodings.Web
open System.Text.Json

/// An Anthropic request translated for another API (Chat Completions, Responses, Gemini).
type TranslatedRequest = {
    /// The target's request body.
    Body: byte array
    /// What the request asked for that the target cannot take and the relay left out, by capability
    /// (`cache_control`, `web_search`, `document`, `top_k`, `thinking`, …), each once, in the order met.
    Dropped: string list
    /// Tool names changed for the target (its spelling → the client's), to restore them in the answer.
    ToolNames: Map<string, string>
    /// Input tokens estimated from the translated request: its bytes / 4.5 without image data, plus a fixed
    /// cost per image (protocols.md §6.8). Base64 data would count an image as hundreds of thousands of tokens.
    EstimatedInputTokens: int
}

/// What one request translation collects on its way (local to one `translate` call of a request translator): what
/// the target cannot take and was left out, the tool names changed for the target, and the image data the input
/// estimate leaves out.
type internal RequestNotes = {
    /// Each capability once, in the order met.
    Dropped: ResizeArray<string>
    /// The target's spelling of a tool name → the client's.
    Names: Collections.Generic.Dictionary<string, string>
    mutable Images: int
    /// Bytes of the target's body the estimate leaves out: image and file data, encrypted reasoning.
    mutable ImageBytes: int64
}

/// What every request translator (Chat Completions, Responses, Gemini) shares around its own mapping: the
/// client's body parsed and checked (a JSON object with a `messages` array), the target's request written into
/// one buffer, and the input-token estimate of what was written.
[<RequireQualifiedAccess>]
module internal RequestFrame =

    /// What one image costs in the input estimate (about Anthropic's figure for a 1.15-megapixel image).
    [<Literal>]
    let ImageTokens = 1600

    let private writerOptions =
        JsonWriterOptions(Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, Indented = false)

    let private documentOptions =
        JsonDocumentOptions(MaxDepth = 512, CommentHandling = JsonCommentHandling.Disallow)

    /// Parses `body` and gives `translate` its root object and its `messages` array (both valid only during the
    /// call); an error names what is wrong with the body.
    let read
        (body: ReadOnlySpan<byte>)
        (translate: JsonElement -> JsonElement -> Result<'Translation, string>)
        : Result<'Translation, string> =
        let bytes = body.ToArray()

        let parsed =
            try
                Ok(JsonDocument.Parse(ReadOnlyMemory bytes, documentOptions))
            with :? JsonException as e ->
                Error $"request body is not valid JSON: %s{e.Message}"

        parsed
        |> Result.bind (fun document ->
            use document = document
            let root = document.RootElement

            if root.ValueKind <> JsonValueKind.Object then
                Error "request body must be a JSON object"
            else
                match JsonRead.tryProperty root "messages" with
                | ValueSome messages when messages.ValueKind = JsonValueKind.Array -> translate root messages
                | _ -> Error "messages: field required (an array of messages)")

    /// The target's request as `write` writes it, in a buffer sized for a client body of `bodyLength` bytes.
    let write (bodyLength: int) (write: Utf8JsonWriter -> unit) : byte array =
        let buffer = ArrayBufferWriter<byte>(max 256 (bodyLength + 256))

        do
            use writer = new Utf8JsonWriter(buffer, writerOptions)
            write writer
            writer.Flush()

        buffer.WrittenSpan.ToArray()

    /// Input tokens estimated from a translated request of `written` bytes, `imageBytes` of them image data:
    /// the rest / 4.5 (rounded up), plus `ImageTokens` per image (protocols.md §6.8). 4.5 bytes per token: Claude
    /// Code's translated main-loop requests measured 4.56–4.85 bytes per `o200k_base` token (docs/providers.md, “The
    /// input estimate in `message_start`”), so the estimate stays just above the count; / 4 overshot by 14–21 %.
    let estimate (written: int) (imageBytes: int64) (images: int) : int =
        int (min (int64 Int32.MaxValue) (((int64 written - imageBytes) * 2L + 8L) / 9L + int64 (images * ImageTokens)))

    /// Nothing collected yet.
    let notes () : RequestNotes = {
        Dropped = ResizeArray()
        Names = Collections.Generic.Dictionary()
        Images = 0
        ImageBytes = 0L
    }

    /// Reports `capability` as left out (once).
    let drop (notes: RequestNotes) (capability: string) : unit =
        if not (notes.Dropped.Contains capability) then
            notes.Dropped.Add capability

    /// The target's name for tool `name` (`forTarget`: the target's rule, e.g. `ToolName.forTarget`), remembered
    /// when it differs so that the answer gives the client's name back.
    let toolName (forTarget: string -> string) (notes: RequestNotes) (name: string) : string =
        let target = forTarget name

        if target <> name then
            notes.Names[target] <- name

        target

    /// Reports `cache_control` when `element` (a block, a tool) carries one: no translated target takes it.
    let noteCacheControl (notes: RequestNotes) (element: JsonElement) : unit =
        if (JsonRead.tryProperty element "cache_control").IsSome then
            drop notes "cache_control"

    /// Reports `thinking_blocks` when an assistant turn's `block`, left out of the target's request, carried reasoning:
    /// a `thinking` block with a signature (another family's, Anthropic's above all, or the target's own when a
    /// pipeline turns the echo off) or a `redacted_thinking` block with data. The relay's unsigned keep-alive block
    /// carries nothing and is not reported, as on the Anthropic-shaped path (`ThinkingTurn`).
    let noteThinkingLeftOut (notes: RequestNotes) (block: JsonElement) : unit =
        let proof =
            match JsonRead.tryString block "type" with
            | Some "thinking" -> JsonRead.tryString block "signature"
            | Some "redacted_thinking" -> JsonRead.tryString block "data"
            | _ -> None

        match proof with
        | Some proof when proof.Length > 0 -> drop notes "thinking_blocks"
        | _ -> ()

    /// The text of a mid-conversation system message (Claude Code's `mid-conversation-system` beta: `{role:
    /// "system"}` among the messages): a string, or its text blocks joined by `\n`; any other block is reported by its
    /// type, a `cache_control` too.
    let systemMessageText (notes: RequestNotes) (content: JsonElement) : string =
        match content.ValueKind with
        | JsonValueKind.String -> content.GetString() |> string
        | JsonValueKind.Array ->
            content.EnumerateArray()
            |> Seq.choose (fun block ->
                noteCacheControl notes block

                match JsonRead.tryString block "type" with
                | Some "text" -> JsonRead.tryString block "text"
                | Some other ->
                    drop notes other
                    None
                | None -> None)
            |> List.ofSeq
            |> String.concat "\n"
        | _ -> ""

    /// The translation of a request whose target body is `body`, with what the translator collected.
    let translated (body: byte array) (notes: RequestNotes) : TranslatedRequest = {
        Body = body
        Dropped = List.ofSeq notes.Dropped
        ToolNames = notes.Names |> Seq.map (fun kv -> kv.Key, kv.Value) |> Map.ofSeq
        EstimatedInputTokens = estimate body.Length notes.ImageBytes notes.Images
    }
