namespace CcRelay.Core

/// Deterministic pseudo-randomness from a seed the caller passes in (Core never reads a clock or a
/// random source). SplitMix64: one multiply-xorshift chain, good enough for shuffles and jitter.
[<RequireQualifiedAccess>]
module Rng =

    /// A well-mixed 64-bit value derived from `seed` and a `stream` number (so that one request seed
    /// gives independent values for, say, the deck and the key pick).
    let mix (seed: uint64) (stream: uint64) : uint64 =
        let mutable z = seed + (stream + 1UL) * 0x9E3779B97F4A7C15UL
        z <- (z ^^^ (z >>> 30)) * 0xBF58476D1CE4E5B9UL
        z <- (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
        z ^^^ (z >>> 31)

    /// A value in [0, bound) (bound >= 1), from a mixed value.
    let below (value: uint64) (bound: int) : int = int (value % uint64 (max 1 bound))

    /// A value in [0, 1), from a mixed value.
    let unit (value: uint64) : float =
        float (value >>> 11) * (1.0 / 9007199254740992.0)
