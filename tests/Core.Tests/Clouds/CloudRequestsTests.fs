module CcRelay.Core.Tests.CloudRequestsTests

open System
open System.Text
open System.Text.Json
open Xunit
open CcRelay.Core

let private bytes (text: string) : byte array = Encoding.UTF8.GetBytes text
let private text (bytes: byte array) : string = Encoding.UTF8.GetString bytes


// ---------------------------
// Bedrock model ids
// ---------------------------

[<Theory>]
[<InlineData("us-east-1", "us")>]
[<InlineData("us-west-2", "us")>]
[<InlineData("us-gov-west-1", "us-gov")>]
[<InlineData("eu-central-1", "eu")>]
[<InlineData("ap-northeast-1", "apac")>]
[<InlineData("ap-southeast-2", "apac")>]
[<InlineData("ca-central-1", "global")>]
[<InlineData("sa-east-1", "global")>]
let ``regionPrefix follows Claude Code`` (region: string, expected: string) =
    Assert.Equal(expected, Bedrock.regionPrefix region)

[<Theory>]
[<InlineData("claude-sonnet-4-5-20250929", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")>]
[<InlineData("claude-sonnet-4-5", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")>]
[<InlineData("claude-sonnet-4-5[1m]", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")>]
[<InlineData("claude-haiku-4-5-20251001", "us.anthropic.claude-haiku-4-5-20251001-v1:0")>]
[<InlineData("claude-haiku-4-5", "us.anthropic.claude-haiku-4-5-20251001-v1:0")>]
[<InlineData("claude-sonnet-4-6", "us.anthropic.claude-sonnet-4-6")>]
[<InlineData("claude-sonnet-4-6[1m]", "us.anthropic.claude-sonnet-4-6")>]
[<InlineData("claude-opus-4-6", "us.anthropic.claude-opus-4-6-v1")>]
[<InlineData("claude-opus-4-7", "us.anthropic.claude-opus-4-7")>]
[<InlineData("claude-opus-4-8", "us.anthropic.claude-opus-4-8")>]
[<InlineData("claude-sonnet-5", "us.anthropic.claude-sonnet-5")>]
[<InlineData("claude-fable-5", "us.anthropic.claude-fable-5")>]
[<InlineData("claude-opus-4-1-20250805", "us.anthropic.claude-opus-4-1-20250805-v1:0")>]
[<InlineData("claude-sonnet-4-20250514", "us.anthropic.claude-sonnet-4-20250514-v1:0")>]
[<InlineData("claude-opus-4-20250514", "us.anthropic.claude-opus-4-20250514-v1:0")>]
[<InlineData("claude-3-7-sonnet-20250219", "us.anthropic.claude-3-7-sonnet-20250219-v1:0")>]
[<InlineData("claude-3-5-haiku-20241022", "us.anthropic.claude-3-5-haiku-20241022-v1:0")>]
let ``builtInModelId maps Claude Code's names to inference profiles`` (model: string, expected: string) =
    Assert.Equal(Some expected, Bedrock.builtInModelId "us" model)

[<Theory>]
[<InlineData("anthropic.claude-sonnet-4-6")>]
[<InlineData("eu.anthropic.claude-sonnet-4-5-20250929-v1:0")>]
[<InlineData("global.anthropic.claude-haiku-4-5-20251001-v1:0")>]
[<InlineData("us-gov.anthropic.claude-sonnet-4-5-20250929-v1:0")>]
[<InlineData("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc")>]
let ``builtInModelId keeps Bedrock ids as they are`` (model: string) =
    Assert.Equal(Some model, Bedrock.builtInModelId "us" model)

[<Theory>]
[<InlineData("GLM-5")>]
[<InlineData("claude-unknown-9")>]
[<InlineData("")>]
let ``builtInModelId does not know other names`` (model: string) =
    Assert.Equal(None, Bedrock.builtInModelId "us" model)

[<Fact>]
let ``modelId: the mapping first, then the table with the region's prefix, else the name`` () =
    let mapping =
        Map [
            "claude-sonnet-4-6", "arn:aws:bedrock:eu-west-1:1:application-inference-profile/x"
        ]

    Assert.Equal(
        "arn:aws:bedrock:eu-west-1:1:application-inference-profile/x",
        Bedrock.modelId mapping "eu-west-1" "claude-sonnet-4-6"
    )

    Assert.Equal("eu.anthropic.claude-opus-4-6-v1", Bedrock.modelId mapping "eu-west-1" "claude-opus-4-6")
    Assert.Equal("apac.anthropic.claude-opus-4-7", Bedrock.modelId Map.empty "ap-south-1" "claude-opus-4-7")
    Assert.Equal("GLM-5", Bedrock.modelId mapping "eu-west-1" "GLM-5")

// ---------------------------
// Bedrock paths and URLs
// ---------------------------

[<Theory>]
[<InlineData("anthropic.claude-sonnet-4-6", "anthropic.claude-sonnet-4-6")>]
[<InlineData("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")>]
[<InlineData("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123",
             "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile%2Fabc123")>]
[<InlineData("a b%c?d#e@f!$&'()*+,;=", "a%20b%25c%3Fd%23e@f!$&'()*+,;=")>]
[<InlineData("é", "%C3%A9")>]
let ``encodeModelId keeps ':' and pchar, encodes '/' and the rest`` (modelId: string, expected: string) =
    Assert.Equal(expected, Bedrock.encodeModelId modelId)

[<Fact>]
let ``the Bedrock paths`` () =
    Assert.Equal("/model/anthropic.claude-sonnet-4-6/invoke", Bedrock.invokePath "anthropic.claude-sonnet-4-6" false)

    Assert.Equal(
        "/model/us.anthropic.claude-sonnet-4-6/invoke-with-response-stream",
        Bedrock.invokePath "us.anthropic.claude-sonnet-4-6" true
    )

    Assert.Equal("/model/arn:x%2Fy/count-tokens", Bedrock.countTokensPath "arn:x/y")
    Assert.Equal("/anthropic/v1/messages", Bedrock.messagesApiPath)

[<Fact>]
let ``url sends an ARN's path exactly as encoded`` () =
    let path =
        Bedrock.invokePath "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123" true

    let url = Bedrock.url (Bedrock.defaultBaseUrl "us-east-1") path

    Assert.Equal(
        "/model/arn:aws:bedrock:us-east-1:123456789012:application-inference-profile%2Fabc123/invoke-with-response-stream",
        url.PathAndQuery
    )

    Assert.Equal(path, url.AbsolutePath)
    Assert.Equal("bedrock-runtime.us-east-1.amazonaws.com", url.Host)
    Assert.Equal("https://bedrock-runtime.us-east-1.amazonaws.com" + path, url.OriginalString)

[<Theory>]
[<InlineData("https://relay.example/bedrock", "https://relay.example/bedrock/model/m/invoke")>]
[<InlineData("https://relay.example/bedrock/", "https://relay.example/bedrock/model/m/invoke")>]
[<InlineData("http://127.0.0.1:8080", "http://127.0.0.1:8080/model/m/invoke")>]
let ``url keeps a path prefix and a port of the base`` (baseUrl: string, expected: string) =
    Assert.Equal(expected, (Bedrock.url (Uri baseUrl) "/model/m/invoke").OriginalString)

[<Fact>]
let ``url does not unescape or canonicalise dot segments and escapes`` () =
    let url = Bedrock.url (Uri "https://h.example") "/model/a%2F..%2Fb/%41/invoke"
    Assert.Equal("/model/a%2F..%2Fb/%41/invoke", url.PathAndQuery)

// ---------------------------
// Bedrock body
// ---------------------------

[<Fact>]
let ``count tokens: the request wraps the body in base64, the answer is read and rewritten`` () =
    let body = bytes """{"anthropic_version":"bedrock-2023-05-31","messages":[]}"""
    let request = Bedrock.countTokensBody (ReadOnlySpan body)
    use document = JsonDocument.Parse request

    let encoded =
        document.RootElement.GetProperty("input").GetProperty("invokeModel").GetProperty("body").GetString()

    Assert.Equal<byte array>(body, Convert.FromBase64String(nonNull encoded))

    Assert.Equal(
        Some 42,
        Bedrock.countTokensAnswer (ReadOnlySpan(bytes """{"x":{"inputTokens":1},"inputTokens":42}"""))
    )

    Assert.Equal(None, Bedrock.countTokensAnswer (ReadOnlySpan(bytes """{"inputTokens":"42"}""")))
    Assert.Equal(None, Bedrock.countTokensAnswer (ReadOnlySpan(bytes "not json")))
    Assert.Equal("""{"input_tokens":42}""", text (Bedrock.countTokensResponse 42))

// ---------------------------
// Vertex
// ---------------------------

[<Theory>]
[<InlineData("global", "https://aiplatform.googleapis.com/v1")>]
[<InlineData("us", "https://aiplatform.us.rep.googleapis.com/v1")>]
[<InlineData("eu", "https://aiplatform.eu.rep.googleapis.com/v1")>]
[<InlineData("us-east5", "https://us-east5-aiplatform.googleapis.com/v1")>]
let ``Vertex base URLs by region`` (region: string, expected: string) =
    Assert.Equal(expected, (Vertex.defaultBaseUrl region).OriginalString)

[<Fact>]
let ``Vertex paths and URL`` () =
    let path = Vertex.path "my-project" "us-east5" "claude-sonnet-4-5@20250929" true

    Assert.Equal(
        "/projects/my-project/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict",
        path
    )

    Assert.EndsWith(":rawPredict", Vertex.path "p" "r" "m" false)

    Assert.Equal(
        "/projects/p/locations/global/publishers/anthropic/models/count-tokens:rawPredict",
        Vertex.countTokensPath "p" "global"
    )

    Assert.Equal(
        "/projects/p/locations/r/publishers/anthropic/models/a%2Fb:rawPredict",
        Vertex.path "p" "r" "a/b" false
    )

    Assert.Equal(
        "https://us-east5-aiplatform.googleapis.com/v1" + path,
        (Vertex.url (Vertex.defaultBaseUrl "us-east5") path).OriginalString
    )

[<Theory>]
[<InlineData("claude-sonnet-4-5-20250929", "claude-sonnet-4-5@20250929")>]
[<InlineData("claude-haiku-4-5-20251001", "claude-haiku-4-5@20251001")>]
[<InlineData("claude-opus-4-1-20250805", "claude-opus-4-1@20250805")>]
[<InlineData("claude-3-7-sonnet-20250219", "claude-3-7-sonnet@20250219")>]
[<InlineData("claude-sonnet-4-5-20250929[1m]", "claude-sonnet-4-5@20250929")>]
[<InlineData("claude-sonnet-4-6", "claude-sonnet-4-6")>]
[<InlineData("claude-sonnet-4-5@20250929", "claude-sonnet-4-5@20250929")>]
[<InlineData("GLM-5-20250101", "GLM-5-20250101")>]
let ``Vertex modelId writes a dated name with an at sign`` (model: string, expected: string) =
    Assert.Equal(expected, Vertex.modelId Map.empty model)

[<Fact>]
let ``Vertex modelId takes the mapping first`` () =
    Assert.Equal("x@1", Vertex.modelId (Map [ "claude-sonnet-4-5-20250929", "x@1" ]) "claude-sonnet-4-5-20250929")

[<Theory>]
[<InlineData(400, "INVALID_ARGUMENT", 400, "invalid_request_error")>]
[<InlineData(401, "UNAUTHENTICATED", 401, "authentication_error")>]
[<InlineData(403, "PERMISSION_DENIED", 403, "permission_error")>]
[<InlineData(404, "NOT_FOUND", 404, "not_found_error")>]
[<InlineData(429, "RESOURCE_EXHAUSTED", 429, "rate_limit_error")>]
[<InlineData(500, "INTERNAL", 500, "api_error")>]
[<InlineData(503, "UNAVAILABLE", 529, "overloaded_error")>]
[<InlineData(504, "DEADLINE_EXCEEDED", 504, "timeout_error")>]
let ``Vertex errorBody maps Google's envelope``
    (status: int, googleStatus: string, expectedStatus: int, errorType: string)
    =
    let body =
        sprintf """{"error":{"code":%d,"message":"Quota \"x\" exceeded","status":"%s"}}""" status googleStatus

    let clientStatus, result = Vertex.errorBody status (ReadOnlySpan(bytes body))
    Assert.Equal(expectedStatus, clientStatus)

    Assert.Equal(
        sprintf """{"type":"error","error":{"type":"%s","message":"Quota \u0022x\u0022 exceeded"}}""" errorType,
        text result
    )

[<Fact>]
let ``Vertex errorBody reads Google's array form and keeps Anthropic's envelope`` () =
    let _, fromArray =
        Vertex.errorBody
            429
            (ReadOnlySpan(bytes """[{"error":{"code":429,"message":"slow down","status":"RESOURCE_EXHAUSTED"}}]"""))

    use document = JsonDocument.Parse fromArray
    Assert.Equal("slow down", document.RootElement.GetProperty("error").GetProperty("message").GetString())

    let anthropic =
        """{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"""

    let status, body = Vertex.errorBody 529 (ReadOnlySpan(bytes anthropic))
    Assert.Equal(529, status)
    Assert.Equal(anthropic, text body)

[<Fact>]
let ``Vertex errorBody gives an envelope for anything else`` () =
    let status, body =
        Vertex.errorBody 502 (ReadOnlySpan(bytes "<html>bad gateway</html>"))

    Assert.Equal(502, status)
    use document = JsonDocument.Parse body
    Assert.Equal("api_error", document.RootElement.GetProperty("error").GetProperty("type").GetString())

// ---------------------------
// Foundry
// ---------------------------

[<Fact>]
let ``Foundry base URL from a resource name`` () =
    Assert.Equal(Ok(Uri "https://my-res-1.services.ai.azure.com/anthropic"), Foundry.defaultBaseUrl "my-res-1")
    Assert.Equal("https://ai.azure.com/.default", Foundry.entraScope)

[<Theory>]
[<InlineData("")>]
[<InlineData("-a")>]
[<InlineData("a-")>]
[<InlineData("a.b")>]
[<InlineData("a/b")>]
[<InlineData("évil")>]
let ``Foundry refuses a resource name that is not a DNS label`` (resource: string) =
    Assert.True(Result.isError (Foundry.defaultBaseUrl resource))
