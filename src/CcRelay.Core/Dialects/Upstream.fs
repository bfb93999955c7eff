namespace CcRelay.Core

open System

/// Where a request goes and what it carries (the Anthropic-shaped provider family).
[<RequireQualifiedAccess>]
module Upstream =

    /// The providers a request may go to, in order. Until routing strategies exist: enabled providers in
    /// config order, and the first one is used.
    let candidates (config: RelayConfig) : ProviderConfig list =
        config.Providers |> List.filter _.Enabled

    let private join (baseUrl: Uri) (pathAndQuery: string) : Uri =
        let root = baseUrl.GetLeftPart(UriPartial.Path).TrimEnd('/')

        match baseUrl.Query.TrimStart('?') with
        | "" -> Uri(root + pathAndQuery)
        | baseQuery ->
            let path, query =
                match pathAndQuery.IndexOf '?' with
                | -1 -> pathAndQuery, ""
                | q -> pathAndQuery.Substring(0, q), pathAndQuery.Substring(q + 1)

            Uri(root + path + "?" + (if query = "" then baseQuery else baseQuery + "&" + query))

    // Joined URLs, by base URL and client path: a request's URL is the same for every request to the same
    // provider and route, and parsing a Uri per request costs more than relaying a small answer. Bounded,
    // because the client chooses the query string; past the bound URLs are simply joined each time.
    let private joined =
        Collections.Concurrent.ConcurrentDictionary<struct (string * string), Uri>()

    let private maxJoined = 1024
    let private joinedCount = ref 0

    /// Joins the base URL (keeping any path prefix such as `/api/anthropic`) with the client's path and query.
    /// A query in the base URL comes first, then the client's (as Go's `httputil.ProxyRequest.SetURL` does).
    let url (baseUrl: Uri) (pathAndQuery: string) : Uri =
        let key = struct (baseUrl.OriginalString, pathAndQuery)

        match joined.TryGetValue key with
        | true, known -> known
        | _ ->
            let result = join baseUrl pathAndQuery

            // NOTE: ConcurrentDictionary.Count takes every lock; a counter of its own is enough for a bound
            if joinedCount.Value < maxJoined && joined.TryAdd(key, result) then
                Threading.Interlocked.Increment(&joinedCount.contents) |> ignore

            result

    /// The credential headers for an attempt with `key`. Anthropic-type providers receive the caller's
    /// foreign credential when there is one (passthrough, e.g. a Claude subscription token); otherwise the
    /// key is sent in the provider's auth style; with neither, nothing is sent.
    let credentialsWith
        (provider: ProviderConfig)
        (key: KeyConfig voption)
        (forward: Credential list)
        : (string * string) list =
        if ProviderType.acceptsClientCredential provider.Type && not forward.IsEmpty then
            forward
            |> List.map (function
                | ApiKey key -> "x-api-key", key
                | BearerToken token -> "authorization", "Bearer " + token)
        else
            match key with
            | ValueSome key when key.Key.Length > 0 ->
                match provider.AuthStyle with
                | AuthStyle.XApiKey -> [ "x-api-key", key.Key ]
                | AuthStyle.Bearer -> [ "authorization", "Bearer " + key.Key ]
            | _ -> []

    /// The credential headers for a provider with its first configured key (see `credentialsWith`).
    let credentials (provider: ProviderConfig) (forward: Credential list) : (string * string) list =
        credentialsWith provider (provider.Keys |> List.tryHead |> ValueOption.ofOption) forward
