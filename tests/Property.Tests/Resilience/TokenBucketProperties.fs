module CcRelay.Core.Properties.TokenBucketProperties

open System
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core

/// Limits as key pools use them (per minute) and with odd windows, capacities from 1 to millions.
let private limits: Gen<TokenBucket.Limits> =
    gen {
        let! capacity =
            Gen.frequency [
                3, Gen.choose (1, 100)
                2, Gen.choose (1, 100_000)
                1, Gen.choose (1, 4_000_000)
            ]

        let! window =
            Gen.frequency [
                3, Gen.constant 600_000_000L
                1, Gen.choose (1, 3_600_000) |> Gen.map (fun ms -> int64 ms * 10_000L)
            ]

        return {
            Capacity = capacity
            Window = TimeSpan.FromTicks window
        }
    }

/// One operation on a bucket after `Step` ticks.
type private Op =
    | Take of Cost: int64
    | Adjust of Delta: int64
    | CapAt of Tokens: int64
    | Refill

let private op (capacity: int) : Gen<Op> =
    let tokens = Gen.choose (0, capacity * 2) |> Gen.map int64

    Gen.frequency [
        4, tokens |> Gen.map Take
        1, Gen.choose (-capacity * 2, capacity * 2) |> Gen.map (int64 >> Adjust)
        1, tokens |> Gen.map CapAt
        1, Gen.constant Refill
    ]

/// A start level, and timed operations (never going back in time).
let private scenario =
    gen {
        let! limits = limits
        let! start = Gen.choose (0, limits.Capacity) |> Gen.map int64
        let maxStep = int (min 2_000_000_000L (limits.Window.Ticks * 2L))

        let! steps =
            Gen.listOf (
                Gen.zip
                    (Gen.frequency [
                        1, Gen.constant 0
                        4, Gen.choose (0, maxStep / 50)
                        1, Gen.choose (0, maxStep)
                    ])
                    (op limits.Capacity)
            )
            |> Gen.resize 40

        return limits, start, steps
    }
    |> Check.arb

let private apply (limits: TokenBucket.Limits) (now: TimeSpan) (op: Op) (bucket: TokenBucket.Bucket) =
    match op with
    | Take cost ->
        let struct (verdict, bucket) = TokenBucket.tryTake limits now cost bucket
        verdict, bucket
    | Adjust delta -> TokenBucket.Granted, TokenBucket.adjust limits now delta bucket
    | CapAt tokens -> TokenBucket.Granted, TokenBucket.capAt limits now tokens bucket
    | Refill -> TokenBucket.Granted, TokenBucket.refill limits now bucket

[<Fact>]
let ``tokens stay within zero and the capacity`` () =
    Check.property (
        Prop.forAll scenario (fun (limits, start, steps) ->
            let mutable now = TimeSpan.FromSeconds 1.0
            let mutable bucket = TokenBucket.withTokens limits now start
            let full = int64 limits.Capacity * limits.Window.Ticks

            for step, op in steps do
                now <- now + TimeSpan.FromTicks(int64 step)
                let _, next = apply limits now op bucket
                bucket <- next
                Assert.InRange(bucket.Units, 0L, full))
    )

[<Fact>]
let ``refilling in two steps equals refilling in one`` () =
    let times =
        gen {
            let! limits = limits
            let! level = Gen.choose (0, limits.Capacity) |> Gen.map int64
            let span = int (min 2_000_000_000L (limits.Window.Ticks * 2L))
            let! a = Gen.choose (0, span)
            let! b = Gen.choose (0, span)
            return limits, level, int64 (min a b), int64 (max a b)
        }
        |> Check.arb

    Check.property (
        Prop.forAll times (fun (limits, level, t1, t2) ->
            let bucket = TokenBucket.withTokens limits TimeSpan.Zero level
            let once = TokenBucket.refill limits (TimeSpan.FromTicks t2) bucket

            let twice =
                bucket
                |> TokenBucket.refill limits (TimeSpan.FromTicks t1)
                |> TokenBucket.refill limits (TimeSpan.FromTicks t2)

            Assert.Equal(once, twice)
            // And refilling again at the same moment changes nothing.
            Assert.Equal(once, TokenBucket.refill limits (TimeSpan.FromTicks t2) once))
    )

[<Fact>]
let ``a Denied RetryAfter at t is Granted at t plus RetryAfter`` () =
    Check.property (
        Prop.forAll scenario (fun (limits, start, steps) ->
            let mutable now = TimeSpan.FromSeconds 1.0
            let mutable bucket = TokenBucket.withTokens limits now start

            for step, op in steps do
                now <- now + TimeSpan.FromTicks(int64 step)

                match op with
                | Take cost ->
                    let struct (verdict, next) = TokenBucket.tryTake limits now cost bucket

                    match verdict with
                    | TokenBucket.Denied retryAfter ->
                        Assert.True(retryAfter > TimeSpan.Zero)
                        let struct (later, _) = TokenBucket.tryTake limits (now + retryAfter) cost next
                        Assert.Equal(TokenBucket.Granted, later)
                        // And not a tick earlier: the promise is tight.
                        let struct (earlier, _) =
                            TokenBucket.tryTake limits (now + retryAfter - TimeSpan.FromTicks 1L) cost next

                        Assert.NotEqual(TokenBucket.Granted, earlier)
                    | TokenBucket.Granted
                    | TokenBucket.NeverSatisfiable -> ()

                    bucket <- next
                | other ->
                    let _, next = apply limits now other bucket
                    bucket <- next)
    )

[<Fact>]
let ``granted tokens over any interval never exceed capacity plus rate times interval`` () =
    let takes =
        gen {
            let! limits = limits
            let maxStep = int (min 2_000_000_000L (limits.Window.Ticks / 4L))

            let! steps =
                Gen.listOf (Gen.zip (Gen.choose (0, maxStep)) (Gen.choose (1, max 1 (limits.Capacity / 3))))
                |> Gen.resize 60

            return limits, steps
        }
        |> Check.arb

    Check.property (
        Prop.forAll takes (fun (limits, steps) ->
            let start = TimeSpan.FromSeconds 1.0
            let mutable now = start
            // Starting full is the worst case.
            let mutable bucket = TokenBucket.full limits now
            let mutable granted = 0L

            for step, cost in steps do
                now <- now + TimeSpan.FromTicks(int64 step)
                let struct (verdict, next) = TokenBucket.tryTake limits now (int64 cost) bucket
                bucket <- next

                if verdict = TokenBucket.Granted then
                    granted <- granted + int64 cost

                // In token-ticks: granted × W <= C × W + elapsed × C.
                let elapsed = (now - start).Ticks

                Assert.True(
                    decimal granted * decimal limits.Window.Ticks
                    <= decimal limits.Capacity * (decimal limits.Window.Ticks + decimal elapsed)
                ))
    )
