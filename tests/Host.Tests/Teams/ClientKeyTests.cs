using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;

namespace CcRelay.Host.Tests.Teams;

/// <summary>Client keys (clients[]) on the real relay: who passes, what they may ask, their limits and budgets.</summary>
public sealed class ClientKeyTests : IAsyncLifetime
{
    public const string AliceKey = "alice-relay-key-0123456789abcdef";
    public const string BobKey = "bob-relay-key-0123456789abcdef00";
    public const string UpstreamKey = "sk-upstream-configured-key-987";
    private FakeUpstream _upstream = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, PricedAnswer());
    }

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    /// <summary>An answer of claude-sonnet-4-6 with 1,000 input and 1,000 output tokens: USD 0.018 at list prices.</summary>
    public static string PricedAnswer() =>
        """{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1000,"output_tokens":1000}}""";

    public static ClientConfig Client(
        string name,
        string key,
        int rpm = 0,
        IEnumerable<string>? models = null,
        IEnumerable<Budget>? budgets = null,
        DateTimeOffset? expires = null,
        int maxConcurrent = 0,
        IEnumerable<string>? stages = null)
    {
        var digest = SHA256.HashData(Encoding.UTF8.GetBytes(key));
        return new ClientConfig(
            name,
            digest,
            Convert.ToHexStringLower(digest)[..8],
            expires is { } at ? FSharpOption<DateTimeOffset>.Some(at) : FSharpOption<DateTimeOffset>.None,
            FSharpList<string>.Empty,
            ListModule.OfSeq(models ?? []),
            ListModule.OfSeq(stages ?? []),
            rpm,
            0,
            0,
            maxConcurrent,
            ListModule.OfSeq(budgets ?? []),
            FSharpList<Tuple<string, string>>.Empty);
    }

    public static Budget Daily(decimal usd) => new(BudgetPeriod.Day, usd, FSharpOption<string>.None);

    private RelayConfig Config(params ClientConfig[] clients) => TestConfig.Relay(
        [TestConfig.Provider("anthropic", _upstream.BaseUrl, ProviderType.Anthropic, keys: [UpstreamKey])],
        clients: clients);

    private static HttpRequestMessage Message(string? key, string model = "claude-sonnet-4-6") =>
        Requests.Messages("""{"model":""" + JsonSerializer.Serialize(model) + ""","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}""", apiKey: key);

    private static async Task<(string Type, string Message)> ErrorOf(HttpResponseMessage response)
    {
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var error = json.RootElement.GetProperty("error");
        return (error.GetProperty("type").GetString()!, error.GetProperty("message").GetString()!);
    }

    [Fact]
    public async Task ClientKey_IsConsumed_ConfiguredKeyGoesUpstream_AndTheLineNamesTheClient()
    {
        // Arrange
        var alice = Client("alice", AliceKey);
        await using var relay = await RelayHost.StartAsync(Config(alice));

        // Act
        using var response = await relay.Client.SendAsync(Message(AliceKey));

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var seen = _upstream.Requests.Single();
        Assert.Equal(UpstreamKey, seen.Header("x-api-key"));
        Assert.DoesNotContain(seen.Headers.Values, v => v.Contains(AliceKey, StringComparison.Ordinal));
        var line = (await relay.Logs.RequestLinesAsync()).Single();
        Assert.Equal("alice", line.Fields["client"]);
        Assert.Equal(alice.KeyId, line.Fields["client_key_id"]);
    }

    [Fact]
    public async Task WithClients_AnOpenRelay_RefusesEveryOtherCredential()
    {
        await using var relay = await RelayHost.StartAsync(Config(Client("alice", AliceKey)));

        using var none = await relay.Client.SendAsync(Message(null));
        using var wrong = await relay.Client.SendAsync(Message("sk-ant-someone-elses-key"));

        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.Equal("authentication_error", (await ErrorOf(wrong)).Type);
        Assert.Empty(_upstream.Requests);
    }

    [Fact]
    public async Task ServerAuthKey_KeepsWorking_BesideClients_AsNoClient()
    {
        var config = TestConfig.Relay(
            [TestConfig.Provider("anthropic", _upstream.BaseUrl, ProviderType.Anthropic, keys: [UpstreamKey])],
            apiKey: "operator-relay-secret",
            clients: [Client("alice", AliceKey, rpm: 1)]);
        await using var relay = await RelayHost.StartAsync(config);

        using var first = await relay.Client.SendAsync(Message("operator-relay-secret"));
        using var second = await relay.Client.SendAsync(Message("operator-relay-secret"));

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        var lines = await relay.Logs.RequestLinesAsync(2);
        Assert.All(lines, l => Assert.Equal("-", l.Fields["client"]));
    }

    [Fact]
    public async Task ClientOverRpm_Gets429_WithRetryAfter()
    {
        await using var relay = await RelayHost.StartAsync(Config(Client("alice", AliceKey, rpm: 1)));

        using var first = await relay.Client.SendAsync(Message(AliceKey));
        using var second = await relay.Client.SendAsync(Message(AliceKey));

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, second.StatusCode);
        var retryAfter = int.Parse(second.Headers.GetValues("retry-after").Single(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(retryAfter, 1, 60);
        var (type, message) = await ErrorOf(second);
        Assert.Equal("rate_limit_error", type);
        Assert.Contains("rpm_limit", message);
        Assert.Single(_upstream.Requests);
        var refused = (await relay.Logs.RequestLinesAsync(2)).Last();
        Assert.Equal(429, refused.Fields["status"]);
        Assert.Equal(0, refused.Fields["attempts"]);
    }

    [Fact]
    public async Task ClientOverMaxConcurrent_Gets429_UntilTheRequestInFlightEnds()
    {
        var release = new TaskCompletionSource();
        var arrived = new TaskCompletionSource();
        _upstream.Handler = async context =>
        {
            arrived.TrySetResult();
            await release.Task;
            await Fake.WriteJsonAsync(context, 200, PricedAnswer());
        };
        await using var relay = await RelayHost.StartAsync(Config(Client("alice", AliceKey, maxConcurrent: 1)));

        var first = relay.Client.SendAsync(Message(AliceKey));
        await arrived.Task;
        using var second = await relay.Client.SendAsync(Message(AliceKey));
        release.SetResult();
        using var firstResponse = await first;
        using var third = await relay.Client.SendAsync(Message(AliceKey));

        Assert.Equal(HttpStatusCode.TooManyRequests, second.StatusCode);
        Assert.True(second.Headers.Contains("retry-after"));
        Assert.Equal(HttpStatusCode.OK, firstResponse.StatusCode);
        Assert.Equal(HttpStatusCode.OK, third.StatusCode);
    }

    [Fact]
    public async Task ClientOverBudget_IsBlocked_With429_AndRetryAfterUntilTheDayEnds()
    {
        // Arrange: a 1-cent daily budget; one answer costs 1.8 cents
        await using var relay = await RelayHost.StartAsync(Config(Client("alice", AliceKey, budgets: [Daily(0.01m)])));

        // Act
        using var first = await relay.Client.SendAsync(Message(AliceKey));
        using var second = await relay.Client.SendAsync(Message(AliceKey));

        // Assert
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, second.StatusCode);
        var (type, message) = await ErrorOf(second);
        Assert.Equal("rate_limit_error", type);
        Assert.Contains("day budget of USD 0.01", message);
        Assert.Contains("resets at", message);
        var retryAfter = long.Parse(second.Headers.GetValues("retry-after").Single(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(retryAfter, 1, 86_400);
        Assert.Single(_upstream.Requests);
    }

    [Fact]
    public async Task ClientOverBudget_IsAudited_AsBudgetBlocked_WithItsNameAndKeyId_AndNoSecret()
    {
        // Arrange: the audit log on, and a daily budget smaller than any request's estimate
        using var files = new Edge.EdgeCertificates();
        var auditPath = Path.Combine(files.Directory, "audit.jsonl");
        var alice = Client("alice", AliceKey, budgets: [Daily(0.000001m)]);
        await using var relay = await RelayHost.StartAsync(Config(alice)
            .With(edge: Edge.EdgeConfigs.Edge(security: Edge.EdgeConfigs.Security(auditPath: auditPath))));

        // Act
        using var blocked = await relay.Client.SendAsync(Message(AliceKey));

        // Assert: refused before the upstream, and one budget.blocked line naming the client and its key id
        Assert.Equal(HttpStatusCode.TooManyRequests, blocked.StatusCode);
        Assert.Empty(_upstream.Requests);
        var text = await File.ReadAllTextAsync(auditPath);
        var line = Assert.Single(
            text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.Clone()),
            l => l.GetProperty("event").GetString() == "budget.blocked");
        Assert.Equal("alice", line.GetProperty("client").GetString());
        Assert.Equal(alice.KeyId, line.GetProperty("actor").GetString());
        Assert.Equal("day", line.GetProperty("budget").GetString());
        Assert.Equal("blocked", line.GetProperty("outcome").GetString());
        Assert.DoesNotContain(AliceKey, text, StringComparison.Ordinal);
        Assert.DoesNotContain(UpstreamKey, text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ExpiredKey_IsRefused_With401()
    {
        await using var relay = await RelayHost.StartAsync(Config(Client("alice", AliceKey, expires: DateTimeOffset.UnixEpoch)));

        using var response = await relay.Client.SendAsync(Message(AliceKey));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var (type, message) = await ErrorOf(response);
        Assert.Equal("authentication_error", type);
        Assert.Contains("expired", message);
        Assert.DoesNotContain(AliceKey, message);
        Assert.Empty(_upstream.Requests);
    }

    [Fact]
    public async Task AllowedModels_AreEnforced()
    {
        await using var relay = await RelayHost.StartAsync(Config(Client("alice", AliceKey, models: ["claude-sonnet-*"])));

        using var allowed = await relay.Client.SendAsync(Message(AliceKey, "claude-sonnet-4-6"));
        using var refused = await relay.Client.SendAsync(Message(AliceKey, "claude-opus-4-5"));

        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        var (type, message) = await ErrorOf(refused);
        Assert.Equal("invalid_request_error", type);
        Assert.Contains("may not use model claude-opus-4-5", message);
        Assert.Single(_upstream.Requests);
    }

    [Fact]
    public async Task AllowedProviders_AreTheOnlyOnesPlanned()
    {
        // Arrange: the first provider by priority is not alice's
        await using var other = await FakeUpstream.StartAsync();
        other.Handler = context => Fake.WriteJsonAsync(context, 200, PricedAnswer());
        var alice = Client("alice", AliceKey);
        alice = new ClientConfig(
            alice.Name, alice.KeyDigest, alice.KeyId, alice.ExpiresAt, ListModule.OfSeq(["mine"]), alice.Models, alice.Stages,
            alice.RpmLimit, alice.ItpmLimit, alice.OtpmLimit, alice.MaxConcurrent, alice.Budgets, alice.Metadata);
        var config = TestConfig.Relay(
            [
                TestConfig.Provider("first", other.BaseUrl, ProviderType.Anthropic, keys: [UpstreamKey], priority: 10),
                TestConfig.Provider("mine", _upstream.BaseUrl, ProviderType.Anthropic, keys: [UpstreamKey], priority: 1),
            ],
            apiKey: "operator-relay-secret",
            clients: [alice]);
        await using var relay = await RelayHost.StartAsync(config);

        // Act
        using var asAlice = await relay.Client.SendAsync(Message(AliceKey));
        using var asOperator = await relay.Client.SendAsync(Message("operator-relay-secret"));

        // Assert
        Assert.Equal(HttpStatusCode.OK, asAlice.StatusCode);
        Assert.Equal(HttpStatusCode.OK, asOperator.StatusCode);
        Assert.Single(_upstream.Requests);
        Assert.Single(other.Requests);
    }

    [Fact]
    public async Task ClientMetrics_CountRequestsAndRefusals_ByClientName()
    {
        await using var relay = await RelayHost.StartAsync(Config(Client("alice", AliceKey, rpm: 1)));

        using var first = await relay.Client.SendAsync(Message(AliceKey));
        using var second = await relay.Client.SendAsync(Message(AliceKey));
        var scrape = await relay.ScrapeAsync();

        Assert.Contains("ccrelay_client_requests_total{client=\"alice\",result=\"ok\"} 1", scrape);
        Assert.Contains("ccrelay_client_refusals_total{client=\"alice\",reason=\"rpm\"} 1", scrape);
        Assert.DoesNotContain(AliceKey, scrape);
    }
}
