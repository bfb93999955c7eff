namespace CcRelay.Core

/// What one upstream attempt says about the provider's health.
[<RequireQualifiedAccess>]
type AttemptOutcome =
    /// The upstream answered the request (2xx/3xx).
    | Success
    /// The upstream is unwell: 5xx, 529, 429, 408, a connection error or a timeout. Worth another provider.
    | Failure of Reason: string
    /// The upstream refused this request for its own reasons (other 4xx): says nothing about its health.
    | Rejected of Status: int
    /// The client went away first: counts neither way.
    | Abandoned

/// Classification of upstream answers.
[<RequireQualifiedAccess>]
module Outcome =

    /// Classifies an upstream status code.
    let ofStatus (status: int) : AttemptOutcome =
        match status with
        | s when s >= 200 && s < 400 -> AttemptOutcome.Success
        | 408
        | 429 -> AttemptOutcome.Failure $"status %d{status}"
        | s when s >= 500 -> AttemptOutcome.Failure $"status %d{status}"
        | s -> AttemptOutcome.Rejected s

    /// Whether a failed attempt may be retried elsewhere (only while no byte reached the client).
    let isRetryable (outcome: AttemptOutcome) : bool =
        match outcome with
        | AttemptOutcome.Failure _ -> true
        | AttemptOutcome.Success
        | AttemptOutcome.Rejected _
        | AttemptOutcome.Abandoned -> false
