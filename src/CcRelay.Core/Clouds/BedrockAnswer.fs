namespace CcRelay.Core

open System
open System.Buffers
open System.Buffers.Text
open System.Text
open System.Text.Json

/// What one Bedrock event-stream message becomes on the Anthropic side.
[<RequireQualifiedAccess>]
type BedrockFrame =
    /// An Anthropic stream event, as the complete SSE bytes to relay and its `type`.
    | Event of Sse: byte array * EventType: string
    /// Nothing to relay (keep-alives, event types other than `chunk`, unknown message types).
    | Skip
    /// The stream failed: the status and error type to report, the upstream's message, and the SSE `error`
    /// event to send when the answer has already started. The stream ends after it.
    | Error of Status: int * ErrorType: ErrorType * Message: string * Sse: byte array

/// The Bedrock answer side (protocols.md §2.6, §2.7): Bedrock errors as Anthropic errors, InvokeModel
/// stream frames as Anthropic SSE, and the reverse (frames and exceptions) for the relay acting as Bedrock.
[<RequireQualifiedAccess>]
module BedrockAnswer =

    // ---------------------------
    // Errors (§2.7)
    // ---------------------------

    /// The §2.7 table, keyed by the exception name without `Exception`, lower-cased.
    /// NOTE: Bedrock's own server failures (InternalServer, ModelError, ModelStreamError) report 500, as the
    /// table says and as Anthropic reports its own; 502 is kept for what the relay cannot classify (an
    /// unknown name on a 5xx), the status `ErrorEnvelope` gives the relay's own upstream failures.
    /// NOTE: the credential failures (UnrecognizedClient, InvalidSignature, ExpiredToken, …) report
    /// authentication_error 401, as a bad upstream key on an Anthropic upstream does. MissingAuthenticationToken
    /// is left out on purpose: AWS also answers it for a wrong URL, so it falls back to its status (403).
    let private table: Map<string, int * ErrorType> =
        Map [
            "validation", (400, ErrorType.InvalidRequest)
            "servicequotaexceeded", (429, ErrorType.RateLimit)
            "throttling", (429, ErrorType.RateLimit)
            "accessdenied", (403, ErrorType.Permission)
            "resourcenotfound", (404, ErrorType.NotFound)
            "modeltimeout", (504, ErrorType.Timeout)
            "modelerror", (500, ErrorType.Api)
            "modelstreamerror", (500, ErrorType.Api)
            "internalserver", (500, ErrorType.Api)
            "modelnotready", (529, ErrorType.Overloaded)
            "serviceunavailable", (529, ErrorType.Overloaded)
            "unrecognizedclient", (401, ErrorType.Authentication)
            "invalidsignature", (401, ErrorType.Authentication)
            "incompletesignature", (401, ErrorType.Authentication)
            "expiredtoken", (401, ErrorType.Authentication)
            "invalidclienttokenid", (401, ErrorType.Authentication)
            "signaturedoesnotmatch", (401, ErrorType.Authentication)
        ]

    /// The bare exception name: no namespace (`aws.bedrock#`, `com.amazon.coral.service#`), no `:…` suffix
    /// (the `x-amzn-ErrorType` header appends a URL), no `Exception`, lower-cased.
    let private bareName (exceptionName: string) : string =
        let name = exceptionName.Trim()

        let name =
            match name.IndexOf ':' with
            | -1 -> name
            | colon -> name.Substring(0, colon)

        let name =
            match name.LastIndexOfAny [| '#'; '.' |] with
            | -1 -> name
            | separator -> name.Substring(separator + 1)

        let name =
            if name.EndsWith("Exception", StringComparison.OrdinalIgnoreCase) then
                name.Substring(0, name.Length - 9)
            else
                name

        name.Trim().ToLowerInvariant()

    /// The status and Anthropic error type of a known Bedrock exception name, in any of the spellings AWS
    /// uses (`ThrottlingException`, `throttlingException`, `ThrottlingException:http://…`,
    /// `com.amazon.coral.service#ThrottlingException`); None for a name the table does not know.
    let tryErrorOf (exceptionName: string) : (int * ErrorType) option =
        Map.tryFind (bareName exceptionName) table

    /// The status and Anthropic error type for an HTTP status alone: the 4xx Anthropic names keep their type
    /// (401, 403, 404, 413, 429), any other 4xx is invalid_request_error with that status, everything else
    /// (5xx, or a status that is not an error) is api_error 502.
    let errorOfStatus (httpStatus: int) : int * ErrorType =
        match httpStatus with
        | 401 -> 401, ErrorType.Authentication
        | 403 -> 403, ErrorType.Permission
        | 404 -> 404, ErrorType.NotFound
        | 413 -> 413, ErrorType.RequestTooLarge
        | 429 -> 429, ErrorType.RateLimit
        | status when status >= 400 && status < 500 -> status, ErrorType.InvalidRequest
        | _ -> 502, ErrorType.Api

    /// The status the relay reports and the Anthropic error type for a Bedrock exception name (§2.7);
    /// an unknown name is api_error 502.
    let errorOf (exceptionName: string) : int * ErrorType =
        tryErrorOf exceptionName |> Option.defaultValue (502, ErrorType.Api)

    // NOTE: events are only validated, never rebuilt, so nesting deeper than the reader's default 64 (a deep
    // tool input inside message_start, say) must not turn a good event into a "malformed chunk" error.
    let private readerOptions = JsonReaderOptions(MaxDepth = 1024)

    /// The string value of a top-level property of a JSON object; None when the bytes are not a JSON
    /// object or the property is missing or not a string. Every byte is validated.
    let private topLevelString (json: ReadOnlySpan<byte>) (names: string list) : Result<string option, unit> =
        try
            let mutable reader = Utf8JsonReader(json, readerOptions)
            let mutable found = None

            if reader.Read() && reader.TokenType = JsonTokenType.StartObject then
                while reader.Read() && reader.TokenType = JsonTokenType.PropertyName do
                    let name = reader.GetString()
                    reader.Read() |> ignore

                    if
                        found.IsNone
                        && reader.TokenType = JsonTokenType.String
                        && List.contains name names
                    then
                        found <- Option.ofObj (reader.GetString())
                    else
                        reader.Skip()
            else
                reader.Skip()

            // validate the rest (trailing content is an error)
            while reader.Read() do
                ()

            Ok found
        with
        | :? JsonException
        | :? InvalidOperationException -> Error()

    let private messageNames = [ "message"; "Message" ]

    /// Turns a Bedrock error answer into the status the relay reports and an Anthropic error envelope.
    /// The error comes from `x-amzn-ErrorType` (or the body's `__type`), else from the HTTP status;
    /// the message is the body's `message`/`Message`, verbatim (Claude Code matches on wording), or the
    /// body's text when it is not JSON. A body that already is an Anthropic envelope goes out unchanged.
    let errorBody (httpStatus: int) (errorTypeHeader: string option) (body: ReadOnlySpan<byte>) : int * byte array =
        let typeInBody =
            match topLevelString body [ "__type" ] with
            | Ok name -> name
            | Error() -> None

        let status, errorType =
            [ errorTypeHeader; typeInBody ]
            |> List.tryPick (Option.bind tryErrorOf)
            |> Option.defaultWith (fun () -> errorOfStatus httpStatus)

        match topLevelString body [ "type" ] with
        | Ok(Some "error") -> status, body.ToArray()
        | _ ->
            let fromBody =
                match topLevelString body messageNames with
                | Ok message -> message
                | Error() ->
                    let text = Encoding.UTF8.GetString(body).Trim()
                    if text = "" then None else Some text

            let message =
                fromBody
                |> Option.orElse errorTypeHeader
                |> Option.orElse typeInBody
                |> Option.defaultWith (fun () -> $"Bedrock answered HTTP {httpStatus}")

            status, ErrorEnvelope.toJson errorType message

    // ---------------------------
    // Stream frames (§2.6)
    // ---------------------------

    let private error (status: int, errorType: ErrorType) (message: string) : BedrockFrame =
        BedrockFrame.Error(status, errorType, message, ErrorEnvelope.toSseEvent errorType message)

    let private malformed (what: string) : BedrockFrame =
        error (502, ErrorType.Api) $"malformed chunk from Bedrock: {what}"

    let private eventPrefix: byte array = "event: "B
    let private dataPrefix: byte array = "\ndata: "B
    let private eventEnd: byte array = "\n\n"B

    /// `event: {type}\ndata: {json}\n\n` with the JSON bytes as they are. JSON can only hold CR or LF as
    /// whitespace between tokens (never raw inside a string), so those become spaces: the event stays one
    /// `data:` line and its JSON means the same.
    let private sseOf (eventType: string) (json: ReadOnlySpan<byte>) : byte array =
        let name = Encoding.UTF8.GetBytes eventType

        let out =
            Array.zeroCreate<byte>(
                eventPrefix.Length
                + name.Length
                + dataPrefix.Length
                + json.Length
                + eventEnd.Length
            )

        let span = Span out
        eventPrefix.CopyTo span
        name.CopyTo(span.Slice eventPrefix.Length)
        let dataAt = eventPrefix.Length + name.Length
        dataPrefix.CopyTo(span.Slice dataAt)
        let jsonAt = dataAt + dataPrefix.Length
        let body = span.Slice(jsonAt, json.Length)
        json.CopyTo body

        if body.IndexOfAny(13uy, 10uy) >= 0 then
            body.Replace(13uy, 32uy)
            body.Replace(10uy, 32uy)

        eventEnd.CopyTo(span.Slice(jsonAt + json.Length))
        out

    /// The base64 `bytes` property of a chunk payload, decoded.
    let private chunkBytes (payload: ReadOnlySpan<byte>) : Result<byte array, string> =
        try
            let mutable reader = Utf8JsonReader(payload, readerOptions)
            let mutable bytes = None

            if reader.Read() && reader.TokenType = JsonTokenType.StartObject then
                while reader.Read() && reader.TokenType = JsonTokenType.PropertyName do
                    let isBytes = reader.ValueTextEquals "bytes"B
                    reader.Read() |> ignore

                    if isBytes && bytes.IsNone && reader.TokenType = JsonTokenType.String then
                        match reader.TryGetBytesFromBase64() with
                        | true, decoded -> bytes <- Some(Ok(nonNull decoded))
                        | false, _ -> bytes <- Some(Error "bytes is not base64")
                    else
                        reader.Skip()

                while reader.Read() do
                    ()

                bytes |> Option.defaultValue (Error "no bytes")
            else
                Error "payload is not a JSON object"
        with
        | :? JsonException
        | :? InvalidOperationException -> Error "payload is not JSON"

    let private ofChunk (payload: ReadOnlySpan<byte>) : BedrockFrame =
        match chunkBytes payload with
        | Error what -> malformed what
        | Ok json ->
            match topLevelString (ReadOnlySpan json) [ "type" ] with
            | Error() -> malformed "event is not JSON"
            | Ok None -> BedrockFrame.Skip
            | Ok(Some eventType) when eventType = "" || eventType.AsSpan().IndexOfAny('\r', '\n') >= 0 ->
                BedrockFrame.Skip
            | Ok(Some eventType) -> BedrockFrame.Event(sseOf eventType (ReadOnlySpan json), eventType)

    /// What one InvokeModelWithResponseStream message means: a `chunk` event becomes the SSE of the Anthropic
    /// event it carries (base64 in `bytes`; its JSON goes out byte for byte; no top-level `type` → Skip);
    /// an `exception` or `error` message becomes Error with the §2.7 mapping and the upstream's message;
    /// anything else is Skip. A chunk that cannot be decoded is an api_error 502.
    let ofMessage (message: EventStreamMessage) : BedrockFrame =
        match EventStream.stringHeader ":message-type" message with
        | Some "event" when EventStream.stringHeader ":event-type" message = Some "chunk" ->
            ofChunk (ReadOnlySpan message.Payload)
        | Some "exception" ->
            let name =
                EventStream.stringHeader ":exception-type" message
                |> Option.defaultValue "UnknownException"

            let text =
                match topLevelString (ReadOnlySpan message.Payload) messageNames with
                | Ok(Some text) -> text
                | _ -> name

            error (errorOf name) text
        | Some "error" ->
            let code =
                EventStream.stringHeader ":error-code" message
                |> Option.defaultValue "UnknownError"

            let text =
                EventStream.stringHeader ":error-message" message |> Option.defaultValue code

            error (errorOf code) text
        | _ -> BedrockFrame.Skip

    // ---------------------------
    // The relay as a Bedrock endpoint
    // ---------------------------

    let private stringHeaders (headers: (string * string) list) : (string * EventStreamHeaderValue) list =
        headers
        |> List.map (fun (name, value) -> name, EventStreamHeaderValue.String value)

    /// The `chunk` event frame carrying one Anthropic stream event: `:event-type chunk`,
    /// `:content-type application/json`, `:message-type event`, payload `{"bytes":"<base64 of the event>"}`.
    let chunkOfEvent (eventJson: ReadOnlySpan<byte>) : EventStreamMessage =
        let prefix = "{\"bytes\":\""B
        let suffix = "\"}"B
        let encodedLength = Base64.GetMaxEncodedToUtf8Length eventJson.Length
        let payload = Array.zeroCreate<byte>(prefix.Length + encodedLength + suffix.Length)
        prefix.CopyTo(payload, 0)

        let _, _, _ =
            Base64.EncodeToUtf8(eventJson, Span(payload, prefix.Length, encodedLength))

        suffix.CopyTo(payload, prefix.Length + encodedLength)

        {
            Headers =
                stringHeaders [
                    ":event-type", "chunk"
                    ":content-type", "application/json"
                    ":message-type", "event"
                ]
            Payload = payload
        }

    /// The stream exception name the AWS SDKs know for an error type (lower camel, as on the wire).
    let exceptionName (errorType: ErrorType) : string =
        match errorType with
        | ErrorType.InvalidRequest
        | ErrorType.MethodNotAllowed
        | ErrorType.RequestTooLarge -> "validationException"
        | ErrorType.Authentication -> "unrecognizedClientException"
        | ErrorType.Permission -> "accessDeniedException"
        | ErrorType.NotFound -> "resourceNotFoundException"
        | ErrorType.RateLimit -> "throttlingException"
        | ErrorType.Api -> "internalServerException"
        | ErrorType.Timeout -> "modelTimeoutException"
        | ErrorType.Overloaded -> "serviceUnavailableException"

    /// The exception frame for a stream that fails: `:message-type exception`, `:exception-type` from
    /// `exceptionName`, `:content-type application/json`, payload `{"message":"…"}`.
    let exceptionOf (errorType: ErrorType) (message: string) : EventStreamMessage =
        let buffer = ArrayBufferWriter<byte>(64 + message.Length)

        do
            use writer = new Utf8JsonWriter(buffer)
            writer.WriteStartObject()
            writer.WriteString("message", message)
            writer.WriteEndObject()

        {
            Headers =
                stringHeaders [
                    ":exception-type", exceptionName errorType
                    ":content-type", "application/json"
                    ":message-type", "exception"
                ]
            Payload = buffer.WrittenSpan.ToArray()
        }
