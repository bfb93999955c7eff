namespace CcRelay.Core

open System

/// How the providers of one request are ordered (`routing.strategy`). Every strategy yields an ordered
/// plan of providers, never a single pick: the relay fails over along it.
[<RequireQualifiedAccess>]
type RoutingStrategy =
    /// Priority order (higher first), config order among equals. The default.
    | Failover
    /// Rotates the first provider; the rest follow in rotation order.
    | RoundRobin
    /// Smooth weighted round robin (nginx): over every cycle of `Σ weights` plans, each provider leads
    /// exactly `weight` times, interleaved.
    | WeightedRoundRobin
    /// Deals a shuffled deck: every provider leads once per deck.
    | Shuffle
    /// Fewest requests in flight first; priority, then config order, break ties.
    | LeastLoaded
    /// A weighted random permutation (weight = probability of leading).
    | WeightedFailover
    /// `routing.model_mapping` rules pick the provider for a model; the others that serve it follow.
    | ModelBased
    /// Lowest time-to-first-byte (EWMA) first; unmeasured or long-unmeasured providers are explored first.
    | LatencyBased
    /// Cheapest for the requested model (from `providers[].prices`) first; unpriced providers last.
    | CostBased

/// The config spellings of the routing strategies.
[<RequireQualifiedAccess>]
module RoutingStrategy =

    /// Every strategy with its config spelling, in documentation order.
    let all: (string * RoutingStrategy) list = [
        "failover", RoutingStrategy.Failover
        "round_robin", RoutingStrategy.RoundRobin
        "weighted_round_robin", RoutingStrategy.WeightedRoundRobin
        "shuffle", RoutingStrategy.Shuffle
        "model_based", RoutingStrategy.ModelBased
        "least_loaded", RoutingStrategy.LeastLoaded
        "weighted_failover", RoutingStrategy.WeightedFailover
        "latency_based", RoutingStrategy.LatencyBased
        "cost_based", RoutingStrategy.CostBased
    ]

    /// The config spelling (also shown in the `X-CC-Relay-Strategy` debug header).
    let wireName (strategy: RoutingStrategy) : string =
        all |> List.find (fun (_, s) -> s = strategy) |> fst

/// How one provider picks among its keys (`providers[].pooling.strategy`). Keys of a higher `priority`
/// tier are always tried first; the strategy chooses within a tier.
[<RequireQualifiedAccess>]
type KeyStrategy =
    /// Most remaining capacity (the tightest of RPM, ITPM, OTPM) first. The default.
    | LeastLoaded
    | RoundRobin
    | Random
    /// Random, in proportion to `keys[].weight`.
    | Weighted

/// The config spellings of the key strategies.
[<RequireQualifiedAccess>]
module KeyStrategy =

    /// Every key strategy with its config spelling.
    let all: (string * KeyStrategy) list = [
        "least_loaded", KeyStrategy.LeastLoaded
        "round_robin", KeyStrategy.RoundRobin
        "random", KeyStrategy.Random
        "weighted", KeyStrategy.Weighted
    ]

/// One `routing.model_mapping` entry. A pattern without `*` matches model names that start with it;
/// a pattern with `*` must match the whole name, `*` standing for any run of characters.
type ModelRule = {
    Pattern: string
    /// The provider name the rule sends matching models to.
    Provider: string
}

/// What kind of request this is, for routing (`routing.stages`): see `Stages.classify` for how a request is
/// recognised and the precedence between stages.
[<RequireQualifiedAccess>]
type Stage =
    /// Claude Code's side requests: titles, Bash-prefix checks, summaries, probes and quota checks.
    | Background
    /// Thinking enabled or adaptive.
    | Think
    /// Estimated input tokens over `routing.long_context_threshold`.
    | LongContext
    /// A web search server tool is present.
    | WebSearch
    /// An image in the latest user turn.
    | Image
    /// A request made by a Claude Code subagent (or carrying a subagent model tag).
    | Subagent
    /// Nothing else matched.
    | Default
    /// Not a stage one configures: the model name was `provider,model` (or `provider/model`), which goes
    /// straight to that provider with that model.
    | Direct

