namespace CcRelay.Core

open System
open System.Collections.Frozen

/// Every configured provider's price table (its `pricing` rules over the built-in Claude prices), compiled
/// once per config load and shared: routing (`RelayPolicy`) and cost accounting (the host's snapshot) read
/// the same tables.
type ProviderPrices = private {
    Tables: FrozenDictionary<string, PriceTable>
}

/// Compiling and reading `ProviderPrices`.
[<RequireQualifiedAccess>]
module ProviderPrices =

    /// Compiles each provider's table (`Pricing.withOverrides provider.Pricing Pricing.builtIn`); the first
    /// provider of a name wins.
    let compile (providers: ProviderConfig list) : ProviderPrices =
        let tables =
            Collections.Generic.Dictionary<string, PriceTable>(StringComparer.Ordinal)

        for provider in providers do
            if not (tables.ContainsKey provider.Name) then
                tables[provider.Name] <- Pricing.withOverrides provider.Pricing Pricing.builtIn

        {
            Tables = tables.ToFrozenDictionary(StringComparer.Ordinal)
        }

    /// A provider's table; the built-in prices for a provider the config does not name.
    let tableOf (prices: ProviderPrices) (provider: string) : PriceTable =
        match prices.Tables.TryGetValue provider with
        | true, table -> table
        | _ -> Pricing.builtIn

/// One enabled provider, compiled for the hot path.
type ProviderPolicy = {
    /// Position in `RelayPolicy.Providers` (config order among enabled providers).
    Index: int
    Name: string
    Config: ProviderConfig
    Family: string
    Priority: int
    /// >= 1.
    Weight: int
    Keys: KeyPolicy array
    /// Key indexes per priority tier, highest first.
    Tiers: int array array
    KeyStrategy: KeyStrategy
    /// Whether the caller's own credential replaces the configured keys (Anthropic passthrough).
    AcceptsClientCredential: bool
    /// Models the provider lists or maps: what `model_based` may fall back to.
    Serves: FrozenSet<string>
    /// The provider's `pricing` rules over the built-in Claude prices (also what cost metrics use).
    Pricing: PriceTable
}

/// Everything the relay decides with, compiled once per config: arrays indexed by provider, rules in
/// precedence order, durations as `TimeSpan`.
type RelayPolicy = {
    /// Increases with every reload; attempts and dispatches made under an older policy are mapped by name.
    Version: int64
    Config: RelayConfig
    /// Enabled providers, config order.
    Providers: ProviderPolicy array
    Strategy: RoutingStrategy
    /// Provider indexes by priority (higher first), config order among equals.
    PriorityOrder: int array
    /// Provider indexes 0 .. n-1.
    ConfigOrder: int array
    MaxAttempts: int
    /// Zero: no time bound.
    FailoverTimeout: TimeSpan
    /// Zero: no hedging.
    HedgeAfter: TimeSpan
    Breaker: CircuitBreaker.Policy
    RulePatterns: string array
    RuleOrder: int array
    /// The provider index each rule names; -1 when that provider is not enabled.
    RuleProviders: int array
    /// -1 when unset or not enabled.
    DefaultProvider: int
    HealthCheckInterval: TimeSpan
}

/// Compiling a config into a policy.
[<RequireQualifiedAccess>]
module RelayPolicy =

    /// The index of an enabled provider by name; -1 when there is none.
    let indexOf (policy: RelayPolicy) (name: string) : int =
        let mutable found = -1
        let mutable i = 0

        while found < 0 && i < policy.Providers.Length do
            if String.Equals(policy.Providers[i].Name, name, StringComparison.Ordinal) then
                found <- i

            i <- i + 1

        found

    let private provider (prices: ProviderPrices) (index: int) (config: ProviderConfig) : ProviderPolicy =
        let keys = KeyPool.compile config.Keys

        {
            Index = index
            Name = config.Name
            Config = config
            Family = config.Family
            Priority = config.Priority
            Weight = max 1 config.Weight
            Keys = keys
            Tiers = KeyPool.tiers keys
            KeyStrategy = config.KeyStrategy
            AcceptsClientCredential = ProviderType.acceptsClientCredential config.Type
            Serves =
                Seq.append config.Models (config.ModelMapping |> Map.keys)
                |> fun models -> FrozenSet.ToFrozenSet(models, StringComparer.Ordinal)
            Pricing = ProviderPrices.tableOf prices config.Name
        }

    /// Compiles a config whose price tables are compiled already (`ProviderPrices.compile config.Providers`);
    /// `version` should exceed the previous policy's.
    let compile (version: int64) (prices: ProviderPrices) (config: RelayConfig) : RelayPolicy =
        let providers =
            config.Providers
            |> List.filter _.Enabled
            |> List.mapi (provider prices)
            |> Array.ofList

        let byName (name: string) =
            providers
            |> Array.tryFindIndex (fun p -> p.Name = name)
            |> Option.defaultValue -1

        let rules = Array.ofList config.Routing.ModelRules
        let patterns = rules |> Array.map _.Pattern

        let millis (ms: int) =
            TimeSpan.FromMilliseconds(float (max 0 ms))

        {
            Version = version
            Config = config
            Providers = providers
            Strategy = config.Routing.Strategy
            ConfigOrder = Array.init providers.Length id
            PriorityOrder =
                providers
                |> Array.sortWith (fun a b ->
                    match compare b.Priority a.Priority with
                    | 0 -> compare a.Index b.Index
                    | c -> c)
                |> Array.map _.Index
            MaxAttempts = max 1 config.Routing.MaxAttempts
            FailoverTimeout = millis config.Routing.FailoverTimeoutMs
            HedgeAfter = millis config.Routing.HedgeAfterMs
            Breaker = CircuitBreaker.policyOf config.Health.CircuitBreaker
            RulePatterns = patterns
            RuleOrder = ModelPattern.precedence patterns
            RuleProviders = rules |> Array.map (fun r -> byName r.Provider)
            DefaultProvider = config.Routing.DefaultProvider |> Option.map byName |> Option.defaultValue -1
            HealthCheckInterval = millis (max 1000 config.Health.HealthCheck.IntervalMs)
        }

    /// The price of `model` at a provider: (input, output) in USD per million tokens, from its `pricing`
    /// rules, else the built-in Claude prices; ValueNone when nothing prices the model.
    let price (provider: ProviderPolicy) (model: string) : struct (float * float) voption =
        match Pricing.tryFind provider.Pricing model with
        | Some p -> ValueSome(struct (float p.Input, float p.Output))
        | None -> ValueNone

/// The C#-facing surface of `ProviderPrices`.
type ProviderPrices with

    /// Compiles every provider's table (`ProviderPrices.compile`).
    static member Compile(providers: ProviderConfig list) : ProviderPrices = ProviderPrices.compile providers

    /// A provider's table (`ProviderPrices.tableOf`).
    member this.TableOf(provider: string) : PriceTable = ProviderPrices.tableOf this provider
