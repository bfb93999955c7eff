module CcRelay.Core.Tests.RateLimitHeadersTests

open System
open Xunit
open CcRelay.Core

let private wallNow = DateTimeOffset(2026, 5, 1, 12, 0, 0, TimeSpan.Zero)

let private parse (headers: (string * string) list) : RateLimitHeaders =
    let map = Map.ofList headers

    RateLimitHeaders.parse wallNow (fun name ->
        match map.TryFind name with
        | Some v -> v
        | None -> null)

[<Fact>]
let ``every window is read, with resets measured from the response time`` () =
    let headers =
        parse [
            "anthropic-ratelimit-requests-limit", "50"
            "anthropic-ratelimit-requests-remaining", "49"
            "anthropic-ratelimit-requests-reset", "2026-05-01T12:00:01Z"
            "anthropic-ratelimit-tokens-limit", "90000"
            "anthropic-ratelimit-tokens-remaining", "89000"
            "anthropic-ratelimit-input-tokens-limit", "40000"
            "anthropic-ratelimit-input-tokens-remaining", "39500"
            "anthropic-ratelimit-input-tokens-reset", "2026-05-01T14:00:30.5+02:00"
            "anthropic-ratelimit-output-tokens-limit", "8000"
            "anthropic-ratelimit-output-tokens-remaining", "7990"
            "anthropic-ratelimit-output-tokens-reset", "2026-05-01t12:00:02z"
        ]

    Assert.Equal(
        {
            Limit = Some 50L
            Remaining = Some 49L
            ResetIn = Some(TimeSpan.FromSeconds 1.0)
        },
        headers.Requests
    )

    Assert.Equal(Some 89000L, headers.Tokens.Remaining)
    Assert.Equal(Some(TimeSpan.FromSeconds 30.5), headers.InputTokens.ResetIn)
    Assert.Equal(Some 8000L, headers.OutputTokens.Limit)
    Assert.Equal(Some(TimeSpan.FromSeconds 2.0), headers.OutputTokens.ResetIn)
    Assert.Equal(None, headers.RetryAfter)

[<Fact>]
let ``no headers parse to empty`` () =
    Assert.True(RateLimitHeaders.isEmpty (parse []))

[<Theory>]
[<InlineData("anthropic-ratelimit-requests-limit", "0")>]
[<InlineData("anthropic-ratelimit-requests-limit", "-5")>]
[<InlineData("anthropic-ratelimit-requests-limit", "ten")>]
[<InlineData("anthropic-ratelimit-requests-remaining", "1.5")>]
[<InlineData("anthropic-ratelimit-requests-reset", "2026-05-01T12:00:01")>]
[<InlineData("anthropic-ratelimit-requests-reset", "tomorrow")>]
let ``invalid values are ignored`` (name: string) (value: string) =
    Assert.True(RateLimitHeaders.isEmpty (parse [ name, value ]))

[<Fact>]
let ``a reset in the past is zero`` () =
    let headers = parse [ "anthropic-ratelimit-requests-reset", "2026-05-01T11:00:00Z" ]
    Assert.Equal(Some TimeSpan.Zero, headers.Requests.ResetIn)

[<Theory>]
[<InlineData("30", 30.0)>]
[<InlineData(" 0 ", 0.0)>]
[<InlineData("Fri, 01 May 2026 12:00:45 GMT", 45.0)>]
[<InlineData("Fri, 01 May 2026 11:00:00 GMT", 0.0)>]
let ``retry-after is delay-seconds or an HTTP-date`` (value: string) (seconds: float) =
    Assert.Equal(Some(TimeSpan.FromSeconds seconds), RateLimitHeaders.tryParseRetryAfter wallNow value)

[<Theory>]
[<InlineData("-1")>]
[<InlineData("soon")>]
[<InlineData("")>]
let ``an invalid retry-after is none`` (value: string) =
    Assert.Equal(None, RateLimitHeaders.tryParseRetryAfter wallNow value)

[<Fact>]
let ``a 429 cooldown defaults to 60 s and stays between 1 s and 300 s`` () =
    Assert.Equal(TimeSpan.FromSeconds 60.0, RateLimitHeaders.cooldown None)
    Assert.Equal(TimeSpan.FromSeconds 300.0, RateLimitHeaders.cooldown (Some(TimeSpan.FromHours 2.0)))
    Assert.Equal(TimeSpan.FromSeconds 1.0, RateLimitHeaders.cooldown (Some TimeSpan.Zero))
    Assert.Equal(TimeSpan.FromSeconds 12.0, RateLimitHeaders.cooldown (Some(TimeSpan.FromSeconds 12.0)))
