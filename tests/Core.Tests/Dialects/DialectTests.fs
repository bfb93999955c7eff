module CcRelay.Core.Tests.DialectTests

open System
open System.Text
open System.Text.Json
open Xunit
open CcRelay.Core
open CcRelay.Core.Tests.Fixtures

let private body =
    """{"model":"claude-sonnet-4-6","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"""B

let private factsOf (bytes: byte array) : RequestFacts =
    match RequestFacts.inspect (ReadOnlySpan bytes) with
    | Ok facts -> facts
    | Error e -> failwith (RequestFacts.describe e)

let private bedrock (keys: string list) : ProviderConfig = {
    Config.defaultProvider "bedrock" ProviderType.Bedrock (Bedrock.defaultBaseUrl "eu-west-1") with
        Keys = keys |> List.map (fun k -> key k 0)
        Cloud =
            CloudSettings.Bedrock {
                Region = "eu-west-1"
                Credentials = AwsCredentialSource.Chain
                Api = BedrockApi.Invoke
                Betas = Bedrock.defaultBetas
            }
}

let private vertex: ProviderConfig = {
    Config.defaultProvider "vertex" ProviderType.Vertex (Vertex.defaultBaseUrl "us-east5") with
        Cloud =
            CloudSettings.Vertex {
                ProjectId = "proj"
                Region = "us-east5"
                CredentialsFile = None
            }
}

let private edited (plan: UpstreamPlan) (bytes: byte array) : JsonElement =
    match Dialect.body plan.Body (ReadOnlySpan bytes) (factsOf bytes) with
    | Ok(ValueSome edited) -> JsonDocument.Parse(edited: byte array).RootElement
    | Ok ValueNone -> JsonDocument.Parse(bytes: byte array).RootElement
    | Error e -> failwith e

[<Fact>]
let ``bedrock streams go to invoke-with-response-stream of the region's profile, SigV4-signed, betas moved into the body``
    ()
    =
    let betas = [ "interleaved-thinking-2025-05-14"; "claude-code-20250219" ]

    let plan =
        Dialect.plan (bedrock []) ValueNone (factsOf body) "/v1/messages?beta=true" betas []

    Assert.Equal(
        "https://bedrock-runtime.eu-west-1.amazonaws.com/model/eu.anthropic.claude-sonnet-4-6/invoke-with-response-stream",
        plan.Url.AbsoluteUri
    )

    Assert.Equal(Signing.SigV4("eu-west-1", "bedrock", AwsCredentialSource.Chain), plan.Signing)
    Assert.Empty(plan.Credentials)
    Assert.Contains("anthropic-beta", plan.DropHeaders)
    // the host asks header by header, in the client's spelling
    Assert.True(plan.DropsHeader "Anthropic-Beta")
    Assert.True(plan.DropsHeader "anthropic-version")
    Assert.False(plan.DropsHeader "content-type")
    Assert.Equal<string list>([ "claude-code-20250219" ], plan.Dropped)
    Assert.Equal(AnswerDialect.Bedrock, plan.Answer)

    let sent = edited plan body
    Assert.False(sent.TryGetProperty("model") |> fst)
    Assert.False(sent.TryGetProperty("stream") |> fst)
    Assert.Equal("bedrock-2023-05-31", sent.GetProperty("anthropic_version").GetString())

    Assert.Equal<string list>(
        [ "interleaved-thinking-2025-05-14" ],
        [
            for b in sent.GetProperty("anthropic_beta").EnumerateArray() -> string (b.GetString())
        ]
    )

    Assert.Equal(64, sent.GetProperty("max_tokens").GetInt32())

[<Fact>]
let ``a bedrock API key is a bearer token and replaces SigV4`` () =
    let plan =
        Dialect.plan (bedrock [ "bedrock-api-key" ]) (ValueSome(key "bedrock-api-key" 0)) (factsOf body) "/v1/messages" [] []

    Assert.Equal<(string * string) list>([ "authorization", "Bearer bedrock-api-key" ], plan.Credentials)
    Assert.Equal(Signing.Static, plan.Signing)

[<Fact>]
let ``a bedrock key that is an AWS credential set signs with that set, not the provider's`` () =
    let set = AwsCredentialSource.Static("AKIAKEY", "key-secret", Some "session")

    let credentialSet = {
        key "aws:AKIAKEY:key-secret" 0 with
            Aws = Some set
    }

    let plan =
        Dialect.plan (bedrock []) (ValueSome credentialSet) (factsOf body) "/v1/messages" [] []

    Assert.Equal(Signing.SigV4("eu-west-1", "bedrock", set), plan.Signing)
    Assert.Empty plan.Credentials

