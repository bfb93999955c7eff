module CcRelay.Core.Tests.Config.ConfigWizardTests

open CcRelay.Core
open Xunit

/// The answers in order; fails on a refused one.
let private answers (lines: string list) : WizardState =
    lines
    |> List.fold
        (fun state line ->
            match ConfigWizard.answer state line with
            | Ok next -> next
            | Error e -> failwith e)
        ConfigWizard.start

[<Fact>]
let ``the questions come in order, then none`` () =
    let state = ConfigWizard.start
    Assert.StartsWith("Providers", (ConfigWizard.question state).Value.Prompt)
    let state = answers [ "anthropic,zai" ]
    Assert.Equal("-", (ConfigWizard.question state).Value.Default)
    let state = answers [ "anthropic,zai"; "" ]
    Assert.Equal("ZAI_API_KEY", (ConfigWizard.question state).Value.Default)
    let state = answers [ "anthropic,zai"; ""; ""; "" ]
    Assert.StartsWith("Routing stages", (ConfigWizard.question state).Value.Prompt)
    Assert.Equal(None, ConfigWizard.question (answers [ "anthropic,zai"; ""; ""; ""; "" ]))

[<Fact>]
let ``wrong answers say what is allowed`` () =
    let refused state line =
        match ConfigWizard.answer state line with
        | Error e -> e
        | Ok _ -> failwith $"accepted %s{line}"

    Assert.Contains("offered: anthropic, zai", refused ConfigWizard.start "bedrock")
    Assert.Contains("named twice", refused ConfigWizard.start "zai, zai")
    let notAVariable = refused (answers [ "zai" ]) "sk-my-key"
    Assert.Contains("not an environment variable name", notAVariable)
    Assert.DoesNotContain("sk-my-key", notAVariable)
    // a keyless AI Studio Gemini does not load (keys are required there)
    Assert.Contains("gemini needs a key", refused (answers [ "gemini" ]) "-")
    Assert.Contains("allowed: failover", refused (answers [ "zai"; "" ]) "fastest")
    // model_based without its rules does not load
    Assert.Contains("model_based needs routing.model_mapping rules", refused (answers [ "zai"; "" ]) "model_based")
    let atStages = answers [ "zai"; ""; "" ]
    Assert.Contains("unknown stage \"thinking\"", refused atStages "thinking=zai")
    Assert.Contains("\"openai\" is not one of the providers (zai)", refused atStages "think=openai")
    Assert.Contains("is given twice", refused atStages "think=zai think=zai,GLM-5")

[<Fact>]
let ``the rendered config has the keys as variables, the strategy and the stages as answered`` () =
    let state =
        answers [
            "anthropic, zai"
            "-"
            "${ZAI_API_KEY}"
            "cost_based"
            "background=zai,GLM-4.5-Air default=anthropic"
        ]

    let yaml = ConfigWizard.render ConfigFormat.Yaml state

    // (that it loads is the host's test: Core has no YAML reader; tests/Host.Tests/Cli/ConfigInitCommandTests)
    for line in
        [
            "  - name: \"anthropic\"\n    type: anthropic\n    # no keys: each caller's own credential is passed through\n"
            "  - name: \"zai\"\n    type: zai\n    keys:\n      - key: \"${ZAI_API_KEY}\"\n"
            "routing:\n  strategy: cost_based\n"
            "  stages:\n    background: \"zai,GLM-4.5-Air\"\n    default: \"anthropic\"\n"
        ] do
        Assert.Contains(line, yaml)

// ---------------------------
// flags (`config init --provider … --strategy … --stage … --listen …`)
// ---------------------------

let private flags providers strategy stages listen : WizardFlags = {
    Providers = providers
    Strategy = strategy
    Stages = stages
    Listen = listen
}

let private load (vars: (string * string) list) (toml: string) : RelayConfig =
    match Toml.parse toml with
    | Error e -> failwith $"TOML rejected at %d{e.Position.Line}:%d{e.Position.Column}: %s{e.Message}\n%s{toml}"
    | Ok node ->
        match ConfigDecode.decode (fun name -> vars |> List.tryFind (fst >> (=) name) |> Option.map snd) node with
        | Loaded(config, _) -> config
        | Invalid(errors, _) -> failwith $"%A{errors}\n%s{toml}"

[<Fact>]
let ``flags give the same answers as the questions, with names of one's own`` () =
    let state =
        ConfigWizard.ofFlags (
            flags
                [
                    "main:anthropic"
                    "glm:zai:ZAI_API_KEY"
                    "local:ollama"
                    "gpt:openai:${MY_OPENAI}"
                ]
                (Some "round_robin")
                [ "background=local,qwen3:8b"; "think=gpt, o3"; "default=main" ]
                (Some "[::1]:9000")
        )

    let expected: WizardState = {
        Providers =
            Some [
                {
                    Name = "main"
                    Type = ProviderType.Anthropic
                    KeyVariable = ""
                }
                {
                    Name = "glm"
                    Type = ProviderType.Zai
                    KeyVariable = "ZAI_API_KEY"
                }
                {
                    Name = "local"
                    Type = ProviderType.Ollama
                    KeyVariable = ""
                }
                {
                    Name = "gpt"
                    Type = ProviderType.OpenAi
                    KeyVariable = "MY_OPENAI"
                }
            ]
        Keys = 4
        Strategy = Some RoutingStrategy.RoundRobin
        Stages =
            Some [
                Stage.Background,
                {
                    Provider = "local"
                    Model = Some "qwen3:8b"
                }
                Stage.Think, { Provider = "gpt"; Model = Some "o3" }
                Stage.Default, { Provider = "main"; Model = None }
            ]
        Listen = Some { Host = "::1"; Port = 9000 }
    }

    Assert.Equal(Ok expected, state)

