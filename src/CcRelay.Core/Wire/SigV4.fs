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

/// The headers a SigV4 signature adds to a request (`SigV4.signRequest`): each is set on the request as it is.
[<Sealed>]
type SigV4Headers(amzDate: string, contentSha256: string, securityToken: string | null, authorization: string) =
    /// `x-amz-date`: the signing time, `YYYYMMDDTHHMMSSZ`.
    member _.AmzDate = amzDate
    /// `x-amz-content-sha256`: the lower-case hex SHA-256 of the body.
    member _.ContentSha256 = contentSha256
    /// `x-amz-security-token`: the session token of temporary credentials; null for long-term keys.
    member _.SecurityToken = securityToken
    /// `authorization`: `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
    member _.Authorization = authorization

/// One thread's working memory for `SigV4.signRequest`: the canonical request, the string to sign and the
/// authorization are written as UTF-8 bytes into one growing buffer, the signed headers sorted in one list, both
/// reused by every request the thread signs (about 1 KB of text per request, hashed where it was written: no
/// builder, no intermediate strings). `signRequest` is done with it before it returns (no await inside).
[<Sealed>]
type internal SigV4Scratch() =
    [<ThreadStatic; DefaultValue>]
    static val mutable private current: SigV4Scratch | null

    member val Bytes: byte array = Array.zeroCreate 2048 with get, set
    member val Length = 0 with get, set
    /// The signed headers: (lower-case name, canonical value, position given).
    member val Headers = ResizeArray<struct (string * string * int)>(8)
    member val Digest: byte array = Array.zeroCreate 32

    /// Room for `count` more bytes.
    member this.Ensure(count: int) =
        if this.Length + count > this.Bytes.Length then
            let grown = Array.zeroCreate (max (this.Bytes.Length * 2) (this.Length + count))
            Buffer.BlockCopy(this.Bytes, 0, grown, 0, this.Length)
            this.Bytes <- grown

    member this.Byte(b: byte) =
        this.Ensure 1
        this.Bytes[this.Length] <- b
        this.Length <- this.Length + 1

    member this.Text(text: string) =
        this.Ensure(Encoding.UTF8.GetMaxByteCount text.Length)

        this.Length <-
            this.Length
            + Encoding.UTF8.GetBytes(text, 0, text.Length, this.Bytes, this.Length)

    member this.Raw(bytes: ReadOnlySpan<byte>) =
        this.Ensure bytes.Length
        bytes.CopyTo(Span(this.Bytes, this.Length, bytes.Length))
        this.Length <- this.Length + bytes.Length

    /// Lower-case hex of `Digest`.
    member this.DigestHex() =
        this.Ensure 64
        let hex = "0123456789abcdef"B
        let bytes = this.Bytes

        for i in 0..31 do
            let b = this.Digest[i]
            bytes[this.Length + 2 * i] <- hex[int (b >>> 4)]
            bytes[this.Length + 2 * i + 1] <- hex[int (b &&& 15uy)]

        this.Length <- this.Length + 64

    member this.Span(start: int, length: int) = ReadOnlySpan(this.Bytes, start, length)

    /// This thread's scratch, emptied.
    static member Take() : SigV4Scratch =
        match SigV4Scratch.current with
        | null ->
            let created = SigV4Scratch()
            SigV4Scratch.current <- created
            created
        | known ->
            known.Length <- 0
            known.Headers.Clear()
            known

/// The signing time as SigV4 writes it, for one second (`SigV4.signRequest` formats a date once a second).
[<Sealed>]
type internal SigV4Date(second: int64, amzDate: string) =
    member _.Second = second
    member _.AmzDate = amzDate
    member val ShortDate = amzDate.Substring(0, 8)

