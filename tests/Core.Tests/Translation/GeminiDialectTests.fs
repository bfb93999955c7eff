module CcRelay.Core.Tests.GeminiDialectTests

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

let private vertexSettings: GeminiSettings = {
    Endpoint =
        GeminiEndpoint.Vertex {
            ProjectId = "proj"
            Region = "us-central1"
            CredentialsFile = None
        }
    Thinking = GeminiThinking.Auto
    OnDropped = DroppedPolicy.Report
}

let private gemini (baseUrl: string) (settings: GeminiSettings) (keys: KeyConfig list) : ProviderConfig = {
    Config.defaultProvider "gemini" ProviderType.Gemini (Uri baseUrl) with
        Keys = keys
        ModelMapping = Map.ofList [ "claude-sonnet-4-6", "gemini-2.5-pro" ]
        Cloud = CloudSettings.Gemini settings
}

let private streaming =
    """{"model":"claude-sonnet-4-6","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"""B

let private plain =
    """{"model":"claude-sonnet-4-6","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"""B

[<Fact>]
let ``AI Studio: the key as x-goog-api-key, streamGenerateContent with alt=sse, generateContent, countTokens`` () =
    let provider =
        gemini "https://generativelanguage.googleapis.com" GeminiRequestTests.studio [ key "AIza-test" 0 ]

    let plan =
        Dialect.plan provider (ValueSome provider.Keys.Head) (factsOf streaming) "/v1/messages" [] [ ApiKey "client" ]

    Assert.Equal(
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
        plan.Url.AbsoluteUri
    )

    Assert.Equal<(string * string) list>([ "x-goog-api-key", "AIza-test" ], plan.Credentials)
    Assert.Contains("anthropic-version", plan.DropHeaders)

    let json = Dialect.plan provider ValueNone (factsOf plain) "/v1/messages" [] []
    Assert.EndsWith("/v1beta/models/gemini-2.5-pro:generateContent", json.Url.AbsoluteUri)

    let count =
        Dialect.plan provider ValueNone (factsOf plain) "/v1/messages/count_tokens" [] []

    Assert.EndsWith("/v1beta/models/gemini-2.5-pro:countTokens", count.Url.AbsoluteUri)
    Assert.True((Dialect.localAnswer count).IsNone)

    match Dialect.edit count (ReadOnlySpan plain) (factsOf plain) false with
    | Ok(edited, ValueSome sent) ->
        Assert.True(
            JsonDocument.Parse(sent: byte array).RootElement.TryGetProperty("generateContentRequest")
            |> fst
        )

        Assert.Equal(
            Some(200, """{"input_tokens":7}"""B),
            Dialect.answer edited.Answer 200 None (ReadOnlySpan """{"totalTokens":7}"""B)
        )
    | other -> failwith $"unexpected %A{other}"

[<Fact>]
let ``Vertex AI: the publisher-model path under the region's endpoint, a Google token`` () =
    let provider =
        gemini "https://us-central1-aiplatform.googleapis.com/v1" vertexSettings []

    let plan = Dialect.plan provider ValueNone (factsOf streaming) "/v1/messages" [] []

    Assert.Equal(
        "https://us-central1-aiplatform.googleapis.com/v1/projects/proj/locations/us-central1/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
        plan.Url.AbsoluteUri
    )

    Assert.Equal(Signing.GoogleToken None, plan.Signing)
    Assert.Empty plan.Credentials

[<Fact>]
let ``a gemini provider with on_dropped refuse answers a request with cache_control itself, with a 400 naming it`` () =
    let provider =
        gemini
            "https://generativelanguage.googleapis.com"
            {
                GeminiRequestTests.studio with
                    OnDropped = DroppedPolicy.Refuse
            }
            [ key "k" 0 ]

    let body =
        """{"model":"claude-sonnet-4-6","max_tokens":64,"cache_control":{"type":"ephemeral"},"messages":[{"role":"user","content":"hi"}]}"""B

    let facts = factsOf body
    let plan = Dialect.plan provider ValueNone facts "/v1/messages" [] []

    match Dialect.edit plan (ReadOnlySpan body) facts false with
    | Ok(edited, _) ->
        Assert.True(Dialect.refusedDropped edited)
        Assert.Equal(Some LocalAnswer.DroppedRefused, LocalAnswer.ofPlan false edited)

        match Dialect.localAnswer edited with
        | Some(400, answer) ->
            let text = Encoding.UTF8.GetString answer
            Assert.Contains("invalid_request_error", text)
            Assert.Contains("cache_control", text)
            Assert.Contains("on_dropped: refuse", text)
        | other -> failwith $"expected a local 400, got %A{other}"
    | Error e -> failwith e

    // the default reports and sends
    let reporting =
        gemini "https://generativelanguage.googleapis.com" GeminiRequestTests.studio [ key "k" 0 ]

    let sent = Dialect.plan reporting ValueNone facts "/v1/messages" [] []

    match Dialect.edit sent (ReadOnlySpan body) facts false with
    | Ok(edited, _) ->
        Assert.False(Dialect.refusedDropped edited)
        Assert.True((Dialect.localAnswer edited).IsNone)
        Assert.Equal(None, LocalAnswer.ofPlan false edited)
    | Error e -> failwith e

