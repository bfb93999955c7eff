using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;

namespace CcRelay.Host.Tests.Clouds;

/// <summary>
/// The relay → a fake Bedrock as strict as the real one where it matters: the SigV4 signature is checked over the
/// request exactly as it arrived (raw target, headers, body), the path carries the Bedrock model id, the body is
/// Bedrock's shape, and answers come as AWS event streams or Bedrock's error shape.
/// </summary>
public sealed class BedrockTests : TwoUpstreamTests
{
    private const string AccessKeyId = "AKIDRELAYTEST";
    private const string SecretAccessKey = "bedrock-test-secret";
    private const string Region = "us-east-1";
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    private ProviderConfig Bedrock(Uri baseUrl, IEnumerable<string>? keys = null) =>
        TestConfig.Provider(
            "bedrock",
            baseUrl,
            ProviderType.Bedrock,
            keys: keys,
            cloud: CloudSettings.NewBedrock(new BedrockSettings(
                Region,
                AwsCredentialSource.NewStatic(AccessKeyId, SecretAccessKey, FSharpOption<string>.None),
                BedrockApi.Invoke,
                CcRelay.Core.Bedrock.defaultBetas)));

    private Task<RelayHost> RelayAsync(params ProviderConfig[] providers) => RelayHost.StartAsync(TestConfig.Relay(providers), pingInterval: TimeSpan.FromMilliseconds(200));

    /// <summary>Bedrock (A) first, an Anthropic-compatible provider (B) to fail over to.</summary>
    private Task<RelayHost> BedrockThenAnthropicAsync() =>
        RelayAsync(Bedrock(A.BaseUrl), TestConfig.Provider("anthropic", B.BaseUrl, ProviderType.AnthropicCompatible, keys: ["b-key"]));