/// The config spellings of the stages.
[<RequireQualifiedAccess>]
module Stage =

    /// Every configurable stage with its config spelling, in precedence order (`default` last).
    let all: (string * Stage) list = [
        "long_context", Stage.LongContext
        "web_search", Stage.WebSearch
        "image", Stage.Image
        "subagent", Stage.Subagent
        "background", Stage.Background
        "think", Stage.Think
        "default", Stage.Default
    ]

    /// The config spelling (also the `stage` of debug headers, log lines and metrics); `direct` for a
    /// `provider,model` switch.
    let wireName (stage: Stage) : string =
        match stage with
        | Stage.Direct -> "direct"
        | stage -> all |> List.find (fun (_, s) -> s = stage) |> fst

/// Where a stage sends its requests: one provider, with a model or with the client's.
type StageTarget = {
    Provider: string
    /// The model sent upstream; None: the client's (mapped by the provider's `model_mapping` as usual).
    Model: string option
}

/// `routing.stages` and the settings that go with it.
type StagesConfig = {
    /// Each configured stage with its targets, in the order to try (the strategy may reorder: see
    /// docs/routing.md). A stage that is not listed is never chosen.
    Routes: (Stage * StageTarget list) list
    /// `routing.long_context_threshold`: estimated input tokens above which a request is `long_context`.
    LongContextThreshold: int
    /// `routing.model_switching`: model names `provider,model` and `provider/model` go straight to that
    /// provider.
    ModelSwitching: bool
    /// `routing.list_switch_models`: `/v1/models` also lists `provider,model` for every provider's models.
    ListSwitchModels: bool
}

/// The `routing` section.
type RoutingConfig = {
    Strategy: RoutingStrategy
    /// Upper bound on attempts (first try included) for one request; 1 means no retry.
    MaxAttempts: int
    /// How long after the first failure (or, before any attempt, after arrival) new attempts and waits may
    /// still start, in ms; 0 = no time bound.
    FailoverTimeoutMs: int
    /// Start a second, parallel attempt when the first has sent no byte after this long, in ms; 0 = off.
    HedgeAfterMs: int
    /// Add the `X-CC-Relay-*` debug response headers.
    Debug: bool
    /// Model rules, in file order (`model_based`).
    ModelRules: ModelRule list
    /// Where `model_based` sends a model no rule matches.
    DefaultProvider: string option
    /// `routing.stages`, `long_context_threshold`, `model_switching`, `list_switch_models`.
    Stages: StagesConfig
}

/// `health.circuit_breaker`.
type CircuitBreakerConfig = {
    /// Failures within `WindowMs` that open the circuit.
    FailureThreshold: int
    WindowMs: int
    /// How long an open circuit refuses before it lets probes through, in ms.
    OpenDurationMs: int
    /// Probes a half-open circuit admits; that many successes close it, one failure reopens it.
    HalfOpenProbes: int
}

/// What a health-check probe sends (`health.health_check.probe`).
[<RequireQualifiedAccess>]
type ProbeKind =
    /// `GET /v1/models` on the provider.
    | Models
    /// `POST /v1/messages/count_tokens` with a one-word message.
    | CountTokens
    /// `GET` of a fixed URL (`health.health_check.url`).
    | Url of Target: Uri

/// `health.health_check`: probes of providers whose circuit is open.
type HealthCheckConfig = {
    Enabled: bool
    IntervalMs: int
    Probe: ProbeKind
}

/// The `health` section.
type HealthConfig = {
    HealthCheck: HealthCheckConfig
    CircuitBreaker: CircuitBreakerConfig
}

/// The C#-facing surface of `RoutingStrategy`.
type RoutingStrategy with

    /// The config spelling (`RoutingStrategy.wireName`).
    member this.WireName: string = RoutingStrategy.wireName this
