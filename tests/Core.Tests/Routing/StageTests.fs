/// Routing stages: classification of real Claude Code requests (tests/fixtures/claude-code, recorded from the
/// CLI 2.1.197 offline), precedence, `provider,model` switching, the `routing.stages` config, planning within
/// a stage, and `route explain`.
module CcRelay.Core.Tests.StageTests

open System
open System.IO
open System.Text.Json
open CcRelay.Core
open CcRelay.Core.Tests.Fixtures
open Xunit

/// `tests/fixtures/claude-code`, found by walking up from the test binaries.
let private fixtures: Lazy<string> =
    lazy
        (let rec find (dir: DirectoryInfo | null) =
            match dir with
            | null -> failwith $"tests/fixtures/claude-code not found above %s{AppContext.BaseDirectory}"
            | dir ->
                let candidate = Path.Combine(dir.FullName, "tests", "fixtures", "claude-code")

                if File.Exists(Path.Combine(candidate, "main-loop.body.json")) then
                    candidate
                else
                    find dir.Parent

         find (DirectoryInfo AppContext.BaseDirectory))

/// A recorded request: its body bytes and the headers stage routing reads.
let private recorded (name: string) : byte array * StageHeaders =
    let body = File.ReadAllBytes(Path.Combine(fixtures.Value, name + ".body.json"))

    use headers =
        JsonDocument.Parse(File.ReadAllText(Path.Combine(fixtures.Value, name + ".headers.json")))

    let header (h: string) =
        match headers.RootElement.GetProperty("headers").TryGetProperty h with
        | true, v -> v.GetString() |> Option.ofObj |> Option.defaultValue ""
        | _ -> ""

    body,
    Stages.headersOf (header "x-claude-code-agent-id") (header "anthropic-beta") (header "user-agent") (header "x-app")

let private target (provider: string) (model: string option) : StageTarget = { Provider = provider; Model = model }

/// Providers main, cheap, reasoner, gemini, searcher, vision, agents; every stage configured to its own one.
let private staged (threshold: int) : RelayConfig =
    let names = [ "main"; "cheap"; "reasoner"; "gemini"; "searcher"; "vision"; "agents" ]

    {
        relay RoutingStrategy.Failover (names |> List.map (fun n -> provider n [ key $"sk-%s{n}-0123456789" 0 ])) with
            Routing = {
                Config.defaultRouting with
                    Stages = {
                        Config.defaultStages with
                            LongContextThreshold = threshold
                            Routes = [
                                Stage.Background, [ target "cheap" (Some "claude-haiku-4-5") ]
                                Stage.Think, [ target "reasoner" (Some "deepseek-reasoner"); target "main" None ]
                                Stage.LongContext, [ target "gemini" (Some "gemini-2.5-pro") ]
                                Stage.WebSearch, [ target "searcher" None ]
                                Stage.Image, [ target "vision" None ]
                                Stage.Subagent, [ target "agents" None ]
                                Stage.Default, [ target "main" None ]
                            ]
                    }
            }
    }

let private classify (config: RelayConfig) (name: string) : StageDecision =
    let body, headers = recorded name

    match RequestFacts.inspectFor (Stages.active config) (ReadOnlySpan body) with
    | Ok facts -> Stages.classify config facts headers
    | Error e -> failwith (RequestFacts.describe e)

[<Theory>]
[<InlineData("main-loop", "think", "thinking-adaptive", "reasoner")>]
[<InlineData("subagent", "subagent", "agent-header", "agents")>]
[<InlineData("explore", "subagent", "agent-header", "agents")>]
[<InlineData("subagent-tag", "subagent", "model-tag", "cheap")>]
[<InlineData("subagent-model", "direct", "model-switch", "cheap")>]
[<InlineData("web-search", "web_search", "web-search-tool", "searcher")>]
[<InlineData("quota", "background", "probe", "cheap")>]
[<InlineData("title", "background", "title", "cheap")>]
[<InlineData("compaction", "background", "compaction", "cheap")>]
[<InlineData("image", "image", "image", "vision")>]
let ``Claude Code's recorded requests land on their stage``
    (name: string, stage: string, reason: string, first: string)
    =
    let decision = classify (staged 60_000) name
    Assert.Equal(stage, Stage.wireName decision.Stage)
    Assert.Equal(reason, decision.Reason)
    Assert.Equal(first, (List.head decision.Targets).Provider)

