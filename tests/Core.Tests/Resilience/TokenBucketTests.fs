module CcRelay.Core.Tests.TokenBucketTests

open System
open Xunit
open CcRelay.Core
open CcRelay.Core.Tests.Fixtures

let private limits = TokenBucket.perMinute 60

let private granted (struct (verdict: TokenBucket.Verdict, bucket: TokenBucket.Bucket)) =
    Assert.Equal(TokenBucket.Granted, verdict)
    bucket

[<Fact>]
let ``a full bucket grants its capacity, then denies with the time to one more token`` () =
    let mutable bucket = TokenBucket.full limits TimeSpan.Zero

    for _ in 1..60 do
        bucket <- TokenBucket.tryTake limits TimeSpan.Zero 1L bucket |> granted

    let struct (verdict, _) = TokenBucket.tryTake limits TimeSpan.Zero 1L bucket
    Assert.Equal(TokenBucket.Denied(at 1.0), verdict)

[<Fact>]
let ``retrying after RetryAfter succeeds`` () =
    let bucket = TokenBucket.withTokens limits TimeSpan.Zero 3L
    let struct (verdict, bucket) = TokenBucket.tryTake limits (at 0.25) 10L bucket

    match verdict with
    | TokenBucket.Denied retryAfter ->
        // 7 more tokens at one per second, less the quarter second already refilled.
        Assert.Equal(at 6.75, retryAfter)

        TokenBucket.tryTake limits (at 0.25 + retryAfter) 10L bucket
        |> granted
        |> ignore
    | other -> failwith $"expected Denied, got %A{other}"

[<Fact>]
let ``more than the capacity is never satisfiable`` () =
    let struct (verdict, _) =
        TokenBucket.tryTake limits TimeSpan.Zero 61L (TokenBucket.full limits TimeSpan.Zero)

    Assert.Equal(TokenBucket.NeverSatisfiable, verdict)

    Assert.Equal(
        TimeSpan.MaxValue,
        TokenBucket.readyIn limits TimeSpan.Zero 61L (TokenBucket.full limits TimeSpan.Zero)
    )

[<Fact>]
let ``refill is continuous and stops at the capacity`` () =
    let empty = TokenBucket.withTokens limits TimeSpan.Zero 0L
    Assert.Equal(30L, TokenBucket.tokens limits (TokenBucket.refill limits (at 30.0) empty))
    Assert.Equal(60L, TokenBucket.tokens limits (TokenBucket.refill limits (at 3600.0) empty))

[<Fact>]
let ``time that goes backwards adds nothing`` () =
    let bucket = TokenBucket.withTokens limits (at 10.0) 5L
    Assert.Equal(bucket, TokenBucket.refill limits (at 9.0) bucket)

[<Fact>]
let ``adjust refunds and charges within zero and the capacity`` () =
    let bucket = TokenBucket.withTokens limits TimeSpan.Zero 50L
    Assert.Equal(60L, TokenBucket.tokens limits (TokenBucket.adjust limits TimeSpan.Zero 100L bucket))
    Assert.Equal(0L, TokenBucket.tokens limits (TokenBucket.adjust limits TimeSpan.Zero -100L bucket))
    Assert.Equal(40L, TokenBucket.tokens limits (TokenBucket.adjust limits TimeSpan.Zero -10L bucket))

[<Fact>]
let ``capAt lowers the level and never raises it`` () =
    let bucket = TokenBucket.withTokens limits TimeSpan.Zero 20L
    Assert.Equal(5L, TokenBucket.tokens limits (TokenBucket.capAt limits TimeSpan.Zero 5L bucket))
    Assert.Equal(20L, TokenBucket.tokens limits (TokenBucket.capAt limits TimeSpan.Zero 50L bucket))

[<Fact>]
let ``a new capacity never refills the bucket`` () =
    let bucket = TokenBucket.withTokens limits TimeSpan.Zero 10L
    let bigger = TokenBucket.perMinute 1000
    Assert.Equal(10L, TokenBucket.tokens bigger (TokenBucket.relimit limits bigger TimeSpan.Zero bucket))
    let smaller = TokenBucket.perMinute 4
    Assert.Equal(4L, TokenBucket.tokens smaller (TokenBucket.relimit limits smaller TimeSpan.Zero bucket))