/// A derived signing key with what it was derived from, and the credential scope `{date}/{region}/{service}/aws4_request`.
[<Sealed>]
type internal SigV4Key(secret: string, shortDate: string, region: string, service: string, key: byte array) =
    member _.Secret = secret
    member _.ShortDate = shortDate
    member _.Region = region
    member _.Service = service
    member _.Key = key
    member val Scope = String.Concat(shortDate, "/", region, "/", service, "/aws4_request")

    member this.Matches(secret: string, shortDate: string, region: string, service: string) =
        String.Equals(this.Secret, secret, StringComparison.Ordinal)
        && String.Equals(this.ShortDate, shortDate, StringComparison.Ordinal)
        && String.Equals(this.Region, region, StringComparison.Ordinal)
        && String.Equals(this.Service, service, StringComparison.Ordinal)

/// What of a canonical request depends only on its method and URL: `{METHOD}\n{canonical URI}\n{canonical query}\n`
/// as UTF-8, and the `host` header's value.
[<Sealed>]
type internal SigV4Target(method: string, prefix: byte array, host: string) =
    member _.Method = method
    member _.Prefix = prefix
    member _.Host = host

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

    /// The SigV4 signing key: HMAC chain `"AWS4"+secret → date → region → service → "aws4_request"` (cached by
    /// `keyOf`: it changes once a day).
    let private signingKey (secretAccessKey: string) (shortDate: string) (region: string) (service: string) =
        [ shortDate; region; service; "aws4_request" ]
        |> List.fold hmac (Encoding.UTF8.GetBytes("AWS4" + secretAccessKey))

    let private maxSigningKeys = 256

    // The signing time formatted, for the second it names: formatting a date costs more than the rest of the
    // string to sign, and every request in the same second has the same one.
    let mutable private lastDate = SigV4Date(Int64.MinValue, "00000000T000000Z")

    let private dateOf (now: DateTimeOffset) : SigV4Date =
        let second = now.UtcTicks / TimeSpan.TicksPerSecond
        let known = lastDate

        if known.Second = second then
            known
        else
            let fresh =
                SigV4Date(second, now.UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture))

            lastDate <- fresh
            fresh

    // Signing keys with their scope, by secret, day, region and service; the last one used checked first (one provider's
    // one credential signs most requests). Bounded: past the bound the table starts over.
    let private keys =
        Collections.Concurrent.ConcurrentDictionary<struct (string * string * string * string), SigV4Key>()

    let mutable private lastKey = SigV4Key("", "", "", "", [||])

    let private keyOf (secret: string) (shortDate: string) (region: string) (service: string) : SigV4Key =
        let known = lastKey

        if known.Matches(secret, shortDate, region, service) then
            known
        else
            let id = struct (secret, shortDate, region, service)

            let key =
                match keys.TryGetValue id with
                | true, found -> found
                | _ ->
                    let derived =
                        SigV4Key(secret, shortDate, region, service, signingKey secret shortDate region service)

                    if keys.Count >= maxSigningKeys then
                        keys.Clear()

                    keys.TryAdd(id, derived) |> ignore
                    derived

            lastKey <- key
            key

    // The method and URL part of canonical requests and the host header, by URL (a cloud provider's URLs are made once
    // per model and reused: `Dialect`'s table), so path encoding and the host's text are done once per URL.
    let private targets =
        Runtime.CompilerServices.ConditionalWeakTable<Uri, SigV4Target>()

    let private targetOf (method: string) (url: Uri) : SigV4Target =
        match targets.TryGetValue url with
        | true, known when String.Equals(known.Method, method, StringComparison.Ordinal) -> known
        | _ ->
            let prefix =
                String.Concat(
                    method.ToUpperInvariant(),
                    "\n",
                    canonicalUriOf url.AbsolutePath,
                    "\n",
                    canonicalQuery url.Query + "\n"
                )

            let target = SigV4Target(method, Encoding.UTF8.GetBytes prefix, hostOf url)
            targets.AddOrUpdate(url, target)
            target

    let private isGenerated (name: string) =
        name = "x-amz-date"
        || name = "x-amz-content-sha256"
        || name = "x-amz-security-token"

    /// The signature of the canonical request in `scratch` (all its bytes), made at `amzDate` with `key`, into
    /// `scratch.Digest`: the string to sign `AWS4-HMAC-SHA256\n{amzDate}\n{scope}\n{hex(sha256(canonicalRequest))}`
    /// (written after the canonical request) HMAC'd with the signing key.
    let private writeSignature (scratch: SigV4Scratch) (key: SigV4Key) (amzDate: string) =
        SHA256.HashData(scratch.Span(0, scratch.Length), Span scratch.Digest) |> ignore
        let toSign = scratch.Length
        scratch.Text Algorithm
        scratch.Byte '\n'B
        scratch.Text amzDate
        scratch.Byte '\n'B
        scratch.Text key.Scope
        scratch.Byte '\n'B
        scratch.DigestHex()

        HMACSHA256.HashData(ReadOnlySpan key.Key, scratch.Span(toSign, scratch.Length - toSign), Span scratch.Digest)
        |> ignore

    /// The hex signature of a canonical request made at `amzDate` (`YYYYMMDDTHHMMSSZ`) with the key derived from
    /// the secret, date, region and service (what `signRequest` computes, for tests).
    let internal signature
        (secretAccessKey: string)
        (region: string)
        (service: string)
        (amzDate: string)
        (canonicalRequest: string)
        : string =
        let key = keyOf secretAccessKey (amzDate.Substring(0, 8)) region service
        let scratch = SigV4Scratch.Take()
        scratch.Text canonicalRequest
        writeSignature scratch key amzDate
        hex scratch.Digest

    /// The signature headers of a request (see `signRequest`) whose body hashes to `payloadSha256Hex`.
    let private signHashed
        (credentials: AwsCredentials)
        (region: string)
        (service: string)
        (now: DateTimeOffset)
        (method: string)
        (url: Uri)
        (contentType: string | null)
        (headers: Collections.Generic.IReadOnlyList<struct (string * string)> | null)
        (payloadSha256Hex: string)
        : SigV4Headers =
        let date = dateOf now
        let key = keyOf credentials.SecretAccessKey date.ShortDate region service
        let target = targetOf method url
        let scratch = SigV4Scratch.Take()

        // every signed header, lower-cased: host, the given content-type and x-amz-* ones, the generated ones
        let signed = scratch.Headers
        signed.Add(struct ("host", target.Host, 0))

        match contentType with
        | null -> ()
        | value -> signed.Add(struct ("content-type", canonicalValue value, signed.Count))

        match headers with
        | null -> ()
        | headers ->
            for i in 0 .. headers.Count - 1 do
                let struct (name, value) = headers[i]
                let name = name.Trim().ToLowerInvariant()

                if
                    (name = "content-type" || name.StartsWith("x-amz-", StringComparison.Ordinal))
                    && not (isGenerated name)
                then
                    signed.Add(struct (name, canonicalValue value, signed.Count))

        signed.Add(struct ("x-amz-date", date.AmzDate, signed.Count))

        let token: string | null =
            match credentials.SessionToken with
            | Some token ->
                signed.Add(struct ("x-amz-security-token", canonicalValue token, signed.Count))
                token
            | None -> null

        signed.Add(struct ("x-amz-content-sha256", canonicalValue payloadSha256Hex, signed.Count))

        // sorted by name, then by position (repeated names keep their order and are joined with ","): an insertion
        // sort, as there are a handful
        for i in 1 .. signed.Count - 1 do
            let item = signed[i]
            let struct (name, _, position) = item
            let mutable j = i - 1

            while j >= 0
                  && (let struct (before, _, at) = signed[j]
                      let order = String.CompareOrdinal(before, name)
                      order > 0 || (order = 0 && at > position)) do
                signed[j + 1] <- signed[j]
                j <- j - 1

            signed[j + 1] <- item

        // the canonical request
        scratch.Raw(ReadOnlySpan target.Prefix)
        let mutable i = 0

        while i < signed.Count do
            let struct (name, value, _) = signed[i]
            scratch.Text name
            scratch.Byte ':'B
            scratch.Text value
            i <- i + 1

            while i < signed.Count && (let struct (next, _, _) = signed[i] in next = name) do
                let struct (_, more, _) = signed[i]
                scratch.Byte ','B
                scratch.Text more
                i <- i + 1

            scratch.Byte '\n'B

        scratch.Byte '\n'B
        let signedStart = scratch.Length

        for i in 0 .. signed.Count - 1 do
            let struct (name, _, _) = signed[i]

            if i = 0 then
                scratch.Text name
            elif (let struct (before, _, _) = signed[i - 1] in before <> name) then
                scratch.Byte ';'B
                scratch.Text name

        let signedLength = scratch.Length - signedStart
        scratch.Byte '\n'B
        scratch.Text payloadSha256Hex
        writeSignature scratch key date.AmzDate

        // the authorization
        let authorization = scratch.Length
        scratch.Text Algorithm
        scratch.Text " Credential="
        scratch.Text credentials.AccessKeyId
        scratch.Byte '/'B
        scratch.Text key.Scope
        scratch.Text ", SignedHeaders="
        // NOTE: Raw may grow the buffer; the span still reads the old one, which holds the same bytes
        scratch.Raw(scratch.Span(signedStart, signedLength))
        scratch.Text ", Signature="
        scratch.DigestHex()

        SigV4Headers(
            date.AmzDate,
            payloadSha256Hex,
            token,
            Encoding.UTF8.GetString(scratch.Bytes, authorization, scratch.Length - authorization)
        )

    /// The headers that make a request carry a SigV4 signature (`SigV4Headers`: `x-amz-date`,
    /// `x-amz-content-sha256`, `x-amz-security-token` for session credentials, `authorization`), `body` being the
    /// exact bytes sent. Signed: `host` (from `url`, port included when not the default), those `x-amz-*` headers,
    /// `contentType` (when not null) and of `headers` the `content-type` and every `x-amz-*` one (names lower-cased,
    /// values trimmed with inner whitespace collapsed, repeated names joined with `,`); never `connection` or
    /// `authorization`. The canonical URI is computed from the URL's escaped path exactly as it goes on the wire
    /// (`AbsolutePath`, which does not unescape `%2F`), so build the URL with canonicalisation off (see `Bedrock.url`)
    /// and send it unchanged. The canonical request is written and hashed in per-thread memory; what depends only on
    /// the URL, the second or the credential's day is computed once (allocated per request: the three values).
    let signRequest
        (credentials: AwsCredentials)
        (region: string)
        (service: string)
        (now: DateTimeOffset)
        (method: string)
        (url: Uri)
        (contentType: string | null)
        (headers: Collections.Generic.IReadOnlyList<struct (string * string)> | null)
        (body: ReadOnlySpan<byte>)
        : SigV4Headers =
        signHashed credentials region service now method url contentType headers (sha256Hex body)

    /// The headers to add to a request so that it carries a SigV4 signature, as (name, value) pairs: `x-amz-date`,
    /// `x-amz-security-token` (session credentials only), `x-amz-content-sha256` and `authorization`, as
    /// `signRequest` makes them, for a body whose `sha256Hex` is `payloadSha256Hex`.
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
        let given =
            headers |> Seq.map (fun (name, value) -> struct (name, value)) |> Array.ofSeq

        let signed =
            signHashed credentials region service now method url null given payloadSha256Hex

        [
            "x-amz-date", signed.AmzDate
            match signed.SecurityToken with
            | null -> ()
            | token -> "x-amz-security-token", token
            "x-amz-content-sha256", signed.ContentSha256
            "authorization", signed.Authorization
        ]

/// The C#-facing surface of `AwsCredentials`.
type AwsCredentials with

    /// Credentials from their parts; `sessionToken` is null for long-term keys.
    static member Create(accessKeyId: string, secretAccessKey: string, sessionToken: string | null) : AwsCredentials = {
        AccessKeyId = accessKeyId
        SecretAccessKey = secretAccessKey
        SessionToken = Option.ofObj sessionToken
    }