[<Fact>]
let ``bedrock count_tokens wraps the invoke body for CountTokens`` () =
    let plan =
        Dialect.plan (bedrock []) ValueNone (factsOf body) "/v1/messages/count_tokens" [] []

    Assert.EndsWith("/model/eu.anthropic.claude-sonnet-4-6/count-tokens", plan.Url.AbsoluteUri)
    Assert.Equal(AnswerDialect.BedrockCountTokens (factsOf body).EstimatedInputTokens, plan.Answer)
    let sent = edited plan body

    let inner =
        sent.GetProperty("input").GetProperty("invokeModel").GetProperty("body").GetString()
        |> string
        |> Convert.FromBase64String
        |> fun b -> JsonDocument.Parse(b: byte array).RootElement

    Assert.Equal("bedrock-2023-05-31", inner.GetProperty("anthropic_version").GetString())
    Assert.False(inner.TryGetProperty("model") |> fst)

[<Fact>]
let ``bedrock count-tokens answers become Anthropic's, errors keep their message`` () =
    let translated =
        Dialect.answer (AnswerDialect.BedrockCountTokens 7) 200 None (ReadOnlySpan """{"inputTokens":42}"""B)

    Assert.Equal(
        Some(200, """{"input_tokens":42}"""),
        translated |> Option.map (fun (s, b) -> s, Encoding.UTF8.GetString b)
    )

    Assert.Equal(None, Dialect.answer AnswerDialect.Anthropic 500 None (ReadOnlySpan "{}"B))

[<Fact>]
let ``vertex keeps stream, moves the model into the URL, and counts tokens with the model in the body`` () =
    let facts = factsOf body

    let plan =
        Dialect.plan vertex ValueNone facts "/v1/messages?beta=true" [ "context-1m-2025-08-07" ] []

    Assert.Equal(
        "https://us-east5-aiplatform.googleapis.com/v1/projects/proj/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-6:streamRawPredict",
        plan.Url.AbsoluteUri
    )

    Assert.Equal(Signing.GoogleToken None, plan.Signing)
    Assert.Empty(plan.DropHeaders) // anthropic-beta stays a header on Vertex
    let sent = edited plan body
    Assert.True(sent.GetProperty("stream").GetBoolean())
    Assert.False(sent.TryGetProperty("model") |> fst)
    Assert.Equal("vertex-2023-10-16", sent.GetProperty("anthropic_version").GetString())

    let count = Dialect.plan vertex ValueNone facts "/v1/messages/count_tokens" [] []
    Assert.EndsWith("/models/count-tokens:rawPredict", count.Url.AbsoluteUri)
    Assert.Equal("claude-sonnet-4-6", (edited count body).GetProperty("model").GetString())

[<Fact>]
let ``foundry sends a key as x-api-key, and asks Entra ID without one`` () =
    let foundry = {
        Config.defaultProvider "f" ProviderType.Foundry (Uri "https://res.services.ai.azure.com/anthropic") with
            Cloud =
                CloudSettings.Foundry {
                    Resource = Some "res"
                    Entra = EntraCredential.Default
                    AuthorityHost = None
                }
    }

    let withKey =
        Dialect.plan foundry (ValueSome(key "fk" 0)) (factsOf body) "/v1/messages" [] []

    Assert.Equal("https://res.services.ai.azure.com/anthropic/v1/messages", withKey.Url.AbsoluteUri)
    Assert.Equal<(string * string) list>([ "x-api-key", "fk" ], withKey.Credentials)
    let entra = Dialect.plan foundry ValueNone (factsOf body) "/v1/messages" [] []
    Assert.Equal(Signing.EntraToken("https://ai.azure.com/.default", EntraCredential.Default, None), entra.Signing)

[<Fact>]
let ``a passthrough provider's probe counts an authentication refusal as up; a keyed one needs a 2xx`` () =
    let passthrough =
        Config.defaultProvider "anthropic" ProviderType.Anthropic (Uri "https://api.anthropic.com")

    let plan, _, _ = Dialect.probe ProbeKind.Models passthrough
    Assert.True(Dialect.probeSucceeded plan 401)
    Assert.False(Dialect.probeSucceeded plan 503)

    let keyed, _, _ =
        Dialect.probe ProbeKind.Models {
            passthrough with
                Keys = [ key "k" 0 ]
        }

    Assert.False(Dialect.probeSucceeded keyed 401)
    Assert.True(Dialect.probeSucceeded keyed 200)

[<Theory>]
[<InlineData(301)>]
[<InlineData(302)>]
[<InlineData(304)>]
[<InlineData(307)>]
[<InlineData(308)>]
let ``a probe answered with a redirect is not up: neither a keyed nor a passthrough provider's`` (status: int) =
    let passthrough =
        Config.defaultProvider "anthropic" ProviderType.Anthropic (Uri "https://api.anthropic.com")

    let plan, _, _ = Dialect.probe ProbeKind.Models passthrough

    let keyed, _, _ =
        Dialect.probe ProbeKind.Models {
            passthrough with
                Keys = [ key "k" 0 ]
        }

    Assert.False(Dialect.probeSucceeded plan status)
    Assert.False(Dialect.probeSucceeded keyed status)

[<Fact>]
let ``a cloud's models probe is a token count through its own plan`` () =
    let plan, method, sent = Dialect.probe ProbeKind.Models (bedrock [])
    Assert.Equal("POST", method)
    Assert.EndsWith("/count-tokens", plan.Url.AbsoluteUri)
    Assert.Contains("invokeModel", Encoding.UTF8.GetString sent)

