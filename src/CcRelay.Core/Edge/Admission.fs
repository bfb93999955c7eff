namespace CcRelay.Core

open System

/// The admission limits in front of the relayed routes: `server.max_concurrent` requests in flight, up to
/// `QueueSize` more waiting at most `QueueTimeout` for a slot; the rest are answered 529 `overloaded_error`.
type AdmissionLimits = {
    /// 0: unlimited (no queue either).
    MaxConcurrent: int
    QueueSize: int
    QueueTimeout: TimeSpan
} with

    /// Whether nothing is limited (`server.max_concurrent: 0`).
    member this.Unlimited: bool = this.MaxConcurrent <= 0

/// Why a request was not admitted.
[<RequireQualifiedAccess>]
type AdmissionRefusal =
    /// Every slot was taken and the queue was full.
    | QueueFull
    /// The request waited `queue_timeout_ms` without getting a slot.
    | WaitedTooLong

/// Admission rules (the waiting itself is the host's `ConcurrencyLimiter`).
[<RequireQualifiedAccess>]
module Admission =

    /// The limits a config asks for. The queue is as long as `max_concurrent` unless `server.queue_size` says.
    let limits (config: RelayConfig) : AdmissionLimits =
        let maxConcurrent = max 0 config.Server.MaxConcurrent

        {
            MaxConcurrent = maxConcurrent
            QueueSize = config.Edge.Queue.Size |> Option.defaultValue maxConcurrent |> max 0
            QueueTimeout = TimeSpan.FromMilliseconds(float (max 0 config.Edge.Queue.TimeoutMs))
        }

    /// `retry-after` for a refused request, in whole seconds: the queue's wait (a client that waits that long
    /// has seen the queue turn over once), at least 1 and at most 60.
    let retryAfterSeconds (limits: AdmissionLimits) : int =
        limits.QueueTimeout.TotalSeconds |> Math.Ceiling |> int |> max 1 |> min 60

    /// The message of the 529 answer.
    let message (limits: AdmissionLimits) (refusal: AdmissionRefusal) : string =
        match refusal with
        | AdmissionRefusal.QueueFull ->
            $"the relay is at capacity: %d{limits.MaxConcurrent} requests in flight and %d{limits.QueueSize} waiting (server.max_concurrent, server.queue_size); retry later"
        | AdmissionRefusal.WaitedTooLong ->
            $"the relay is at capacity: no slot freed within %d{int limits.QueueTimeout.TotalMilliseconds} ms (server.queue_timeout_ms); retry later"

/// Upstream answers the relay will not pass on.
[<RequireQualifiedAccess>]
module UpstreamRedirect =

    /// A 3xx answer is never followed (by either upstream client) nor passed on (the client would follow it
    /// with its relay credential to a host nobody allowed): it counts as an upstream that did not answer, so
    /// the request fails over and ends 502 when no provider answers. The message names the target's host
    /// only (a redirect URL may carry a token in its query).
    let refusal (status: int) (location: string | null) : string option =
        if status >= 300 && status < 400 then
            let target =
                match location with
                | null
                | "" -> "no location"
                | text ->
                    match Uri.TryCreate(text, UriKind.Absolute) with
                    | true, NonNull uri -> $"to host %s{uri.Host}"
                    | _ -> "to a relative location"

            Some $"upstream answered %d{status} (a redirect %s{target}); the relay never follows redirects"
        else
            None
