namespace CcRelay.Core

open System
open System.Security.Cryptography
open System.Text

/// The relay's own client-auth settings (`server.auth`).
type AuthSettings = {
    /// `server.auth.api_key` (or the legacy `server.api_key`): checked against `x-api-key`.
    ApiKey: string option
    /// `server.auth.allow_bearer` / `allow_subscription`: accept `Authorization: Bearer`.
    AllowBearer: bool
    /// `server.auth.bearer_secret`: when set, the bearer token must equal it; when not, any token passes.
    BearerSecret: string option
}

/// A client credential that the relay may pass through to an Anthropic-type provider.
type Credential =
    | ApiKey of Value: string
    | BearerToken of Value: string

/// The auth decision for one request.
type AuthVerdict =
    /// The caller may proceed. `Forward` holds the caller's *foreign* credentials (the user's own key or
    /// subscription token); a credential that matched the relay's own secret is consumed and never listed.
    | Allowed of Forward: Credential list
    | Denied of Reason: string

/// Compiled auth settings: secrets are kept only as SHA-256 digests for constant-time comparison.
type AuthPolicy = private {
    ApiKeyDigest: byte array option
    AllowBearer: bool
    BearerDigest: byte array option
}

/// Client authentication: who may call, and which credentials travel on.
[<RequireQualifiedAccess>]
module Auth =

    let private digest (value: string) : byte array =
        SHA256.HashData(Encoding.UTF8.GetBytes value)

    /// Digests a configuration's secrets once, at load time.
    let compile (settings: AuthSettings) : AuthPolicy =
        let nonEmpty = Option.filter (String.IsNullOrEmpty >> not)

        {
            ApiKeyDigest = settings.ApiKey |> nonEmpty |> Option.map digest
            AllowBearer = settings.AllowBearer
            BearerDigest = settings.BearerSecret |> nonEmpty |> Option.map digest
        }

    /// True when the relay accepts every caller (no `api_key`, no bearer auth).
    let isOpen (policy: AuthPolicy) : bool =
        policy.ApiKeyDigest.IsNone && not policy.AllowBearer

    let private matches (secret: byte array option) (presented: byte array) : bool =
        match secret with
        | Some s -> CryptographicOperations.FixedTimeEquals(ReadOnlySpan s, ReadOnlySpan presented)
        | None -> false

    /// Decides a request from its raw `x-api-key` and `Authorization` header values (null or empty when absent).
    /// Both headers are compared against both secrets, so the relay's own secret is never forwarded,
    /// whichever header it arrived in.
    let authenticate
        (policy: AuthPolicy)
        (apiKeyHeader: string | null)
        (authorizationHeader: string | null)
        : AuthVerdict =
        let apiKey =
            match apiKeyHeader with
            | null
            | "" -> None
            | key -> Some key

        let bearer = Headers.tryBearer authorizationHeader
        // with no secret configured there is nothing to compare against: skip hashing on the hot path
        let hasSecrets = policy.ApiKeyDigest.IsSome || policy.BearerDigest.IsSome

        let digestIfNeeded =
            if hasSecrets then
                Option.map digest
            else
                Option.map (fun _ -> Array.empty)

        let apiKeyDigest = apiKey |> digestIfNeeded
        let bearerDigest = bearer |> digestIfNeeded

        let isOwn (d: byte array) =
            matches policy.ApiKeyDigest d || matches policy.BearerDigest d

        let foreign = [
            match apiKey, apiKeyDigest with
            | Some k, Some d when not (isOwn d) -> ApiKey k
            | _ -> ()
            match bearer, bearerDigest with
            | Some t, Some d when not (isOwn d) -> BearerToken t
            | _ -> ()
        ]

        if isOpen policy then
            Allowed foreign
        else
            let keyPassed = apiKeyDigest |> Option.exists (matches policy.ApiKeyDigest)

            let bearerPassed =
                policy.AllowBearer
                && match policy.BearerDigest, bearerDigest with
                   | Some _, Some d -> matches policy.BearerDigest d
                   | None, Some _ -> true
                   | _, None -> false

            if keyPassed || bearerPassed then
                Allowed foreign
            else
                let accepted =
                    match policy.ApiKeyDigest.IsSome, policy.AllowBearer with
                    | true, true -> "x-api-key or Authorization: Bearer"
                    | true, false -> "x-api-key"
                    | _ -> "Authorization: Bearer"

                match apiKey, bearer with
                | None, None -> Denied $"missing credential: send %s{accepted}"
                | Some _, _ when policy.ApiKeyDigest.IsSome -> Denied "invalid x-api-key"
                | _, Some _ when policy.AllowBearer -> Denied "invalid bearer token"
                | _ -> Denied $"wrong credential type: send %s{accepted}"

    /// The caller's *foreign* credentials among the two headers (null or empty when absent): those that match
    /// none of the relay's own secrets, which travel on as `authenticate` would forward them. Used when a client
    /// key (`ClientKeys`) authenticated the request through the other header.
    let foreign
        (policy: AuthPolicy)
        (apiKeyHeader: string | null)
        (authorizationHeader: string | null)
        : Credential list =
        let isOwn (value: string) =
            // with no secret configured there is nothing to compare against: no hashing
            (policy.ApiKeyDigest.IsSome || policy.BearerDigest.IsSome)
            && (let d = digest value
                matches policy.ApiKeyDigest d || matches policy.BearerDigest d)

        [
            match apiKeyHeader with
            | null
            | "" -> ()
            | key when not (isOwn key) -> ApiKey key
            | _ -> ()
            match Headers.tryBearer authorizationHeader with
            | Some token when not (isOwn token) -> BearerToken token
            | _ -> ()
        ]
