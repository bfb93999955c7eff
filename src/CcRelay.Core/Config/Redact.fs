namespace CcRelay.Core

open System
open System.Buffers
open System.Text
open System.Text.Encodings.Web
open System.Text.Json

/// What debug logs may show of headers, URLs, JSON bodies, SSE events and config errors: everything,
/// except secrets. Pure functions; the host calls them only when a debug option asks for the output.
///
/// Two rules, applied everywhere:
/// 1. **By name.** A header, query parameter or JSON property whose name looks like a credential
///    (`x-api-key`, `authorization`, `proxy-authorization`, `cookie`, `set-cookie`, or any name containing
///    `token`, `secret`, `key`, `password`, `passwd` or `credential`) has its value replaced by `[REDACTED]`. In JSON, strings, objects and arrays under such a name are replaced; numbers,
///    booleans and null are kept (`max_tokens: 1024` stays readable; no credential is a bare number).
/// 2. **By value.** Every occurrence of a known secret (the relay's configured keys and secrets, the
///    request's own credential) is replaced wherever it appears: in any header value, query value,
///    JSON string or property name, or config error message. A secret shorter than `WholeTokenBelow`
///    characters (a test's `k1`, an operator's short bearer secret) is replaced only where it stands as a
///    whole token — no letter or digit right before or after it — so that `20` does not turn `200 ms` into
///    `[REDACTED]0 ms`; a longer one is replaced wherever it appears, inside a word too.
[<RequireQualifiedAccess>]
module Redact =

    /// What a secret is replaced with.
    [<Literal>]
    let Marker = "[REDACTED]"

    /// Name fragments that mark a credential, matched case-insensitively anywhere in the name.
    let private fragments: string array = [|
        "token"
        "secret"
        "key"
        "password"
        "passwd"
        "credential"
        "authorization"
        "cookie"
    |]

    /// Whether a header, query parameter or JSON property with this name holds a credential: `x-api-key`,
    /// `authorization`, `proxy-authorization`, `cookie`, `set-cookie`, and any name containing `token`,
    /// `secret`, `key`, `password`, `passwd` or `credential` (case ignored).
    let isSensitive (name: string) : bool =
        not (String.IsNullOrEmpty name)
        && fragments
           |> Array.exists (fun fragment -> name.Contains(fragment, StringComparison.OrdinalIgnoreCase))

    /// Secrets shorter than this are replaced only where they stand as a whole token (see the module's rule 2).
    [<Literal>]
    let WholeTokenBelow = 8

    let private isWordChar (c: char) = Char.IsLetterOrDigit c

    /// `text` with the occurrences of a short `secret` that stand as whole tokens replaced: an edge of the
    /// secret that is a letter or digit must not touch another letter or digit.
    let private replaceWholeTokens (secret: string) (text: string) : string =
        let builder = StringBuilder()
        let mutable from = 0
        let mutable at = text.IndexOf(secret, StringComparison.Ordinal)

        while at >= 0 do
            let stop = at + secret.Length

            let clean =
                (at = 0 || not (isWordChar secret[0]) || not (isWordChar text[at - 1]))
                && (stop = text.Length
                    || not (isWordChar secret[secret.Length - 1])
                    || not (isWordChar text[stop]))

            if clean then
                builder.Append(text, from, at - from).Append(Marker) |> ignore
                from <- stop
                at <- text.IndexOf(secret, stop, StringComparison.Ordinal)
            else
                at <- text.IndexOf(secret, at + 1, StringComparison.Ordinal)

        if from = 0 then
            text
        else
            builder.Append(text, from, text.Length - from).ToString()

    /// `text` with every occurrence of every non-empty known secret replaced by the marker (a secret shorter
    /// than `WholeTokenBelow`: only where it stands as a whole token).
    let scrub (secrets: string seq) (text: string) : string =
        let mutable result = text

        for secret in secrets do
            if
                not (String.IsNullOrEmpty secret)
                && result.Contains(secret, StringComparison.Ordinal)
            then
                result <-
                    if secret.Length >= WholeTokenBelow then
                        result.Replace(secret, Marker, StringComparison.Ordinal)
                    else
                        replaceWholeTokens secret result

        result

    /// A header's value as a debug log may show it.
    let header (secrets: string seq) (name: string) (value: string) : string =
        if isSensitive name then Marker else scrub secrets value

    /// Headers as one log field, `name: value; name: value`, in the given order, each value through `header`.
    let headers (secrets: string seq) (pairs: (string * string) seq) : string =
        let builder = StringBuilder()

        for name, value in pairs do
            if builder.Length > 0 then
                builder.Append("; ") |> ignore

            builder.Append(name).Append(": ").Append(header secrets name value) |> ignore

        builder.ToString()

    /// A query string (with or without its leading `?`) with the values of credential-like parameters
    /// replaced. Names are compared after percent-decoding, so `api%5Fkey` counts as `api_key`.
    let query (secrets: string seq) (queryString: string) : string =
        if String.IsNullOrEmpty queryString then
            queryString
        else
            let leading, body =
                if queryString.StartsWith '?' then
                    "?", queryString.Substring 1
                else
                    "", queryString

            let redactPart (part: string) =
                let name, value =
                    match part.IndexOf '=' with
                    | -1 -> part, None
                    | at -> part.Substring(0, at), Some(part.Substring(at + 1))

                let decodedName =
                    try
                        Uri.UnescapeDataString(name.Replace('+', ' '))
                    with :? UriFormatException ->
                        name

                match value with
                | None -> scrub secrets part
                | Some _ when isSensitive decodedName -> name + "=" + Marker
                | Some value ->
                    let decodedValue =
                        try
                            Uri.UnescapeDataString(value.Replace('+', ' '))
                        with :? UriFormatException ->
                            value

                    // a known secret may travel percent-encoded: compare the decoded value
                    if scrub secrets decodedValue <> decodedValue then
                        name + "=" + Marker
                    else
                        scrub secrets name + "=" + value

            leading + (body.Split('&') |> Array.map redactPart |> String.concat "&")

    /// A URL for a log line: user info dropped, query through `query`.
    let url (secrets: string seq) (uri: Uri) : string =
        if not uri.IsAbsoluteUri then
            query secrets (uri.ToString())
        else
            let authority = uri.GetLeftPart(UriPartial.Authority)

            let authority =
                if uri.UserInfo.Length > 0 then
                    authority.Replace(uri.UserInfo + "@", "")
                else
                    authority

            scrub secrets (authority + uri.AbsolutePath) + query secrets uri.Query

    // ---------------------------
    // JSON
    // ---------------------------

    let private writerOptions =
        JsonWriterOptions(
            SkipValidation = true,
            Indented = false,
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping
        )

    let private readerOptions =
        JsonReaderOptions(CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true, MaxDepth = 256)

    /// Copies the JSON tokens of `json` to `writer`, redacting as it goes, until the input ends, is
    /// invalid or incomplete, or the output passes `limit` bytes. True when the whole input was copied.
    let private copyRedacted
        (secrets: string seq)
        (json: ReadOnlySpan<byte>)
        (isFinalBlock: bool)
        (limit: int)
        (writer: Utf8JsonWriter)
        : bool =
        let mutable reader =
            Utf8JsonReader(json, isFinalBlock, JsonReaderState(readerOptions))

        let mutable complete = false
        let mutable go = true

        try
            while go do
                if int64 limit < writer.BytesCommitted + int64 writer.BytesPending then
                    go <- false
                elif not (reader.Read()) then
                    go <- false
                    // an input that stops in the middle of a value was cut short
                    complete <-
                        isFinalBlock
                        || reader.BytesConsumed = int64 json.Length && reader.CurrentDepth = 0
                else
                    match reader.TokenType with
                    | JsonTokenType.PropertyName ->
                        let name = reader.GetString() |> Option.ofObj |> Option.defaultValue ""
                        writer.WritePropertyName(scrub secrets name)

                        if isSensitive name then
                            if not (reader.Read()) then
                                go <- false
                            else
                                match reader.TokenType with
                                | JsonTokenType.Number -> writer.WriteRawValue(reader.ValueSpan, true)
                                | JsonTokenType.True -> writer.WriteBooleanValue true
                                | JsonTokenType.False -> writer.WriteBooleanValue false
                                | JsonTokenType.Null -> writer.WriteNullValue()
                                | JsonTokenType.StartObject
                                | JsonTokenType.StartArray ->
                                    writer.WriteStringValue Marker

                                    if not (reader.TrySkip()) then
                                        go <- false
                                | _ -> writer.WriteStringValue Marker
                    | JsonTokenType.String ->
                        let value = reader.GetString() |> Option.ofObj |> Option.defaultValue ""
                        writer.WriteStringValue(scrub secrets value)
                    | JsonTokenType.Number -> writer.WriteRawValue(reader.ValueSpan, true)
                    | JsonTokenType.True -> writer.WriteBooleanValue true
                    | JsonTokenType.False -> writer.WriteBooleanValue false
                    | JsonTokenType.Null -> writer.WriteNullValue()
                    | JsonTokenType.StartObject -> writer.WriteStartObject()
                    | JsonTokenType.EndObject -> writer.WriteEndObject()
                    | JsonTokenType.StartArray -> writer.WriteStartArray()
                    | JsonTokenType.EndArray -> writer.WriteEndArray()
                    | _ -> ()
        with
        | :? JsonException -> go <- false
        // GetString on invalid UTF-8 or a lone surrogate escape
        | :? InvalidOperationException -> go <- false

        complete

    /// Renders redacted output as text, cut at `limit` bytes (on a character boundary), with a note when
    /// something was left out.
    let private finish (output: ArrayBufferWriter<byte>) (limit: int) (complete: bool) (inputLength: int) : string =
        let written = output.WrittenSpan
        let mutable length = min written.Length limit

        // never cut a UTF-8 sequence in half
        while length > 0 && length < written.Length && (written[length] &&& 0xC0uy) = 0x80uy do
            length <- length - 1

        let text = Encoding.UTF8.GetString(written.Slice(0, length))

        if complete && length = written.Length then
            text
        else
            $"%s{text}… (cut; %d{inputLength} bytes in all)"

    /// A JSON body for a debug log: redacted (see the module's rules), then cut to `limit` bytes. Input
    /// that is not JSON shows only as far as it could be read; its raw bytes are never shown.
    let json (secrets: string seq) (limit: int) (body: ReadOnlySpan<byte>) : string =
        let limit = max 0 limit
        let output = ArrayBufferWriter<byte>(min (max 256 (limit + 64)) (body.Length + 64))
        use writer = new Utf8JsonWriter(output, writerOptions)
        let complete = copyRedacted secrets body true limit writer
        writer.Flush()
        finish output limit complete body.Length

    let private dataField: byte array = "data:"B
    let private eventField: byte array = "event:"B
    let private idField: byte array = "id:"B
    let private retryField: byte array = "retry:"B

    /// SSE text for a debug log (possibly cut in the middle of an event): `event:`, `id:` and `retry:`
    /// lines as they are, each `data:` payload redacted as JSON, any other line (comments) replaced by the
    /// marker. Cut to `limit` bytes.
    let sse (secrets: string seq) (limit: int) (text: ReadOnlySpan<byte>) : string =
        let limit = max 0 limit
        let output = ArrayBufferWriter<byte>(min (max 256 (limit + 64)) (text.Length + 64))
        let mutable position = 0
        let mutable complete = true

        let writeAscii (s: string) =
            let bytes = Encoding.UTF8.GetBytes s
            output.Write(ReadOnlySpan bytes)

        while position < text.Length && output.WrittenCount <= limit do
            let rest = text.Slice position
            let lineEnd = rest.IndexOfAny(byte '\r', byte '\n')
            let hasEnd = lineEnd >= 0
            let line = if hasEnd then rest.Slice(0, lineEnd) else rest

            if line.Length = 0 then
                ()
            elif line.StartsWith(ReadOnlySpan dataField) then
                let payload =
                    let value = line.Slice 5

                    if value.Length > 0 && value[0] = byte ' ' then
                        value.Slice 1
                    else
                        value

                writeAscii "data: "
                use writer = new Utf8JsonWriter(output, writerOptions)
                let whole = copyRedacted secrets payload hasEnd (limit - output.WrittenCount) writer
                writer.Flush()

                if not whole then
                    complete <- false
            elif
                line.StartsWith(ReadOnlySpan eventField)
                || line.StartsWith(ReadOnlySpan idField)
                || line.StartsWith(ReadOnlySpan retryField)
            then
                output.Write(line)
            else
                writeAscii Marker

            if hasEnd then
                output.Write(ReadOnlySpan [| 10uy |])

                let skip =
                    if
                        rest[lineEnd] = byte '\r'
                        && lineEnd + 1 < rest.Length
                        && rest[lineEnd + 1] = byte '\n'
                    then
                        2
                    else
                        1

                position <- position + lineEnd + skip
            else
                position <- text.Length

        finish output limit (complete && position >= text.Length) text.Length

    // ---------------------------
    // config errors
    // ---------------------------

    /// A quoted value in a config message: `"…"` with `\"` and `\\` escapes, as `ConfigRead.quote` writes it.
    let private quotedValue =
        RegularExpressions.Regex("\"(?:[^\"\\\\]|\\\\.)*\"", RegularExpressions.RegexOptions.CultureInvariant)

    /// A config problem as a log line may show it: the known secrets scrubbed, and every quoted value
    /// replaced when the key holds a credential (`…api_key`, `…keys[0].key`, `…bearer_secret`).
    let issue (secrets: string seq) (problem: ConfigIssue) : string =
        let lastSegment =
            let path = problem.Path
            let start = path.LastIndexOf '.' + 1
            let segment = path.Substring start

            match segment.IndexOf '[' with
            | -1 -> segment
            | at -> segment.Substring(0, at)

        let text = scrub secrets (problem.ToString())

        if isSensitive lastSegment then
            quotedValue.Replace(text, "\"" + Marker + "\"")
        else
            text
