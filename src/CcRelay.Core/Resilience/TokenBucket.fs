namespace CcRelay.Core

open System

/// A continuously refilled token bucket in exact integer arithmetic: `Capacity` tokens per `Window`,
/// refilled at `Capacity / Window`, never above `Capacity`.
///
/// NOTE: the level is kept in *token-ticks* (tokens × `Window.Ticks`), so a refill of `elapsed` ticks adds
/// exactly `elapsed × Capacity` units with no rounding. That makes refills drift-free (two refills equal
/// one) and lets `RetryAfter` keep its promise exactly, which a float level or a per-period timer (as in
/// System.Threading.RateLimiting) cannot (dotnet/runtime#129036).
[<RequireQualifiedAccess>]
module TokenBucket =

    /// Static limits: `Capacity >= 1`, `Window > 0`, and `Capacity × Window.Ticks` fits an int64
    /// (any int capacity with a window up to about 70 minutes).
    [<Struct>]
    type Limits = { Capacity: int; Window: TimeSpan }

    /// The level (in token-ticks) as of `At`, on the caller's monotonic clock.
    [<Struct>]
    type Bucket = { Units: int64; At: TimeSpan }

    /// Whether `cost` tokens can be taken.
    [<Struct>]
    type Verdict =
        | Granted
        /// Not now; retrying after `RetryAfter` (on the same clock) succeeds if nothing else spends meanwhile.
        | Denied of RetryAfter: TimeSpan
        /// More than `Capacity`: waiting never helps.
        | NeverSatisfiable

    /// `Capacity` per minute: how every RPM/ITPM/OTPM limit is expressed.
    let perMinute (capacity: int) : Limits = {
        Capacity = capacity
        Window = TimeSpan.FromMinutes 1.0
    }

    /// The level of a full bucket, in token-ticks.
    let private fullUnits (limits: Limits) : int64 =
        int64 limits.Capacity * limits.Window.Ticks

    /// A full bucket as of `now`.
    let full (limits: Limits) (now: TimeSpan) : Bucket = { Units = fullUnits limits; At = now }

    /// A bucket holding `tokens` (clamped to [0, Capacity]) as of `now`.
    let withTokens (limits: Limits) (now: TimeSpan) (tokens: int64) : Bucket = {
        Units = (max 0L (min (int64 limits.Capacity) tokens)) * limits.Window.Ticks
        At = now
    }

    /// Whole tokens available (without refilling).
    let tokens (limits: Limits) (bucket: Bucket) : int64 = bucket.Units / limits.Window.Ticks

    /// The fraction of capacity available (without refilling), in [0, 1].
    let fraction (limits: Limits) (bucket: Bucket) : float =
        float bucket.Units / float (fullUnits limits)

    /// Adds what `now - At` refills. Time that goes backwards adds nothing (and `At` stays).
    let refill (limits: Limits) (now: TimeSpan) (bucket: Bucket) : Bucket =
        let elapsed = (now - bucket.At).Ticks

        if elapsed <= 0L then
            bucket
        else
            let full = fullUnits limits
            // After a whole window the bucket is full whatever it held: test that first, so that
            // elapsed × Capacity cannot overflow.
            let units =
                if elapsed >= limits.Window.Ticks then
                    full
                else
                    min full (bucket.Units + elapsed * int64 limits.Capacity)

            { Units = units; At = now }

    /// How long until `cost` tokens are available (zero when they are now); `TimeSpan.MaxValue` when
    /// `cost > Capacity`.
    let readyIn (limits: Limits) (now: TimeSpan) (cost: int64) (bucket: Bucket) : TimeSpan =
        if cost > int64 limits.Capacity then
            TimeSpan.MaxValue
        else
            let bucket = refill limits now bucket
            let needed = cost * limits.Window.Ticks - bucket.Units

            if needed <= 0L then
                TimeSpan.Zero
            else
                // Ceiling: after this many ticks the refill has added at least `needed` units.
                let ticks = (needed + int64 limits.Capacity - 1L) / int64 limits.Capacity
                // Measured from `now`; when time went backwards, the refill starts at `At`.
                TimeSpan.FromTicks(ticks + max 0L (bucket.At.Ticks - now.Ticks))

    /// Takes `cost` tokens if available.
    let tryTake (limits: Limits) (now: TimeSpan) (cost: int64) (bucket: Bucket) : struct (Verdict * Bucket) =
        let bucket = refill limits now bucket

        if cost > int64 limits.Capacity then
            struct (NeverSatisfiable, bucket)
        elif cost <= 0L then
            struct (Granted, bucket)
        else
            let units = cost * limits.Window.Ticks

            if bucket.Units >= units then
                struct (Granted,
                        {
                            bucket with
                                Units = bucket.Units - units
                        })
            else
                struct (Denied(readyIn limits now cost bucket), bucket)

    /// Adds (`delta > 0`, a refund) or removes (`delta < 0`, a late charge) tokens, within [0, Capacity].
    let adjust (limits: Limits) (now: TimeSpan) (delta: int64) (bucket: Bucket) : Bucket =
        let bucket = refill limits now bucket
        let full = fullUnits limits
        // Clamp the token count before scaling, so that no delta can overflow.
        let delta = max (-full) (min full (delta * limits.Window.Ticks))

        {
            bucket with
                Units = max 0L (min full (bucket.Units + delta))
        }

    /// Lowers the level to at most `tokens` (what the upstream says remains); never raises it.
    let capAt (limits: Limits) (now: TimeSpan) (tokens: int64) (bucket: Bucket) : Bucket =
        let bucket = refill limits now bucket
        let cap = (max 0L (min (int64 limits.Capacity) tokens)) * limits.Window.Ticks

        {
            bucket with
                Units = min bucket.Units cap
        }

    /// The same bucket under a new capacity (same window): refilled under the old limits, then clamped to
    /// the new capacity. Learning a new limit never refills the bucket.
    let relimit (oldLimits: Limits) (newLimits: Limits) (now: TimeSpan) (bucket: Bucket) : Bucket =
        let bucket = refill oldLimits now bucket

        {
            bucket with
                Units = min bucket.Units (fullUnits newLimits)
        }
