namespace CcRelay.Core

open System

/// Where the link to the shared store stands.
[<RequireQualifiedAccess>]
type SharedLink =
    /// `state.postgres` is not set: every relay keeps its state to itself.
    | Off
    /// Connecting for the first time.
    | Connecting
    /// Connected, listening and flushing.
    | Connected
    /// The database is unreachable since `Since`: the relay runs on local state alone and reconnects by itself
    /// (`Attempt` failed attempts so far; `Problem` names no secret).
    | Degraded of Since: DateTimeOffset * Attempt: int * Problem: string

/// The decisions of the degraded mode: how long to wait before reconnecting, what health says, when another
/// relay's reservations are no longer trusted.
[<RequireQualifiedAccess>]
module SharedHealth =

    /// The first wait before reconnecting.
    let firstBackoff: TimeSpan = TimeSpan.FromMilliseconds 250.0

    /// The longest wait between reconnection attempts.
    let maxBackoff: TimeSpan = TimeSpan.FromSeconds 5.0

    /// The wait before attempt `attempt` (1-based): doubling from `firstBackoff`, at most `maxBackoff`, with
    /// up to a fifth added from `jitter` (0..1) so relays that lost the database together do not retry in step.
    let backoff (attempt: int) (jitter: float) : TimeSpan =
        let doublings = min 16 (max 0 (attempt - 1))

        let plain =
            min maxBackoff.TotalMilliseconds (firstBackoff.TotalMilliseconds * float (1 <<< doublings))

        TimeSpan.FromMilliseconds(plain * (1.0 + 0.2 * (min 1.0 (max 0.0 jitter))))

    /// The link after a failure at `wall`.
    let failed (wall: DateTimeOffset) (problem: string) (link: SharedLink) : SharedLink =
        match link with
        | SharedLink.Degraded(since, attempt, _) -> SharedLink.Degraded(since, attempt + 1, problem)
        | _ -> SharedLink.Degraded(wall, 1, problem)

    /// The status word `/health` and the metric show: `off`, `connecting`, `ok`, `degraded`.
    let statusName (link: SharedLink) : string =
        match link with
        | SharedLink.Off -> "off"
        | SharedLink.Connecting -> "connecting"
        | SharedLink.Connected -> "ok"
        | SharedLink.Degraded _ -> "degraded"

    /// What the relay says about the link (no secret): the status, and for a degraded link since when and why.
    let describe (wall: DateTimeOffset) (link: SharedLink) : string =
        match link with
        | SharedLink.Off -> "state.postgres is not set: state is local to this relay"
        | SharedLink.Connecting -> "connecting to PostgreSQL"
        | SharedLink.Connected -> "connected to PostgreSQL: state is shared"
        | SharedLink.Degraded(since, attempt, problem) ->
            let seconds = max 0L (int64 (wall - since).TotalSeconds)

            $"PostgreSQL unreachable for %d{seconds} s (%d{attempt} attempts; %s{problem}): running on local state, reconnecting"

    /// How long another relay may stay silent before its reservations are released here: it publishes a
    /// heartbeat every flush, so twenty missed flushes (at least 10 s) mean it is gone.
    let staleAfter (flushInterval: TimeSpan) : TimeSpan =
        max (TimeSpan.FromSeconds 10.0) (TimeSpan.FromTicks(flushInterval.Ticks * 20L))

    /// Whether a relay last seen at `seenAt` is gone at `wall`.
    let isStale (flushInterval: TimeSpan) (wall: DateTimeOffset) (seenAt: DateTimeOffset) : bool =
        wall - seenAt > staleAfter flushInterval

    /// The link as `/health` shows it: `{"status": ..., "detail": ...}` (no secret: never the connection string).
    let toJson (wall: DateTimeOffset) (link: SharedLink) : byte array =
        use stream = new IO.MemoryStream()

        using (new Text.Json.Utf8JsonWriter(stream)) (fun writer ->
            writer.WriteStartObject()
            writer.WriteString("status", statusName link)
            writer.WriteString("detail", describe wall link)

            match link with
            | SharedLink.Degraded(since, _, _) -> writer.WriteString("since", since.ToString("O"))
            | _ -> ()

            writer.WriteEndObject())

        stream.ToArray()

    /// A `/health` body with the link added as its `shared_state` member (a byte edit).
    let addToHealth (health: byte array) (wall: DateTimeOffset) (link: SharedLink) : byte array =
        match JsonSpans.set (ReadOnlySpan health) "shared_state" (toJson wall link) with
        | Ok edited -> edited
        | Error _ -> health
