namespace CcRelay.Core

open System

/// What one model costs, in USD per million tokens.
type ModelPrice = {
    /// Fresh prompt tokens (`input_tokens`).
    Input: decimal
    /// `output_tokens`.
    Output: decimal
    /// Cache hits and refreshes (`cache_read_input_tokens`).
    CacheRead: decimal
    /// Cache writes (`cache_creation_input_tokens`), at the 5-minute rate.
    CacheWrite: decimal
}

/// One price rule. `Pattern` is a model id matched exactly, or a prefix when it ends in `*` (`*` alone
/// matches every model). Matching ignores case.
type PriceRule = { Pattern: string; Price: ModelPrice }

/// One compiled list of rules: exact ids, then prefixes longest first.
type internal PriceLayer = {
    Exact: Map<string, ModelPrice>
    /// Lower-cased prefixes, longest first.
    Prefixes: (string * ModelPrice) list
}

/// A compiled price list: layers consulted in order, the first match wins. Build one per provider with
/// `Pricing.withOverrides provider.Pricing Pricing.builtIn` when a config is loaded, not per request.
type PriceTable = internal { Layers: PriceLayer list }

/// The cost model: token usage × a price table → USD.
///
/// A model no rule matches has no price, and its cost is None: unknown, never zero (a zero would read as
/// "free" on a dashboard and hide spend). Operators price such models in `providers[].pricing`.
[<RequireQualifiedAccess>]
module Pricing =

    let private price (input: decimal) (output: decimal) (cacheRead: decimal) (cacheWrite: decimal) : ModelPrice = {
        Input = input
        Output = output
        CacheRead = cacheRead
        CacheWrite = cacheWrite
    }

    /// The built-in rules. DATA, NOT TRUTH: list prices for api.anthropic.com as the Anthropic pricing page
    /// (platform.claude.com/docs/en/about-claude/pricing) showed them on 2026-11-21, USD per million
    /// tokens, 5-minute cache writes. Not modelled: 1-hour cache writes (2× input; priced here at the
    /// 5-minute rate), long-context surcharges, Batch API and data-residency multipliers, and cloud
    /// platforms' own prices (Bedrock and Vertex ids are matched to the same rows). Families newer than
    /// those below are deliberately absent: they cost None until configured.
    ///
    /// | Rule                  | Models                      | Input | Output | Cache read | Cache write |
    /// |-----------------------|-----------------------------|-------|--------|------------|-------------|
    /// | claude-opus-4*        | Opus 4.5, 4.6, 4.7, 4.8     |  5    |  25    | 0.50       |  6.25       |
    /// | claude-opus-4-0*, claude-opus-4-1*, claude-opus-4-2025*, claude-opus-4@* | Opus 4, 4.1 | 15 | 75 | 1.50 | 18.75 |
    /// | claude-sonnet-4*      | Sonnet 4, 4.5, 4.6          |  3    |  15    | 0.30       |  3.75       |
    /// | claude-haiku-4*       | Haiku 4.5                   |  1    |   5    | 0.10       |  1.25       |
    /// | claude-3-7-sonnet*, claude-3-5-sonnet* | Sonnet 3.7, 3.5 | 3 | 15 | 0.30      |  3.75       |
    /// | claude-3-5-haiku*     | Haiku 3.5                   |  0.80 |   4    | 0.08       |  1          |
    /// | claude-3-haiku*       | Haiku 3                     |  0.25 |   1.25 | 0.03       |  0.30       |
    /// | claude-3-opus*        | Opus 3                      | 15    |  75    | 1.50       | 18.75       |
    let builtInRules: PriceRule list =
        let opusNew = price 5m 25m 0.50m 6.25m
        let opusOld = price 15m 75m 1.50m 18.75m
        let sonnet = price 3m 15m 0.30m 3.75m

        [
            {
                Pattern = "claude-opus-4*"
                Price = opusNew
            }
            // Opus 4 (`claude-opus-4-0`, `claude-opus-4-20250514`, Vertex `claude-opus-4@20250514`) and Opus 4.1
            // kept the old price
            {
                Pattern = "claude-opus-4-0*"
                Price = opusOld
            }
            {
                Pattern = "claude-opus-4-1*"
                Price = opusOld
            }
            {
                Pattern = "claude-opus-4-2025*"
                Price = opusOld
            }
            {
                Pattern = "claude-opus-4@*"
                Price = opusOld
            }
            {
                Pattern = "claude-sonnet-4*"
                Price = sonnet
            }
            {
                Pattern = "claude-haiku-4*"
                Price = price 1m 5m 0.10m 1.25m
            }
            {
                Pattern = "claude-3-7-sonnet*"
                Price = sonnet
            }
            {
                Pattern = "claude-3-5-sonnet*"
                Price = sonnet
            }
            {
                Pattern = "claude-3-5-haiku*"
                Price = price 0.80m 4m 0.08m 1m
            }
            {
                Pattern = "claude-3-haiku*"
                Price = price 0.25m 1.25m 0.03m 0.30m
            }
            {
                Pattern = "claude-3-opus*"
                Price = opusOld
            }
        ]

    /// Built-in rules for well-known models of the translated targets (`type: openai`, `type: gemini`), so their cost
    /// shows without a `pricing` config. DATA, NOT TRUTH, and older than the Anthropic rows: standard-tier list
    /// prices in USD per million tokens as OpenAI's pricing page (platform.openai.com/docs/pricing), Google's Gemini
    /// API pricing page (ai.google.dev/gemini-api/docs/pricing, paid tier, prompts up to 200k tokens) and DeepSeek's
    /// (api-docs.deepseek.com/quick_start/pricing, the V3.2 prices of 2025-09-29) listed them in November 2025,
    /// transcribed on 2026-12-07 without a live check (the build machine has no web access). Not modelled: Gemini's
    /// dearer rate above 200k prompt tokens, OpenAI's priority/flex tiers, DeepSeek's off-peak discounts, batch
    /// prices. Cache writes cost nothing extra on these services (they cache on their own): priced as input.
    /// Exact ids and their dated snapshots only — `gpt-5.5` is not `gpt-5` — so a newer model has no price
    /// until `providers[].pricing` gives it one, which also overrides any row here.
    ///
    /// | Ids (and `<id>-20*` snapshots)   | Input | Output | Cache read |
    /// |----------------------------------|-------|--------|------------|
    /// | gpt-5                            | 1.25  | 10     | 0.125      |
    /// | gpt-5-mini                       | 0.25  |  2     | 0.025      |
    /// | gpt-5-nano                       | 0.05  |  0.40  | 0.005      |
    /// | gpt-4.1                          | 2     |  8     | 0.50       |
    /// | gpt-4.1-mini                     | 0.40  |  1.60  | 0.10       |
    /// | gpt-4.1-nano                     | 0.10  |  0.40  | 0.025      |
    /// | gpt-4o                           | 2.50  | 10     | 1.25       |
    /// | gpt-4o-mini                      | 0.15  |  0.60  | 0.075      |
    /// | o3                               | 2     |  8     | 0.50       |
    /// | o4-mini                          | 1.10  |  4.40  | 0.275      |
    /// | gemini-3-pro-preview             | 2     | 12     | 0.20       |
    /// | gemini-2.5-pro                   | 1.25  | 10     | 0.125      |
    /// | gemini-2.5-flash                 | 0.30  |  2.50  | 0.03       |
    /// | gemini-2.5-flash-lite            | 0.10  |  0.40  | 0.01       |
    /// | deepseek-chat, deepseek-reasoner | 0.28  |  0.42  | 0.028      |
    let translatedRules: PriceRule list =
        [
            "gpt-5", (1.25m, 10m, 0.125m), true
            "gpt-5-mini", (0.25m, 2m, 0.025m), true
            "gpt-5-nano", (0.05m, 0.40m, 0.005m), true
            "gpt-4.1", (2m, 8m, 0.50m), true
            "gpt-4.1-mini", (0.40m, 1.60m, 0.10m), true
            "gpt-4.1-nano", (0.10m, 0.40m, 0.025m), true
            "gpt-4o", (2.50m, 10m, 1.25m), true
            "gpt-4o-mini", (0.15m, 0.60m, 0.075m), true
            "o3", (2m, 8m, 0.50m), true
            "o4-mini", (1.10m, 4.40m, 0.275m), true
            "gemini-3-pro-preview", (2m, 12m, 0.20m), false
            "gemini-2.5-pro", (1.25m, 10m, 0.125m), false
            "gemini-2.5-flash", (0.30m, 2.50m, 0.03m), false
            "gemini-2.5-flash-lite", (0.10m, 0.40m, 0.01m), false
            "deepseek-chat", (0.28m, 0.42m, 0.028m), false
            "deepseek-reasoner", (0.28m, 0.42m, 0.028m), false
        ]
        |> List.collect (fun (id, (input, output, cacheRead), dated) ->
            let rule pattern = {
                Pattern = pattern
                Price = price input output cacheRead input
            }

            if dated then
                [ rule id; rule (id + "-20*") ]
            else
                [ rule id ])

    /// Whether a pattern is a prefix rule (`claude-sonnet-4*`, `*`).
    let isPrefix (pattern: string) : bool = pattern.EndsWith '*'

    let private compile (rules: PriceRule list) : PriceLayer =
        // later rules win over earlier ones with the same pattern, as a later config key would
        let exact =
            rules
            |> List.filter (fun r -> not (isPrefix r.Pattern))
            |> List.map (fun r -> r.Pattern.ToLowerInvariant(), r.Price)
            |> Map.ofList

        let prefixes =
            rules
            |> List.filter (fun r -> isPrefix r.Pattern)
            |> List.map (fun r -> r.Pattern.Substring(0, r.Pattern.Length - 1).ToLowerInvariant(), r.Price)
            |> List.rev
            |> List.distinctBy fst
            |> List.sortByDescending (fun (prefix, _) -> prefix.Length)

        { Exact = exact; Prefixes = prefixes }

    /// A table of exactly these rules.
    let table (rules: PriceRule list) : PriceTable = { Layers = [ compile rules ] }

    /// The built-in table (`builtInRules`, then `translatedRules`).
    let builtIn: PriceTable = table (builtInRules @ translatedRules)

    /// A table that consults `rules` first and `fallback` for models they do not match.
    let withOverrides (rules: PriceRule list) (fallback: PriceTable) : PriceTable =
        match rules with
        | [] -> fallback
        | rules -> {
            Layers = compile rules :: fallback.Layers
          }

    /// The id without a cloud prefix: `us.anthropic.claude-sonnet-4-5-v1:0` and
    /// `arn:…:foundation-model/anthropic.claude-opus-4-1` become `claude-…`.
    /// Ordinal: `LastIndexOf(string)` alone compares by the current culture (ICU), several times the cost of
    /// the ordinal search on every priced request (three lookups a request with client keys).
    let private withoutCloudPrefix (model: string) : string =
        match model.LastIndexOf("anthropic.", StringComparison.Ordinal) with
        | -1 -> model
        | at -> model.Substring(at + "anthropic.".Length)

    let private findIn (layer: PriceLayer) (model: string) : ModelPrice option =
        match layer.Exact.TryFind model with
        | Some price -> Some price
        | None ->
            layer.Prefixes
            |> List.tryFind (fun (prefix, _) -> model.StartsWith(prefix, StringComparison.Ordinal))
            |> Option.map snd

    /// The price of a model: the first layer with a match wins; within a layer an exact id beats a prefix
    /// and a longer prefix beats a shorter one. The id is tried as written, then without a Bedrock-style
    /// `…anthropic.` prefix. Case is ignored.
    let tryFind (table: PriceTable) (model: string) : ModelPrice option =
        let lowered = model.ToLowerInvariant()
        let bare = withoutCloudPrefix lowered

        table.Layers
        |> List.tryPick (fun layer ->
            match findIn layer lowered with
            | Some price -> Some price
            | None when not (Object.ReferenceEquals(bare, lowered)) -> findIn layer bare
            | None -> None)

    /// What `usage` costs at `price`, in USD.
    let costAt (price: ModelPrice) (usage: Usage) : decimal =
        (decimal usage.InputTokens * price.Input
         + decimal usage.OutputTokens * price.Output
         + decimal usage.CacheReadTokens * price.CacheRead
         + decimal usage.CacheWriteTokens * price.CacheWrite)
        / 1_000_000m

    /// What `usage` of `model` costs, in USD; None when no rule prices the model (unknown, not zero).
    let cost (table: PriceTable) (model: string) (usage: Usage) : decimal option =
        tryFind table model |> Option.map (fun price -> costAt price usage)