[<Fact>]
let ``a refund gives back the request and the input tokens a token count took`` () =
    let policies = KeyPool.compile [ { key "k" 1 with ItpmLimit = 1000 } ]

    let fresh = KeyPool.initial TimeSpan.Zero policies[0]
    let taken = KeyPool.take (at 1.0) 800L fresh
    Assert.NotEqual(TimeSpan.Zero, KeyPool.readyIn (at 1.0) 800 taken)
    Assert.Equal(TimeSpan.Zero, KeyPool.readyIn (at 1.0) 800 (KeyPool.refund (at 1.0) 800L taken))

[<Fact>]
let ``bedrock's Messages API keeps the Anthropic shape, maps Bedrock's errors, and counts tokens with CountTokens`` () =
    let messagesApi = {
        bedrock [] with
            Cloud =
                match (bedrock []).Cloud with
                | CloudSettings.Bedrock b -> CloudSettings.Bedrock { b with Api = BedrockApi.Messages }
                | other -> other
    }

    let plan =
        Dialect.plan messagesApi ValueNone (factsOf body) "/v1/messages" [ "claude-code-20250219" ] []

    Assert.EndsWith("/anthropic/v1/messages", plan.Url.AbsoluteUri)
    Assert.Equal(BodyEdit.PatchModel "eu.anthropic.claude-sonnet-4-6", plan.Body)
    Assert.Empty(plan.DropHeaders)
    Assert.Empty(plan.Dropped)
    Assert.Equal(AnswerDialect.Bedrock, plan.Answer)

    let count =
        Dialect.plan messagesApi ValueNone (factsOf body) "/v1/messages/count_tokens" [] []

    Assert.EndsWith("/count-tokens", count.Url.AbsoluteUri)
    Assert.True(count.Answer.IsBedrockCountTokens)

[<Fact>]
let ``a cloud's secrets are known for redaction`` () =
    Assert.Equal<string list>(
        [ "AKID"; "secret"; "session" ],
        Config.cloudSecrets (
            CloudSettings.Bedrock {
                Region = "us-east-1"
                Credentials = AwsCredentialSource.Static("AKID", "secret", Some "session")
                Api = BedrockApi.Invoke
                Betas = []
            }
        )
    )

    Assert.Equal<string list>(
        [ "entra-secret" ],
        Config.cloudSecrets (
            CloudSettings.Foundry {
                Resource = None
                Entra = EntraCredential.ClientSecret("t", "c", "entra-secret")
                AuthorityHost = None
            }
        )
    )

[<Fact>]
let ``where Bedrock cannot count tokens for a model, the relay's estimate answers; other errors stay errors`` () =
    let notOffered =
        Dialect.answer
            (AnswerDialect.BedrockCountTokens 123)
            400
            (Some "ValidationException")
            (ReadOnlySpan """{"message":"The provided model doesn't support counting tokens."}"""B)

    Assert.Equal(
        Some(200, """{"input_tokens":123}"""),
        notOffered |> Option.map (fun (s, b) -> s, Encoding.UTF8.GetString b)
    )

    let throttled =
        Dialect.answer
            (AnswerDialect.BedrockCountTokens 123)
            429
            (Some "ThrottlingException")
            (ReadOnlySpan """{"message":"Too many requests"}"""B)

    Assert.Equal(Some 429, throttled |> Option.map fst)

[<Fact>]
let ``how an answer is read: a cloud's errors and Bedrock's counts translated, its event stream converted`` () =
    Assert.Equal(AnswerReading.AsIs, Dialect.reading AnswerDialect.Anthropic 500 Framing.Other)
    Assert.Equal(AnswerReading.AsIs, Dialect.reading AnswerDialect.Bedrock 200 Framing.Other)
    Assert.Equal(AnswerReading.ConvertEventStream, Dialect.reading AnswerDialect.Bedrock 200 Framing.AwsEventStream)
    Assert.Equal(AnswerReading.Translate, Dialect.reading AnswerDialect.Bedrock 429 Framing.Other)
    Assert.Equal(AnswerReading.Translate, Dialect.reading (AnswerDialect.BedrockCountTokens 1) 200 Framing.Other)
    Assert.Equal(AnswerReading.AsIs, Dialect.reading AnswerDialect.Vertex 200 Framing.Sse)
    Assert.Equal(AnswerReading.Translate, Dialect.reading AnswerDialect.Vertex 503 Framing.Other)

[<Fact>]
let ``only an OAuth token's 401 is retried with a fresh token`` () =
    let vertexPlan = Dialect.plan vertex ValueNone (factsOf body) "/v1/messages" [] []

    let keyed =
        Dialect.plan (bedrock [ "k" ]) (ValueSome(key "k" 0)) (factsOf body) "/v1/messages" [] []

    Assert.True(Dialect.retriesWithFreshToken vertexPlan 401)
    Assert.False(Dialect.retriesWithFreshToken vertexPlan 403)
    Assert.False(Dialect.retriesWithFreshToken keyed 401)
