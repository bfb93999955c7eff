module CcRelay.Core.Tests.Pipelines.TranslationPhaseTests

open System
open System.Text
open System.Text.Json
open CcRelay.Core
open Xunit

// The translation-phase transformers (`reasoning_echo`, `gemini_schema_clean`): the translators' provider fix-ups
// as named catalog entries (docs/pipelines.md, "The translation phase").

let private providers =
    """
[[providers]]
name = "anthropic"
type = "anthropic"

[[providers]]
name = "deepseek"
type = "openai"
base_url = "https://api.deepseek.com"
keys = [ { key = "sk-test" } ]

[[providers]]
name = "gemini"
type = "gemini"
keys = [ { key = "AIza-test" } ]
"""

let private load (toml: string) : ConfigLoad =
    match Toml.parse (providers + toml) with
    | Ok document -> ConfigDecode.decode (fun _ -> None) document
    | Error e -> failwith e.Message

let private loaded (toml: string) : RelayConfig =
    match load toml with
    | Loaded(config, _) -> config
    | Invalid(errors, _) -> failwith (errors |> List.map string |> String.concat "\n")

let private errors (toml: string) : ConfigIssue list =
    match load toml with
    | Loaded _ -> failwith "loaded"
    | Invalid(errors, _) -> errors

let private provider (config: RelayConfig) (name: string) : ProviderConfig =
    config.Providers |> List.find (fun p -> p.Name = name)

// ---------------------------
// Config: options, defaults, the dialects they apply to
// ---------------------------

[<Fact>]
let ``the translation-phase transformers load with their options and run in the translation phase`` () =
    let config =
        loaded
            """
[pipelines.fixups]
models = ["claude-*"]
request = [ { use = "reasoning_echo", echo = false }, { use = "gemini_schema_clean", mode = "json_schema" }, { use = "max_tokens", cap = 10 } ]
"""

    let pipeline = config.Pipelines.Pipelines |> List.exactlyOne
    Assert.Equal(Transform.ReasoningEcho(false, true), pipeline.Request[0].Transform)
    Assert.Equal(Transform.GeminiSchemaClean(GeminiSchemaMode.JsonSchema, true), pipeline.Request[1].Transform)

    let selected = Pipeline.select config.Pipelines "gemini" "claude-sonnet-4-6" "-"
    Assert.Equal<string list>([ "reasoning_echo"; "gemini_schema_clean" ], selected.Translation |> List.map _.Name)
    Assert.Equal<string list>([ "max_tokens" ], selected.Anthropic |> List.map _.Name)
    Assert.Empty selected.Upstream

    Assert.Equal(
        {
            EchoReasoning = false
            FillMissingReasoning = true
            GeminiSchema = GeminiSchemaMode.JsonSchema
            SchemaHints = true
        },
        Pipeline.fixups selected.Translation "gemini"
    )

    // at an OpenAI provider the Gemini step does not apply: only the echo setting changes
    Assert.Equal(
        {
            TranslationFixups.defaults with
                EchoReasoning = false
        },
        Pipeline.fixups selected.Translation "openai"
    )

[<Fact>]
let ``no translation-phase step: the defaults, which are what the translators did before`` () =
    Assert.Equal(TranslationFixups.defaults, Pipeline.fixups [] "openai")
    Assert.Equal(TranslationFixups.defaults, Transformers.fixups [])

    Assert.Equal(
        {
            EchoReasoning = true
            FillMissingReasoning = true
            GeminiSchema = GeminiSchemaMode.OpenApi
            SchemaHints = true
        },
        TranslationFixups.defaults
    )

[<Fact>]
let ``a later step wins`` () =
    let step transform = {
        Name = "reasoning_echo"
        Transform = transform
        OnError = OnError.Fail
    }

    let fixups =
        Pipeline.fixups
            [
                step (Transform.ReasoningEcho(false, false))
                step (Transform.ReasoningEcho(true, false))
            ]
            "openai_responses"

    Assert.True fixups.EchoReasoning
    Assert.False fixups.FillMissingReasoning

