module CcRelay.Core.Properties.PricingProperties

open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core

// ---------------------------
// Generators
// ---------------------------

let private tokens: Gen<int64> =
    Gen.frequency [
        3, Gen.choose (0, 1_000_000) |> Gen.map int64
        1, Gen.choose (0, 1_000_000) |> Gen.map (fun n -> int64 n * 1_000_000L)
    ]

let private usage: Gen<Usage> =
    gen {
        let! input = tokens
        let! output = tokens
        let! cacheRead = tokens
        let! cacheWrite = tokens

        return {
            InputTokens = input
            OutputTokens = output
            CacheReadTokens = cacheRead
            CacheWriteTokens = cacheWrite
        }
    }

/// A price as a config writes one: up to four decimals, up to a few hundred dollars.
let private dollars: Gen<decimal> =
    Gen.choose (0, 3_000_000) |> Gen.map (fun n -> decimal n / 10_000m)

let private modelPrice: Gen<ModelPrice> =
    gen {
        let! input = dollars
        let! output = dollars
        let! cacheRead = dollars
        let! cacheWrite = dollars

        return {
            Input = input
            Output = output
            CacheRead = cacheRead
            CacheWrite = cacheWrite
        }
    }

/// Model ids around the built-in families, and some nobody prices.
let private model: Gen<string> =
    Gen.elements [
        "claude-opus-4-6"
        "claude-opus-4-1-20250805"
        "claude-sonnet-4-5@20250929"
        "us.anthropic.claude-haiku-4-5-20251001-v1:0"
        "claude-3-5-haiku-latest"
        "GLM-5"
        "gpt-5"
        "claude-opus-5"
    ]

/// Patterns and ids over a tiny alphabet, so that exact ids, prefixes and overlaps all occur.
let private smallId: Gen<string> =
    Gen.choose (0, 3)
    |> Gen.bind (fun length -> Gen.listOfLength length (Gen.elements [ 'a'; 'b'; 'A' ]))
    |> Gen.map (fun chars -> System.String(Array.ofList chars))

let private rule: Gen<PriceRule> =
    gen {
        let! id = smallId
        let! prefix = Gen.elements [ false; true ]
        let! price = modelPrice

        return {
            Pattern = (if prefix then id + "*" else id)
            Price = price
        }
    }

// ---------------------------
// Properties
// ---------------------------

[<Fact>]
let ``cost is linear in usage: cost(a + b) = cost(a) + cost(b)`` () =
    Check.quick
        1000
        (Prop.forAll (Check.arb (Gen.zip3 modelPrice usage usage)) (fun (price, a, b) ->
            Assert.Equal(Pricing.costAt price a + Pricing.costAt price b, Pricing.costAt price (a + b))))

[<Fact>]
let ``a priced model's cost is linear and zero for zero usage; an unpriced one has no cost at all`` () =
    Check.property (
        Prop.forAll (Check.arb (Gen.zip3 model usage usage)) (fun (model, a, b) ->
            match Pricing.cost Pricing.builtIn model a, Pricing.cost Pricing.builtIn model b with
            | Some costA, Some costB ->
                Assert.Equal(Some(costA + costB), Pricing.cost Pricing.builtIn model (a + b))
                Assert.Equal(Some 0m, Pricing.cost Pricing.builtIn model Usage.zero)
                Assert.True(costA >= 0m)
            | None, None ->
                Assert.Equal(None, Pricing.cost Pricing.builtIn model (a + b))
                Assert.Equal(None, Pricing.cost Pricing.builtIn model Usage.zero)
            | _ -> Assert.Fail "a model is priced for one usage and not another")
    )

[<Fact>]
let ``more tokens never cost less`` () =
    Check.property (
        Prop.forAll (Check.arb (Gen.zip3 modelPrice usage usage)) (fun (price, a, extra) ->
            Assert.True(Pricing.costAt price (a + extra) >= Pricing.costAt price a))
    )

[<Fact>]
let ``lookup agrees with a naive scan: exact id first, else the longest prefix, later rules winning ties`` () =
    let naive (rules: PriceRule list) (model: string) : ModelPrice option =
        let model = model.ToLowerInvariant()
        let lastWins = List.rev rules

        let exact =
            lastWins
            |> List.tryFind (fun r -> not (r.Pattern.EndsWith '*') && r.Pattern.ToLowerInvariant() = model)

        match exact with
        | Some r -> Some r.Price
        | None ->
            lastWins
            |> List.filter (fun r ->
                r.Pattern.EndsWith '*'
                && model.StartsWith(r.Pattern.TrimEnd('*').ToLowerInvariant(), System.StringComparison.Ordinal))
            // stable sort: among equal lengths the later rule (first in lastWins) stays first
            |> List.sortByDescending _.Pattern.Length
            |> List.tryHead
            |> Option.map _.Price

    Check.quick
        1000
        (Prop.forAll (Check.arb (Gen.zip (Gen.listOf rule) smallId)) (fun (rules, model) ->
            Assert.Equal(naive rules model, Pricing.tryFind (Pricing.table rules) model)))
