using System.Net;
using System.Text.Json;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests;

public sealed class SurfaceTests : IAsyncLifetime
{
    private FakeUpstream _upstream = null!;
    private RelayHost _relay = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson());
        _relay = await RelayHost.StartAsync(TestConfig.Relay(
            [
                TestConfig.Provider("a", _upstream.BaseUrl, keys: ["k"], models: ["m-1", "m-2", "m-3"]),
                TestConfig.Provider("b", _upstream.BaseUrl, keys: ["k"], models: ["m-3", "m-4", "m-5"]),
                TestConfig.Provider("off", _upstream.BaseUrl, keys: ["k"], models: ["hidden"], enabled: false),
            ],
            maxBodyBytes: 1000));
    }

    public async Task DisposeAsync()
    {
        await _relay.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private static async Task<(string Type, string Message)> ErrorOf(HttpResponseMessage response)
    {
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("error", json.RootElement.GetProperty("type").GetString());
        var error = json.RootElement.GetProperty("error");
        return (error.GetProperty("type").GetString()!, error.GetProperty("message").GetString()!);
    }

    [Theory]
    [InlineData("not json at all", "invalid_request_error")]
    [InlineData("[1,2]", "invalid_request_error")]
    [InlineData("""{"max_tokens":5}""", "invalid_request_error")]
    [InlineData("""{"model":42}""", "invalid_request_error")]
    [InlineData("""{"model":"x",""", "invalid_request_error")]
    public async Task BadBody_Answers400_WithoutCallingUpstream(string body, string errorType)
    {
        using var response = await _relay.Client.SendAsync(Requests.Messages(body));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(errorType, (await ErrorOf(response)).Type);
        Assert.Empty(_upstream.Requests);
    }

    [Fact]
    public async Task BodyOverLimit_Answers413_RequestTooLarge()
    {
        var body = "{\"model\":\"x\",\"pad\":\"" + new string('a', 2000) + "\"}";

        using var response = await _relay.Client.SendAsync(Requests.Messages(body));

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("request_too_large", (await ErrorOf(response)).Type);
        Assert.Empty(_upstream.Requests);
    }

    [Fact]
    public async Task UnknownRoute_Answers404_InEnvelope()
    {
        using var response = await _relay.Client.GetAsync("/v1/nope");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("not_found_error", (await ErrorOf(response)).Type);
    }

    [Theory]
    [InlineData("GET", "/v1/messages", "POST")]
    [InlineData("PUT", "/v1/messages/count_tokens", "POST")]
    [InlineData("POST", "/v1/models", "GET, HEAD")]
    [InlineData("DELETE", "/health", "GET, HEAD")]
    public async Task WrongMethod_Answers405_WithAllow(string method, string path, string allow)
    {
        using var response = await _relay.Client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));

        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Equal(allow, string.Join(", ", response.Content.Headers.Allow));
        Assert.Equal("invalid_request_error", (await ErrorOf(response)).Type);
    }

    [Theory]
    [InlineData("HEAD")]
    [InlineData("GET")]
    public async Task Root_Answers200_WithoutAuth(string method)
    {
        using var response = await _relay.Client.SendAsync(new HttpRequestMessage(new HttpMethod(method), "/"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Health_ReportsVersionAndProviders()
    {
        using var response = await _relay.Client.GetAsync("/health");
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("ok", json.RootElement.GetProperty("status").GetString());
        Assert.Equal(RelayInfo.Version, json.RootElement.GetProperty("version").GetString());
        Assert.Equal(["a:up", "b:up", "off:disabled"], json.RootElement.GetProperty("providers").EnumerateArray()
            .Select(p => p.GetProperty("name").GetString() + ":" + p.GetProperty("status").GetString()));
    }

    [Fact]
    public async Task Health_WithNoEnabledProvider_Answers503()
    {
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay([TestConfig.Provider("off", _upstream.BaseUrl, enabled: false)]));

        using var response = await relay.Client.GetAsync("/health");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
    }

    [Fact]
    public async Task Models_ListsEnabledProvidersModels_InAnthropicShape_WithPaging()
    {
        using var first = await _relay.Client.GetAsync("/v1/models?limit=2");
        using var firstJson = JsonDocument.Parse(await first.Content.ReadAsStringAsync());
        var root = firstJson.RootElement;

        Assert.Equal(["m-1", "m-2"], root.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()));
        Assert.True(root.GetProperty("has_more").GetBoolean());
        Assert.Equal("m-1", root.GetProperty("first_id").GetString());
        Assert.Equal("m-2", root.GetProperty("last_id").GetString());
        var model = root.GetProperty("data")[0];
        Assert.Equal("model", model.GetProperty("type").GetString());
        Assert.Equal("m-1", model.GetProperty("display_name").GetString());
        Assert.True(DateTimeOffset.TryParse(model.GetProperty("created_at").GetString(), out _));

        using var next = await _relay.Client.GetAsync("/v1/models?limit=10&after_id=m-2");
        using var nextJson = JsonDocument.Parse(await next.Content.ReadAsStringAsync());
        Assert.Equal(["m-3", "m-4", "m-5"], nextJson.RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()));
        Assert.False(nextJson.RootElement.GetProperty("has_more").GetBoolean());
    }

    [Fact]
    public async Task Models_GetOne_And_Unknown404_And_BadLimit400()
    {
        using var one = await _relay.Client.GetAsync("/v1/models/m-4");
        using var missing = await _relay.Client.GetAsync("/v1/models/hidden");
        using var bad = await _relay.Client.GetAsync("/v1/models?limit=0");

        Assert.Equal("m-4", JsonDocument.Parse(await one.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString());
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
    }

    [Fact]
    public async Task RequestId_IsEchoedOrGenerated_AndOneLogLinePerRequest()
    {
        var request = Requests.Messages(Requests.PlainBody);
        request.Headers.TryAddWithoutValidation("X-Request-ID", "trace-123");

        using var echoed = await _relay.Client.SendAsync(request);
        using var generated = await _relay.Client.SendAsync(Requests.Messages(Requests.PlainBody));

        Assert.Equal("trace-123", echoed.Headers.GetValues("x-request-id").Single());
        Assert.StartsWith("req_", generated.Headers.GetValues("x-request-id").Single());
        Assert.Equal("trace-123", _upstream.Requests[0].Header("x-request-id"));
        var lines = await _relay.Logs.RequestLinesAsync(2);
        Assert.Equal(2, lines.Count);
        var line = lines.Single(l => (string?)l.Fields["request_id"] == "trace-123");
        Assert.Equal("a", line.Fields["provider"]);
        Assert.Equal("claude-sonnet-4-6", line.Fields["model"]);
        Assert.Equal(200, line.Fields["status"]);
        Assert.Equal(false, line.Fields["stream"]);
        Assert.True((double)line.Fields["ttfb_ms"]! >= 0);
        Assert.True((long)line.Fields["bytes_out"]! > 0);
    }
}
