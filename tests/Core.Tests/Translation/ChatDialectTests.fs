module CcRelay.Core.Tests.ChatDialectTests

open System
open System.Text
open System.Text.Json
open Xunit
open CcRelay.Core
open CcRelay.Core.Tests.Fixtures

let private factsOf (bytes: byte array) : RequestFacts =
    match RequestFacts.inspect (ReadOnlySpan bytes) with
    | Ok facts -> facts
    | Error e -> failwith (RequestFacts.describe e)

let private openAi (baseUrl: string) : ProviderConfig = {
    Config.defaultProvider "deepseek" ProviderType.OpenAi (Uri baseUrl) with
        Keys = [ key "sk-test" 0 ]
        ModelMapping = Map.ofList [ "claude-sonnet-4-6", "deepseek-chat" ]
        Cloud = CloudSettings.OpenAi ChatRequestTests.deepSeek
}

let private body =
    """{"model":"claude-sonnet-4-6","max_tokens":64,"stream":true,"cache_control":{"type":"ephemeral"},"messages":[{"role":"user","content":"hi"}]}"""B

[<Theory>]
[<InlineData("https://api.deepseek.com", "https://api.deepseek.com/v1/chat/completions")>]
[<InlineData("http://localhost:11434", "http://localhost:11434/v1/chat/completions")>]
[<InlineData("https://openrouter.ai/api", "https://openrouter.ai/api/v1/chat/completions")>]
[<InlineData("https://api.z.ai/api/paas/v4", "https://api.z.ai/api/paas/v4/chat/completions")>]
[<InlineData("https://generativelanguage.googleapis.com/v1beta/openai",
             "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions")>]
let ``the chat completions URL under the base URL`` (baseUrl: string, expected: string) =
    let plan =
        Dialect.plan (openAi baseUrl) ValueNone (factsOf body) "/v1/messages?beta=true" [] []

    Assert.Equal(expected, plan.Url.AbsoluteUri)

[<Fact>]
let ``an openai plan: bearer key, no Anthropic headers, the mapped model translated, dropped features reported`` () =
    let provider = openAi "https://api.deepseek.com"
    let facts = factsOf body

    let plan =
        Dialect.plan provider (ValueSome provider.Keys.Head) facts "/v1/messages" [] [ ApiKey "client-key" ]

    Assert.Equal<(string * string) list>([ "authorization", "Bearer sk-test" ], plan.Credentials)
    Assert.Contains("anthropic-beta", plan.DropHeaders)
    Assert.Contains("anthropic-version", plan.DropHeaders)
    Assert.Equal("deepseek-chat", plan.UpstreamModel)

    match Dialect.edit plan (ReadOnlySpan body) facts false with
    | Ok(edited, ValueSome sent) ->
        let json = JsonDocument.Parse(sent: byte array).RootElement
        Assert.Equal("deepseek-chat", json.GetProperty("model").GetString())
        Assert.Equal<string list>([ "cache_control" ], edited.DroppedFeatures)
        Assert.Equal(AnswerReading.TranslateStream, Dialect.reading edited.Answer 200 Framing.Sse)
        Assert.Equal(AnswerReading.Translate, Dialect.reading edited.Answer 200 Framing.Other)
        Assert.Equal(AnswerReading.Translate, Dialect.reading edited.Answer 429 Framing.Other)
        Assert.True((Dialect.localAnswer edited).IsNone)
    | other -> failwith $"unexpected %A{other}"

[<Fact>]
let ``count_tokens of an openai provider is answered locally with the translated estimate`` () =
    let provider = openAi "https://api.deepseek.com"
    let facts = factsOf body

    let plan =
        Dialect.plan provider ValueNone facts "/v1/messages/count_tokens?beta=true" [] []

    match Dialect.edit plan (ReadOnlySpan body) facts false with
    | Ok(edited, _) ->
        Assert.Equal(Some LocalAnswer.CountTokens, LocalAnswer.ofPlan false edited)

        match Dialect.localAnswer edited with
        | Some(200, answer) ->
            let tokens =
                JsonDocument.Parse(answer: byte array).RootElement.GetProperty("input_tokens").GetInt32()

            Assert.InRange(tokens, 1, 100)
        | other -> failwith $"expected a local answer, got %A{other}"
    | Error e -> failwith e

[<Fact>]
let ``an openai error answer is translated into the Anthropic envelope`` () =
    let provider = openAi "https://api.deepseek.com"
    let plan = Dialect.plan provider ValueNone (factsOf body) "/v1/messages" [] []

    match
        Dialect.answer
            plan.Answer
            429
            None
            (ReadOnlySpan """{"error":{"message":"slow down","type":"rate_limit_exceeded"}}"""B)
    with
    | Some(429, envelope) -> Assert.Contains("rate_limit_error", Encoding.UTF8.GetString envelope)
    | other -> failwith $"unexpected %A{other}"

[<Fact>]
let ``the health probe of an openai provider lists its models`` () =
    let plan, method, _ =
        Dialect.probe ProbeKind.Models (openAi "https://api.deepseek.com")

    Assert.Equal("GET", method)
    Assert.Equal("https://api.deepseek.com/v1/models", plan.Url.AbsoluteUri)
