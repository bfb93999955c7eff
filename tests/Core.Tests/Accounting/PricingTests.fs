module CcRelay.Core.Tests.PricingTests

open Xunit
open CcRelay.Core

let private usage (input: int64) (output: int64) (cacheRead: int64) (cacheWrite: int64) : Usage = {
    InputTokens = input
    OutputTokens = output
    CacheReadTokens = cacheRead
    CacheWriteTokens = cacheWrite
}

let private price (input: decimal) (output: decimal) (cacheRead: decimal) (cacheWrite: decimal) : ModelPrice = {
    Input = input
    Output = output
    CacheRead = cacheRead
    CacheWrite = cacheWrite
}

let private rule (pattern: string) (price: ModelPrice) : PriceRule = { Pattern = pattern; Price = price }

let private builtInPrice (model: string) : ModelPrice option = Pricing.tryFind Pricing.builtIn model

[<Fact>]
let ``a Sonnet answer costs input, output, cache read and cache write at their own prices`` () =
    // 12 fresh input, 57 output, 900 cache read, 100 cache write at 3 / 15 / 0.30 / 3.75 USD per MTok
    let cost =
        Pricing.cost Pricing.builtIn "claude-sonnet-4-6" (usage 12L 57L 900L 100L)

    Assert.Equal(Some 0.001536m, cost)

[<Fact>]
let ``a million tokens of each kind cost the listed prices`` () =
    let million (input: int64) (output: int64) (cacheRead: int64) (cacheWrite: int64) =
        usage (input * 1_000_000L) (output * 1_000_000L) (cacheRead * 1_000_000L) (cacheWrite * 1_000_000L)

    let opus = "claude-opus-4-6"
    Assert.Equal(Some 5m, Pricing.cost Pricing.builtIn opus (million 1L 0L 0L 0L))
    Assert.Equal(Some 25m, Pricing.cost Pricing.builtIn opus (million 0L 1L 0L 0L))
    Assert.Equal(Some 0.50m, Pricing.cost Pricing.builtIn opus (million 0L 0L 1L 0L))
    Assert.Equal(Some 6.25m, Pricing.cost Pricing.builtIn opus (million 0L 0L 0L 1L))

[<Theory>]
[<InlineData("claude-opus-4-6", 5.0, 25.0)>]
[<InlineData("claude-opus-4-5-20251101", 5.0, 25.0)>]
[<InlineData("claude-opus-4-7", 5.0, 25.0)>]
[<InlineData("claude-opus-4-1-20250805", 15.0, 75.0)>]
[<InlineData("claude-opus-4-1", 15.0, 75.0)>]
[<InlineData("claude-opus-4-0", 15.0, 75.0)>]
[<InlineData("claude-opus-4-20250514", 15.0, 75.0)>]
[<InlineData("claude-opus-4@20250514", 15.0, 75.0)>]
[<InlineData("claude-sonnet-4-6", 3.0, 15.0)>]
[<InlineData("claude-sonnet-4-5-20250929", 3.0, 15.0)>]
[<InlineData("claude-sonnet-4-20250514", 3.0, 15.0)>]
[<InlineData("claude-sonnet-4-6[1m]", 3.0, 15.0)>]
[<InlineData("claude-haiku-4-5", 1.0, 5.0)>]
[<InlineData("claude-haiku-4-5-20251001", 1.0, 5.0)>]
[<InlineData("claude-3-5-haiku-20241022", 0.8, 4.0)>]
[<InlineData("claude-3-5-haiku-latest", 0.8, 4.0)>]
[<InlineData("claude-3-haiku-20240307", 0.25, 1.25)>]
[<InlineData("claude-3-7-sonnet-20250219", 3.0, 15.0)>]
[<InlineData("claude-3-opus-20240229", 15.0, 75.0)>]
[<InlineData("anthropic.claude-sonnet-4-5-20250929-v1:0", 3.0, 15.0)>]
[<InlineData("us.anthropic.claude-opus-4-1-20250805-v1:0", 15.0, 75.0)>]
[<InlineData("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0", 1.0, 5.0)>]
[<InlineData("claude-sonnet-4-5@20250929", 3.0, 15.0)>]
[<InlineData("Claude-Sonnet-4-6", 3.0, 15.0)>]
let ``built-in prices match model families by prefix`` (model: string, input: float, output: float) =
    let found = builtInPrice model
    Assert.True(found.IsSome, $"no built-in price for {model}")
    Assert.Equal(decimal input, found.Value.Input)
    Assert.Equal(decimal output, found.Value.Output)

[<Fact>]
let ``built-in cache prices follow the page: reads a tenth, 5-minute writes five quarters of input`` () =
    for rule in Pricing.builtInRules do
        // the page rounds to the cent: Haiku 3 reads cost 0.03, not 0.025
        Assert.InRange(rule.Price.CacheRead - rule.Price.Input / 10m, -0.005m, 0.005m)
        Assert.InRange(rule.Price.CacheWrite - rule.Price.Input * 1.25m, -0.05m, 0.05m)

[<Theory>]
[<InlineData("GLM-5")>]
[<InlineData("gpt-5.5")>]
[<InlineData("gemini-3.1-pro-preview")>]
[<InlineData("claude-opus-5")>]
[<InlineData("claude")>]
[<InlineData("")>]
let ``an unknown model has no price and no cost, not zero`` (model: string) =
    Assert.Equal(None, builtInPrice model)
    Assert.Equal(None, Pricing.cost Pricing.builtIn model (usage 1L 1L 1L 1L))
    Assert.Equal(None, Pricing.cost Pricing.builtIn model Usage.zero)

