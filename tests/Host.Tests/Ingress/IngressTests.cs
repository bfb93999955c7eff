using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using CcRelay.Host.Tests.Infrastructure;
using CcRelay.Host.Tests.Interop;

namespace CcRelay.Host.Tests.Ingress;

/// <summary>
/// The relay as Claude Code's Bedrock or Vertex AI endpoint: the cloud-shaped routes run the /v1/messages pipeline
/// against an Anthropic upstream; Bedrock answers are checked with the AWS SDK's own event-stream codec.
/// </summary>
public sealed class IngressTests : IAsyncLifetime
{
    private const string RelayKey = "relay-ingress-secret";
    private const string BedrockBody =
        """{"anthropic_version":"bedrock-2023-05-31","anthropic_beta":["beta-in-body"],"max_tokens":64,"messages":[{"role":"user","content":"hi"}]}""";

    private FakeUpstream _upstream = null!;
    private RelayHost _relay = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _relay = await RelayHost.StartAsync(TestConfig.Relay(
            [TestConfig.Provider("fake", _upstream.BaseUrl, keys: ["upstream-key"], models: ["us.anthropic.claude-test-v1:0"])],
            apiKey: RelayKey,
            allowBearer: true,
            bearerSecret: RelayKey));
    }

    public async Task DisposeAsync()
    {
        await _relay.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private static HttpRequestMessage Post(string path, string body, string? bearer = RelayKey, string? beta = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new ByteArrayContent(Encoding.UTF8.GetBytes(body)) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        if (bearer is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        if (beta is not null)
        {
            request.Headers.TryAddWithoutValidation("anthropic-beta", beta);
        }

        return request;
    }

    [Fact]
    public async Task InvokeWithResponseStream_AnswersAnEventStreamSmithyDecodes_OneChunkPerEvent_PingsDropped()
    {
        var events = new[] { Fake.MessageStart(), Fake.Ping, Fake.TextBlock(0, "hello"), Fake.MessageEnd() };
        _upstream.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            foreach (var e in events)
            {
                await Fake.WriteAsync(context, e);
            }
        };

        using var response = await _relay.Client.SendAsync(Post("/model/arn:aws:bedrock:us-east-1:1:application-inference-profile%2Fabc/invoke-with-response-stream", BedrockBody, beta: "beta-in-header"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/vnd.amazon.eventstream", response.Content.Headers.ContentType?.MediaType);
        var frames = await SmithyEventStream.DecodeAsync(await response.Content.ReadAsByteArrayAsync());
        var chunks = frames.Select(f =>
        {
            Assert.Contains(f.Headers, h => h.Name == ":event-type" && h.Value?.GetValue<string>() == "chunk");
            using var payload = JsonDocument.Parse(f.Payload);
            return Encoding.UTF8.GetString(payload.RootElement.GetProperty("bytes").GetBytesFromBase64());
        }).ToList();
        var expected = string.Concat(events.Where(e => e != Fake.Ping))
            .Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(e => e.Split('\n').Single(l => l.StartsWith("data: ", StringComparison.Ordinal))[6..]);
        Assert.Equal(expected, chunks);

        // the upstream saw the Anthropic shape: the decoded ARN as the model, stream true, the betas as a header
        var seen = Assert.Single(_upstream.Requests);
        Assert.Equal("/v1/messages", seen.PathAndQuery);
        Assert.Equal(
            """{"model":"arn:aws:bedrock:us-east-1:1:application-inference-profile/abc","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"hi"}]}""",
            Encoding.UTF8.GetString(seen.Body));
        Assert.Equal("beta-in-header,beta-in-body", seen.Header("anthropic-beta"));
        Assert.Equal("upstream-key", seen.Header("x-api-key"));
        Assert.Null(seen.Header("authorization"));
    }

    [Fact]
    public async Task InvokeWithResponseStream_AnErrorEventMidStream_EndsWithAnExceptionFrame()
    {
        _upstream.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart() + Fake.Event("error", """{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"""));
        };

        using var response = await _relay.Client.SendAsync(Post("/model/m/invoke-with-response-stream", BedrockBody));

        var frames = await SmithyEventStream.DecodeAsync(await response.Content.ReadAsByteArrayAsync());
        Assert.Equal(2, frames.Count);
        var last = frames[^1];
        Assert.Contains(last.Headers, h => h.Name == ":message-type" && h.Value?.GetValue<string>() == "exception");
        Assert.Contains(last.Headers, h => h.Name == ":exception-type" && h.Value?.GetValue<string>() == "serviceUnavailableException");
        Assert.Equal("""{"message":"Overloaded"}""", Encoding.UTF8.GetString(last.Payload));
    }

    [Fact]
    public async Task Invoke_AnswersTheMessageJson_AndUpstreamErrorsInBedrocksShape()
    {
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson());
        using (var response = await _relay.Client.SendAsync(Post("/model/m/invoke", BedrockBody)))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(Fake.MessageJson(), await response.Content.ReadAsStringAsync());
            Assert.Contains("\"stream\":false", Encoding.UTF8.GetString(_upstream.Requests[^1].Body), StringComparison.Ordinal);
        }

        _upstream.Handler = context => Fake.WriteJsonAsync(context, 400, """{"type":"error","error":{"type":"invalid_request_error","message":"messages: bad \"x\""}}""");
        using (var response = await _relay.Client.SendAsync(Post("/model/m/invoke", BedrockBody)))
        {
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal("ValidationException", response.Headers.GetValues("x-amzn-ErrorType").Single());
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal("messages: bad \"x\"", body.RootElement.GetProperty("message").GetString());
        }
    }

    [Fact]
    public async Task WithoutTheRelaysCredential_ModelCallsAndProfiles_AreRefusedInBedrocksShape_NothingGoesUpstream()
    {
        foreach (var request in new[]
                 {
                     Post("/model/m/invoke", BedrockBody, bearer: null),
                     Post("/model/m/count-tokens", """{"input":{"invokeModel":{"body":"e30="}}}""", bearer: "wrong"),
                     new HttpRequestMessage(HttpMethod.Get, "/inference-profiles?type=SYSTEM_DEFINED"),
                 })
        {
            using var response = await _relay.Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("UnrecognizedClientException", response.Headers.GetValues("x-amzn-ErrorType").Single());
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.False(string.IsNullOrEmpty(body.RootElement.GetProperty("message").GetString()));
        }

        Assert.Empty(_upstream.Requests);
    }

    [Fact]
    public async Task InferenceProfiles_ListTheConfiguredModels_AndResolveAnId()
    {
        var list = new HttpRequestMessage(HttpMethod.Get, "/inference-profiles?type=SYSTEM_DEFINED");
        list.Headers.Authorization = new AuthenticationHeaderValue("Bearer", RelayKey);
        using (var response = await _relay.Client.SendAsync(list))
        {
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            var profile = Assert.Single(body.RootElement.GetProperty("inferenceProfileSummaries").EnumerateArray());
            Assert.Equal("us.anthropic.claude-test-v1:0", profile.GetProperty("inferenceProfileId").GetString());
        }

        var get = new HttpRequestMessage(HttpMethod.Get, "/inference-profiles/us.anthropic.claude-test-v1:0");
        get.Headers.Authorization = new AuthenticationHeaderValue("Bearer", RelayKey);
        using (var response = await _relay.Client.SendAsync(get))
        {
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.EndsWith("/anthropic.claude-test-v1:0", body.RootElement.GetProperty("models")[0].GetProperty("modelArn").GetString(), StringComparison.Ordinal);
        }

        Assert.Empty(_upstream.Requests);
    }

    [Fact]
    public async Task CountTokens_UnwrapsTheInvokeModelBody_AndAnswersInputTokens()
    {
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, """{"input_tokens":7}""");
        var inner = Convert.ToBase64String(Encoding.UTF8.GetBytes(BedrockBody));

        using var response = await _relay.Client.SendAsync(Post("/model/anthropic.m/count-tokens", """{"input":{"invokeModel":{"body":""" + "\"" + inner + "\"}}}"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("""{"inputTokens":7}""", await response.Content.ReadAsStringAsync());
        var seen = Assert.Single(_upstream.Requests);
        Assert.Equal("/v1/messages/count_tokens", seen.PathAndQuery);
        Assert.Equal("""{"model":"anthropic.m","messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8.GetString(seen.Body));
    }

    [Fact]
    public async Task VertexStreamRawPredict_AnswersSseUnchanged_TheModelFromThePath()
    {
        var sse = Fake.MessageStart() + Fake.Ping + Fake.TextBlock(0, "hi") + Fake.MessageEnd();
        _upstream.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, sse);
        };
        var request = Post(
            "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-x@20250101:streamRawPredict",
            """{"anthropic_version":"vertex-2023-10-16","stream":true,"max_tokens":8,"messages":[]}""",
            bearer: null);
        request.Headers.TryAddWithoutValidation("x-api-key", RelayKey);

        using var response = await _relay.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(sse, await response.Content.ReadAsStringAsync());
        var seen = Assert.Single(_upstream.Requests);
        // a versioned Vertex id is routed by its Claude name (Ingress.vertexRoutedModel)
        Assert.Equal("""{"model":"claude-x-20250101","stream":true,"max_tokens":8,"messages":[]}""", Encoding.UTF8.GetString(seen.Body));
        Assert.Equal("2023-06-01", seen.Header("anthropic-version"));
    }
}