[<Fact>]
let ``attached to a provider of another dialect, each is a located error naming the dialects it applies to`` () =
    let issues =
        errors
            """
[pipelines.p]
providers = ["anthropic", "deepseek"]
request = [ "reasoning_echo", { use = "gemini_schema_clean", hints = false } ]
"""

    let described = issues |> List.map (fun i -> i.Path, i.Message) |> List.sort

    Assert.Equal<(string * string) list>(
        [
            "pipelines.p.request[0]",
            "reasoning_echo cannot apply to provider anthropic (dialect anthropic); it applies to: openai, openai_responses, gemini"
            "pipelines.p.request[1]",
            "gemini_schema_clean cannot apply to provider anthropic (dialect anthropic); it applies to: gemini"
            "pipelines.p.request[1]",
            "gemini_schema_clean cannot apply to provider deepseek (dialect openai); it applies to: gemini"
        ],
        described
    )

    Assert.All(issues, fun i -> Assert.True i.Position.IsSome)

[<Fact>]
let ``bad options are located`` () =
    let issues =
        errors
            """
[pipelines.p]
providers = ["gemini"]
request = [ { use = "reasoning_echo", echo = "no" }, { use = "gemini_schema_clean", mode = "loose" }, { use = "gemini_schema_clean", mode = "json_schema", hints = false }, { use = "reasoning_echo", fill = true } ]
"""

    let paths = issues |> List.map _.Path
    Assert.Contains("pipelines.p.request[0].echo", paths)
    Assert.Contains("pipelines.p.request[1].mode", paths)
    Assert.Contains("pipelines.p.request[2]", paths)
    Assert.Contains("pipelines.p.request[3].fill", paths)
    Assert.Contains(issues, fun i -> i.Message.Contains "hints is only for mode: openapi")
    Assert.Contains(issues, fun i -> i.Message.Contains "its options: echo, fill_missing")

[<Fact>]
let ``the catalog shows both, with their options, defaults and dialects`` () =
    let text = TransformerCatalog.text

    Assert.Contains("reasoning_echo  (request; applies to: openai, openai_responses, gemini; re-serialises)", text)

    Assert.Contains("gemini_schema_clean  (request; applies to: gemini; re-serialises)", text)
    Assert.Contains("(default openapi)", text)

    use json = JsonDocument.Parse(TransformerCatalog.json)

    let echo =
        json.RootElement.GetProperty("transformers").EnumerateArray()
        |> Seq.find (fun t -> t.GetProperty("name").GetString() = "reasoning_echo")

    Assert.Equal<string list>(
        [ "echo"; "fill_missing" ],
        echo.GetProperty("options").EnumerateArray()
        |> Seq.map (fun o -> string (o.GetProperty("name").GetString()))
        |> List.ofSeq
    )

[<Fact>]
let ``the report names the translation-phase steps, n/a at another dialect`` () =
    let steps = [
        {
            Name = "reasoning_echo"
            Transform = Transform.ReasoningEcho(false, true)
            OnError = OnError.Fail
        }
        {
            Name = "gemini_schema_clean"
            Transform = Transform.GeminiSchemaClean(GeminiSchemaMode.OpenApi, false)
            OnError = OnError.Fail
        }
    ]

    let run = Pipeline.start [||]

    Assert.Equal(
        "reasoning_echo(translation),gemini_schema_clean(translation)",
        Pipeline.report (Pipeline.translated steps "gemini" run)
    )

    Assert.Equal(
        "reasoning_echo(translation),gemini_schema_clean(n/a)",
        Pipeline.report (Pipeline.translated steps "openai" run)
    )

    Assert.Equal(
        "reasoning_echo(n/a),gemini_schema_clean(n/a)",
        Pipeline.report (Pipeline.translated steps "anthropic" run)
    )