[<Fact>]
let ``a subagent's tag and a subagent's provider,model name both pick the model`` () =
    let tag = classify (staged 60_000) "subagent-tag"
    Assert.Equal<StageTarget list>([ target "cheap" (Some "claude-haiku-4-5") ], tag.Targets)
    let named = classify (staged 60_000) "subagent-model"
    Assert.Equal<StageTarget list>([ target "cheap" (Some "claude-haiku-4-5") ], named.Targets)

[<Fact>]
let ``over the threshold the main loop is long_context, which outranks think`` () =
    let decision = classify (staged 10_000) "main-loop"
    Assert.Equal(Stage.LongContext, decision.Stage)
    Assert.Equal("tokens>10000", decision.Reason)
    Assert.Equal<StageTarget list>([ target "gemini" (Some "gemini-2.5-pro") ], decision.Targets)

[<Fact>]
let ``a stage without targets is skipped for the next that has some`` () =
    let config = staged 60_000

    let withoutThink = {
        config with
            Routing.Stages.Routes = config.Routing.Stages.Routes |> List.filter (fun (s, _) -> s <> Stage.Think)
    }

    let decision = classify withoutThink "main-loop"
    Assert.Equal(Stage.Default, decision.Stage)
    Assert.Equal("main", (List.head decision.Targets).Provider)

[<Fact>]
let ``without any stage every request is default with no targets: routing as before`` () =
    let config = relay RoutingStrategy.Failover [ provider "main" [] ]

    for name in [ "main-loop"; "subagent"; "quota"; "web-search" ] do
        let decision = classify config name
        Assert.Equal(Stage.Default, decision.Stage)
        Assert.Empty decision.Targets

[<Fact>]
let ``the matching stages come in precedence order and end with default`` () =
    let body, headers = recorded "subagent"

    let facts =
        RequestFacts.inspectWithStages (ReadOnlySpan body)
        |> Result.defaultWith (fun _ -> failwith "bad")

    let matching = Stages.matching 1000 facts facts.Stage headers

    Assert.Equal<Stage list>([ Stage.LongContext; Stage.Subagent; Stage.Default ], matching |> List.map fst)

// ---------------------------
// One pass: the stage facts come with the request's facts
// ---------------------------

let private recordedNames = [
    "main-loop"
    "subagent"
    "explore"
    "quota"
    "title"
    "compaction"
    "image"
    "web-search"
    "subagent-model"
    "subagent-tag"
]

[<Fact>]
let ``every recorded Claude Code request gets its stage facts from the one fast pass, equal to the reader's`` () =
    for name in recordedNames do
        let body, _ = recorded name

        match RequestFacts.tryFastWith true (ReadOnlySpan body) with
        | ValueSome facts ->
            Assert.Equal(RequestFacts.readStageFacts (ReadOnlySpan body), facts.Stage)
            // and the rest of the facts are inspect's, unchanged
            Assert.Equal(
                Ok {
                    facts with
                        Stage = RequestFacts.noStages
                },
                RequestFacts.inspect (ReadOnlySpan body)
            )
        | ValueNone -> failwith $"%s{name}: the fast path gave way to the reader"

[<Fact>]
let ``the recorded requests' stage facts say what each request is`` () =
    let stage name =
        let body, _ = recorded name

        (RequestFacts.inspectWithStages (ReadOnlySpan body)
         |> Result.defaultWith (fun _ -> failwith "bad"))
            .Stage

    Assert.Equal("adaptive", (stage "main-loop").Thinking)
    Assert.True((stage "main-loop").HasTools)
    Assert.False((stage "main-loop").WebSearchTool)
    Assert.True((stage "web-search").WebSearchTool)
    Assert.True((stage "image").LatestUserImage)
    Assert.True((stage "compaction").LatestUserCompaction)
    Assert.Equal("title", (stage "title").SideRequest)
    Assert.True((stage "subagent").SubagentMarker)
    Assert.NotEqual<string>("", (stage "subagent-tag").ModelTag)

[<Fact>]
let ``inspect without stages reads no stage facts`` () =
    let body, _ = recorded "main-loop"

    match RequestFacts.inspect (ReadOnlySpan body) with
    | Ok facts -> Assert.Equal(RequestFacts.noStages, facts.Stage)
    | Error e -> failwith (RequestFacts.describe e)

[<Theory>]
// two-character escapes only: the raw text is exact
[<InlineData("{\"model\":\"m\",\"system\":[{\"type\":\"text\",\"text\":\"a\\n cc_is_subagent=true;\"}],\"messages\":[]}",
             true)>]