    /// <summary>Two streaming requests, one after the other: what the client read of each.</summary>
    private static async Task<(string First, string Second)> TwoStreamsAsync(RelayHost relay)
    {
        using var first = await relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody));
        var firstText = await first.Content.ReadAsStringAsync();
        using var second = await relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody));
        return (firstText, await second.Content.ReadAsStringAsync());
    }

    /// <summary>What the real Bedrock does first: a request whose signature does not verify is refused with 403.</summary>
    private static bool SignatureVerifies(UpstreamRequest request, Uri baseUrl, string accessKeyId = AccessKeyId, string secretAccessKey = SecretAccessKey)
    {
        var authorization = request.Header("authorization") ?? "";
        var amzDate = request.Header("x-amz-date") ?? "";
        if (!authorization.StartsWith("AWS4-HMAC-SHA256 Credential=" + accessKeyId + "/", StringComparison.Ordinal) || amzDate.Length == 0)
        {
            return false;
        }

        var date = DateTimeOffset.ParseExact(amzDate, "yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
        var signed = new List<Tuple<string, string>>();
        foreach (var (name, value) in request.Headers)
        {
            if (name == "content-type" || (name.StartsWith("x-amz-", StringComparison.Ordinal) && name is not "x-amz-date" and not "x-amz-content-sha256"))
            {
                signed.Add(Tuple.Create(name, value));
            }
        }

        var url = CcRelay.Core.Bedrock.url(baseUrl, request.RawTarget);
        var expected = SigV4.sign(
            new AwsCredentials(accessKeyId, secretAccessKey, FSharpOption<string>.None),
            Region,
            "bedrock",
            date,
            "POST",
            url,
            ListModule.OfSeq(signed),
            SigV4.sha256Hex(request.Body));
        return expected.Any(h => h.Item1 == "authorization" && h.Item2 == authorization)
            && request.Header("x-amz-content-sha256") == SigV4.sha256Hex(request.Body);
    }

    private static async Task WriteEventStreamAsync(HttpContext context, IEnumerable<string> events, int chunk = 7)
    {
        context.Response.StatusCode = 200;
        context.Response.ContentType = "application/vnd.amazon.eventstream";
        context.Response.Headers["x-amzn-bedrock-content-type"] = "application/json";
        await context.Response.StartAsync();
        foreach (var json in events)
        {
            var frame = EventStream.encode(BedrockAnswer.chunkOfEvent(Encoding.UTF8.GetBytes(json)));

            // frames split anywhere, as TCP may deliver them
            for (var at = 0; at < frame.Length; at += chunk)
            {
                await context.Response.Body.WriteAsync(frame.AsMemory(at, Math.Min(chunk, frame.Length - at)));
                await context.Response.Body.FlushAsync();
            }
        }
    }

    private static string[] StreamEvents(string text) =>
    [
        """{"type":"message_start","message":{"id":"msg_bdrk_1","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}""",
        """{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}""",
        """{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me think."}}""",
        """{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCkYIBxgCKkBsig=="}}""",
        """{"type":"content_block_stop","index":0}""",
        """{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}""",
        """{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":""" + Fake.Quote(text) + "}}",
        """{"type":"content_block_stop","index":1}""",
        """{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":7}}""",
        """{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":12,"outputTokenCount":7,"invocationLatency":80,"firstByteLatency":20}}""",
    ];

    private static string Sse(IEnumerable<string> events) =>
        string.Concat(events.Select(json => "event: " + JsonDocument.Parse(json).RootElement.GetProperty("type").GetString() + "\ndata: " + json + "\n\n"));

    [Fact]
    public async Task Stream_IsSignedAndReshaped_AndTheEventStreamReachesTheClientAsTheExactAnthropicEvents()
    {
        // Arrange
        var events = StreamEvents("from bedrock");
        A.Handler = context => SignatureVerifies(FakeUpstream.Current(context), A.BaseUrl)
            ? WriteEventStreamAsync(context, events)
            : Fake.WriteJsonAsync(context, 403, """{"message":"The request signature we calculated does not match the signature you provided."}""");
        await using var relay = await RelayAsync(Bedrock(A.BaseUrl));
        using var request = Requests.Messages(Requests.StreamingBody);
        request.Headers.TryAddWithoutValidation("anthropic-beta", "interleaved-thinking-2025-05-14,claude-code-20250219");

        // Act
        using var response = await relay.Client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();

        // Assert: the client's stream is Anthropic's, event for event, byte for byte
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(Sse(events), text);
        Assert.Equal("claude-code-20250219", response.Headers.GetValues("x-cc-relay-dropped-betas").Single());

        // and the upstream got Bedrock's request
        var sent = Assert.Single(A.Requests);
        Assert.Equal("/model/us.anthropic.claude-sonnet-4-6/invoke-with-response-stream", sent.RawTarget);
        Assert.Null(sent.Header("anthropic-beta"));
        Assert.Null(sent.Header("x-api-key"));
        var body = JsonDocument.Parse(sent.Body).RootElement;
        Assert.False(body.TryGetProperty("model", out _));
        Assert.False(body.TryGetProperty("stream", out _));
        Assert.Equal("bedrock-2023-05-31", body.GetProperty("anthropic_version").GetString());
        Assert.Equal(["interleaved-thinking-2025-05-14"], body.GetProperty("anthropic_beta").EnumerateArray().Select(b => b.GetString()));
        Assert.Equal(64, body.GetProperty("max_tokens").GetInt32());
    }

    [Fact]
    public async Task Json_WithABedrockApiKey_IsABearerRequestToInvoke_AndTheMessageIsRelayed()
    {
        // Arrange
        A.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("plain from bedrock"));
        await using var relay = await RelayAsync(Bedrock(A.BaseUrl, keys: ["bedrock-api-key-1"]));

        // Act
        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody));

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("plain from bedrock", await response.Content.ReadAsStringAsync());
        var sent = Assert.Single(A.Requests);
        Assert.Equal("/model/us.anthropic.claude-sonnet-4-6/invoke", sent.RawTarget);
        Assert.Equal("Bearer bedrock-api-key-1", sent.Header("authorization"));
        Assert.Null(sent.Header("x-amz-date"));
    }

    [Fact]
    public async Task AnArnModelId_IsSentWithItsSlashEncoded_AndSignedOverThatExactPath()
    {
        // Arrange
        const string arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123";
        A.Handler = context => SignatureVerifies(FakeUpstream.Current(context), A.BaseUrl)
            ? Fake.WriteJsonAsync(context, 200, Fake.MessageJson("arn ok"))
            : Fake.WriteJsonAsync(context, 403, """{"message":"signature mismatch"}""");
        var provider = Bedrock(A.BaseUrl);
        var mapped = TestConfig.Provider("bedrock", A.BaseUrl, ProviderType.Bedrock, modelMapping: new Dictionary<string, string> { ["claude-sonnet-4-6"] = arn }, cloud: provider.Cloud);
        await using var relay = await RelayAsync(mapped);

        // Act
        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody));

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("/model/arn:aws:bedrock:us-east-1:123456789012:application-inference-profile%2Fabc123/invoke", Assert.Single(A.Requests).RawTarget);
    }

    [Fact]
    public async Task AValidationException_ReachesTheClientAsAnAnthropicError_WithBedrocksMessage()
    {
        // Arrange
        A.Handler = context =>
        {
            context.Response.Headers["x-amzn-ErrorType"] = "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/";
            return Fake.WriteJsonAsync(context, 400, """{"message":"messages.0.content: Extra inputs are not permitted"}""");
        };
        await using var relay = await RelayAsync(Bedrock(A.BaseUrl));

        // Act
        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody));

        // Assert
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("error", error.GetProperty("type").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal("messages.0.content: Extra inputs are not permitted", error.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task TwoAwsCredentialSets_PoolAsKeys_AThrottledSetCoolsDown_AndTheOtherSignsTheRetry()
    {
        // Arrange: two accounts' credential sets in one provider's pool; the first account is throttled
        static KeyConfig CredentialSet(string id, string secret) =>
            new("aws:" + id + ":" + secret, 0, 0, 0, 0, 0, 1, FSharpOption<AwsCredentialSource>.Some(AwsCredentialSource.NewStatic(id, secret, FSharpOption<string>.None)));
        A.Handler = context =>
        {
            var request = FakeUpstream.Current(context);
            if (SignatureVerifies(request, A.BaseUrl, "AKIDSETONE", "secret-one"))
            {
                context.Response.Headers["x-amzn-ErrorType"] = "ThrottlingException";
                return Fake.WriteJsonAsync(context, 429, """{"message":"Too many requests, please wait before trying again."}""");
            }

            return SignatureVerifies(request, A.BaseUrl, "AKIDSETTWO", "secret-two")
                ? WriteEventStreamAsync(context, StreamEvents("signed by set two"))
                : Fake.WriteJsonAsync(context, 403, """{"message":"The request signature we calculated does not match the signature you provided."}""");
        };
        var provider = Bedrock(A.BaseUrl).WithKeys(CredentialSet("AKIDSETONE", "secret-one"), CredentialSet("AKIDSETTWO", "secret-two"));
        await using var relay = await RelayAsync(provider);

        // Act
        var (firstText, secondText) = await TwoStreamsAsync(relay);

        // Assert: both answered by set two; set one was tried at most once (then cooled down), never the provider's own keys
        Assert.Contains("signed by set two", firstText);
        Assert.Contains("signed by set two", secondText);
        var accounts = A.Requests.Select(r => (r.Header("authorization") ?? "").Split('/')[0]).ToList();
        Assert.True(accounts.Count(a => a.EndsWith("AKIDSETONE", StringComparison.Ordinal)) <= 1, string.Join(", ", accounts));
        Assert.Equal(2, accounts.Count(a => a.EndsWith("AKIDSETTWO", StringComparison.Ordinal)));
        Assert.DoesNotContain(accounts, a => a.EndsWith(AccessKeyId, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Throttling_FailsOverToAnthropic_AndBackOnceBedrockServesAgain()
    {
        // Arrange: Bedrock throttles the first request, then serves
        var throttled = 0;
        A.Handler = context =>
        {
            if (Interlocked.Increment(ref throttled) == 1)
            {
                context.Response.Headers["x-amzn-ErrorType"] = "ThrottlingException";
                return Fake.WriteJsonAsync(context, 429, """{"message":"Too many requests, please wait before trying again."}""");
            }

            return WriteEventStreamAsync(context, StreamEvents("bedrock again"));
        };
        B.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart() + Fake.TextBlock(0, "from anthropic") + Fake.MessageEnd());
        };
        await using var relay = await BedrockThenAnthropicAsync();

        // Act
        var (firstText, secondText) = await TwoStreamsAsync(relay);

        // Assert
        Assert.Contains("from anthropic", firstText);
        Assert.DoesNotContain("Too many requests", firstText);
        Assert.Contains("bedrock again", secondText);
        Assert.Equal(2, A.Requests.Count);
        Assert.Single(B.Requests);
    }

    [Fact]
    public async Task AnExceptionFrameAsFirstEvent_FailsOver_WhileOneAfterContent_EndsTheStreamWithAnSseError()
    {
        // Arrange: request 1 gets an exception frame before anything else; request 2 after its first content
        var calls = 0;
        A.Handler = async context =>
        {
            var call = Interlocked.Increment(ref calls);
            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/vnd.amazon.eventstream";
            await context.Response.StartAsync();
            var events = StreamEvents("partial");
            if (call == 2)
            {
                foreach (var json in events.Take(7))
                {
                    await context.Response.Body.WriteAsync(EventStream.encode(BedrockAnswer.chunkOfEvent(Encoding.UTF8.GetBytes(json))));
                }
            }

            await context.Response.Body.WriteAsync(EventStream.encode(BedrockAnswer.exceptionOf(ErrorType.Overloaded, "Bedrock is unable to process your request.")));
        };
        await using var relay = await BedrockThenAnthropicAsync();

        // Act
        var (firstText, secondText) = await TwoStreamsAsync(relay);

        // Assert
        Assert.Contains("from-b", firstText);
        Assert.Contains("partial", secondText);
        Assert.EndsWith("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Bedrock is unable to process your request.\"}}\n\n", secondText);
    }

    [Fact]
    public async Task CountTokens_GoesToBedrocksCountTokens_AndAnswersInAnthropicsShape()
    {
        // Arrange
        A.Handler = context => SignatureVerifies(FakeUpstream.Current(context), A.BaseUrl)
            ? Fake.WriteJsonAsync(context, 200, """{"inputTokens":42}""")
            : Fake.WriteJsonAsync(context, 403, """{"message":"signature mismatch"}""");
        await using var relay = await RelayAsync(Bedrock(A.BaseUrl));

        // Act
        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody, path: "/v1/messages/count_tokens?beta=true"));

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("""{"input_tokens":42}""", await response.Content.ReadAsStringAsync());
        var sent = Assert.Single(A.Requests);
        Assert.Equal("/model/us.anthropic.claude-sonnet-4-6/count-tokens", sent.RawTarget);
        var wrapped = JsonDocument.Parse(sent.Body).RootElement.GetProperty("input").GetProperty("invokeModel").GetProperty("body").GetString()!;
        var inner = JsonDocument.Parse(Convert.FromBase64String(wrapped)).RootElement;
        Assert.Equal("bedrock-2023-05-31", inner.GetProperty("anthropic_version").GetString());
        Assert.False(inner.TryGetProperty("model", out _));
    }

    [Fact]
    public async Task ASilentBedrockStream_GetsKeepAlives_SoTheClientKeepsWaiting()
    {
        // Arrange: after message_start and a thinking block's start, Bedrock is silent until the client has seen a
        // keep-alive: an empty thinking delta (Claude Code's idle watchdog does not count pings)
        var sawPing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var events = StreamEvents("after the silence");
        A.Handler = async context =>
        {
            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/vnd.amazon.eventstream";
            await context.Response.StartAsync();
            foreach (var json in events.Take(2))
            {
                await context.Response.Body.WriteAsync(EventStream.encode(BedrockAnswer.chunkOfEvent(Encoding.UTF8.GetBytes(json))));
            }

            await context.Response.Body.FlushAsync();
            await sawPing.Task.WaitAsync(TimeSpan.FromSeconds(60));
            foreach (var json in events.Skip(2))
            {
                await context.Response.Body.WriteAsync(EventStream.encode(BedrockAnswer.chunkOfEvent(Encoding.UTF8.GetBytes(json))));
            }
        };
        await using var relay = await RelayAsync(Bedrock(A.BaseUrl));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        // Act
        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody), HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        var reader = new SseClientReader(await response.Content.ReadAsStreamAsync(timeout.Token));
        var seen = new List<string>();
        while (await reader.NextAsync(timeout.Token) is { } next)
        {
            seen.Add(next);
            if (next.Contains("\"thinking\":\"\"}", StringComparison.Ordinal))
            {
                sawPing.TrySetResult();
            }
        }

        // Assert
        Assert.Equal("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"\"}}\n\n", seen[2]);
        Assert.DoesNotContain(seen, e => e.StartsWith("event: ping\n", StringComparison.Ordinal));
        Assert.Contains(seen, e => e.Contains("after the silence", StringComparison.Ordinal));
        Assert.StartsWith("event: message_stop\n", seen[^1]);
    }
}
