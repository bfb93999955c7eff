namespace CcRelay.Core

open System
open System.Security.Cryptography
open System.Text

/// The auth decision for one request when clients may be configured.
type ClientVerdict =
    /// The caller may proceed: as `Client` (None: through `server.auth`, or an open relay), with `Forward` the
    /// caller's foreign credentials (a client key, like the relay's own secrets, is consumed and never forwarded).
    | Admitted of Client: ClientConfig option * Forward: Credential list
    /// 401 `authentication_error`, with a message that names no secret.
    | Refused of Reason: string

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

    /// Decides a request from its raw `x-api-key` and `Authorization` values (null or empty when absent).
    let authenticate
        (clients: Collections.Generic.IReadOnlyList<ClientConfig>)
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

        let none = clients.Count = 0

        let viaKey =
            if none then
                None
            else
                apiKey |> Option.bind (digest >> identifyDigest clients)

        let viaBearer =
            match viaKey with
            | Some _ -> None
            | None when none -> None
            | None -> bearer |> Option.bind (digest >> identifyDigest clients)

        match viaKey, viaBearer with
        | Some client, _
        | None, Some client when isExpired now client ->
            Refused $"client key %s{client.KeyId} expired; ask the relay's operator for a new one"
        | Some client, _ ->
            // the other header may carry the caller's own credential (a subscription token for passthrough)
            Admitted(Some client, Auth.foreign policy null authorizationHeader)
        | None, Some client -> Admitted(Some client, Auth.foreign policy apiKeyHeader null)
        | None, None ->
            match Auth.authenticate policy apiKeyHeader authorizationHeader with
            | Denied reason -> Refused reason
            | Allowed _ when not none && Auth.isOpen policy ->
                match apiKey, bearer with
                | None, None -> Refused "missing credential: send your relay client key as x-api-key"
                | _ -> Refused "invalid client key"
            | Allowed forward -> Admitted(None, forward)

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
