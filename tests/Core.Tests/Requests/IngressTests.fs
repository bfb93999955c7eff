module CcRelay.Core.Tests.IngressTests

open System
open System.Text
open System.Text.Json
open Xunit
open CcRelay.Core

let private bytes (s: string) = ReadOnlySpan(Encoding.UTF8.GetBytes s)
let private text (b: byte array) = Encoding.UTF8.GetString b

let private ok (result: Result<IngressRequest, string>) : IngressRequest =
    match result with
    | Ok request -> request
    | Error e -> failwith e

[<Theory>]
[<InlineData("/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke",
             "us.anthropic.claude-sonnet-4-5-20250929-v1:0")>]
[<InlineData("/model/arn:aws:bedrock:us-east-1:123456789012:application-inference-profile%2Fabc123/invoke?x=1",
             "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123")>]
[<InlineData("/model/us.anthropic.claude-opus-4-6-v1%3A0/invoke", "us.anthropic.claude-opus-4-6-v1:0")>]
let ``a Bedrock model id is decoded from the raw target, %2F inside one segment`` (target: string, modelId: string) =
    Assert.Equal(Some(IngressRoute.BedrockInvoke(modelId, false)), Ingress.route target)

[<Fact>]
let ``the routes Claude Code calls are recognised, others are not`` () =
    let vertex = "/v1/projects/p/locations/us-east5/publishers/anthropic/models/"
    Assert.Equal(Some(IngressRoute.BedrockInvoke("m", true)), Ingress.route "/model/m/invoke-with-response-stream")
    Assert.Equal(Some(IngressRoute.BedrockCountTokens "anthropic.m"), Ingress.route "/model/anthropic.m/count-tokens")
    Assert.Equal(Some IngressRoute.ListInferenceProfiles, Ingress.route "/inference-profiles?type=SYSTEM_DEFINED")
    Assert.Equal(Some(IngressRoute.GetInferenceProfile "us.a"), Ingress.route "/inference-profiles/us.a")

    Assert.Equal(
        Some(IngressRoute.VertexPredict("claude-sonnet-4-5@20250929", true)),
        Ingress.route (vertex + "claude-sonnet-4-5@20250929:streamRawPredict")
    )

    Assert.Equal(
        Some(IngressRoute.VertexPredict("claude-x@1", false)),
        Ingress.route (vertex + "claude-x%401:rawPredict")
    )

    Assert.Equal(Some IngressRoute.VertexCountTokens, Ingress.route (vertex + "count-tokens:rawPredict"))
    Assert.Equal(None, Ingress.route "/model/m/converse")
    Assert.Equal(None, Ingress.route "/model//invoke")
    Assert.Equal(None, Ingress.route (vertex + "m:predict"))
    Assert.Equal(None, Ingress.route "/v1/projects/p/locations/l/publishers/google/models/m:rawPredict")

[<Fact>]
let ``a Bedrock body becomes Anthropic's: model and stream first, cloud members gone, every other byte kept`` () =
    let body =
        """{"anthropic_version":"bedrock-2023-05-31", "messages":[{"role":"user","content":"a\u002Bb é"}],"anthropic_beta":["b1","b2"] ,"max_tokens":1}"""

    let request =
        Ingress.bedrockMessages "us.anthropic.claude-x-v1:0" true (bytes body) |> ok

    Assert.Equal(
        """{"model":"us.anthropic.claude-x-v1:0","stream":true,"messages":[{"role":"user","content":"a\u002Bb é"}],"max_tokens":1}""",
        text request.Body
    )

    Assert.Equal<string list>([ "b1"; "b2" ], request.Betas)
    Assert.Equal("/v1/messages", request.PathAndQuery)

[<Fact>]
let ``invoke answers a JSON message: stream false`` () =
    let request =
        Ingress.bedrockMessages "m" false (bytes """{"anthropic_version":"v","max_tokens":1}""")
        |> ok

    Assert.Equal("""{"model":"m","stream":false,"max_tokens":1}""", text request.Body)
    Assert.Empty request.Betas

