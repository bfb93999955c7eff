using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Configuration;
using CcRelay.Host.Tests.Infrastructure;
using CcRelay.Host.Tests.Metrics;
using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Tests.Routing;

/// <summary>
/// The host walks the Core's plan: two fake upstreams A (first in the plan) and B; a failure of A before
/// anything reached the client is invisible to it.
/// </summary>
public sealed class FailoverTests : TwoUpstreamTests
{
    private const string RelayKey = "relay-secret";
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    private static Task<RelayHost> RelayAsync(
        IEnumerable<ProviderConfig> providers,
        int firstByteTimeoutMs = 120_000,
        RoutingConfig? routing = null,
        HealthConfig? health = null,
        TimeProvider? timeProvider = null) =>
        RelayHost.StartAsync(
            TestConfig.Relay(
                providers,
                apiKey: RelayKey,
                firstByteTimeoutMs: firstByteTimeoutMs,
                routing: routing ?? TestConfig.Routing(),
                health: health ?? TestConfig.Health()),
            timeProvider: timeProvider);

    private Task<RelayHost> TwoProvidersAsync(Uri? aUrl = null, int firstByteTimeoutMs = 120_000, HealthConfig? health = null, TimeProvider? timeProvider = null) =>
        RelayAsync(
            [TestConfig.Provider("a", aUrl ?? A.BaseUrl, priority: 2), TestConfig.Provider("b", B.BaseUrl, priority: 1)],
            firstByteTimeoutMs,
            health: health,
            timeProvider: timeProvider);

    private static Task<HttpResponseMessage> SendAsync(RelayHost relay, string body = Requests.PlainBody) =>
        relay.Client.SendAsync(Requests.Messages(body, apiKey: RelayKey));

    [Theory]
    [InlineData(529)]
    [InlineData(500)]
    [InlineData(503)]
    public async Task ProviderAFails_ClientGetsProviderBsAnswer(int status)
    {
        // Arrange
        A.Handler = context => Fake.WriteJsonAsync(context, status, """{"type":"error","error":{"type":"overloaded_error","message":"from-a"}}""");
        await using var relay = await TwoProvidersAsync();

        // Act
        using var response = await SendAsync(relay);
        var text = await response.Content.ReadAsStringAsync();

        // Assert: B's answer, nothing of A's
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("from-b", text);
        Assert.DoesNotContain("from-a", text);
        Assert.Single(A.Requests);
        Assert.Single(B.Requests);
        Assert.Equal("b", response.Headers.GetValues("x-cc-relay-provider").Single());
        Assert.Equal("2", response.Headers.GetValues("x-cc-relay-attempts").Single());
    }

    [Fact]
    public async Task ProviderAFails_EveryAttemptIsCounted_TheRequestOnce_AndTheAnswerIsStamped()
    {
        // Arrange
        A.Handler = context => Fake.WriteJsonAsync(context, 529, """{"type":"error","error":{"type":"overloaded_error","message":"from-a"}}""");
        await using var relay = await TwoProvidersAsync();

        // Act
        using var response = await SendAsync(relay);
        _ = await response.Content.ReadAsStringAsync();
        await relay.Logs.RequestLinesAsync(1);
        var metrics = PrometheusTextParser.Parse(await relay.ScrapeAsync());

        // Assert: A's failed attempt and B's answer each counted; one request, with B's usage
        Assert.Equal(1, metrics.Value("ccrelay_upstream_attempts_total", ("provider", "a"), ("outcome", "failure")));
        Assert.Equal(1, metrics.Value("ccrelay_upstream_attempts_total", ("provider", "b"), ("outcome", "success")));
        Assert.Equal(1, metrics.Named("ccrelay_requests_total").Sum(s => s.Value));
        Assert.Equal(1, metrics.Value("ccrelay_requests_total", ("provider", "b"), ("model", "claude-test"), ("status_class", "2xx"), ("stream", "false")));
        Assert.True(response.Headers.Contains("x-cc-relay-request-id"));
        Assert.True(response.Headers.Contains("x-cc-relay-overhead-ms"));
    }

