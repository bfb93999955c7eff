namespace CcRelay.Core

open System
open System.Buffers
open System.Text.Json

/// One entry of the audit log (`security.audit_log`): who did what, when, from where, and how it ended.
type AuditEvent = {
    /// When it happened (UTC).
    At: DateTimeOffset
    /// What: `auth.failed`, `config.reload`, `management.call`, `status.denied`, `client_key.changed`,
    /// `budget.blocked`.
    Event: string
    /// Who: a credential's key id (`KeyId.ofSecret`), `operator`, `file`, or `-` when unknown.
    Actor: string
    /// From where: the peer address, or `local` for a signal or a file change.
    Source: string
    /// How it ended: `denied`, `applied`, `unchanged`, `rejected`, `ok`, `error`, `blocked`.
    Outcome: string
    /// Further facts, in order (never a secret: values pass through `Redact.scrub` all the same).
    Details: (string * string) list
} with

    /// An event with its details in order (the C# host's constructor).
    static member Create
        (
            at: DateTimeOffset,
            event: string,
            actor: string,
            source: string,
            outcome: string,
            details: (string * string) seq
        ) : AuditEvent = {
        At = at
        Event = event
        Actor = actor
        Source = source
        Outcome = outcome
        Details = List.ofSeq details
    }

/// The audit log's line format: one JSON object per line, `time`, `event`, `actor`, `source`, `outcome`, then
/// the details as string fields.
[<RequireQualifiedAccess>]
module Audit =

    /// The event as one JSON line (with its `\n`); every value is scrubbed of `secrets` first.
    let toJsonLine (secrets: string seq) (event: AuditEvent) : byte array =
        let buffer = ArrayBufferWriter<byte>(256)

        do
            use writer = new Utf8JsonWriter(buffer)
            let scrub = Redact.scrub secrets
            writer.WriteStartObject()

            writer.WriteString(
                "time",
                event.At.UtcDateTime.ToString(
                    "yyyy-MM-dd'T'HH:mm:ss.fff'Z'",
                    Globalization.CultureInfo.InvariantCulture
                )
            )

            writer.WriteString("event", event.Event)
            writer.WriteString("actor", scrub event.Actor)
            writer.WriteString("source", scrub event.Source)
            writer.WriteString("outcome", event.Outcome)

            for key, value in event.Details do
                writer.WriteString(key, scrub value)

            writer.WriteEndObject()

        let line = Array.zeroCreate (buffer.WrittenCount + 1)
        buffer.WrittenSpan.CopyTo(Span line)
        line[line.Length - 1] <- byte '\n'
        line

/// What the limiter says about one authentication failure.
[<RequireQualifiedAccess>]
type AuditAdmit =
    /// Write it; `SuppressedBefore` failures from the same source were left out since the last one written.
    | Write of SuppressedBefore: int
    /// Leave it out (counted).
    | Suppress

/// One source's minute: when it began, how many failures were written and how many left out.
type AuthFailureWindow = {
    Start: TimeSpan
    Written: int
    Suppressed: int
}

/// Per-source minutes of authentication failures (keyed by peer address).
type AuthFailureLimiter = {
    Windows: Map<string, AuthFailureWindow>
}

/// At most N authentication failures per source and minute reach the audit log; the rest are counted, and
/// the count is written with the source's next written failure. Time is a monotonic timestamp passed in.
[<RequireQualifiedAccess>]
module AuthFailureLimiter =

    /// The length of a window.
    let window: TimeSpan = TimeSpan.FromMinutes 1.0

    /// The most sources remembered; past it, sources whose minute is over are forgotten (with their
    /// suppressed counts, which were never written: a flood from more addresses than this loses counts).
    let maxSources: int = 10_000

    let empty: AuthFailureLimiter = { Windows = Map.empty }

    let private prune (now: TimeSpan) (limiter: AuthFailureLimiter) : AuthFailureLimiter =
        if limiter.Windows.Count < maxSources then
            limiter
        else
            {
                Windows = limiter.Windows |> Map.filter (fun _ w -> now - w.Start < window)
            }

    /// Decides one failure from `source` at `now`, allowing `perMinute` written failures per window.
    let admit
        (now: TimeSpan)
        (perMinute: int)
        (source: string)
        (limiter: AuthFailureLimiter)
        : struct (AuditAdmit * AuthFailureLimiter) =
        let limiter = prune now limiter

        let set (w: AuthFailureWindow) = {
            Windows = limiter.Windows.Add(source, w)
        }

        match limiter.Windows.TryFind source with
        | Some w when now - w.Start < window ->
            if w.Written < perMinute then
                struct (AuditAdmit.Write w.Suppressed,
                        set {
                            w with
                                Written = w.Written + 1
                                Suppressed = 0
                        })
            else
                struct (AuditAdmit.Suppress, set { w with Suppressed = w.Suppressed + 1 })
        | previous ->
            let carried =
                previous |> Option.map (fun w -> w.Suppressed) |> Option.defaultValue 0

            struct (AuditAdmit.Write carried,
                    set {
                        Start = now
                        Written = 1
                        Suppressed = 0
                    })

/// The C#-facing surface of `AuthFailureLimiter`.
type AuthFailureLimiter with

    /// No failure seen yet (`AuthFailureLimiter.empty`).
    static member Empty: AuthFailureLimiter = AuthFailureLimiter.empty

    /// Decides one failure from `source` at `now` (`AuthFailureLimiter.admit`).
    member this.Admit(now: TimeSpan, perMinute: int, source: string) : struct (AuditAdmit * AuthFailureLimiter) =
        AuthFailureLimiter.admit now perMinute source this
