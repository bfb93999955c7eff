namespace CcRelay.Core

open System

/// `TimeSpan` comparisons that never allocate.
///
/// NOTE: F#'s generic `<`, `>`, `=`, `min` and `max` box a struct such as `TimeSpan` on every call
/// (measured: 48 B per comparison, 192 B per key-readiness check). The per-request hot path (bucket
/// math, key picks, breaker admits) compares ticks through these instead.
[<RequireQualifiedAccess>]
module internal Time =

    /// `a < b`.
    let inline before (a: TimeSpan) (b: TimeSpan) : bool = a.Ticks < b.Ticks

    /// `a >= b`.
    let inline notBefore (a: TimeSpan) (b: TimeSpan) : bool = a.Ticks >= b.Ticks

    /// `a = b`.
    let inline same (a: TimeSpan) (b: TimeSpan) : bool = a.Ticks = b.Ticks

    /// The earlier of two.
    let inline earlier (a: TimeSpan) (b: TimeSpan) : TimeSpan = if a.Ticks <= b.Ticks then a else b

    /// The later of two.
    let inline later (a: TimeSpan) (b: TimeSpan) : TimeSpan = if a.Ticks >= b.Ticks then a else b
