using System.Net;
using CcRelay.Core;
using CcRelay.Host.Metrics;
using CcRelay.Host.Routing;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Metrics;

/// <summary>
/// <c>ccrelay_provider_up</c>, <c>ccrelay_circuit_state</c> and <c>ccrelay_key_capacity_ratio</c> on a real relay:
/// each scrape shows the live breakers and key pools. Time moves on a <see cref="ShiftedTimeProvider"/>.
/// </summary>
public sealed class ProviderGaugesTests : TwoUpstreamTests
{
    private const string RelayKey = "relay-secret";
    private const string ApiError = """{"type":"error","error":{"type":"api_error","message":"from-a"}}""";

    private readonly ShiftedTimeProvider _clock = new();

    private Task<RelayHost> RelayAsync(IEnumerable<ProviderConfig> providers, HealthConfig? health = null) =>
        RelayHost.StartAsync(
            TestConfig.Relay(providers, apiKey: RelayKey, routing: TestConfig.Routing(), health: health ?? TestConfig.Health()),
            timeProvider: _clock);

    private static async Task<PrometheusTextParser> ScrapeAsync(RelayHost relay) =>
        PrometheusTextParser.Parse(await relay.ScrapeAsync());

    private static async Task<string> SendAsync(RelayHost relay)
    {
        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody, apiKey: RelayKey));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return response.Headers.GetValues("x-cc-relay-provider").Single();
    }

    /// <summary>The provider's up gauge and the one circuit state at 1 (asserting the others are 0).</summary>
    private static (double Up, string Circuit) Gauges(PrometheusTextParser scrape, string provider)
    {
        var current = RelayMetrics.CircuitStates
            .Where(state => scrape.Value("ccrelay_circuit_state", ("provider", provider), ("state", state)) == 1)
            .ToList();
        Assert.Equal(RelayMetrics.CircuitStates.Count - 1, RelayMetrics.CircuitStates.Count(
            state => scrape.Value("ccrelay_circuit_state", ("provider", provider), ("state", state)) == 0));
        return (scrape.Value("ccrelay_provider_up", ("provider", provider)), Assert.Single(current));
    }

    [Fact]
    public async Task BreakerOpens_ScrapeShowsTheProviderDownAndItsCircuitOpen_ThenRecovery()
    {
        // Arrange: A fails with 500s; one failure opens its circuit for 60 s; B serves meanwhile
        var failing = 1;
        A.Handler = context => Volatile.Read(ref failing) == 1
            ? Fake.WriteJsonAsync(context, 500, ApiError)
            : Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-a"));
        await using var relay = await RelayAsync(
            [TestConfig.Provider("a", A.BaseUrl, priority: 2), TestConfig.Provider("b", B.BaseUrl, priority: 1)],
            TestConfig.Health(failureThreshold: 1, openDurationMs: 60_000, halfOpenProbes: 1));
        var before = await ScrapeAsync(relay);

        // Act: A's failure opens its breaker
        Assert.Equal("b", await SendAsync(relay));
        var open = await ScrapeAsync(relay);

        // Assert: closed and up before; down and open after, while B stays up
        Assert.Equal((1, "closed"), Gauges(before, "a"));
        Assert.Equal((0, "open"), Gauges(open, "a"));
        Assert.Equal((1, "closed"), Gauges(open, "b"));

        // the break is over: A may be probed (up), so its circuit shows half-open, not open
        Volatile.Write(ref failing, 0);
        _clock.Advance(TimeSpan.FromSeconds(61));
        Assert.Equal((1, "half_open"), Gauges(await ScrapeAsync(relay), "a"));

        // the probe succeeds: closed and up again
        Assert.Equal("a", await SendAsync(relay));
        Assert.Equal((1, "closed"), Gauges(await ScrapeAsync(relay), "a"));
    }

    [Fact]
    public async Task ProviderIsolatedByTheOperator_OrDisabledInTheConfig_ScrapesAsIsolatedAndDown()
    {
        // Arrange
        A.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-a"));
        await using var relay = await RelayAsync(
        [
            TestConfig.Provider("a", A.BaseUrl, priority: 2),
            TestConfig.Provider("b", B.BaseUrl, priority: 1),
            TestConfig.Provider("off", B.BaseUrl, enabled: false),
        ]);
        var cell = (RuntimeCell)relay.Services.GetService(typeof(RuntimeCell))!;

        // Act
        Assert.True(cell.Transition(runtime => RelayHealth.disable(runtime, "a")));
        var isolated = await ScrapeAsync(relay);
        Assert.True(cell.Transition(runtime => RelayHealth.enable(runtime, "a")));
        var enabled = await ScrapeAsync(relay);

        // Assert
        Assert.Equal((0, "isolated"), Gauges(isolated, "a"));
        Assert.Equal((0, "isolated"), Gauges(isolated, "off"));
        Assert.Equal((1, "closed"), Gauges(isolated, "b"));
        Assert.Equal((1, "closed"), Gauges(enabled, "a"));
        Assert.Equal((0, "isolated"), Gauges(enabled, "off"));
    }

    [Fact]
    public async Task KeyRateLimited_ScrapeShowsItsCapacityAtZero_UntilTheCooldownEnds()
    {
        // Arrange: whichever key goes first gets a 429 with a 30 s cooldown; the other answers
        var first = 0;
        A.Handler = context =>
        {
            if (Interlocked.Exchange(ref first, 1) != 0)
            {
                return Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-a"));
            }

            context.Response.Headers.RetryAfter = "30";
            return Fake.WriteJsonAsync(context, 429, """{"type":"error","error":{"type":"rate_limit_error","message":"from-a"}}""");
        };
        await using var relay = await RelayAsync([TestConfig.Provider("a", A.BaseUrl, keys: ["key-one", "key-two"])]);
        var idOne = KeyId.ofSecret("key-one");
        var idTwo = KeyId.ofSecret("key-two");
        var before = await ScrapeAsync(relay);

        // Act
        Assert.Equal("a", await SendAsync(relay));
        var limited = A.Requests[0].Header("x-api-key") == "key-one" ? idOne : idTwo;
        var served = limited == idOne ? idTwo : idOne;
        var cooling = await ScrapeAsync(relay);
        _clock.Advance(TimeSpan.FromSeconds(31));
        var after = await ScrapeAsync(relay);

        // Assert: unlimited keys are at 1 except while cooling down; labelled by id only
        Assert.Equal(1, before.Value("ccrelay_key_capacity_ratio", ("provider", "a"), ("key_id", idOne)));
        Assert.Equal(1, before.Value("ccrelay_key_capacity_ratio", ("provider", "a"), ("key_id", idTwo)));
        Assert.Equal(0, cooling.Value("ccrelay_key_capacity_ratio", ("provider", "a"), ("key_id", limited)));
        Assert.Equal(1, cooling.Value("ccrelay_key_capacity_ratio", ("provider", "a"), ("key_id", served)));
        Assert.Equal(1, after.Value("ccrelay_key_capacity_ratio", ("provider", "a"), ("key_id", limited)));
        Assert.DoesNotContain(cooling.Named("ccrelay_key_capacity_ratio"), s => s.Labels["key_id"].Contains("key-", StringComparison.Ordinal));
    }
}
