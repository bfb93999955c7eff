namespace CcRelay.Core

/// The `state` section: what several relays share through PostgreSQL (docs/scale-out.md). Without
/// `postgres`, a relay keeps all of its state to itself, as before.
type StateConfig = {
    /// The Npgsql connection string (`Host=...;Database=...;Username=...;Password=...`), normally given as
    /// `${VAR}`: a secret (it may hold a password), never shown, logged or answered. None: local state only.
    Postgres: string option
    /// How often spend deltas and thinking-affinity pins are written and read (ms): budgets shared by several
    /// relays may overshoot by what the other relays admit within one such interval.
    FlushIntervalMs: int
}
