using System.Net;
using System.Net.Sockets;
using System.Text;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests;

public sealed class ForwardingTests : IAsyncLifetime
{
    private FakeUpstream _upstream = null!;

    public async Task InitializeAsync() => _upstream = await FakeUpstream.StartAsync();

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    private Task<RelayHost> RelayAsync(
        ProviderType? type = null,
        IDictionary<string, string>? mapping = null,
        string[]? keys = null,
        int firstByteTimeoutMs = 120_000) =>
        RelayHost.StartAsync(TestConfig.Relay(
            [TestConfig.Provider("fake", _upstream.BaseUrl, type, keys ?? ["upstream-key"], mapping)],
            firstByteTimeoutMs: firstByteTimeoutMs));

    [Fact]
    public async Task Json_WithoutContentLength_ClientHasTheWholeAnswer_BeforeTheRelayHasAccountedForIt()
    {
        // Arrange: the upstream answers in two chunks without Content-Length, so the client knows the answer is over
        // only from the last chunk; the response body's debug line (logged on the request's thread once the body is
        // relayed, before the accounting) waits until the client has it
        var json = Fake.MessageJson("in two chunks");
        _upstream.Handler = async context =>
        {
            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/json";
            await Fake.WriteAsync(context, json[..20]);
            await Fake.WriteAsync(context, json[20..]);
        };
        await using var relay = await RelayHost.StartAsync(
            TestConfig.Relay([TestConfig.Provider("fake", _upstream.BaseUrl, keys: ["upstream-key"])])
                .With(logging: TestConfig.Logging(CcRelay.Core.LogLevel.Debug, debugAll: true)));
        var clientHasTheEnd = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var lineWaitedForTheClient = relay.Logs.HoldLineUntil(43, clientHasTheEnd.Task);

        // Act
        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody));
        var text = await response.Content.ReadAsStringAsync();
        clientHasTheEnd.SetResult();

        // Assert: relayed chunked, whole, and ended while the relay's thread was still at its debug line
        Assert.True(response.Headers.TransferEncodingChunked);
        Assert.Equal(json, text);
        Assert.True(await lineWaitedForTheClient.WaitAsync(TimeSpan.FromSeconds(15)), "the client had its answer only after the relay's thread moved on");
        Assert.Equal(2L, (await relay.Logs.RequestLinesAsync()).Single().Fields["output_tokens"]);
    }

    [Fact]
    public async Task Body_ReachesUpstreamByteForByte_UnknownFieldsSystemRoleAndThinkingIntact()
    {
        // odd spacing, key order, escapes, a role:"system" entry and a signed thinking block
        var body = """
            {"messages":[{"role":"user","content":"hi \u00e9 \"q\""},{"role":"system","content":"mid"},
              {"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"EqQBsig=="}]}],
             "model" : "claude-sonnet-4-6", "future_field":{"x":[1,2.50,1e3]},"max_tokens":10}
            """;
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson());
        await using var relay = await RelayAsync();

        using var response = await relay.Client.SendAsync(Requests.Messages(body));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(Encoding.UTF8.GetBytes(body), _upstream.Requests.Single().Body);
    }

    [Fact]
    public async Task ModelMapping_RewritesOnlyTheModelValue()
    {
        var body = """{"model":"claude-opus-4-6","max_tokens":10,"messages":[{"role":"user","content":"model claude-opus-4-6"}]}""";
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson());
        await using var relay = await RelayAsync(mapping: new Dictionary<string, string> { ["claude-opus-4-6"] = "GLM-5" });

        using var response = await relay.Client.SendAsync(Requests.Messages(body));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(body.Replace("\"model\":\"claude-opus-4-6\"", "\"model\":\"GLM-5\""), Encoding.UTF8.GetString(_upstream.Requests.Single().Body));
    }

    [Fact]
    public async Task PathAndQueryString_AreForwarded_AfterTheBaseUrlPrefix()
    {
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, "{\"input_tokens\":12}");
        var prefixed = new Uri(_upstream.BaseUrl, "/api/anthropic");
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay([TestConfig.Provider("fake", prefixed, keys: ["k"])]));

        using var messages = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody, "/v1/messages?beta=true"));
        using var count = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody, "/v1/messages/count_tokens?beta=true"));

        Assert.Equal(["/api/anthropic/v1/messages?beta=true", "/api/anthropic/v1/messages/count_tokens?beta=true"], _upstream.Requests.Select(r => r.PathAndQuery));
        Assert.Equal("{\"input_tokens\":12}", await count.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Headers_EndToEndForwarded_HopByHopAndClientCredentialDropped()
    {
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson());
        await using var relay = await RelayAsync();
        var request = Requests.Messages(Requests.PlainBody, apiKey: "sk-ant-client-own");
        request.Headers.TryAddWithoutValidation("anthropic-beta", "claude-code-20250219,interleaved-thinking-2025-05-14");
        request.Headers.TryAddWithoutValidation("x-claude-code-session-id", "sess-1");
        request.Headers.TryAddWithoutValidation("x-unknown-header", "kept");
        request.Headers.TryAddWithoutValidation("Proxy-Authorization", "Basic c2VjcmV0");
        request.Headers.TryAddWithoutValidation("Keep-Alive", "timeout=5");
        request.Headers.TryAddWithoutValidation("TE", "trailers");
        request.Headers.TryAddWithoutValidation("Connection", "x-unknown-header-2");

        using var response = await relay.Client.SendAsync(request);

        var seen = _upstream.Requests.Single();
        Assert.Equal("2023-06-01", seen.Header("anthropic-version"));
        Assert.Equal("claude-code-20250219,interleaved-thinking-2025-05-14", seen.Header("anthropic-beta"));
        Assert.Equal("sess-1", seen.Header("x-claude-code-session-id"));
        Assert.Equal("kept", seen.Header("x-unknown-header"));
        Assert.Equal("upstream-key", seen.Header("x-api-key"));
        Assert.Null(seen.Header("proxy-authorization"));
        Assert.Null(seen.Header("keep-alive"));
        Assert.Null(seen.Header("te"));
        Assert.Null(seen.Header("authorization"));
        Assert.DoesNotContain(seen.Headers.Values, v => v.Contains("sk-ant-client-own", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Headers_MinimaxStyleProvider_GetsBearerKey()
    {
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson());
        await using var relay = await RelayAsync(type: ProviderType.Minimax, keys: ["mm-key"]);

        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody));

        Assert.Equal("Bearer mm-key", _upstream.Requests.Single().Header("authorization"));
        Assert.Null(_upstream.Requests.Single().Header("x-api-key"));
    }

    [Fact]
    public async Task NonStreaming_StatusHeadersAndBodyComeBackUnchanged()
    {
        var json = Fake.MessageJson("exact");
        _upstream.Handler = context =>
        {
            context.Response.Headers["request-id"] = "req_upstream_1";
            context.Response.Headers["anthropic-ratelimit-requests-remaining"] = "41";
            return Fake.WriteJsonAsync(context, 200, json);
        };
        await using var relay = await RelayAsync();

        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(json, await response.Content.ReadAsStringAsync());
        Assert.Equal("req_upstream_1", response.Headers.GetValues("request-id").Single());
        Assert.Equal("41", response.Headers.GetValues("anthropic-ratelimit-requests-remaining").Single());
        Assert.Equal(json.Length, response.Content.Headers.ContentLength);
    }

    [Fact]
    public async Task UpstreamError_IsPassedThroughUnchanged_WithRetryAfter()
    {
        var error = """{"type":"error","error":{"type":"rate_limit_error","message":"Number of requests has exceeded your per-minute rate limit"},"request_id":"req_x"}""";
        _upstream.Handler = context =>
        {
            context.Response.Headers.RetryAfter = "17";
            return Fake.WriteJsonAsync(context, 429, error);
        };
        await using var relay = await RelayAsync();

        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody));

        Assert.Equal((HttpStatusCode)429, response.StatusCode);
        Assert.Equal("17", response.Headers.GetValues("retry-after").Single());
        Assert.Equal(error, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task UpstreamUnreachable_Answers502ApiError()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var closedPort = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay([TestConfig.Provider("down", new Uri($"http://127.0.0.1:{closedPort}"), keys: ["k"])]));

        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Contains("\"type\":\"api_error\"", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task UpstreamSendsNoHeaders_WithinFirstByteTimeout_Answers504TimeoutError()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _upstream.Handler = async context =>
        {
            try
            {
                await release.Task.WaitAsync(context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
            }
        };
        await using var relay = await RelayAsync(firstByteTimeoutMs: 300);

        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody));
        release.SetResult();

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal(
            """{"type":"error","error":{"type":"timeout_error","message":"upstream sent no response headers within 300 ms"}}""",
            await response.Content.ReadAsStringAsync());
    }
}
