using System.Net;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests;

public sealed class AuthTests : IAsyncLifetime
{
    private const string RelayKey = "relay-own-secret-key";
    private const string RelayBearer = "relay-own-bearer-secret";
    private FakeUpstream _upstream = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson());
    }

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    private static HttpRequestMessage With(string? apiKey, string? bearer)
    {
        var request = Requests.Messages(Requests.PlainBody, apiKey: apiKey);
        if (bearer is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + bearer);
        }

        return request;
    }

    [Theory]
    [InlineData(null, null, HttpStatusCode.Unauthorized)]
    [InlineData("wrong", null, HttpStatusCode.Unauthorized)]
    [InlineData(RelayKey, null, HttpStatusCode.OK)]
    [InlineData(null, RelayBearer, HttpStatusCode.OK)]
    [InlineData(null, "not-the-secret", HttpStatusCode.Unauthorized)]
    public async Task RelayAuth_ChecksApiKeyAndBearerSecret(string? apiKey, string? bearer, HttpStatusCode expected)
    {
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay(
            [TestConfig.Provider("anthropic", _upstream.BaseUrl, ProviderType.Anthropic, keys: ["configured-upstream-key"])],
            apiKey: RelayKey,
            allowBearer: true,
            bearerSecret: RelayBearer));

        using var response = await relay.Client.SendAsync(With(apiKey, bearer));

        Assert.Equal(expected, response.StatusCode);
        if (expected == HttpStatusCode.Unauthorized)
        {
            Assert.Contains("\"authentication_error\"", await response.Content.ReadAsStringAsync());
            Assert.Empty(_upstream.Requests);
        }
    }

    [Fact]
    public async Task RelaySecret_IsConsumed_ConfiguredKeyGoesUpstream()
    {
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay(
            [TestConfig.Provider("anthropic", _upstream.BaseUrl, ProviderType.Anthropic, keys: ["configured-upstream-key"])],
            apiKey: RelayKey));

        using var response = await relay.Client.SendAsync(With(RelayKey, null));

        var seen = _upstream.Requests.Single();
        Assert.Equal("configured-upstream-key", seen.Header("x-api-key"));
        Assert.DoesNotContain(seen.Headers.Values, v => v.Contains(RelayKey, StringComparison.Ordinal));
    }

    [Fact]
    public async Task SubscriptionToken_IsPassedThroughToAnthropic_WhileRelayKeyIsConsumed()
    {
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay(
            [TestConfig.Provider("anthropic", _upstream.BaseUrl, ProviderType.Anthropic)],
            apiKey: RelayKey));

        using var response = await relay.Client.SendAsync(With(RelayKey, "sk-ant-oat01-user-subscription"));

        var seen = _upstream.Requests.Single();
        Assert.Equal("Bearer sk-ant-oat01-user-subscription", seen.Header("authorization"));
        Assert.Null(seen.Header("x-api-key"));
    }

    [Fact]
    public async Task NoRelayAuth_ClientKeyIsPassedThroughToAnthropic_ButNotToOthers()
    {
        await using var anthropic = await RelayHost.StartAsync(TestConfig.Relay([TestConfig.Provider("anthropic", _upstream.BaseUrl, ProviderType.Anthropic)]));
        using (await anthropic.Client.SendAsync(With("sk-ant-user-own", null)))
        {
        }

        await using var zai = await RelayHost.StartAsync(TestConfig.Relay([TestConfig.Provider("zai", _upstream.BaseUrl, ProviderType.Zai, keys: ["zai-key"])]));
        using (await zai.Client.SendAsync(With("sk-ant-user-own", null)))
        {
        }

        Assert.Equal(["sk-ant-user-own", "zai-key"], _upstream.Requests.Select(r => r.Header("x-api-key")));
    }

    [Fact]
    public async Task Secrets_NeverAppearInLogs()
    {
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay(
            [TestConfig.Provider("anthropic", _upstream.BaseUrl, ProviderType.Anthropic, keys: ["configured-upstream-key"])],
            apiKey: RelayKey));

        using (await relay.Client.SendAsync(With(RelayKey, "sk-ant-oat01-user-subscription")))
        {
        }

        using (await relay.Client.SendAsync(With("wrong-guess-key", null)))
        {
        }

        Assert.Equal(2, (await relay.Logs.RequestLinesAsync(2)).Count);
        var all = string.Join("\n", relay.Logs.Lines.Select(l => l.Message + " " + string.Join(",", l.Fields.Values)));
        foreach (var secret in new[] { RelayKey, "sk-ant-oat01-user-subscription", "configured-upstream-key", "wrong-guess-key" })
        {
            Assert.DoesNotContain(secret, all, StringComparison.Ordinal);
        }
    }
}