[<Fact>]
let ``zero usage costs zero when the model is priced`` () =
    Assert.Equal(Some 0m, Pricing.cost Pricing.builtIn "claude-haiku-4-5" Usage.zero)

[<Fact>]
let ``configured rules win over built-in ones, and unmatched models fall back`` () =
    let table =
        Pricing.withOverrides
            [
                rule "claude-sonnet-4*" (price 1m 2m 0m 0m)
                rule "glm-5" (price 0.5m 2m 0.1m 0.5m)
            ]
            Pricing.builtIn

    Assert.Equal(Some(price 1m 2m 0m 0m), Pricing.tryFind table "claude-sonnet-4-6")
    Assert.Equal(Some(price 0.5m 2m 0.1m 0.5m), Pricing.tryFind table "GLM-5")
    Assert.Equal(builtInPrice "claude-opus-4-6", Pricing.tryFind table "claude-opus-4-6")
    Assert.Equal(None, Pricing.tryFind table "glm-5-air")

[<Fact>]
let ``an exact id beats a prefix, and a longer prefix beats a shorter one`` () =
    let table =
        Pricing.table [
            rule "m-exact" (price 1m 0m 0m 0m)
            rule "m-*" (price 2m 0m 0m 0m)
            rule "m-ex*" (price 3m 0m 0m 0m)
            rule "*" (price 4m 0m 0m 0m)
        ]

    let input (model: string) =
        Pricing.tryFind table model |> Option.map _.Input

    Assert.Equal(Some 1m, input "m-exact")
    Assert.Equal(Some 3m, input "m-exactly")
    Assert.Equal(Some 2m, input "m-other")
    Assert.Equal(Some 4m, input "anything")
    Assert.Equal(Some 4m, input "")

[<Fact>]
let ``a star alone prices every model, e.g. a free local provider`` () =
    let free = Pricing.withOverrides [ rule "*" (price 0m 0m 0m 0m) ] Pricing.builtIn

    Assert.Equal(Some 0m, Pricing.cost free "llama3.3:70b" (usage 100L 100L 0L 0L))
    Assert.Equal(Some 0m, Pricing.cost free "claude-opus-4-6" (usage 100L 100L 0L 0L))

[<Fact>]
let ``a later rule for the same pattern wins`` () =
    let table =
        Pricing.table [
            rule "a" (price 1m 0m 0m 0m)
            rule "a" (price 2m 0m 0m 0m)
            rule "b*" (price 1m 0m 0m 0m)
            rule "b*" (price 2m 0m 0m 0m)
        ]

    Assert.Equal(Some 2m, Pricing.tryFind table "a" |> Option.map _.Input)
    Assert.Equal(Some 2m, Pricing.tryFind table "bb" |> Option.map _.Input)

[<Fact>]
let ``configured patterns ignore case and also match Bedrock ids without their prefix`` () =
    let table = Pricing.table [ rule "Claude-Custom*" (price 7m 0m 0m 0m) ]

    Assert.Equal(Some 7m, Pricing.tryFind table "claude-custom-1" |> Option.map _.Input)
    Assert.Equal(Some 7m, Pricing.tryFind table "eu.anthropic.claude-custom-1-v1:0" |> Option.map _.Input)

[<Fact>]
let ``no overrides leave the table as it was`` () =
    Assert.Same(Pricing.builtIn, Pricing.withOverrides [] Pricing.builtIn)

[<Theory>]
[<InlineData("gpt-5", 1.25, 10.0, 0.125)>]
[<InlineData("gpt-5-2025-08-07", 1.25, 10.0, 0.125)>]
[<InlineData("GPT-5-mini", 0.25, 2.0, 0.025)>]
[<InlineData("gpt-4o-mini-2024-07-18", 0.15, 0.60, 0.075)>]
[<InlineData("o4-mini", 1.10, 4.40, 0.275)>]
[<InlineData("gemini-2.5-pro", 1.25, 10.0, 0.125)>]
[<InlineData("gemini-2.5-flash-lite", 0.10, 0.40, 0.01)>]
[<InlineData("deepseek-reasoner", 0.28, 0.42, 0.028)>]
let ``translated targets' well-known models have a built-in price, cache writes at the input price``
    (model: string, input: float, output: float, cacheRead: float)
    =
    let found = builtInPrice model
    Assert.True(found.IsSome, $"no built-in price for {model}")
    Assert.Equal(decimal input, found.Value.Input)
    Assert.Equal(decimal output, found.Value.Output)
    Assert.Equal(decimal cacheRead, found.Value.CacheRead)
    Assert.Equal(found.Value.Input, found.Value.CacheWrite)

[<Fact>]
let ``a configured price overrides a translated target's built-in one`` () =
    let mine = {
        Input = 9m
        Output = 9m
        CacheRead = 9m
        CacheWrite = 9m
    }

    let table =
        Pricing.withOverrides [ { Pattern = "gpt-5"; Price = mine } ] Pricing.builtIn

    Assert.Equal(Some mine, Pricing.tryFind table "gpt-5")
    Assert.Equal(Some 0.25m, Pricing.tryFind table "gpt-5-mini" |> Option.map _.Input)
