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
    Assert.Contains("not an environment variable name", refused (answers [ "zai" ]) "sk-my-key")
    Assert.Contains("allowed: failover", refused (answers [ "zai"; "" ]) "fastest")
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

    let yaml = ConfigWizard.render state

    // (that it loads is the host's test: Core has no YAML reader; tests/Host.Tests/Cli/ConfigInitCommandTests)
    for line in
        [
            "  - name: anthropic\n    type: anthropic\n    # no keys: each caller's own credential is passed through\n"
            "  - name: zai\n    type: zai\n    keys:\n      - key: \"${ZAI_API_KEY}\"\n"
            "routing:\n  strategy: cost_based\n"
            "  stages:\n    background: \"zai,GLM-4.5-Air\"\n    default: \"anthropic\"\n"
        ] do
        Assert.Contains(line, yaml)