[<Theory>]
[<InlineData("""{"anthropic_beta":"x"}""")>]
[<InlineData("""{"anthropic_beta":[1]}""")>]
[<InlineData("""not json""")>]
[<InlineData("""[1]""")>]
let ``a body that is not Bedrock's shape is an error`` (body: string) =
    Assert.True(Result.isError (Ingress.bedrockMessages "m" true (bytes body)))

[<Fact>]
let ``Bedrock count-tokens unwraps the base64 InvokeModel body`` () =
    let inner =
        """{"anthropic_version":"bedrock-2023-05-31","max_tokens":1,"messages":[{"role":"user","content":"hi"}],"anthropic_beta":["t"]}"""

    let body =
        $"""{{"input":{{"invokeModel":{{"body":"%s{Convert.ToBase64String(Encoding.UTF8.GetBytes inner)}"}}}}}}"""

    let request = Ingress.bedrockCountTokens "anthropic.m" (bytes body) |> ok
    Assert.Equal("""{"model":"anthropic.m","messages":[{"role":"user","content":"hi"}]}""", text request.Body)
    Assert.Equal<string list>([ "t" ], request.Betas)
    Assert.Equal("/v1/messages/count_tokens", request.PathAndQuery)
    Assert.True(Result.isError (Ingress.bedrockCountTokens "m" (bytes """{"input":{}}""")))

[<Fact>]
let ``Vertex bodies keep stream; count-tokens keeps its model`` () =
    let request =
        Ingress.vertexMessages
            "claude-x@1"
            (bytes """{"anthropic_version":"vertex-2023-10-16","stream":true,"max_tokens":1}""")
        |> ok

    Assert.Equal("""{"model":"claude-x@1","stream":true,"max_tokens":1}""", text request.Body)

    let count =
        Ingress.vertexCountTokens (
            bytes """{"model":"claude-x","anthropic_version":"vertex-2023-10-16","messages":[]}"""
        )
        |> ok

    Assert.Equal("""{"model":"claude-x","messages":[]}""", text count.Body)
    Assert.Equal("/v1/messages/count_tokens", count.PathAndQuery)

[<Fact>]
let ``betas merge: header values first, then the body's, de-duplicated`` () =
    Assert.Equal<string list>([ "a"; "b"; "c" ], Ingress.mergeBetas [ "a, b" ] [ "b"; "c" ])

[<Fact>]
let ``a token count answers in Bedrock's shape`` () =
    Assert.Equal(
        Some """{"inputTokens":42}""",
        Ingress.bedrockCountTokensAnswer (bytes """{"input_tokens":42}""")
        |> Option.map text
    )

    Assert.Equal(None, Ingress.bedrockCountTokensAnswer (bytes """{"x":1}"""))

[<Fact>]
let ``errors in Bedrock's shape keep the message; 529 becomes 503`` () =
    let status, name, body =
        Ingress.bedrockError 529 (ReadOnlySpan(ErrorEnvelope.toJson ErrorType.Overloaded "Overloaded \"now\""))

    Assert.Equal(503, status)
    Assert.Equal("ServiceUnavailableException", name)
    Assert.Equal("""{"message":"Overloaded \u0022now\u0022"}""", text body)

    let status, name, body = Ingress.bedrockError 401 (bytes "no")
    Assert.Equal((401, "UnrecognizedClientException"), (status, name))
    Assert.Equal("no", JsonDocument.Parse(body).RootElement.GetProperty("message").GetString())