// `\u` escapes: decoded first (`c` written as \u0063)
[<InlineData("{\"model\":\"m\",\"system\":[{\"type\":\"text\",\"text\":\"a \\u0063c_is_subagent=true;\"}],\"messages\":[]}",
             true)>]
// a raw match inside a `\u` escape is no match
[<InlineData("{\"model\":\"m\",\"system\":[{\"type\":\"text\",\"text\":\"a \\u00cc_is_subagent=true;\"}],\"messages\":[]}",
             false)>]
let ``a system text's escapes are decoded before the subagent marker is looked for`` (body: string, marker: bool) =
    let bytes = Text.Encoding.UTF8.GetBytes body

    match RequestFacts.inspectWithStages (ReadOnlySpan bytes) with
    | Ok facts ->
        Assert.Equal(marker, facts.Stage.SubagentMarker)
        Assert.Equal(RequestFacts.readStageFacts (ReadOnlySpan bytes), facts.Stage)
    | Error e -> failwith (RequestFacts.describe e)

[<Fact>]
let ``an escaped lone surrogate in a system text: the reader's facts, read up to it`` () =
    // Utf8JsonReader cannot hold "\ud800" in a string: the stage facts stop there, as they always did
    let body =
        "{\"model\":\"m\",\"thinking\":{\"type\":\"enabled\"},\"system\":[{\"type\":\"text\",\"text\":\"x\\ud800\"}],\"tools\":[{\"type\":\"web_search_20250305\"}],\"messages\":[]}"B

    match RequestFacts.inspectWithStages (ReadOnlySpan body) with
    | Ok facts ->
        Assert.Equal(RequestFacts.readStageFacts (ReadOnlySpan body), facts.Stage)
        Assert.Equal("enabled", facts.Stage.Thinking)
        Assert.False(facts.Stage.WebSearchTool)
    | Error e -> failwith (RequestFacts.describe e)

// ---------------------------
// Model switching
// ---------------------------

let private switching: RelayConfig =
    relay RoutingStrategy.Failover [
        provider "anthropic" []
        {
            provider "openrouter" [] with
                Models = [ "anthropic/claude-sonnet-4" ]
        }
        {
            provider "off" [] with
                Enabled = false
        }
    ]

[<Fact>]
let ``provider,model goes to that provider with that model`` () =
    Assert.Equal(
        Some(target "openrouter" (Some "anthropic/claude-sonnet-4")),
        Stages.tryDirect switching "openrouter,anthropic/claude-sonnet-4"
    )

    Assert.Equal(
        Some(target "anthropic" (Some "claude-opus-4-8")),
        Stages.tryDirect switching "anthropic,claude-opus-4-8"
    )

[<Fact>]
let ``provider/model switches only when no provider lists the whole name`` () =
    // OpenRouter lists the id: it stays a model id
    Assert.Equal(None, Stages.tryDirect switching "anthropic/claude-sonnet-4")

    Assert.Equal(
        Some(target "anthropic" (Some "claude-opus-4-8")),
        Stages.tryDirect switching "anthropic/claude-opus-4-8"
    )

    Assert.Equal(
        Some(target "openrouter" (Some "anthropic/claude-sonnet-4")),
        Stages.tryDirect switching "openrouter/anthropic/claude-sonnet-4"
    )

[<Fact>]
let ``names of unknown or disabled providers, and model_switching off, are plain model ids`` () =
    Assert.Equal(None, Stages.tryDirect switching "nobody,claude-x")
    Assert.Equal(None, Stages.tryDirect switching "off,claude-x")
    Assert.Equal(None, Stages.tryDirect switching "claude-sonnet-4-6")
    Assert.Equal(None, Stages.tryDirect switching "anthropic,")

    let off = {
        switching with
            Routing.Stages.ModelSwitching = false
    }

    Assert.Equal(None, Stages.tryDirect off "anthropic,claude-x")

[<Fact>]
let ``list_switch_models adds provider,model entries to the catalogue`` () =
    let listed = {
        switching with
            Routing.Stages.ListSwitchModels = true
    }

    Assert.Equal<string list>([ "anthropic/claude-sonnet-4" ], Models.catalogue switching |> List.map _.Id)

    Assert.Equal<string list>(
        [ "anthropic/claude-sonnet-4"; "openrouter,anthropic/claude-sonnet-4" ],
        Models.catalogue listed |> List.map _.Id
    )

