using System.Net;
using System.Text.Json;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Routing;

/// <summary>
/// Health-check probes of an open circuit: only a 2xx (or, for a passthrough provider, a 401/403) ends the break
/// early. A redirect is never followed and is not an answer: the break runs its course.
/// </summary>
public sealed class HealthProbeTests : TwoUpstreamTests
{
    private const string RelayKey = "relay-secret";

    [Theory]
    [InlineData(301)]
    [InlineData(302)]
    [InlineData(307)]
    public async Task AProbeAnsweredWithARedirect_IsAFailedProbe_TheBreakGoesOn(int status)
    {
        // Arrange: A's messages fail; its /v1/models redirects to B (where a probe would find a 200)
        A.Handler = context =>
        {
            if (context.Request.Path == "/v1/models")
            {
                context.Response.StatusCode = status;
                context.Response.Headers.Location = new Uri(B.BaseUrl, "/v1/models").AbsoluteUri;
                return Task.CompletedTask;
            }

            return Fake.WriteJsonAsync(context, 500, """{"type":"error","error":{"type":"api_error","message":"from-a"}}""");
        };
        B.Handler = context => Fake.WriteJsonAsync(context, 200, context.Request.Path == "/v1/models" ? """{"data":[]}""" : Fake.MessageJson("from-b"));
        var config = TestConfig.Relay(
                [TestConfig.Provider("a", A.BaseUrl, keys: ["key-one"], priority: 2), TestConfig.Provider("b", B.BaseUrl, priority: 1)],
                apiKey: RelayKey,
                routing: TestConfig.Routing(),
                health: TestConfig.Health(failureThreshold: 1, openDurationMs: 60_000, healthCheckIntervalMs: 1_000))
            .With(logging: TestConfig.Logging(level: CcRelay.Core.LogLevel.Debug));
        await using var relay = await RelayHost.StartAsync(config);
        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody, apiKey: RelayKey));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode); // B answered; A's circuit is open

        // Act: wait for the prober's first report
        var probed = (await relay.Logs.WaitForAsync(l => l.EventId == 29)).First();

        // Assert: the redirect was not followed (B saw no probe) and did not end the break
        Assert.Equal(false, probed.Fields["succeeded"]);
        Assert.Contains(A.Requests, r => r.PathAndQuery == "/v1/models");
        Assert.DoesNotContain(B.Requests, r => r.PathAndQuery == "/v1/models");
        using var health = await relay.Client.GetAsync("/health");
        using var json = JsonDocument.Parse(await health.Content.ReadAsStringAsync());
        Assert.Equal("open", json.RootElement.GetProperty("providers")[0].GetProperty("circuit").GetString());
    }
}