[<Fact>]
let ``route explain shows the translation-phase steps of each provider`` () =
    let config =
        loaded
            """
[pipelines.fixups]
models = ["claude-*"]
request = [ { use = "reasoning_echo", fill_missing = false }, "gemini_schema_clean" ]
"""

    let request =
        Encoding.UTF8.GetBytes
            """{"model":"claude-sonnet-4-6","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"""

    match RouteExplain.explain config TimeSpan.Zero (ReadOnlySpan request) Stages.noHeaders [] "/v1/messages" with
    | Ok explained ->
        let transformers name =
            explained.Providers |> List.find (fun p -> p.Provider = name) |> _.Transformers

        Assert.Equal("reasoning_echo(translation),gemini_schema_clean(n/a)", transformers "deepseek")
        Assert.Equal("reasoning_echo(translation),gemini_schema_clean(translation)", transformers "gemini")

        Assert.Contains(
            "transformers: reasoning_echo(translation),gemini_schema_clean(n/a)",
            RouteExplain.toText explained
        )
    | Error e -> failwith e

// ---------------------------
// The translators under each setting
// ---------------------------

let private openAi: OpenAiSettings = {
    ReasoningField = ReasoningField.ReasoningContent
    MaxTokensField = MaxTokensField.MaxTokens
    StreamUsage = true
    Thinking = ThinkingControl.ThinkingField
    Api = OpenAiApi.Chat
    OnDropped = DroppedPolicy.Report
    MidSystem = MidSystem.InPlace
}

/// A tool loop whose first assistant turn carries the target's own reasoning and the second none.
let private toolLoop (signature: string) =
    Encoding.UTF8.GetBytes(
        """{"model":"m","max_tokens":100,"thinking":{"type":"enabled","budget_tokens":2048},
"tools":[{"name":"Read","description":"read","input_schema":{"type":"object","properties":{"path":{"type":"string","pattern":"^/"}},"required":["path"],"additionalProperties":false}}],
"messages":[{"role":"user","content":"go"},
{"role":"assistant","content":[{"type":"thinking","thinking":"I should read","signature":"SIGNATURE"},{"type":"tool_use","id":"toolu_1","name":"Read","input":{"path":"/a"}}]},
{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"A"}]},
{"role":"assistant","content":[{"type":"tool_use","id":"toolu_2","name":"Read","input":{"path":"/b"}}]},
{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_2","content":"B"}]}]}"""
            .Replace("SIGNATURE", signature)
    )

let private chat (fixups: TranslationFixups) : JsonElement list =
    match
        ChatRequest.translateWith
            fixups
            openAi
            "deepseek-reasoner"
            (ReadOnlySpan(toolLoop AnthropicOut.ReasoningSignature))
    with
    | Ok translated ->
        JsonDocument.Parse(translated.Body: byte array).RootElement.GetProperty("messages").EnumerateArray()
        |> Seq.filter (fun m -> m.GetProperty("role").GetString() = "assistant")
        |> List.ofSeq
    | Error e -> failwith e

let private reasoningOf (message: JsonElement) : string option =
    match message.TryGetProperty "reasoning_content" with
    | true, r -> Some(string (r.GetString()))
    | _ -> None

[<Fact>]
let ``Chat Completions: reasoning_echo gives the reasoning back, fills tool-call turns, or neither`` () =
    let settings (echo, fill) = {
        TranslationFixups.defaults with
            EchoReasoning = echo
            FillMissingReasoning = fill
    }

    Assert.Equal<string option list>(
        [ Some "I should read"; Some "" ],
        chat (settings (true, true)) |> List.map reasoningOf
    )

    Assert.Equal<string option list>([ Some ""; Some "" ], chat (settings (false, true)) |> List.map reasoningOf)

    Assert.Equal<string option list>(
        [ Some "I should read"; None ],
        chat (settings (true, false)) |> List.map reasoningOf
    )

    Assert.Equal<string option list>([ None; None ], chat (settings (false, false)) |> List.map reasoningOf)

let private gemini: GeminiSettings = {
    Endpoint = GeminiEndpoint.AiStudio
    Thinking = GeminiThinking.Auto
    OnDropped = DroppedPolicy.Report
}

let private geminiBody (fixups: TranslationFixups) (body: byte array) : JsonElement =
    match
        GeminiRequest.translateWith fixups gemini "gemini-3-pro-preview" GeminiRequestKind.Generate (ReadOnlySpan body)
    with
    | Ok translated -> JsonDocument.Parse(translated.Body: byte array).RootElement
    | Error e -> failwith e

