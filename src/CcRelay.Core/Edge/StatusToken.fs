namespace CcRelay.Core

open System
open System.Security.Cryptography
open System.Text

/// `security.status_token`, compiled: kept only as a SHA-256 digest, compared in constant time.
type StatusTokenPolicy = private { Digest: byte array option }

/// Who may read `/metrics` and the detailed `/health`.
[<RequireQualifiedAccess>]
module StatusToken =

    /// Digests the token once, at load time.
    let compile (token: string option) : StatusTokenPolicy = {
        Digest =
            token
            |> Option.filter (String.IsNullOrEmpty >> not)
            |> Option.map (fun t -> SHA256.HashData(Encoding.UTF8.GetBytes t))
    }

    /// Whether a token is configured at all.
    let isRequired (policy: StatusTokenPolicy) : bool = policy.Digest.IsSome

    /// Whether a request's raw `Authorization` header admits it: always without a token; with one, only
    /// `Bearer <token>` (digests compared in constant time, so the comparison leaks neither length nor prefix).
    let admits (policy: StatusTokenPolicy) (authorizationHeader: string | null) : bool =
        match policy.Digest with
        | None -> true
        | Some digest ->
            match Headers.tryBearer authorizationHeader with
            | Some presented ->
                let presentedDigest = SHA256.HashData(Encoding.UTF8.GetBytes presented)
                CryptographicOperations.FixedTimeEquals(ReadOnlySpan digest, ReadOnlySpan presentedDigest)
            | None -> false

    /// The `/health` answer for a caller without the token: the status only, no providers, keys or circuits.
    let healthSummary (status: string) : byte array =
        Encoding.UTF8.GetBytes($"{{\"status\":\"%s{status}\"}}")
