namespace CcRelay.Core

open System
open System.Buffers
open System.Text.Json

/// The error types of the Anthropic error envelope that the relay itself produces.
/// Upstream errors are never rewritten into these: they pass through unchanged.
[<RequireQualifiedAccess>]
type ErrorType =
    | InvalidRequest
    | Authentication
    | Permission
    | NotFound
    | MethodNotAllowed
    | RequestTooLarge
    | RateLimit
    | Api
    | Timeout
    | Overloaded

/// The Anthropic error envelope `{"type":"error","error":{"type":"…","message":"…"}}`.
[<RequireQualifiedAccess>]
module ErrorEnvelope =

    /// The wire name of an error type, as Anthropic spells it.
    let wireName (errorType: ErrorType) : string =
        match errorType with
        | ErrorType.InvalidRequest
        | ErrorType.MethodNotAllowed -> "invalid_request_error"
        | ErrorType.Authentication -> "authentication_error"
        | ErrorType.Permission -> "permission_error"
        | ErrorType.NotFound -> "not_found_error"
        | ErrorType.RequestTooLarge -> "request_too_large"
        | ErrorType.RateLimit -> "rate_limit_error"
        | ErrorType.Api -> "api_error"
        | ErrorType.Timeout -> "timeout_error"
        | ErrorType.Overloaded -> "overloaded_error"

    /// The HTTP status Anthropic pairs with an error type.
    let status (errorType: ErrorType) : int =
        match errorType with
        | ErrorType.InvalidRequest -> 400
        | ErrorType.Authentication -> 401
        | ErrorType.Permission -> 403
        | ErrorType.NotFound -> 404
        | ErrorType.MethodNotAllowed -> 405
        | ErrorType.RequestTooLarge -> 413
        | ErrorType.RateLimit -> 429
        | ErrorType.Api -> 502
        | ErrorType.Timeout -> 504
        | ErrorType.Overloaded -> 529

    let private write (errorType: ErrorType) (message: string) (buffer: IBufferWriter<byte>) : unit =
        use writer = new Utf8JsonWriter(buffer)
        writer.WriteStartObject()
        writer.WriteString("type", "error")
        writer.WriteStartObject("error")
        writer.WriteString("type", wireName errorType)
        writer.WriteString("message", message)
        writer.WriteEndObject()
        writer.WriteEndObject()
        writer.Flush()

    /// The envelope as UTF-8 JSON. The message is JSON-escaped, so any text is safe to pass.
    let toJson (errorType: ErrorType) (message: string) : byte array =
        let buffer = ArrayBufferWriter<byte>(128)
        write errorType message buffer
        buffer.WrittenSpan.ToArray()

    /// The envelope as one complete SSE `error` event: `event: error\ndata: {…}\n\n`.
    /// Used when a stream fails after its first byte reached the client.
    let toSseEvent (errorType: ErrorType) (message: string) : byte array =
        let buffer = ArrayBufferWriter<byte>(160)
        buffer.Write("event: error\ndata: "B)
        write errorType message buffer
        buffer.Write("\n\n"B)
        buffer.WrittenSpan.ToArray()

/// A short, stable, non-reversible identifier for a secret (FNV-1a 64 over the UTF-8 bytes, first 8 hex
/// digits: the same id the Go cc-relay shows in `X-CC-Relay-Key-ID`).
/// Keys appear in logs, headers and API answers only in this form.
[<RequireQualifiedAccess>]
module KeyId =

    /// The id of a secret. Equal secrets always have equal ids.
    let ofSecret (secret: string) : string =
        let mutable hash = 14695981039346656037UL

        for b in Text.Encoding.UTF8.GetBytes secret do
            hash <- (hash ^^^ uint64 b) * 1099511628211UL

        (hash >>> 32).ToString("x8")

    /// Whether a string could be taken for a key id (used by tests and redaction checks).
    let looksLikeId (value: string) : bool =
        value.Length = 8 && value |> Seq.forall Uri.IsHexDigit
