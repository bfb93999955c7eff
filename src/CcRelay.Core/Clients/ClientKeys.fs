namespace CcRelay.Core

open System
open System.Runtime.InteropServices
open System.Security.Cryptography
open System.Text
open System.Threading

/// The auth decision for one request when clients may be configured.
type ClientVerdict =
    /// The caller may proceed: as `Client` (None: through `server.auth`, or an open relay), with `Forward` the
    /// caller's foreign credentials (a client key, like the relay's own secrets, is consumed and never forwarded).
    | Admitted of Client: ClientConfig option * Forward: Credential list
    /// 401 `authentication_error`, with a message that names no secret.
    | Refused of Reason: string

/// The effective client keys of one relay snapshot, and the presented keys already found to be theirs: a request
/// presenting a key seen before is identified by comparing characters, without hashing it again.
///
/// NOTE: what is kept, and why it is safe (docs/teams.md, "How a key is checked"). Slot `i` holds the characters of
/// a presented key once its SHA-256 was found equal to client `i`'s `KeyDigest` and the key was admitted (not
/// expired): at most one key per client entry, never a key that failed, so callers cannot grow it. A key compared
/// equal to a slot's characters therefore has that client's digest: the answer is the one hashing gives. The
/// comparison walks every filled slot, each in constant time (`CryptographicOperations.FixedTimeEquals`; a length
/// differs at once, as hashing's time differs with the length). The slots belong to the snapshot: a revocation,
/// rotation, runtime add or config reload makes a new snapshot with empty slots, so a changed key set is decided by
/// hashing from its first request; expiry is checked at every request, after the lookup. The characters live in
/// the process's memory until the snapshot is dropped (a request's header string lives until it is collected):
/// never written anywhere, never logged, never in an answer (this is a class without a printing `ToString`).
[<Sealed>]
type ClientKeyIndex(clients: Collections.Generic.IReadOnlyList<ClientConfig>) =
    let entries: ClientConfig array =
        match clients with
        | :? (ClientConfig list) as list -> Array.ofList list
        | _ -> Array.init clients.Count (fun i -> clients[i])

    let seen: (char array | null) array = Array.zeroCreate entries.Length

    /// The effective clients, as given.
    member _.Clients = clients

    /// How many client keys there are.
    member _.Count = entries.Length

    /// The client at `index` (from `IndexOf`).
    member _.Item(index: int) : ClientConfig = entries[index]

    /// Whether a key was remembered for client `index` (tests).
    member _.Remembers(index: int) : bool =
        match Volatile.Read &seen[index] with
        | null -> false
        | _ -> true

    /// The index of the client whose key `key` is, -1 when none: first among the keys already seen (every filled
    /// slot compared, in constant time each, the last match wins), else by the key's SHA-256 against every client's
    /// digest (constant time, the last match wins, as `ClientKeys.identifyDigest`).
    member _.IndexOf(key: string) : int =
        let presented = MemoryMarshal.AsBytes(key.AsSpan())
        let mutable found = -1

        for i in 0 .. seen.Length - 1 do
            match Volatile.Read &seen[i] with
            | null -> ()
            | chars ->
                if CryptographicOperations.FixedTimeEquals(MemoryMarshal.AsBytes(ReadOnlySpan chars), presented) then
                    found <- i

        if found >= 0 then
            found
        else
            let digest = SHA256.HashData(Encoding.UTF8.GetBytes key)

            for i in 0 .. entries.Length - 1 do
                if CryptographicOperations.FixedTimeEquals(ReadOnlySpan entries[i].KeyDigest, ReadOnlySpan digest) then
                    found <- i

            found

    /// Remembers `key` as client `index`'s, which `IndexOf` found by its digest and which was admitted; a slot keeps
    /// the first key it was given.
    member _.Remember(index: int, key: string) : unit =
        match Volatile.Read &seen[index] with
        | null ->
            Interlocked.CompareExchange<char array | null>(&seen[index], key.ToCharArray(), null)
            |> ignore
        | _ -> ()