    [Fact]
    public async Task ProviderARefusesConnections_ClientGetsProviderBsAnswer()
    {
        // Arrange: a port nothing listens on
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        await using var relay = await TwoProvidersAsync(new Uri($"http://127.0.0.1:{port}/"));

        // Act
        using var response = await SendAsync(relay);

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("from-b", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ProviderASendsNoHeadersWithinFirstByteTimeout_ClientGetsProviderBsAnswer()
    {
        // Arrange
        A.Handler = async context => await Task.Delay(Timeout.InfiniteTimeSpan, TimeProvider.System, context.RequestAborted);
        await using var relay = await TwoProvidersAsync(firstByteTimeoutMs: 300);

        // Act
        using var response = await SendAsync(relay);

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("from-b", await response.Content.ReadAsStringAsync());
        Assert.Single(A.Requests);
    }

    [Fact]
    public async Task KeyRateLimited_TheProvidersOtherKeyServes()
    {
        // Arrange: whichever key goes first gets a 429
        var first = 0;
        A.Handler = context => Interlocked.Exchange(ref first, 1) == 0
            ? RateLimitedAsync(context, 30)
            : Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-a"));
        await using var relay = await RelayAsync([TestConfig.Provider("a", A.BaseUrl, keys: ["key-one", "key-two"])]);

        // Act
        using var response = await SendAsync(relay);

        // Assert: the second key answered, and the relay says so by id only
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("from-a", await response.Content.ReadAsStringAsync());
        Assert.Equal(2, A.Requests.Count);
        var keys = A.Requests.Select(r => r.Header("x-api-key")).ToArray();
        Assert.NotEqual(keys[0], keys[1]);
        Assert.Equal(KeyId.ofSecret(keys[1]!), response.Headers.GetValues("x-cc-relay-key-id").Single());
        Assert.Equal("2", response.Headers.GetValues("x-cc-relay-keys-total").Single());
        Assert.Equal("1", response.Headers.GetValues("x-cc-relay-keys-available").Single());
        Assert.DoesNotContain(response.Headers, h => h.Value.Any(v => v.Contains("key-", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task AllKeysRateLimited_Answers429WithRetryAfter()
    {
        // Arrange
        A.Handler = context => RateLimitedAsync(context, 20);
        await using var relay = await RelayAsync([TestConfig.Provider("a", A.BaseUrl, keys: ["key-one", "key-two"])]);

        // Act
        using var response = await SendAsync(relay);
        using var second = await SendAsync(relay);

        // Assert: both keys tried once; then both cool down for 20 s, and the relay says so without asking
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        var retryAfter = int.Parse(response.Headers.GetValues("retry-after").Single(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(retryAfter, 19, 20);
        Assert.Equal(2, A.Requests.Count);
        Assert.Equal(HttpStatusCode.TooManyRequests, second.StatusCode);
        var secondRetryAfter = int.Parse(second.Headers.GetValues("retry-after").Single(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(secondRetryAfter, 1, 20);
        using var json = JsonDocument.Parse(await second.Content.ReadAsStringAsync());
        Assert.Equal("rate_limit_error", json.RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal(2, A.Requests.Count);
    }

    [Fact]
    public async Task BreakerOpensAfterThreshold_ThenHalfOpensAfterOpenDuration()
    {
        // Arrange: A always fails; the breaker opens after 2 failures for 30 s of the relay's clock, which moves
        // only when the test says
        var clock = new ShiftedTimeProvider();
        var failing = 1;
        A.Handler = context => Volatile.Read(ref failing) == 1
            ? Fake.WriteJsonAsync(context, 500, """{"type":"error","error":{"type":"api_error","message":"from-a"}}""")
            : Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-a"));
        await using var relay = await TwoProvidersAsync(health: TestConfig.Health(failureThreshold: 2, openDurationMs: 30_000, halfOpenProbes: 1), timeProvider: clock);

        // Act: two failures open it; the next requests skip A entirely
        for (var i = 0; i < 2; i++)
        {
            using var failedOver = await SendAsync(relay);
            Assert.Equal(HttpStatusCode.OK, failedOver.StatusCode);
        }

        Assert.Equal(2, A.Requests.Count);
        for (var i = 0; i < 3; i++)
        {
            using var skipped = await SendAsync(relay);
            Assert.Equal(HttpStatusCode.OK, skipped.StatusCode);
            Assert.Contains("a=open", skipped.Headers.GetValues("x-cc-relay-health").Single());
        }

        Assert.Equal(2, A.Requests.Count);

        // Assert: once the break is over, the very next request probes A, and its success closes the circuit
        Volatile.Write(ref failing, 0);
        clock.Advance(TimeSpan.FromSeconds(30));
        using (var probe = await SendAsync(relay))
        {
            Assert.Equal("a", probe.Headers.GetValues("x-cc-relay-provider").Single());
        }

        Assert.Equal(3, A.Requests.Count);
        using var closed = await SendAsync(relay);
        Assert.Equal("a", closed.Headers.GetValues("x-cc-relay-provider").Single());
        Assert.Contains("a=closed", closed.Headers.GetValues("x-cc-relay-health").Single());
    }

    [Fact]
    public async Task Health_ShowsTheOpenCircuit_AndKeyCapacity_ThenRecovery()
    {
        // Arrange: A (two keys) fails; its breaker opens after one failure for 30 s of the relay's clock
        var clock = new ShiftedTimeProvider();
        A.Handler = context => Fake.WriteJsonAsync(context, 500, """{"type":"error","error":{"type":"api_error","message":"from-a"}}""");
        await using var relay = await RelayAsync(
            [TestConfig.Provider("a", A.BaseUrl, keys: ["key-one", "key-two"], priority: 2), TestConfig.Provider("b", B.BaseUrl, priority: 1)],
            health: TestConfig.Health(failureThreshold: 1, openDurationMs: 30_000),
            timeProvider: clock);
        using (var before = await HealthAsync(relay))
        {
            Assert.Equal("a:up:closed:2/2,b:up:closed:0/0", Lines(before));
        }

        // Act
        using var response = await SendAsync(relay);

        // Assert: A is down while its circuit is open; B serves, so the relay is healthy
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using (var open = await HealthAsync(relay))
        {
            Assert.Equal("a:down:open:2/2,b:up:closed:0/0", Lines(open));
            Assert.Equal("ok", open.RootElement.GetProperty("status").GetString());
        }

        // after the break A may be probed again: up, and half-open (its next request is the probe), never "up and open"
        clock.Advance(TimeSpan.FromSeconds(30));
        using (var after = await HealthAsync(relay))
        {
            Assert.Equal("a:up:half-open:2/2,b:up:closed:0/0", Lines(after));
        }
    }

    [Fact]
    public async Task HealthCheckProbeSucceeds_EndsTheBreakEarly()
    {
        // Arrange: A's messages fail, its /v1/models answers; the break would last 60 s
        A.Handler = context => context.Request.Path == "/v1/models"
            ? Fake.WriteJsonAsync(context, 200, """{"data":[]}""")
            : Fake.WriteJsonAsync(context, 500, """{"type":"error","error":{"type":"api_error","message":"from-a"}}""");
        // (debug logging: the prober's report, logged once its result is applied, is what the test waits for)
        var config = TestConfig.Relay(
                [TestConfig.Provider("a", A.BaseUrl, keys: ["key-one"], priority: 2), TestConfig.Provider("b", B.BaseUrl, priority: 1)],
                apiKey: RelayKey,
                routing: TestConfig.Routing(),
                health: TestConfig.Health(failureThreshold: 1, openDurationMs: 60_000, healthCheckIntervalMs: 1_000))
            .With(logging: TestConfig.Logging(level: CcRelay.Core.LogLevel.Debug));
        await using var relay = await RelayHost.StartAsync(config);
        using var response = await SendAsync(relay);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        // Act: wait for the prober's first report
        var probed = (await relay.Logs.WaitForAsync(l => l.EventId == 29)).First();
        using var health = await HealthAsync(relay);

        // Assert: the probe carried A's key, and ended the break long before 60 s: A may be tried again
        // (its next request is the half-open probe)
        Assert.Equal(true, probed.Fields["succeeded"]);
        Assert.StartsWith("a:up:half-open", Lines(health));
        var probe = A.Requests.First(r => r.PathAndQuery == "/v1/models");
        Assert.Equal("GET", probe.Method);
        Assert.Equal("key-one", probe.Header("x-api-key"));
    }

    [Fact]
    public async Task Reload_AddsAProvider_AndTheOpenCircuitSurvives()
    {
        // Arrange: a relay started from a file with only A, which fails and opens its circuit at once
        A.Handler = context => Fake.WriteJsonAsync(context, 500, """{"type":"error","error":{"type":"api_error","message":"from-a"}}""");
        var dir = Directory.CreateTempSubdirectory("cc-relay-routing-").FullName;
        var path = Path.Combine(dir, "cc-relay.yaml");
        try
        {
            await File.WriteAllTextAsync(path, Yaml(withB: false));
            var load = (ConfigLoad.Loaded)ConfigFile.Load(path, Environment.GetEnvironmentVariable);
            await using var relay = await RelayHost.StartAsync(load.Config, path);
            using (var failed = await SendAsync(relay))
            {
                Assert.Equal(HttpStatusCode.InternalServerError, failed.StatusCode);
            }

            // Act: B appears
            await File.WriteAllTextAsync(path, Yaml(withB: true));
            var result = relay.Reloader.Reload("test");

            // Assert: B serves at once, and A's open circuit (breaker state kept by name) is skipped
            Assert.Equal(CcRelay.Host.Reload.ReloadOutcome.Applied, result.Outcome);
            using var served = await SendAsync(relay);
            Assert.Equal(HttpStatusCode.OK, served.StatusCode);
            Assert.Contains("from-b", await served.Content.ReadAsStringAsync());
            Assert.Single(A.Requests);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }

        string Yaml(bool withB) => $"""
            server:
              listen: "127.0.0.1:0"
              auth:
                api_key: "{RelayKey}"
            routing:
              max_attempts: 1
            health:
              health_check:
                enabled: false
              circuit_breaker:
                failure_threshold: 1
                open_duration_ms: 60000
            providers:
              - name: a
                type: anthropic_compatible
                base_url: "{A.BaseUrl}"
                priority: 2
            """ + (withB ? $"""

              - name: b
                type: anthropic_compatible
                base_url: "{B.BaseUrl}"
                priority: 1
            """ : "");
    }

    [Fact]
    public async Task ThinkingSignatureRejected_SameProviderOnceMore_WithThinkingStripped()
    {
        // Arrange: A rejects the signature of the replayed thinking block once, then answers
        const string Body = """{"model":"claude-sonnet-4-6","max_tokens":64,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"EqQBsig=="},{"type":"text","text":"ok"}]},{"role":"user","content":"more"}]}""";
        var first = 0;
        A.Handler = context => Interlocked.Exchange(ref first, 1) == 0
            ? Fake.WriteJsonAsync(context, 400, """{"type":"error","error":{"type":"invalid_request_error","message":"messages.1.content.0: Invalid `signature` in `thinking` block"}}""")
            : Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-a"));
        await using var relay = await TwoProvidersAsync();

        // Act
        using var response = await SendAsync(relay, Body);

        // Assert: A twice, the second time without the thinking block; B never asked
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("from-a", await response.Content.ReadAsStringAsync());
        Assert.Equal(2, A.Requests.Count);
        Assert.Contains("EqQBsig==", System.Text.Encoding.UTF8.GetString(A.Requests[0].Body));
        var retried = System.Text.Encoding.UTF8.GetString(A.Requests[1].Body);
        Assert.DoesNotContain("EqQBsig==", retried);
        Assert.Contains("\"text\":\"ok\"", retried);
        Assert.Empty(B.Requests);
    }

    [Fact]
    public async Task HedgeAfter_SlowProviderA_ProviderBAnswers_AndAIsCancelled()
    {
        // Arrange: A holds its headers until the relay lets go; hedging after 100 ms
        var aSawCancel = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        A.Handler = async context =>
        {
            try
            {
                await Task.Delay(Timeout.InfiniteTimeSpan, TimeProvider.System, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                aSawCancel.SetResult();
            }
        };
        await using var relay = await RelayAsync(
            [TestConfig.Provider("a", A.BaseUrl, priority: 2), TestConfig.Provider("b", B.BaseUrl, priority: 1)],
            routing: TestConfig.Routing(hedgeAfterMs: 100));

        // Act
        using var response = await SendAsync(relay);

        // Assert: B's answer; A's attempt was given up
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("from-b", await response.Content.ReadAsStringAsync());
        Assert.Equal("b", response.Headers.GetValues("x-cc-relay-provider").Single());
        await aSawCancel.Task.WaitAsync(Bound);
        using var health = await HealthAsync(relay);
        Assert.Equal("a:up:closed:0/0,b:up:closed:0/0", Lines(health));
        // the loser is released before the winner is relayed (the winner's own release may still be on its way)
        Assert.Equal(0, health.RootElement.GetProperty("providers")[0].GetProperty("in_flight").GetInt32());
    }

    [Fact]
    public async Task HedgeAfter_OverlappingWaitsCountOnce_TheOverheadHeaderKeepsTheRelaysOwnTime()
    {
        // Arrange: the relay's clock jumps only where the test says: +10 s of the relay's own work (as it logs the
        // request body, before any attempt) and +20 s while A and its hedge B both wait (in B's handler). A holds
        // its headers until it is given up; hedging after 100 ms.
        var clock = new ShiftedTimeProvider();
        A.Handler = async context =>
        {
            try
            {
                await Task.Delay(Timeout.InfiniteTimeSpan, TimeProvider.System, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
            }
        };
        B.Handler = context =>
        {
            clock.Advance(TimeSpan.FromSeconds(20));
            return Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-b"));
        };
        var config = TestConfig.Relay(
                [TestConfig.Provider("a", A.BaseUrl, priority: 2), TestConfig.Provider("b", B.BaseUrl, priority: 1)],
                apiKey: RelayKey,
                routing: TestConfig.Routing(failoverTimeoutMs: 0, hedgeAfterMs: 100),
                health: TestConfig.Health())
            .With(logging: TestConfig.Logging(level: CcRelay.Core.LogLevel.Debug, debugAll: true));
        await using var relay = await RelayHost.StartAsync(config, timeProvider: clock);
        relay.Logs.OnLogged = line =>
        {
            if (line.EventId == 40)
            {
                clock.Advance(TimeSpan.FromSeconds(10)); // DebugRequestBody: the relay's own time
            }
        };

        // Act
        using var response = await SendAsync(relay);
        var overhead = double.Parse(response.Headers.GetValues("x-cc-relay-overhead-ms").Single(), System.Globalization.CultureInfo.InvariantCulture);
        var line = (await relay.Logs.RequestLinesAsync()).Single();

        // Assert: B answered; the overhead is the relay's own 10 s (plus its real work), the 20 s both attempts
        // waited is upstream time counted once (counted twice, it would eat the relay's 10 s: overhead 0)
        Assert.Equal("b", response.Headers.GetValues("x-cc-relay-provider").Single());
        Assert.Equal(2, line.Fields["attempts"]);
        Assert.InRange(overhead, 10_000, 15_000);
        Assert.Equal(overhead, (double)line.Fields["overhead_ms"]!);
        Assert.True(overhead <= (double)line.Fields["duration_ms"]! - 20_000, $"overhead {overhead} ms, duration {line.Fields["duration_ms"]} ms");
    }

    private static async Task<JsonDocument> HealthAsync(RelayHost relay)
    {
        using var response = await relay.Client.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync());
    }

    private static string Lines(JsonDocument health) =>
        string.Join(",", health.RootElement.GetProperty("providers").EnumerateArray().Select(p =>
            p.GetProperty("name").GetString() + ":" + p.GetProperty("status").GetString() + ":" + p.GetProperty("circuit").GetString() + ":"
            + p.GetProperty("keys_available").GetInt32() + "/" + p.GetProperty("keys").GetInt32()));

    [Fact]
    public async Task StreamBeginsWithAnErrorEvent_ClientGetsProviderBsStream()
    {
        // Arrange: A answers 200 and its first event (after a ping) is an overloaded error
        A.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.Ping + Fake.Event("error", """{"type":"error","error":{"type":"overloaded_error","message":"from-a"}}"""));
        };
        B.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart() + Fake.TextBlock(0, "from-b") + Fake.MessageEnd());
        };
        await using var relay = await TwoProvidersAsync();

        // Act
        using var response = await SendAsync(relay, Requests.StreamingBody);
        var text = await response.Content.ReadAsStringAsync();

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("from-b", text);
        Assert.DoesNotContain("from-a", text);
        Assert.Contains("event: message_stop", text);
        Assert.Single(A.Requests);
    }

    [Fact]
    public async Task StreamBeginsWithANonRetryableErrorEvent_IsRelayedAsIs()
    {
        // Arrange: an invalid_request_error is the request's fault: no other provider would do better
        var error = Fake.Event("error", """{"type":"error","error":{"type":"invalid_request_error","message":"from-a"}}""");
        A.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, error);
        };
        await using var relay = await TwoProvidersAsync();

        // Act
        using var response = await SendAsync(relay, Requests.StreamingBody);

        // Assert: byte for byte, and B never asked
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(error, await response.Content.ReadAsStringAsync());
        Assert.Empty(B.Requests);
    }

    [Fact]
    public async Task StreamBreaksAfterContent_ClientGetsSseErrorEvent_AndNoRetry()
    {
        // Arrange: A starts a stream, then breaks once the client has its first event
        var clientHasFirst = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        A.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart() + ContentBlockStart);
            await clientHasFirst.Task.WaitAsync(Bound);
            context.Abort();
        };
        await using var relay = await TwoProvidersAsync();
        using var timeout = new CancellationTokenSource(Bound);

        // Act
        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody, apiKey: RelayKey), HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        var reader = new SseClientReader(await response.Content.ReadAsStreamAsync(timeout.Token));
        var first = await reader.NextAsync(timeout.Token);
        clientHasFirst.SetResult();
        var rest = await reader.RestAsync(timeout.Token);

        // Assert
        Assert.StartsWith("event: message_start\n", first);
        Assert.Equal(2, rest.Count);
        Assert.StartsWith("event: content_block_start\n", rest[0]);
        Assert.StartsWith("event: error\n", rest[1]);
        Assert.Empty(B.Requests);
    }

    [Fact]
    public async Task StreamsThatAlwaysBreakAfterContent_TripTheBreaker_SoLaterRequestsGoToB()
    {
        // Arrange: A's every stream sends content, then an overloaded error; the breaker opens after 2 failures
        A.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart("from-a") + Fake.TextBlock(0, "partial"));
            await Fake.WriteAsync(context, Fake.Event("error", """{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"""));
        };
        B.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart("from-b") + Fake.TextBlock(0, "whole") + Fake.MessageEnd());
        };
        await using var relay = await TwoProvidersAsync(health: TestConfig.Health(failureThreshold: 2, openDurationMs: 60_000, halfOpenProbes: 1));