let private callSignatures (body: JsonElement) : string option list = [
    for content in body.GetProperty("contents").EnumerateArray() do
        for part in content.GetProperty("parts").EnumerateArray() do
            if part.TryGetProperty "functionCall" |> fst then
                match part.TryGetProperty "thoughtSignature" with
                | true, s -> Some(string (s.GetString()))
                | _ -> None
]

[<Fact>]
let ``Gemini: reasoning_echo gives thought signatures back and fills a call without one with the skip value`` () =
    let body = toolLoop (GeminiWire.SignaturePrefix + "SIG1")

    let signatures (echo, fill) =
        callSignatures (
            geminiBody
                {
                    TranslationFixups.defaults with
                        EchoReasoning = echo
                        FillMissingReasoning = fill
                }
                body
        )

    Assert.Equal<string option list>([ Some "SIG1"; Some GeminiWire.SkipSignature ], signatures (true, true))

    Assert.Equal<string option list>(
        [ Some GeminiWire.SkipSignature; Some GeminiWire.SkipSignature ],
        signatures (false, true)
    )

    Assert.Equal<string option list>([ Some "SIG1"; None ], signatures (true, false))
    Assert.Equal<string option list>([ None; None ], signatures (false, false))

[<Fact>]
let ``Gemini: gemini_schema_clean cleans with or without hints, or gives the JSON Schema unchanged`` () =
    let body = toolLoop "x"

    let declaration (fixups: TranslationFixups) =
        let root = geminiBody fixups body
        root.GetProperty("tools").Item(0).GetProperty("functionDeclarations").Item(0)

    let cleaned = declaration TranslationFixups.defaults

    let path =
        cleaned.GetProperty("parameters").GetProperty("properties").GetProperty("path")

    Assert.Equal("STRING", path.GetProperty("type").GetString())
    Assert.Contains("pattern: ^/", path.GetProperty("description").GetString())
    Assert.False(cleaned.GetProperty("parameters").TryGetProperty "additionalProperties" |> fst)

    let quiet =
        declaration {
            TranslationFixups.defaults with
                SchemaHints = false
        }

    Assert.False(
        quiet.GetProperty("parameters").GetProperty("properties").GetProperty("path").TryGetProperty "description"
        |> fst
    )

    let raw =
        declaration {
            TranslationFixups.defaults with
                GeminiSchema = GeminiSchemaMode.JsonSchema
        }

    Assert.False(raw.TryGetProperty "parameters" |> fst)

    Assert.Equal(
        """{"type":"object","properties":{"path":{"type":"string","pattern":"^/"}},"required":["path"],"additionalProperties":false}""",
        raw.GetProperty("parametersJsonSchema").GetRawText()
    )

[<Fact>]
let ``Gemini: a structured output's schema goes as responseJsonSchema in json_schema mode`` () =
    let body =
        Encoding.UTF8.GetBytes
            """{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"output_config":{"format":{"type":"json_schema","schema":{"type":"object","properties":{"a":{"type":"integer","exclusiveMinimum":0}},"additionalProperties":false}}}}"""

    let config (fixups: TranslationFixups) =
        (geminiBody fixups body).GetProperty("generationConfig")

    let cleaned = config TranslationFixups.defaults
    Assert.True(cleaned.TryGetProperty "responseSchema" |> fst)
    Assert.False(cleaned.TryGetProperty "responseJsonSchema" |> fst)

    let raw =
        config {
            TranslationFixups.defaults with
                GeminiSchema = GeminiSchemaMode.JsonSchema
        }

    Assert.Equal("application/json", raw.GetProperty("responseMimeType").GetString())
    Assert.False(raw.TryGetProperty "responseSchema" |> fst)

    Assert.Equal(
        """{"type":"object","properties":{"a":{"type":"integer","exclusiveMinimum":0}},"additionalProperties":false}""",
        raw.GetProperty("responseJsonSchema").GetRawText()
    )

