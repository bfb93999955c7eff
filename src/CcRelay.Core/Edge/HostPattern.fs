namespace CcRelay.Core

open System

/// One entry of `security.upstream_hosts`.
[<RequireQualifiedAccess>]
type HostPattern =
    /// `api.anthropic.com`, `127.0.0.1`, `::1`: this host only.
    | Exact of Host: string
    /// `.anthropic.com`: `anthropic.com` and every name below it (`api.anthropic.com`, `a.b.anthropic.com`).
    | Suffix of Domain: string

/// The upstream allowlist: which hosts a provider's `base_url` may name. Host names compare case-insensitively,
/// without a trailing dot; IPv6 addresses without brackets.
[<RequireQualifiedAccess>]
module HostPattern =

    let private normalise (host: string) : string =
        host.Trim().TrimEnd('.').TrimStart('[').TrimEnd(']').ToLowerInvariant()

    /// Reads one entry; the error says what is wrong and what is allowed.
    let parse (text: string) : Result<HostPattern, string> =
        let expected =
            "expected a host (api.anthropic.com, 127.0.0.1) or a suffix starting with a dot (.anthropic.com)"

        let trimmed = text.Trim()

        if trimmed.Length = 0 then
            Error $"must not be empty (%s{expected})"
        elif trimmed.Contains "://" || trimmed.Contains '/' then
            Error $"\"%s{trimmed}\" is a URL; %s{expected}"
        elif trimmed.StartsWith "*." then
            Error $"\"%s{trimmed}\": write the suffix as \"%s{trimmed.Substring 1}\" (no wildcard)"
        elif trimmed.Contains '*' then
            Error $"\"%s{trimmed}\": wildcards are not supported; %s{expected}"
        elif trimmed.StartsWith '.' then
            let domain = normalise (trimmed.Substring 1)

            if domain.Length = 0 || Uri.CheckHostName domain <> UriHostNameType.Dns then
                Error $"\"%s{trimmed}\" is not a domain suffix; %s{expected}"
            else
                Ok(HostPattern.Suffix domain)
        else
            let host = normalise trimmed

            match Uri.CheckHostName host with
            | UriHostNameType.Dns
            | UriHostNameType.IPv4
            | UriHostNameType.IPv6 -> Ok(HostPattern.Exact host)
            | _ -> Error $"\"%s{trimmed}\" is not a host name or IP address (a port is not allowed); %s{expected}"

    /// The entry as the config writes it.
    let text (pattern: HostPattern) : string =
        match pattern with
        | HostPattern.Exact host -> host
        | HostPattern.Suffix domain -> "." + domain

    /// Whether `host` (a URI's `Host`: brackets around IPv6 allowed) matches the entry.
    let matches (host: string) (pattern: HostPattern) : bool =
        let host = normalise host

        match pattern with
        | HostPattern.Exact exact -> host = exact
        | HostPattern.Suffix domain -> host = domain || host.EndsWith("." + domain, StringComparison.Ordinal)

    /// Whether the allowlist admits `host`: an empty list admits every host.
    let allows (patterns: HostPattern list) (host: string) : bool =
        patterns.IsEmpty || patterns |> List.exists (matches host)
