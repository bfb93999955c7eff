namespace CcRelay.Core

open System
open System.Collections.Frozen

/// Which headers cross the relay. A pure function of the header name, case-insensitive.
[<RequireQualifiedAccess>]
module Headers =

    /// Hop-by-hop headers (RFC 9110 §7.6.1) plus the proxy-specific ones YARP also drops.
    /// They describe one connection and never travel further.
    let private hopByHop: FrozenSet<string> =
        [
            "connection"
            "keep-alive"
            "proxy-authenticate"
            "proxy-authorization"
            "proxy-connection"
            "te"
            "trailer"
            "transfer-encoding"
            "upgrade"
            "alt-svc"
            "http2-settings"
            "upgrade-insecure-requests"
        ]
        |> fun names -> FrozenSet.ToFrozenSet(names, StringComparer.OrdinalIgnoreCase)

    /// Request headers the relay sets itself, or that belong to the client connection.
    /// NOTE: `accept-encoding` is dropped so upstreams answer uncompressed. The relay must see SSE
    /// event boundaries (to flush per event and to append an `error` event to a broken stream);
    /// a gzip-compressed stream would hide them.
    let private requestOwned: FrozenSet<string> =
        [
            "host"
            "content-length"
            "accept-encoding"
            "expect"
            "x-api-key"
            "authorization"
            // Google's API-key header: a caller's Google key is never relayed (a gemini plan sets its own)
            "x-goog-api-key"
        ]
        |> fun names -> FrozenSet.ToFrozenSet(names, StringComparer.OrdinalIgnoreCase)

    /// Response headers the relay recomputes when it relays a stream.
    let private streamResponseOwned: FrozenSet<string> =
        [ "content-length" ]
        |> fun names -> FrozenSet.ToFrozenSet(names, StringComparer.OrdinalIgnoreCase)

    /// True for hop-by-hop headers and HTTP/2 pseudo-headers (`:authority`, …).
    let isHopByHop (name: string) : bool =
        name.StartsWith(':') || hopByHop.Contains name

    /// The beta names of `anthropic-beta` header values (each a comma-separated list; the header may repeat):
    /// trimmed, empty ones and repeats dropped, first-seen order kept.
    let betaValues (headerValues: string seq) : string list =
        headerValues
        |> Seq.collect (fun v -> v.Split(',', StringSplitOptions.TrimEntries ||| StringSplitOptions.RemoveEmptyEntries))
        |> Seq.distinct
        |> List.ofSeq

    /// Whether a client request header is copied to the upstream request unchanged.
    /// Credentials (`x-api-key`, `authorization`, `x-goog-api-key`) never are: the auth decision sets them explicitly.
    let forwardRequest (name: string) : bool =
        not (isHopByHop name || requestOwned.Contains name)

    /// Whether an upstream response header is copied to the client. `isStream` drops the length of a
    /// streamed body, because the relay may end a broken stream with an `error` event of its own.
    let forwardResponse (isStream: bool) (name: string) : bool =
        not (isHopByHop name || (isStream && streamResponseOwned.Contains name))

    /// Parses `Authorization: Bearer <token>` (scheme case-insensitive). None for other schemes or an empty token.
    let tryBearer (authorization: string | null) : string option =
        match authorization with
        | null -> None
        | authorization ->
            let value = authorization.Trim()

            if
                value.Length > 7
                && value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)
            then
                let token = value.Substring(7).Trim()
                if token.Length = 0 then None else Some token
            else
                None

    /// Whether a header value can go on the wire as it is: no CR, LF or NUL, which would end its field line and
    /// let the rest of the value be read as another header (SocketsHttpHandler writes a value added without
    /// validation as it is).
    let isWireSafe (value: string) : bool =
        value.AsSpan().IndexOfAny('\r', '\n', '\000') < 0