[<Fact>]
let ``no flag but a listen address: the interactive defaults, the type's usual key variable when none is named`` () =
    match ConfigWizard.ofFlags (flags [ "z:zai" ] None [] None) with
    | Ok state ->
        Assert.Equal(
            Some [
                {
                    Name = "z"
                    Type = ProviderType.Zai
                    KeyVariable = "ZAI_API_KEY"
                }
            ],
            state.Providers
        )

        Assert.Equal(Some RoutingStrategy.Failover, state.Strategy)
        Assert.Equal(Some [], state.Stages)
        Assert.Equal(None, state.Listen)
    | Error e -> failwith $"%A{e}"

    match ConfigWizard.ofFlags (flags [] None [] (Some "127.0.0.1:0")) with
    | Ok state ->
        Assert.Equal(
            Some [
                {
                    Name = "anthropic"
                    Type = ProviderType.Anthropic
                    KeyVariable = ""
                }
            ],
            state.Providers
        )
    | Error e -> failwith $"%A{e}"

[<Fact>]
let ``every bad flag is named with what is allowed, and a key given in place of its variable is never repeated`` () =
    let errors =
        match
            ConfigWizard.ofFlags (
                flags
                    [
                        "zai"
                        "a b:zai"
                        "x:bedrock"
                        "k:openai:sk-live-secret-123"
                        "g:gemini:-"
                        "ok:zai"
                        "ok:ollama"
                    ]
                    (Some "fastest")
                    [
                        "thinking=ok"
                        "think=nobody"
                        "think"
                        "background=ok,"
                        "image=ok"
                        "image=ok,m"
                    ]
                    (Some "localhost")
            )
        with
        | Error errors -> errors
        | Ok _ -> failwith "accepted"

    let expected = [
        "--provider \"zai\": expected NAME:TYPE or NAME:TYPE:KEY_ENV"
        "--provider \"a b:zai\": the name must be 1 to 64 letters"
        "--provider \"x:bedrock\": unknown provider type \"bedrock\"; offered: anthropic, zai, minimax, ollama, openai, gemini"
        "--provider \"k:openai:…\": that is not an environment variable name"
        "--provider \"g:gemini:…\": gemini needs a key"
        "--provider: the name \"ok\" is given twice"
        "--strategy: unknown strategy \"fastest\"; allowed: failover, "
        "--stage \"thinking=ok\": unknown stage \"thinking\"; stages: long_context, "
        "--stage \"think=nobody\": stage think: \"nobody\" is not one of the providers (ok)"
        "--stage \"think\": \"think\" is not stage=provider or stage=provider,model"
        "--stage \"background=ok,\": stage background: the model after the comma is empty"
        "--stage: the stage image is given twice"
        "--listen \"localhost\": got \"localhost\"; expected host:port"
    ]

    Assert.True(expected.Length = errors.Length, String.concat "\n" errors)

    for e, actual in List.zip expected errors do
        Assert.StartsWith(e, actual)

    Assert.DoesNotContain("sk-live-secret-123", String.concat "\n" errors)

    // with no valid provider, a stage's provider is checked against none
    match ConfigWizard.ofFlags (flags [ "x:bedrock" ] None [ "think=x" ] None) with
    | Error errors ->
        Assert.Contains("--stage \"think=x\": stage think: \"x\" is not one of the providers (none valid)", errors)
    | Ok _ -> failwith "accepted"

[<Fact>]
let ``the TOML rendering loads through the config decoder with the answers as given`` () =
    let state =
        match
            ConfigWizard.ofFlags (
                flags
                    [ "main:anthropic"; "glm:zai"; "local:ollama" ]
                    (Some "cost_based")
                    [ "background=local,qwen3:8b"; "think=glm,\"GLM\\5\"" ]
                    (Some "0.0.0.0:8080")
            )
        with
        | Ok state -> state
        | Error e -> failwith $"%A{e}"

    let toml = ConfigWizard.render ConfigFormat.Toml state
    let config = load [ "ZAI_API_KEY", "zai-test-key-0001" ] toml

    Assert.Contains(
        "[[providers]]\nname = \"glm\"\ntype = \"zai\"\n[[providers.keys]]\nkey = \"${ZAI_API_KEY}\"\n",
        toml
    )

    Assert.Equal({ Host = "0.0.0.0"; Port = 8080 }, config.Server.Listen)
    Assert.Equal<string list>([ "main"; "glm"; "local" ], config.Providers |> List.map _.Name)
    Assert.Equal<string list>([ "zai-test-key-0001" ], config.Providers[1].Keys |> List.map _.Key)
    Assert.Equal(RoutingStrategy.CostBased, config.Routing.Strategy)

    Assert.Equal<(Stage * StageTarget list) list>(
        [
            Stage.Background,
            [
                {
                    Provider = "local"
                    Model = Some "qwen3:8b"
                }
            ]
            Stage.Think,
            [
                {
                    Provider = "glm"
                    Model = Some "\"GLM\\5\""
                }
            ]
        ],
        config.Routing.Stages.Routes
    )
