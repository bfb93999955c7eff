using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;
using CcRelay.Management.V1;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.FSharp.Core;

namespace CcRelay.Host.Tests.Teams;

/// <summary>The management API's <c>GetUsage</c>: what <c>cc-relay usage</c> shows, from the live relay.</summary>
public sealed class GetUsageTests : IAsyncLifetime
{
    private const string Token = "mgmt-token-usage-0123456789";
    private FakeUpstream _upstream = null!;
    private string _directory = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, ClientKeyTests.PricedAnswer());
        _directory = Path.Combine(Path.GetTempPath(), "cc-relay-usage-" + Guid.NewGuid().ToString("N"));
    }

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public async Task GetUsage_ByClient_IncludesRowsStillQueued_AndRefusesABadGrouping()
    {
        // Arrange: a long flush interval, so only GetUsage's own flush can have written the rows
        var config = TestConfig.Relay(
            [TestConfig.Provider("anthropic", _upstream.BaseUrl, ProviderType.Anthropic, keys: [ClientKeyTests.UpstreamKey])],
            clients: [ClientKeyTests.Client("alice", ClientKeyTests.AliceKey)],
            ledger: TestConfig.Ledger(Path.Combine(_directory, "ledger.db"), flushIntervalMs: 60_000))
            .With(grpc: new GrpcConfig(true, new ListenAddress("127.0.0.1", 0), FSharpOption<string>.Some(Token), FSharpOption<ListenAddress>.None));
        await using var relay = await RelayHost.StartAsync(config);
        using (await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody, apiKey: ClientKeyTests.AliceKey)))
        {
        }

        await relay.Logs.RequestLinesAsync();
        using var channel = GrpcChannel.ForAddress(relay.Addresses[^1]);
        var client = new RelayManagement.RelayManagementClient(channel);
        var auth = new Metadata { { "authorization", "Bearer " + Token } };

        // Act
        var usage = await client.GetUsageAsync(new GetUsageRequest { By = "client", Since = "1d" }, auth);
        var bad = await Assert.ThrowsAsync<RpcException>(() => client.GetUsageAsync(new GetUsageRequest { By = "team" }, auth).ResponseAsync);

        // Assert
        Assert.True(usage.LedgerEnabled);
        Assert.True(usage.LedgerHealthy);
        var alice = Assert.Single(usage.Groups);
        Assert.Equal("alice", alice.Key);
        Assert.Equal(1, alice.Requests);
        Assert.Equal(1000, alice.OutputTokens);
        Assert.Equal(0.018, alice.CostUsd, 9);
        Assert.Equal(StatusCode.InvalidArgument, bad.StatusCode);
        Assert.DoesNotContain(ClientKeyTests.AliceKey, usage.ToString());
    }
}
