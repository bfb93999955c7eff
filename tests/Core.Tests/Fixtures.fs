/// Small builders for routing, key-pool and breaker tests.
module CcRelay.Core.Tests.Fixtures

open System
open CcRelay.Core

/// Seconds on the monotonic test clock.
let at (seconds: float) : TimeSpan = TimeSpan.FromSeconds seconds

/// A key with an RPM limit and nothing else.
let key (secret: string) (rpm: int) : KeyConfig = {
    Key = secret
    RpmLimit = rpm
    ItpmLimit = 0
    OtpmLimit = 0
    TpmLimit = 0
    Priority = 0
    Weight = 1
    Aws = None
}

/// An `anthropic_compatible` provider with these keys.
let provider (name: string) (keys: KeyConfig list) : ProviderConfig = {
    Config.defaultProvider name ProviderType.AnthropicCompatible (Uri $"https://%s{name}.example.test") with
        Keys = keys
}

/// A price rule: `usd` per million tokens of every kind for the models `pattern` matches.
let flatPrice (pattern: string) (usd: decimal) : PriceRule = {
    Pattern = pattern
    Price = {
        Input = usd
        Output = usd
        CacheRead = usd
        CacheWrite = usd
    }
}

/// A config with these providers and strategy, defaults elsewhere.
let relay (strategy: RoutingStrategy) (providers: ProviderConfig list) : RelayConfig = {
    Config.defaults with
        Providers = providers
        Routing = {
            Config.defaultRouting with
                Strategy = strategy
        }
}

/// A request for a model, estimated at 100 input tokens.
let request (model: string) : RouteRequest = {
    Model = model
    EstimatedInputTokens = 100
    ExpectedOutputTokens = 1024
    ThinkingSignatures = false
    ConversationKey = 0UL
    ClientCredential = false
    Seed = 42UL
    ArrivedAt = TimeSpan.Zero
}

/// The provider names of a plan, in order.
let names (runtime: RelayRuntime) (dispatch: Dispatch) : string list =
    dispatch.Order
    |> Array.map (fun i -> runtime.Policy.Providers[i].Name)
    |> List.ofArray

/// Plans a request and returns the runtime and the dispatch.
let plan (runtime: RelayRuntime) (now: TimeSpan) (request: RouteRequest) : RelayRuntime * Dispatch =
    let t = Relay.plan runtime now request
    t.Runtime, t.Value

/// Asks for the next step.
let next (runtime: RelayRuntime) (now: TimeSpan) (dispatch: Dispatch) : RelayRuntime * Step * Dispatch =
    let t = Relay.next runtime now dispatch
    let struct (step, dispatch) = t.Value
    t.Runtime, step, dispatch

/// The attempt of a `Send` step (fails the test otherwise).
let sent (step: Step) : Attempt =
    match step with
    | Step.Send attempt -> attempt
    | other -> failwith $"expected Send, got %A{other}"

/// A provider's state by name.
let stateOf (runtime: RelayRuntime) (name: string) : ProviderState =
    runtime.Providers[RelayPolicy.indexOf runtime.Policy name]

/// A 200 answer after 100 ms.
let ok: AttemptResult =
    AttemptResult.Answered(200, ValueNone, TimeSpan.FromMilliseconds 100.0)

/// An answer with this status.
let status (code: int) : AttemptResult =
    AttemptResult.Answered(code, ValueNone, TimeSpan.FromMilliseconds 100.0)