/// Client keys (`clients[]`): which client a request is, and what it may ask for.
///
/// How they combine with `server.auth` (docs/teams.md): a request presenting a client key (in `x-api-key` or as
/// `Authorization: Bearer`) is that client. Any other request is decided by `server.auth` as before, and passes
/// as no client (no limits, no budget: the operator's key). When clients are configured, an open `server.auth`
/// (no `api_key`, no bearer auth) no longer admits everyone: only client keys pass.
[<RequireQualifiedAccess>]
module ClientKeys =

    /// SHA-256 of a presented key's UTF-8 bytes.
    let digest (key: string) : byte array =
        SHA256.HashData(Encoding.UTF8.GetBytes key)

    /// The client whose key digest equals `digest`. Every client is compared, in constant time, whatever
    /// matched: the time taken says nothing about which digest (or how much of it) matched.
    let identifyDigest
        (clients: Collections.Generic.IReadOnlyList<ClientConfig>)
        (digest: byte array)
        : ClientConfig option =
        let mutable found = None

        let matches (client: ClientConfig) =
            CryptographicOperations.FixedTimeEquals(ReadOnlySpan client.KeyDigest, ReadOnlySpan digest)

        // NOTE: an F# list (what the host holds) is walked as a list: its indexer is O(n), its enumerator allocates
        match clients with
        | :? (ClientConfig list) as list ->
            for client in list do
                if matches client then
                    found <- Some client
        | _ ->
            for i in 0 .. clients.Count - 1 do
                if matches clients[i] then
                    found <- Some clients[i]

        found

    /// Whether a client's key has expired at `now`.
    let isExpired (now: DateTimeOffset) (client: ClientConfig) : bool =
        client.ExpiresAt |> Option.exists (fun at -> now >= at)

    /// Decides a request from its raw `x-api-key` and `Authorization` values (null or empty when absent), with the
    /// snapshot's client keys (`ClientKeyIndex`: a key admitted before is recognised without hashing it again).
    let authenticateWith
        (keys: ClientKeyIndex)
        (policy: AuthPolicy)
        (now: DateTimeOffset)
        (apiKeyHeader: string | null)
        (authorizationHeader: string | null)
        : ClientVerdict =
        let apiKey =
            match apiKeyHeader with
            | null
            | "" -> None
            | key -> Some key

        let bearer = Headers.tryBearer authorizationHeader

        let none = keys.Count = 0

        // the client index, and whether x-api-key (else the bearer token) named it
        let struct (index, viaApiKey) =
            if none then
                struct (-1, false)
            else
                let viaKey =
                    match apiKey with
                    | Some key -> keys.IndexOf key
                    | None -> -1

                if viaKey >= 0 then
                    struct (viaKey, true)
                else
                    match bearer with
                    | Some token -> struct (keys.IndexOf token, false)
                    | None -> struct (-1, false)

        if index >= 0 then
            let client = keys[index]

            if isExpired now client then
                Refused $"client key %s{client.KeyId} expired; ask the relay's operator for a new one"
            elif viaApiKey then
                keys.Remember(index, apiKey.Value)
                // the other header may carry the caller's own credential (a subscription token for passthrough)
                Admitted(Some client, Auth.foreign policy null authorizationHeader)
            else
                keys.Remember(index, bearer.Value)
                Admitted(Some client, Auth.foreign policy apiKeyHeader null)
        else
            match Auth.authenticate policy apiKeyHeader authorizationHeader with
            | Denied reason -> Refused reason
            | Allowed _ when not none && Auth.isOpen policy ->
                match apiKey, bearer with
                | None, None -> Refused "missing credential: send your relay client key as x-api-key"
                | _ -> Refused "invalid client key"
            | Allowed forward -> Admitted(None, forward)

    /// Decides a request from its raw `x-api-key` and `Authorization` values (null or empty when absent), hashing
    /// every presented key (`authenticateWith` a snapshot's `ClientKeyIndex` remembers admitted keys).
    let authenticate
        (clients: Collections.Generic.IReadOnlyList<ClientConfig>)
        (policy: AuthPolicy)
        (now: DateTimeOffset)
        (apiKeyHeader: string | null)
        (authorizationHeader: string | null)
        : ClientVerdict =
        authenticateWith (ClientKeyIndex clients) policy now apiKeyHeader authorizationHeader

    /// Whether the client may ask for `model` (the model the request names): `models` patterns, none = all.
    let allowsModel (client: ClientConfig) (model: string) : bool =
        client.Models.IsEmpty
        || client.Models |> List.exists (fun pattern -> ModelPattern.matches pattern model)

    /// Whether the client may be routed to the provider named `provider`: `providers`, none = all.
    let allowsProvider (client: ClientConfig) (provider: string) : bool =
        client.Providers.IsEmpty || List.contains provider client.Providers

    /// Whether the client may use `stage` (None: the request's stage is unknown, which is never refused).
    let allowsStage (client: ClientConfig) (stage: string option) : bool =
        match stage with
        | None -> true
        | Some stage -> client.Stages.IsEmpty || List.contains stage client.Stages

/// The C#-facing surface of `ClientKeys`.
type ClientVerdict with

    /// The client of an admitted request; null when it passed as no client (or was refused).
    member this.ClientOrNull: ClientConfig | null =
        match this with
        | Admitted(Some client, _) -> client
        | _ -> null