        // Act: two broken streams reach the client (too late to fail over), then A's circuit is open
        for (var i = 0; i < 2; i++)
        {
            using var broken = await SendAsync(relay, Requests.StreamingBody);
            Assert.EndsWith("\"message\":\"Overloaded\"}}\n\n", await broken.Content.ReadAsStringAsync());
        }

        using var third = await SendAsync(relay, Requests.StreamingBody);
        var text = await third.Content.ReadAsStringAsync();

        // Assert
        Assert.Contains("from-b", text);
        Assert.Equal(2, A.Requests.Count);
        Assert.StartsWith("a:down:open:", Lines(await HealthAsync(relay)), StringComparison.Ordinal);
    }

    private static readonly string ContentBlockStart = Fake.Event("content_block_start", """{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}""");

    [Fact]
    public async Task StreamSendsMessageStartThenAnErrorEvent_BeforeAnyContent_FailsOverToB()
    {
        // Arrange: Anthropic's overloaded errors often come right after message_start, before any content block
        A.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart("from-a") + Fake.Ping);
            await Fake.WriteAsync(context, Fake.Event("error", """{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"""));
        };
        B.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart("from-b") + Fake.TextBlock(0, "hello") + Fake.MessageEnd());
        };
        await using var relay = await TwoProvidersAsync();

        // Act
        using var response = await SendAsync(relay, Requests.StreamingBody);
        var text = await response.Content.ReadAsStringAsync();

        // Assert: nothing of A's reached the client; B's stream whole
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.DoesNotContain("from-a", text);
        Assert.DoesNotContain("event: error", text);
        Assert.Contains("from-b", text);
        Assert.Contains("event: message_stop", text);
        Assert.Single(A.Requests);
        Assert.Single(B.Requests);
    }

    [Fact]
    public async Task RateLimitHeadersSayNoRequestsLeft_NextRequestUsesTheOtherKey()
    {
        // Arrange: every answer says its key has no request left this minute
        A.Handler = context =>
        {
            context.Response.Headers["anthropic-ratelimit-requests-limit"] = "50";
            context.Response.Headers["anthropic-ratelimit-requests-remaining"] = "0";
            context.Response.Headers["anthropic-ratelimit-requests-reset"] = TimeProvider.System.GetUtcNow().AddSeconds(60).ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
            return Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-a"));
        };
        await using var relay = await RelayAsync([TestConfig.Provider("a", A.BaseUrl, keys: ["key-one", "key-two"])]);

        // Act
        using var first = await SendAsync(relay);
        using var second = await SendAsync(relay);

        // Assert: no 429 ever, and the second request went out on the other key
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        var keys = A.Requests.Select(r => r.Header("x-api-key")).ToArray();
        Assert.Equal(2, keys.Length);
        Assert.NotEqual(keys[0], keys[1]);
    }

    private static Task RateLimitedAsync(HttpContext context, int retryAfterSeconds)
    {
        context.Response.Headers.RetryAfter = retryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Fake.WriteJsonAsync(context, 429, """{"type":"error","error":{"type":"rate_limit_error","message":"from-a"}}""");
    }
}