[<Fact>]
let ``Responses: echo off gives no reasoning item back`` () =
    let family = "openai"
    let envelope = ReasoningEnvelope.mint family "rs_1" "ENCRYPTED"
    let body = toolLoop envelope

    let reasoningItems (echo: bool) =
        match
            ResponsesRequest.translateWith
                {
                    TranslationFixups.defaults with
                        EchoReasoning = echo
                }
                family
                "gpt-5"
                (ReadOnlySpan body)
        with
        | Ok translated ->
            JsonDocument.Parse(translated.Body: byte array).RootElement.GetProperty("input").EnumerateArray()
            |> Seq.filter (fun i -> i.GetProperty("type").GetString() = "reasoning")
            |> Seq.length
        | Error e -> failwith e

    Assert.Equal(1, reasoningItems true)
    Assert.Equal(0, reasoningItems false)

[<Fact>]
let ``Dialect.editWith: another family's thinking is never echoed, whatever the fix-ups say`` () =
    let facts =
        match RequestFacts.inspect (ReadOnlySpan(toolLoop AnthropicOut.ReasoningSignature)) with
        | Ok facts -> facts
        | Error e -> failwith e.Message

    let deepseek = provider (loaded "") "deepseek"

    let plan = Dialect.plan deepseek ValueNone facts "/v1/messages" [] []

    let reasoning strip =
        match
            Dialect.editWith
                TranslationFixups.defaults
                plan
                (ReadOnlySpan(toolLoop AnthropicOut.ReasoningSignature))
                facts
                strip
        with
        | Ok(_, ValueSome body) ->
            JsonDocument.Parse(body: byte array).RootElement.GetProperty("messages").EnumerateArray()
            |> Seq.choose reasoningOf
            |> List.ofSeq
        | _ -> failwith "not translated"

    Assert.Equal<string list>([ "I should read"; "" ], reasoning false)
    Assert.Equal<string list>([ ""; "" ], reasoning true)

// ---------------------------
// The answer side's verdict (a plugin's failure withholds an answer, a built-in step's leaves it)
// ---------------------------

[<Fact>]
let ``answerVerdict: a failed plugin withholds the answer, a failed built-in step leaves it, an edit replaces it`` () =
    let answer = Encoding.UTF8.GetBytes """{"type":"message","content":[]}"""

    let step name transform onError = {
        Name = name
        Transform = transform
        OnError = onError
    }

    let plugin = step "plugin:redact" (Transform.Plugin "redact") OnError.Fail
    let repair = step "repair_tool_json" Transform.RepairToolJson OnError.Fail

    let pluginFailed =
        Pipeline.record (Pipeline.start answer) plugin (StepOutcome.Failed "it printed sk-secret-123")

    match Pipeline.answerVerdict [ "sk-secret-123" ] pluginFailed with
    | AnswerVerdict.Withheld refusal ->
        let text = Encoding.UTF8.GetString refusal
        Assert.DoesNotContain("sk-secret-123", text)
        use error = JsonDocument.Parse refusal
        Assert.Equal("api_error", error.RootElement.GetProperty("error").GetProperty("type").GetString())
        Assert.Contains("plugin:redact", text)
    | other -> failwithf "%A" other

    Assert.Equal(500, Pipeline.errorStatus pluginFailed.Failure.Value)

    // a step named like a plugin is judged by what it is, not by its name
    let builtInFailed =
        Pipeline.record
            (Pipeline.start answer)
            {
                repair with
                    Name = "plugin:lookalike"
            }
            (StepOutcome.Failed "x")

    Assert.Equal(AnswerVerdict.AsItCame, Pipeline.answerVerdict [] builtInFailed)
    Assert.Equal(400, Pipeline.errorStatus builtInFailed.Failure.Value)

    let edited =
        Encoding.UTF8.GetBytes """{"type":"message","content":[{"type":"text","text":"x"}]}"""

    let changed =
        Pipeline.record (Pipeline.start answer) repair (StepOutcome.Changed(edited, true))

    Assert.Equal(AnswerVerdict.Edited edited, Pipeline.answerVerdict [] changed)
    Assert.Equal(AnswerVerdict.AsItCame, Pipeline.answerVerdict [] (Pipeline.start answer))

    // a plugin that failed under skip leaves the answer too
    let skipped =
        Pipeline.record (Pipeline.start answer) { plugin with OnError = OnError.Skip } (StepOutcome.Failed "x")

    Assert.Equal(AnswerVerdict.AsItCame, Pipeline.answerVerdict [] skipped)
