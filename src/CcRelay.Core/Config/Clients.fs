namespace CcRelay.Core

open System

/// The period a budget covers. Periods roll over at midnight in `ledger.time_zone` (UTC by default); a week
/// starts on Monday, a month on its 1st; `Total` never rolls over.
[<RequireQualifiedAccess>]
type BudgetPeriod =
    | Day
    | Week
    | Month
    | Total

    /// The config and ledger spelling: `day`, `week`, `month`, `total`.
    member this.WireName: string =
        match this with
        | Day -> "day"
        | Week -> "week"
        | Month -> "month"
        | Total -> "total"

/// One spending cap of a client: USD per period, over every model or over the models `Models` matches.
type Budget = {
    Period: BudgetPeriod
    /// The cap, in USD (> 0).
    LimitUsd: decimal
    /// A model pattern (`ModelPattern`: a prefix, or a glob with `*`) for a per-family cap such as a weekly
    /// Opus cap (`claude-opus-*`); None: every model.
    Models: string option
}

/// One client (`clients[]`): a developer or CI job with its own relay key, allowed models and limits.
///
/// NOTE: the key itself is never kept: only its SHA-256 (the config may give the key through `${VAR}` or
/// its digest as `key_sha256`). Its id, the only form in which it is shown, is the digest's first 8 hex digits,
/// so an operator holding only the digest sees the same id.
type ClientConfig = {
    Name: string
    /// SHA-256 of the key's UTF-8 bytes (32 bytes).
    KeyDigest: byte array
    /// The key's id: the first 8 hex digits of `KeyDigest`.
    KeyId: string
    /// When the key stops being accepted; None: never.
    ExpiresAt: DateTimeOffset option
    /// Provider names the client may be routed to; empty: every provider.
    Providers: string list
    /// Model patterns (`ModelPattern`) of the requested model; empty: every model.
    Models: string list
    /// Stage names the client may use; empty: every stage (enforced only where a request's stage is known).
    Stages: string list
    /// Requests per minute (0: unlimited).
    RpmLimit: int
    /// Input tokens per minute, estimated before the call and settled after it (0: unlimited).
    ItpmLimit: int
    /// Output tokens per minute, `max_tokens` reserved before the call and settled after it (0: unlimited).
    OtpmLimit: int
    /// Requests in flight at once (0: unlimited).
    MaxConcurrent: int
    Budgets: Budget list
    /// `metadata`: free-form labels (team, owner) shown by the usage reports; never used to decide anything.
    Metadata: (string * string) list
}

/// The `ledger` section: where every completed request is recorded, and the calendar budgets follow.
type LedgerConfig = {
    /// Record requests (on by default).
    Enabled: bool
    /// The SQLite file; None: the default (`$XDG_STATE_HOME/cc-relay/ledger.db`, else `~/.local/state/...`),
    /// resolved by the host.
    Path: string option
    /// How often queued rows are written (ms): the most a crash can lose.
    FlushIntervalMs: int
    /// The most rows waiting to be written; beyond it rows are dropped (and counted), never the request.
    QueueCapacity: int
    /// The IANA time zone whose midnights end budget days, weeks and months (and `usage --by day`).
    TimeZone: TimeZoneInfo
}
