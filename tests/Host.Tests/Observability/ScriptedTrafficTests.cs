using System.Net;
using System.Text;
using CcRelay.Host.Tests.Infrastructure;
using CcRelay.Host.Tests.Metrics;
using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Tests.Observability;

/// <summary>
/// Real requests of known kinds through the relay, then a scrape of <c>/metrics</c>: every counter moved by
/// exactly the requests sent, every histogram counted them, and the exposition passes <c>promtool check metrics</c>.
/// </summary>
public sealed class ScriptedTrafficTests : IAsyncLifetime
{
    private const string Sonnet = "claude-sonnet-4-6";
    private const string RelayKey = "relay-secret-key";
    private FakeUpstream _upstream = null!;
    private RelayHost _relay = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _upstream.Handler = AnswerAsync;
        _relay = await RelayHost.StartAsync(TestConfig.Relay(
            [TestConfig.Provider("fake", _upstream.BaseUrl, keys: ["sk-fake-provider"])],
            apiKey: RelayKey,
            routing: TestConfig.Routing(maxAttempts: 1, debug: false)));
    }

    public async Task DisposeAsync()
    {
        await _relay.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    /// <summary>The fake upstream answers by the kind written in the request's message.</summary>
    private static async Task AnswerAsync(HttpContext context)
    {
        var body = Encoding.UTF8.GetString(FakeUpstream.Current(context).Body);
        if (body.Contains("kind=stream-ok", StringComparison.Ordinal))
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart(Sonnet) + Fake.TextBlock(0, "hi") + Fake.MessageEnd(outputTokens: 5));
        }
        else if (body.Contains("kind=json-ok", StringComparison.Ordinal))
        {
            await Fake.WriteJsonAsync(context, 200, Fake.MessageJson(model: Sonnet));
        }
        else if (body.Contains("kind=json-unpriced", StringComparison.Ordinal))
        {
            await Fake.WriteJsonAsync(context, 200, Fake.MessageJson(model: "glm-5"));
        }
        else if (body.Contains("kind=upstream-400", StringComparison.Ordinal))
        {
            await Fake.WriteJsonAsync(context, 400, """{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}""");
        }
        else if (body.Contains("kind=upstream-529", StringComparison.Ordinal))
        {
            await Fake.WriteJsonAsync(context, 529, """{"type":"error","error":{"type":"overloaded_error","message":"busy"}}""");
        }
        else
        {
            context.Abort(); // kind=upstream-drop: the connection dies before any answer
        }
    }

    private static string Body(string kind, bool stream = false, string model = Sonnet) =>
        "{\"model\":\"" + model + "\",\"max_tokens\":64" + (stream ? ",\"stream\":true" : "")
        + ",\"messages\":[{\"role\":\"user\",\"content\":\"kind=" + kind + "\"}]}";

    private async Task<HttpStatusCode> SendAsync(string body, string apiKey = RelayKey)
    {
        using var request = Requests.Messages(body, apiKey: apiKey);
        using var response = await _relay.Client.SendAsync(request);
        _ = await response.Content.ReadAsByteArrayAsync();
        return response.StatusCode;
    }

    [Fact]
    public async Task ScriptedTraffic_MovesEveryCounterByExactlyTheRequestsSent_AndPassesPromtool()
    {
        // Arrange: the metrics before any traffic
        var before = PrometheusTextParser.Parse(await _relay.ScrapeAsync());

        // Act: 12 requests of known kinds
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 3; i++)
        {
            statuses.Add(await SendAsync(Body("stream-ok", stream: true)));
        }

        for (var i = 0; i < 2; i++)
        {
            statuses.Add(await SendAsync(Body("json-ok")));
        }

        statuses.Add(await SendAsync(Body("json-unpriced", model: "glm-5")));
        statuses.Add(await SendAsync(Body("upstream-400")));
        statuses.Add(await SendAsync(Body("upstream-400")));
        statuses.Add(await SendAsync(Body("upstream-529")));
        statuses.Add(await SendAsync(Body("upstream-drop")));
        statuses.Add(await SendAsync(Body("json-ok"), apiKey: "wrong-key"));
        statuses.Add(await SendAsync("""{"max_tokens":1}"""));

        // the metrics are recorded as each request ends, just before its log line
        await _relay.Logs.RequestLinesAsync(12);
        var text = await _relay.ScrapeAsync();
        var after = PrometheusTextParser.Parse(text);
        double Delta(string name, params (string, string)[] labels) =>
            after.Value(name, labels) - (before.Has(name, labels) ? before.Value(name, labels) : 0);

        // Assert: what the clients saw
        Assert.Equal(
            [
                HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK,
                HttpStatusCode.BadRequest, HttpStatusCode.BadRequest, (HttpStatusCode)529, HttpStatusCode.BadGateway,
                HttpStatusCode.Unauthorized, HttpStatusCode.BadRequest,
            ],
            statuses);

        // requests, by provider, model (the answer's, else the one sent), status class and streaming
        Assert.Equal(3, Delta("ccrelay_requests_total", ("provider", "fake"), ("model", Sonnet), ("status_class", "2xx"), ("stream", "true")));
        Assert.Equal(2, Delta("ccrelay_requests_total", ("provider", "fake"), ("model", Sonnet), ("status_class", "2xx"), ("stream", "false")));
        Assert.Equal(1, Delta("ccrelay_requests_total", ("provider", "fake"), ("model", "glm-5"), ("status_class", "2xx"), ("stream", "false")));
        Assert.Equal(2, Delta("ccrelay_requests_total", ("provider", "fake"), ("model", Sonnet), ("status_class", "4xx"), ("stream", "false")));
        Assert.Equal(2, Delta("ccrelay_requests_total", ("provider", "fake"), ("model", Sonnet), ("status_class", "5xx"), ("stream", "false")));
        Assert.Equal(2, Delta("ccrelay_requests_total", ("provider", "none"), ("model", "unknown"), ("status_class", "4xx"), ("stream", "false")));
        Assert.Equal(12, after.Named("ccrelay_requests_total").Sum(s => s.Value));

        // histograms: every request has a duration; the ones that got upstream headers have a ttfb
        Assert.Equal(12, after.Named("ccrelay_request_duration_seconds_count").Sum(s => s.Value));
        Assert.Equal(9, Delta("ccrelay_request_duration_seconds_count", ("provider", "fake"), ("model", Sonnet)));
        Assert.Equal(9, after.Named("ccrelay_ttfb_seconds_count").Sum(s => s.Value));
        Assert.Equal(8, Delta("ccrelay_ttfb_seconds_count", ("provider", "fake"), ("model", Sonnet)));
        Assert.Equal(8, Delta("ccrelay_ttfb_seconds_bucket", ("provider", "fake"), ("model", Sonnet), ("le", "+Inf")));

        // attempts: 6 answered, 2 refused by the upstream, 2 failures (a 529 and a dropped connection)
        Assert.Equal(6, Delta("ccrelay_upstream_attempts_total", ("provider", "fake"), ("outcome", "success")));
        Assert.Equal(2, Delta("ccrelay_upstream_attempts_total", ("provider", "fake"), ("outcome", "rejected")));
        Assert.Equal(2, Delta("ccrelay_upstream_attempts_total", ("provider", "fake"), ("outcome", "failure")));
        Assert.False(after.Has("ccrelay_upstream_attempts_total", ("provider", "fake"), ("outcome", "abandoned")));

        // tokens: streams report input 9 (message_start) and output 5 (message_delta); JSON answers 3 and 2
        Assert.Equal((3 * 9) + (2 * 3), Delta("ccrelay_tokens_total", ("provider", "fake"), ("model", Sonnet), ("kind", "input")));
        Assert.Equal((3 * 5) + (2 * 2), Delta("ccrelay_tokens_total", ("provider", "fake"), ("model", Sonnet), ("kind", "output")));
        Assert.Equal(0, Delta("ccrelay_tokens_total", ("provider", "fake"), ("model", Sonnet), ("kind", "cache_read")));
        Assert.Equal(3, Delta("ccrelay_tokens_total", ("provider", "fake"), ("model", "glm-5"), ("kind", "input")));

        // cost at the built-in Sonnet 4 price (3 / 15 USD per million); glm-5 has no price: unknown, not zero
        var expectedCost = ((3 * ((9 * 3m) + (5 * 15m))) + (2 * ((3 * 3m) + (2 * 15m)))) / 1_000_000m;
        Assert.Equal((double)expectedCost, Delta("ccrelay_cost_usd_total", ("provider", "fake"), ("model", Sonnet)), 12);
        Assert.Equal(1, Delta("ccrelay_unpriced_answers_total", ("provider", "fake"), ("model", "glm-5")));
        Assert.False(after.Has("ccrelay_cost_usd_total", ("provider", "fake"), ("model", "glm-5")));

        // nothing in flight; the provider is up and its circuit closed
        Assert.Equal(0, after.Value("ccrelay_inflight_requests"));
        Assert.Equal(1, after.Value("ccrelay_provider_up", ("provider", "fake")));
        Assert.Equal(1, after.Value("ccrelay_circuit_state", ("provider", "fake"), ("state", "closed")));

        var (exitCode, output) = await PromtoolTests.RunPromtoolAsync(text);
        Assert.True(exitCode == 0 && output.Trim().Length == 0, $"promtool check metrics exited {exitCode}:\n{output}\n--- exposition ---\n{text}");
    }
}
