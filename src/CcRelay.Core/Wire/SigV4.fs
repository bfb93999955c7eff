namespace CcRelay.Core

open System
open System.Globalization
open System.Security.Cryptography
open System.Text

/// AWS credentials for SigV4 signing. `SessionToken` is set for temporary (STS) credentials.
type AwsCredentials = {
    AccessKeyId: string
    SecretAccessKey: string
    SessionToken: string option
}

/// A builder per thread for `SigV4.sign`'s canonical request (about 1 KB of text per signed request: a new builder
/// grew through three buffers each time). `sign` takes it and is done with it before it returns (no await inside).
[<Sealed; AbstractClass>]
type internal SigV4Scratch =
    [<ThreadStatic; DefaultValue>]
    static val mutable private builder: StringBuilder | null

    /// This thread's builder, cleared.
    static member Builder() : StringBuilder =
        match SigV4Scratch.builder with
        | null ->
            let created = StringBuilder(1024)
            SigV4Scratch.builder <- created
            created
        | known -> known.Clear()

/// AWS Signature Version 4 (`AWS4-HMAC-SHA256`) request signing, header form, for non-S3 services (Bedrock).
/// Pure: the signing time is passed in.
[<RequireQualifiedAccess>]
module SigV4 =

    [<Literal>]
    let private Algorithm = "AWS4-HMAC-SHA256"

    let private isUnreserved (b: byte) =
        (b >= 'A'B && b <= 'Z'B)
        || (b >= 'a'B && b <= 'z'B)
        || (b >= '0'B && b <= '9'B)
        || b = '-'B
        || b = '_'B
        || b = '.'B
        || b = '~'B

    /// RFC 3986 encoding of the UTF-8 bytes of `text`: unreserved characters kept (and `/` when `keepSlash`),
    /// everything else `%XX` with upper-case hex (AWS's `UriEncode`).
    let private uriEncode (keepSlash: bool) (text: string) : string =
        let builder = StringBuilder(text.Length + 16)

        for b in Encoding.UTF8.GetBytes text do
            if isUnreserved b || (keepSlash && b = '/'B) then
                builder.Append(char b) |> ignore
            else
                builder.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture))
                |> ignore

        builder.ToString()

    /// Lower-case hex of bytes.
    let private hex (bytes: byte array) : string = Convert.ToHexStringLower bytes

    let private hmac (key: byte array) (data: string) : byte array =
        HMACSHA256.HashData(key, Encoding.UTF8.GetBytes data)

    /// Lower-case hex SHA-256 of a payload (the `x-amz-content-sha256` value and the canonical request's last line).
    let sha256Hex (body: ReadOnlySpan<byte>) : string =
        let digest = Array.zeroCreate<byte> 32
        SHA256.HashData(body, Span digest) |> ignore
        hex digest

    /// Lower-case hex SHA-256 of a text's UTF-8 bytes, the text read from a builder's chunks into a pooled buffer
    /// (the canonical request is never made into a string of its own).
    let private sha256HexOfBuilder (text: StringBuilder) : string =
        let buffer =
            Buffers.ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetMaxByteCount text.Length)

        try
            let mutable length = 0

            for chunk in text.GetChunks() do
                length <-
                    length
                    + Encoding.UTF8.GetBytes(chunk.Span, Span(buffer, length, buffer.Length - length))

            sha256Hex (ReadOnlySpan(buffer, 0, length))
        finally
            Buffers.ArrayPool<byte>.Shared.Return buffer

    /// The canonical URI of a wire path for a non-S3 service: the path as sent (already percent-encoded) is
    /// URI-encoded once more, segment by segment (RFC 3986 unreserved characters and `/` kept), so `:` signs
    /// as `%3A` and an encoded `%2F` as `%252F`. No dot-segment normalisation: the relay builds its paths.
    /// An empty path is `/`.
    let canonicalUri (wirePath: string) : string =
        if String.IsNullOrEmpty wirePath then
            "/"
        else
            uriEncode true wirePath

    // Canonical URIs, by wire path: the same for every request to the same model, and encoding one byte by byte
    // costs more than the rest of the canonical request. Bounded (the client chooses the model): past the bound
    // the cache starts over.
    let private canonicalUris =
        Collections.Concurrent.ConcurrentDictionary<string, string>(StringComparer.Ordinal)

    let private maxCanonicalUris = 1024

    let private canonicalUriOf (wirePath: string) : string =
        match canonicalUris.TryGetValue wirePath with
        | true, known -> known
        | _ ->
            let encoded = canonicalUri wirePath

            if canonicalUris.Count >= maxCanonicalUris then
                canonicalUris.Clear()

            canonicalUris.TryAdd(wirePath, encoded) |> ignore
            encoded

    /// The canonical query string of a wire query (with or without its leading `?`): each `name=value` pair
    /// percent-decoded then RFC 3986 encoded, sorted by name, then value (ordinal). `+` is taken literally.
    let private canonicalQuery (query: string) : string =
        let query = if query.StartsWith '?' then query.Substring 1 else query

        query.Split('&', StringSplitOptions.RemoveEmptyEntries)
        |> Array.map (fun pair ->
            let name, value =
                match pair.IndexOf '=' with
                | -1 -> pair, ""
                | at -> pair.Substring(0, at), pair.Substring(at + 1)

            uriEncode false (Uri.UnescapeDataString name), uriEncode false (Uri.UnescapeDataString value))
        |> Array.sortWith (fun (n1, v1) (n2, v2) ->
            match String.CompareOrdinal(n1, n2) with
            | 0 -> String.CompareOrdinal(v1, v2)
            | c -> c)
        |> Array.map (fun (name, value) -> name + "=" + value)
        |> String.concat "&"

    /// A value trimmed, inner runs of whitespace collapsed to one space.
    let private canonicalised (value: string) : string =
        let builder = StringBuilder(value.Length)
        let mutable space = false

        for c in value.Trim() do
            if c = ' ' || c = '\t' || c = '\r' || c = '\n' then
                space <- true
            else
                if space then
                    builder.Append(' ') |> ignore
                    space <- false

                builder.Append(c) |> ignore

        builder.ToString()

    /// A header value as SigV4 signs it: trimmed, inner runs of whitespace collapsed to one space.
    let private canonicalValue (value: string) : string =
        // most values (dates, hashes, media types, tokens) have no whitespace at all: they sign as they are
        if value.AsSpan().IndexOfAny(" \t\r\n".AsSpan()) < 0 then
            value
        else
            canonicalised value

    /// The `Host` header value for a URL: the host, with the port when it is not the scheme's default.
    let private hostOf (url: Uri) : string =
        if url.IsDefaultPort then
            url.IdnHost
        else
            url.IdnHost + ":" + url.Port.ToString(CultureInfo.InvariantCulture)

    /// The hex signature of a canonical request made at `amzDate` (`YYYYMMDDTHHMMSSZ`): the string to sign
    /// `AWS4-HMAC-SHA256\n{amzDate}\n{scope}\n{hex(sha256(canonicalRequest))}` HMAC'd with the key derived from
    /// the secret, date, region and service.
    // Signing keys, by secret, day, region and service: four HMACs a request saved (a key changes once a day). Bounded:
    // past the bound keys are derived each time.
    let private signingKeys =
        Collections.Concurrent.ConcurrentDictionary<struct (string * string * string * string), byte array>()

    let private maxSigningKeys = 256

    /// The SigV4 signing key: HMAC chain `"AWS4"+secret → date → region → service → "aws4_request"`.
    let private signingKey (secretAccessKey: string) (shortDate: string) (region: string) (service: string) =
        let key = struct (secretAccessKey, shortDate, region, service)

        match signingKeys.TryGetValue key with
        | true, known -> known
        | _ ->
            let derived =
                [ shortDate; region; service; "aws4_request" ]
                |> List.fold hmac (Encoding.UTF8.GetBytes("AWS4" + secretAccessKey))

            if signingKeys.Count >= maxSigningKeys then
                signingKeys.Clear()

            signingKeys.TryAdd(key, derived) |> ignore
            derived

    let internal signature
        (secretAccessKey: string)
        (region: string)
        (service: string)
        (amzDate: string)
        (canonicalRequest: StringBuilder)
        : string =
        let shortDate = amzDate.Substring(0, 8)

        let stringToSign =
            String.Concat(
                [|
                    Algorithm
                    "\n"
                    amzDate
                    "\n"
                    shortDate
                    "/"
                    region
                    "/"
                    service
                    "/aws4_request\n"
                    sha256HexOfBuilder canonicalRequest
                |]
            )

        let signingKey = signingKey secretAccessKey shortDate region service

        hex (hmac signingKey stringToSign)

    /// The headers to add to a request so that it carries a SigV4 signature: `x-amz-date`,
    /// `x-amz-security-token` (session credentials only), `x-amz-content-sha256` and `authorization`.
    /// Signed: `host` (from `url`, port included when not the default), those `x-amz-*` headers, and of
    /// `headers` the `content-type` and every `x-amz-*` one (names lower-cased, values trimmed with inner
    /// whitespace collapsed, repeated names joined with `,`); never `connection` or `authorization`.
    /// The canonical URI is computed from the URL's escaped path exactly as it goes on the wire (`AbsolutePath`,
    /// which does not unescape `%2F`), so build the URL with canonicalisation off (see `Bedrock.url`) and send
    /// it unchanged. `payloadSha256Hex` is `sha256Hex` of the exact body sent.
    let sign
        (credentials: AwsCredentials)
        (region: string)
        (service: string)
        (now: DateTimeOffset)
        (method: string)
        (url: Uri)
        (headers: (string * string) seq)
        (payloadSha256Hex: string)
        : (string * string) list =
        let amzDate =
            now.UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture)

        let shortDate = amzDate.Substring(0, 8)
        // NOTE: String.Concat and arrays, not interpolation and list pipelines: this runs once per signed request
        let scope = String.Concat(shortDate, "/", region, "/", service, "/aws4_request")

        let generated = [
            "x-amz-date", amzDate
            match credentials.SessionToken with
            | Some token -> "x-amz-security-token", token
            | None -> ()
            "x-amz-content-sha256", payloadSha256Hex
        ]

        let isGenerated (name: string) =
            name = "x-amz-date"
            || name = "x-amz-content-sha256"
            || name = "x-amz-security-token"

        // every signed header, lower-cased: host, the given content-type and x-amz-* ones, the generated ones
        let all = ResizeArray<struct (string * string)>(8)
        all.Add(struct ("host", hostOf url))

        for name, value in headers do
            let name = name.Trim().ToLowerInvariant()

            if
                (name = "content-type" || name.StartsWith("x-amz-", StringComparison.Ordinal))
                && not (isGenerated name)
            then
                all.Add(struct (name, canonicalValue value))

        for name, value in generated do
            all.Add(struct (name, canonicalValue value))

        // sorted by name (stable: repeated names keep their order and are joined with ",")
        let sorted =
            Array.init all.Count (fun i ->
                let struct (name, value) = all[i]
                struct (name, value, i))

        // NOTE: the position breaks ties, so the order of repeated names does not rest on the sort being stable
        sorted
        |> Array.sortInPlaceWith (fun (struct (a, _, i)) (struct (b, _, j)) ->
            match String.CompareOrdinal(a, b) with
            | 0 -> compare i j
            | c -> c)

        let canonical = SigV4Scratch.Builder()
        let signed = Text.StringBuilder(96)

        canonical
            .Append(method.ToUpperInvariant())
            .Append('\n')
            .Append(canonicalUriOf url.AbsolutePath)
            .Append('\n')
            .Append(canonicalQuery url.Query)
            .Append('\n')
        |> ignore

        let mutable i = 0

        while i < sorted.Length do
            let struct (name, value, _) = sorted[i]
            canonical.Append(name).Append(':').Append(value) |> ignore
            i <- i + 1

            while i < sorted.Length && (let struct (next, _, _) = sorted[i] in next = name) do
                let struct (_, more, _) = sorted[i]
                canonical.Append(',').Append(more) |> ignore
                i <- i + 1

            canonical.Append('\n') |> ignore

            if signed.Length > 0 then
                signed.Append(';') |> ignore

            signed.Append(name) |> ignore

        let signedHeaders = signed.ToString()

        canonical.Append('\n').Append(signedHeaders).Append('\n').Append(payloadSha256Hex)
        |> ignore

        let signature =
            signature credentials.SecretAccessKey region service amzDate canonical

        generated
        @ [
            "authorization",
            String.Concat(
                [|
                    Algorithm
                    " Credential="
                    credentials.AccessKeyId
                    "/"
                    scope
                    ", SignedHeaders="
                    signedHeaders
                    ", Signature="
                    signature
                |]
            )
        ]

/// The C#-facing surface of `AwsCredentials`.
type AwsCredentials with

    /// Credentials from their parts; `sessionToken` is null for long-term keys.
    static member Create(accessKeyId: string, secretAccessKey: string, sessionToken: string | null) : AwsCredentials = {
        AccessKeyId = accessKeyId
        SecretAccessKey = secretAccessKey
        SessionToken = Option.ofObj sessionToken
    }
