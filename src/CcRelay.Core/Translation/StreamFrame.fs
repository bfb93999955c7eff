namespace CcRelay.Core

open System.Text.Json

/// What the stream translators share around their own state machines: which SSE events they read and how one
/// event's JSON is read (not JSON, an in-stream `error` object, or a chunk) for Chat Completions and Gemini, and
/// for all three the end of an answer (`message_delta`, `message_stop`).
[<RequireQualifiedAccess>]
module internal StreamFrame =

    let private documentOptions = JsonDocumentOptions(MaxDepth = 512)

    /// Folds the data of each event in `events` the translator reads through `handle`, in order: unnamed,
    /// `message` and `error` events (some servers name their error events; the data says the rest).
    let fold
        (handle: 'State -> string -> 'State * AnthropicEvent list)
        (state: 'State)
        (events: SseEvent list)
        : 'State * AnthropicEvent list =
        events
        |> List.fold
            (fun (state, out) sse ->
                match sse.Event with
                | Some name when name <> "message" && name <> "error" -> state, out
                | _ ->
                    let state, more = handle state sse.Data
                    state, out @ more)
            (state, [])

    /// The end of an answer: `message_delta` with `stop` and the upstream's `usage` — or, when it gave none, the
    /// request's input estimate and the answer's characters / 4 — then `message_stop`.
    let ending (stop: string) (usage: Usage option) (estimatedInput: int) (outputChars: int64) : AnthropicEvent list =
        let usage =
            usage
            |> Option.defaultValue {
                Usage.zero with
                    InputTokens = int64 estimatedInput
                    OutputTokens = (outputChars + 3L) / 4L
            }

        [ AnthropicEvent.MessageDelta(stop, usage); AnthropicEvent.MessageStop ]

    /// One event's data read: `malformed` with the reason when it is not JSON or not an object; `failed` with the
    /// `error` object's status (its numeric `code`, else 500) and the object when the upstream sent a failure in the
    /// stream; else `chunk` with the object. The elements are valid only during the call.
    let read
        (data: string)
        (malformed: string -> 'Result)
        (failed: int -> JsonElement -> 'Result)
        (chunk: JsonElement -> 'Result)
        : 'Result =
        let parsed =
            try
                Ok(JsonDocument.Parse(data, documentOptions))
            with :? JsonException as e ->
                Error e.Message

        match parsed with
        | Error reason -> malformed $"malformed chunk from the upstream: %s{reason}"
        | Ok document ->
            use document = document
            let root = document.RootElement

            match JsonRead.tryProperty root "error" with
            | ValueSome error ->
                let status =
                    match JsonRead.tryProperty error "code" with
                    | ValueSome code when code.ValueKind = JsonValueKind.Number -> code.GetInt32()
                    | _ -> 500

                failed status error
            | ValueNone when root.ValueKind <> JsonValueKind.Object ->
                malformed "malformed chunk from the upstream: not a JSON object"
            | ValueNone -> chunk root