[<Fact>]
let ``on_dropped refuse does not refuse for another family's thinking: thinking_blocks is reported and the request sent``
    ()
    =
    let provider =
        gemini
            "https://generativelanguage.googleapis.com"
            {
                GeminiRequestTests.studio with
                    OnDropped = DroppedPolicy.Refuse
            }
            [ key "k" 0 ]

    let body =
        """{"model":"claude-sonnet-4-6","max_tokens":64,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"EqQBCkYIBxgCKkA"},{"type":"text","text":"a"}]},{"role":"user","content":"next"}]}"""B

    let facts = factsOf body
    let plan = Dialect.plan provider ValueNone facts "/v1/messages" [] []

    match Dialect.edit plan (ReadOnlySpan body) facts true with
    | Ok(edited, sent) ->
        Assert.False(Dialect.refusedDropped edited)
        Assert.Equal(None, Dialect.localAnswer edited)
        Assert.Equal<string list>([ "thinking_blocks" ], edited.DroppedFeatures)
        Assert.True(sent.IsSome)
    | Error e -> failwith e

    // with something the target cannot do besides, the refusal names only that
    let both =
        """{"model":"claude-sonnet-4-6","max_tokens":64,"cache_control":{"type":"ephemeral"},"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"EqQBCkYIBxgCKkA"},{"type":"text","text":"a"}]},{"role":"user","content":"next"}]}"""B

    let bothFacts = factsOf both

    match
        Dialect.edit (Dialect.plan provider ValueNone bothFacts "/v1/messages" [] []) (ReadOnlySpan both) bothFacts true
    with
    | Ok(edited, _) ->
        Assert.True(Dialect.refusedDropped edited)

        match Dialect.localAnswer edited with
        | Some(400, answer) ->
            let text = Encoding.UTF8.GetString answer
            Assert.Contains("cache_control", text)
            Assert.DoesNotContain("thinking_blocks", text)
        | other -> failwith $"expected a local 400, got %A{other}"
    | Error e -> failwith e

[<Fact>]
let ``a gemini plan translates the body, reports what it dropped, reads streams and errors as Gemini`` () =
    let provider =
        gemini "https://generativelanguage.googleapis.com" GeminiRequestTests.studio [ key "k" 0 ]

    let body =
        """{"model":"claude-sonnet-4-6","max_tokens":64,"stream":true,"cache_control":{"type":"ephemeral"},"messages":[{"role":"user","content":"hi"}]}"""B

    let facts = factsOf body
    let plan = Dialect.plan provider ValueNone facts "/v1/messages" [] []

    match Dialect.edit plan (ReadOnlySpan body) facts false with
    | Ok(edited, ValueSome sent) ->
        let json = JsonDocument.Parse(sent: byte array).RootElement
        let first = json.GetProperty("contents").[0].GetProperty("parts").[0]
        Assert.Equal("hi", first.GetProperty("text").GetString())
        Assert.Equal<string list>([ "cache_control" ], edited.DroppedFeatures)
        Assert.Equal(AnswerReading.TranslateStream, Dialect.reading edited.Answer 200 Framing.Sse)
        Assert.Equal(AnswerReading.Translate, Dialect.reading edited.Answer 503 Framing.Other)

        let overloaded =
            Dialect.answer
                edited.Answer
                503
                None
                (ReadOnlySpan """{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}"""B)

        Assert.Equal(Some 529, overloaded |> Option.map fst)

        Assert.Equal(
            ValueSome 5,
            Dialect.retryAfterSeconds
                edited.Answer
                429
                (ReadOnlySpan
                    """{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"retryDelay":"5s"}]}}"""B)
        )
    | other -> failwith $"unexpected %A{other}"
