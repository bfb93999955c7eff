using System.Globalization;
using System.Net;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Routing;

/// <summary>
/// The delivered answer's usage settles its key's buckets: output tokens are charged to OTPM once the answer
/// says how many there were, so a key that spent its minute's output on one answer is not sent the next request
/// until its bucket pays for one more token. (A bucket never goes below empty: a late charge empties it.)
/// </summary>
public sealed class SettlementTests : IAsyncLifetime
{
    private const string RelayKey = "relay-secret";

    // 6 output tokens a minute: one token every 10 s. An answer of 600 output tokens empties the bucket, so the
    // next request is 10 s away from its one token; with no failover window to wait in, the relay answers 429.
    // (Ten seconds, not one: on a loaded machine a second can pass between the two requests.)
    private const int OtpmLimit = 6;
    private const int SpentOutputTokens = 600;

    private FakeUpstream _upstream = null!;

    public async Task InitializeAsync() => _upstream = await FakeUpstream.StartAsync();

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    private Task<RelayHost> RelayAsync() =>
        RelayHost.StartAsync(TestConfig.Relay(
            [TestConfig.Provider("a", _upstream.BaseUrl).WithKeys(new KeyConfig("key-one", 0, 0, OtpmLimit, 0, 0, 1, null))],
            apiKey: RelayKey,
            routing: TestConfig.Routing(failoverTimeoutMs: 1)));

    [Fact]
    public async Task TokenCounts_GiveBackTheRequestTheyTook_SoMessagesStillFindTheKeyReady()
    {
        // Arrange: one request a minute; token counts must not spend it (Anthropic limits them apart)
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, """{"input_tokens":12}""");
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay(
            [TestConfig.Provider("a", _upstream.BaseUrl).WithKeys(new KeyConfig("key-one", 1, 0, 0, 0, 0, 1, null))],
            apiKey: RelayKey,
            routing: TestConfig.Routing(failoverTimeoutMs: 1)));

        // Act
        for (var i = 0; i < 3; i++)
        {
            using var count = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody, path: "/v1/messages/count_tokens", apiKey: RelayKey));
            Assert.Equal(HttpStatusCode.OK, count.StatusCode);
        }

        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("message after counts"));
        using var message = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody, apiKey: RelayKey));

        // Assert
        Assert.Equal(HttpStatusCode.OK, message.StatusCode);
        Assert.Equal(4, _upstream.Requests.Count);
    }

    [Fact]
    public async Task JsonAnswer_ItsOutputTokensAreCharged_SoTheNextRequestFindsTheKeySpent()
    {
        // Arrange
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200,
            """{"id":"msg_1","type":"message","role":"assistant","model":"claude-test","content":[{"type":"text","text":"long"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":"""
            + SpentOutputTokens + "}}");
        await using var relay = await RelayAsync();

        // Act
        using var first = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody, apiKey: RelayKey));
        await first.Content.ReadAsStringAsync();
        using var second = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody, apiKey: RelayKey));

        // Assert
        AssertSettled(first, second);
    }

    [Fact]
    public async Task StreamedAnswer_ItsFinalMessageDeltaUsageIsCharged_SoTheNextRequestFindsTheKeySpent()
    {
        // Arrange
        _upstream.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart() + Fake.TextBlock(0, "long") + Fake.MessageEnd(outputTokens: SpentOutputTokens));
        };
        await using var relay = await RelayAsync();

        // Act
        using var first = await relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody, apiKey: RelayKey));
        Assert.Contains("message_stop", await first.Content.ReadAsStringAsync());
        using var second = await relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody, apiKey: RelayKey));

        // Assert
        AssertSettled(first, second);
    }

    [Fact]
    public async Task SmallAnswers_LeaveTheKeyReady()
    {
        // Arrange: 2 output tokens per answer, well within the minute's 60
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("short"));
        await using var relay = await RelayAsync();

        // Act
        using var first = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody, apiKey: RelayKey));
        using var second = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody, apiKey: RelayKey));

        // Assert
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal(2, _upstream.Requests.Count);
    }

    private void AssertSettled(HttpResponseMessage first, HttpResponseMessage second)
    {
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);

        // the relay answers the second request itself: the upstream saw only the first
        Assert.Equal(HttpStatusCode.TooManyRequests, second.StatusCode);
        Assert.Single(_upstream.Requests);

        // an empty bucket refills one token every 10 s
        var retryAfter = int.Parse(second.Headers.GetValues("retry-after").Single(), CultureInfo.InvariantCulture);
        Assert.Equal(10, retryAfter);
    }
}