[<Fact>]
let ``the plain models (the Bedrock ingress's inference profiles) never carry provider,model switch ids`` () =
    let listed = {
        switching with
            Routing.Stages.ListSwitchModels = true
    }

    Assert.Equal<string list>([ "anthropic/claude-sonnet-4" ], Models.plain listed |> List.map _.Id)

// ---------------------------
// Planning within a stage
// ---------------------------

[<Fact>]
let ``a stage's targets are the candidates, in their order under failover, each with its model`` () =
    let runtime = Relay.create (at 0.0) (staged 60_000)

    let t =
        Relay.planRoute runtime (at 0.0) (request "claude-sonnet-4-6") [
            target "reasoner" (Some "deepseek-reasoner")
            target "main" None
        ]

    Assert.Equal<string list>([ "reasoner"; "main" ], names t.Runtime t.Value)
    let _, step, dispatch = next t.Runtime (at 0.0) t.Value
    let attempt = sent step
    Assert.Equal("reasoner", attempt.ProviderName)
    Assert.Equal("deepseek-reasoner", attempt.Model)
    // the second attempt gets the client's model
    let runtime', _, _ = next t.Runtime (at 0.0) t.Value
    ignore runtime'

    let second = Relay.next t.Runtime (at 0.0) { dispatch with Position = 1 }

    match second.Value with
    | struct (Step.Send a, _) ->
        Assert.Equal("main", a.ProviderName)
        Assert.Equal("", a.Model)
    | other -> failwith $"%A{other}"

[<Fact>]
let ``round_robin rotates among the stage's candidates only`` () =
    let config = {
        staged 60_000 with
            Routing.Strategy = RoutingStrategy.RoundRobin
    }

    let mutable runtime = Relay.create (at 0.0) config
    let leaders = Collections.Generic.List<string>()

    for _ in 1..4 do
        let t =
            Relay.planRoute runtime (at 0.0) (request "m") [ target "cheap" None; target "vision" None ]

        runtime <- t.Runtime
        leaders.Add(List.head (names t.Runtime t.Value))

    Assert.All(leaders, fun l -> Assert.Contains(l, [ "cheap"; "vision" ]))
    Assert.Contains("cheap", leaders)
    Assert.Contains("vision", leaders)

[<Fact>]
let ``targets naming no enabled provider give an empty plan`` () =
    let runtime = Relay.create (at 0.0) (staged 60_000)
    let t = Relay.planRoute runtime (at 0.0) (request "m") [ target "nobody" None ]
    Assert.Empty t.Value.Order

// ---------------------------
// routing.stages in config
// ---------------------------

let private decode (toml: string) : ConfigLoad =
    match Toml.parse toml with
    | Ok node -> ConfigDecode.decode (fun _ -> None) node
    | Error e -> failwith $"%A{e}"

let private providersToml =
    """
[[providers]]
name = "main"
type = "anthropic"

[[providers]]
name = "cheap"
type = "anthropic_compatible"
base_url = "https://cheap.example.test"
"""

[<Fact>]
let ``routing.stages decodes every target spelling`` () =
    let load =
        decode (
            providersToml
            + """
[routing]
long_context_threshold = 90000
list_switch_models = true

[routing.stages]
background = "cheap,claude-haiku-4-5"
think = ["main", { provider = "cheap", model = "deepseek-reasoner" }]
default = "main"
"""
        )

    match load with
    | Loaded(config, _) ->
        let stages = config.Routing.Stages
        Assert.Equal(90000, stages.LongContextThreshold)
        Assert.True stages.ListSwitchModels
        Assert.True stages.ModelSwitching

        Assert.Equal<(Stage * StageTarget list) list>(
            [
                Stage.Background, [ target "cheap" (Some "claude-haiku-4-5") ]
                Stage.Think, [ target "main" None; target "cheap" (Some "deepseek-reasoner") ]
                Stage.Default, [ target "main" None ]
            ],
            stages.Routes
        )
    | Invalid(errors, _) -> failwith $"%A{errors}"

[<Fact>]
let ``routing.stages errors are located: unknown stage, unknown provider, bad threshold, bad target`` () =
    let load =
        decode (
            providersToml
            + """
[routing]
long_context_threshold = 0

[routing.stages]
thinking = "main"
background = "cheap,claude-haiku-4-5"
image = ",x"
web_search = []
"""
        )

    match load with
    | Invalid(errors, _) ->
        let shown =
            errors |> List.map (fun e -> e.Path, e.Position |> Option.map _.Line, e.Message)

        let has (path: string) (line: int) (text: string) =
            Assert.Contains(
                shown,
                fun (p, l, m) -> p = path && l = Some line && m.Contains(text, StringComparison.Ordinal)
            )

        has "routing.long_context_threshold" 12 "must be from 1"
        has "routing.stages.thinking" 15 "unknown stage (stages: long_context, web_search, image, subagent"
        has "routing.stages.image" 17 "expected \"provider\" or \"provider,model\""
        has "routing.stages.web_search" 18 "at least one target"
        Assert.Equal(4, errors.Length)
    | Loaded _ -> failwith "expected errors"

[<Fact>]
let ``a stage target naming no provider is an error at its value`` () =
    let load =
        decode (
            providersToml
            + """
[routing.stages]
background = "chep,claude-haiku-4-5"
think = ["main", { provider = "nobody" }]
"""
        )

    match load with
    | Invalid(errors, _) ->
        let shown =
            errors |> List.map (fun e -> e.Path, e.Position |> Option.map _.Line, e.Message)

        Assert.Equal<(string * int option * string) list>(
            [
                "routing.stages.background", Some 12, "names no provider: \"chep\"; did you mean \"cheap\"?"
                "routing.stages.think[1].provider", Some 13, "names no provider: \"nobody\""
            ],
            shown
        )
    | Loaded _ -> failwith "expected errors"

// ---------------------------
// route explain
// ---------------------------

[<Fact>]
let ``route explain names the stage, the providers in order with key id and model, and every skipped provider`` () =
    let config = {
        staged 60_000 with
            Providers =
                (staged 60_000).Providers
                @ [
                    {
                        provider "retired" [] with
                            Enabled = false
                    }
                ]
    }

    let body, headers = recorded "quota"

    match RouteExplain.explain config (at 0.0) (ReadOnlySpan body) headers [] "/v1/messages" with
    | Ok e ->
        Assert.Equal(Stage.Background, e.Stage)
        Assert.Equal("probe", e.Reason)
        let only = Assert.Single e.Providers
        Assert.Equal("cheap", only.Provider)
        Assert.Equal("claude-haiku-4-5", only.Model)
        Assert.Equal(KeyId.ofSecret "sk-cheap-0123456789", only.KeyId)

        Assert.Contains(
            {
                Provider = "retired"
                Reason = "disabled"
            },
            e.Skipped
        )

        Assert.Contains(
            {
                Provider = "main"
                Reason = "not a target of stage background"
            },
            e.Skipped
        )

        Assert.True(RouteExplain.routable e)
        let text = RouteExplain.toText e
        Assert.Contains("stage:     background (probe)", text)
        Assert.DoesNotContain("sk-cheap", text)
    | Error e -> failwith e

[<Fact>]
let ``route explain reports what translation to an OpenAI-compatible provider would drop`` () =
    let openai = {
        Config.defaultProvider "oai" ProviderType.OpenAi (Uri "https://api.openai.example.test") with
            Keys = [ key "sk-openai-0123456789" 0 ]
            Cloud = CloudSettings.OpenAi ChatRequestTests.deepSeek
    }

    let config = relay RoutingStrategy.Failover [ openai ]

    let body, headers = recorded "main-loop"

    match RouteExplain.explain config (at 0.0) (ReadOnlySpan body) headers [] "/v1/messages" with
    | Ok e ->
        let only = Assert.Single e.Providers
        Assert.Equal("oai", only.Provider)
        Assert.Contains("cache_control", only.DroppedFeatures)
    | Error e -> failwith e

[<Fact>]
let ``route explain says which provider does not serve the model under model_based`` () =
    let config = {
        relay RoutingStrategy.ModelBased [ provider "a" []; provider "b" [] ] with
            Routing.ModelRules = [ { Pattern = "claude"; Provider = "a" } ]
            Routing.Strategy = RoutingStrategy.ModelBased
    }

    let body =
        """{"model":"claude-sonnet-4-6","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"""B

    match RouteExplain.explain config (at 0.0) (ReadOnlySpan body) Stages.noHeaders [] "/v1/messages" with
    | Ok e ->
        Assert.Equal(Stage.Default, e.Stage)
        Assert.Equal<string list>([ "a" ], e.Providers |> List.map _.Provider)
        Assert.Equal("", (List.head e.Providers).KeyId)

        Assert.Equal<SkippedProvider list>(
            [
                {
                    Provider = "b"
                    Reason = "does not serve the model"
                }
            ],
            e.Skipped
        )
    | Error e -> failwith e