[<Fact>]
let ``SSE events: pings dropped, errors end the stream with their type and message`` () =
    Assert.Equal(IngressFrame.Drop, Ingress.frameOfSseEvent (bytes "event: ping\ndata: {\"type\":\"ping\"}\n\n"))

    Assert.Equal(
        IngressFrame.Chunk,
        Ingress.frameOfSseEvent (bytes "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
    )

    Assert.Equal(
        IngressFrame.Exception(ErrorType.RateLimit, "slow down"),
        Ingress.frameOfSseEvent (ReadOnlySpan(ErrorEnvelope.toSseEvent ErrorType.RateLimit "slow down"))
    )

[<Fact>]
let ``inference profiles in AWS's shape, the model the id without its geo prefix`` () =
    let list =
        JsonDocument.Parse(Ingress.inferenceProfiles "us-east-1" [ "us.anthropic.a"; "b"; "b" ] None).RootElement

    let summaries = list.GetProperty("inferenceProfileSummaries")
    Assert.Equal(2, summaries.GetArrayLength())
    let first = summaries[0]
    Assert.Equal("us.anthropic.a", first.GetProperty("inferenceProfileId").GetString())

    Assert.Equal(
        "arn:aws:bedrock:us-east-1::inference-profile/us.anthropic.a",
        first.GetProperty("inferenceProfileArn").GetString()
    )

    let modelArn = first.GetProperty("models").[0].GetProperty("modelArn").GetString()
    Assert.Equal("arn:aws:bedrock:us-east-1::foundation-model/anthropic.a", modelArn)
    Assert.Equal("ACTIVE", first.GetProperty("status").GetString())
    Assert.Equal("SYSTEM_DEFINED", first.GetProperty("type").GetString())

    let next =
        JsonDocument.Parse(Ingress.inferenceProfiles "r" [ "a" ] (Some "t")).RootElement

    Assert.Equal(0, next.GetProperty("inferenceProfileSummaries").GetArrayLength())

    let arn = "arn:aws:bedrock:us-east-1:1:application-inference-profile/xyz"
    let one = JsonDocument.Parse(Ingress.inferenceProfile "us-east-1" arn).RootElement
    Assert.Equal(arn, one.GetProperty("inferenceProfileArn").GetString())
    Assert.Equal("xyz", one.GetProperty("inferenceProfileId").GetString())

[<Theory>]
[<InlineData("us.anthropic.claude-sonnet-4-6", "claude-sonnet-4-6")>]
[<InlineData("global.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5-20251001")>]
[<InlineData("anthropic.claude-opus-4-6-v1", "claude-opus-4-6")>]
[<InlineData("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123",
             "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123")>]
[<InlineData("my-custom-model", "my-custom-model")>]
let ``a Bedrock id of the built-in table is routed as its Claude name, others as they are``
    (id: string, routed: string)
    =
    Assert.Equal(routed, Ingress.routedModel id)

    let body =
        ok (Ingress.bedrockMessages id true (bytes """{"anthropic_version":"bedrock-2023-05-31","max_tokens":5}"""))

    Assert.Equal(routed, JsonDocument.Parse(body.Body).RootElement.GetProperty("model").GetString())

[<Fact>]
let ``every Claude name of the table maps to Bedrock and back to a name for the same model`` () =
    for name in
        [
            "claude-sonnet-4-6"
            "claude-haiku-4-5"
            "claude-opus-4-6"
            "claude-sonnet-4-5-20250929"
        ] do
        let id = Bedrock.modelId Map.empty "us-east-1" name
        let back = Ingress.routedModel id
        Assert.Equal(id, Bedrock.modelId Map.empty "us-east-1" back)

[<Fact>]
let ``a versioned Vertex id is routed as the dated Claude name, in messages and in token counts`` () =
    Assert.Equal("claude-sonnet-4-5-20250929", Ingress.vertexRoutedModel "claude-sonnet-4-5@20250929")
    Assert.Equal("claude-sonnet-4-6", Ingress.vertexRoutedModel "claude-sonnet-4-6")

    let count =
        ok (
            Ingress.vertexCountTokens (
                bytes """{"anthropic_version":"vertex-2023-10-16","model":"claude-haiku-4-5@20251001","messages":[]}"""
            )
        )

    Assert.Equal(
        "claude-haiku-4-5-20251001",
        JsonDocument.Parse(count.Body).RootElement.GetProperty("model").GetString()
    )
