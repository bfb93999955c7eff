using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Clients;
using CcRelay.Host.Tests.Edge;
using CcRelay.Host.Tests.Infrastructure;
using CcRelay.Management.V1;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.FSharp.Core;

namespace CcRelay.Host.Tests.Teams;

/// <summary>
/// Client keys added, rotated and revoked at run time through the management API, on the real relay: they take
/// effect at once, survive a restart and a reload, are audited, and no key appears in any answer, log, ledger or
/// audit line. Also: the embedded relay's auth-failure audit, and settlements across a reload that reorders budgets.
/// </summary>
public sealed class RuntimeClientKeyTests : IAsyncLifetime
{
    private const string Token = "mgmt-token-runtime-keys-0001";
    private const string CarolKey = "ccr_carol-runtime-key-000000000000000001";
    private const string AliceNewKey = "ccr_alice-rotated-key-00000000000000002";
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);
    private readonly EdgeCertificates _files = new();
    private FakeUpstream _upstream = null!;

    private string AuditPath => Path.Combine(_files.Directory, "audit.jsonl");

    private string LedgerPath => Path.Combine(_files.Directory, "state", "ledger.db");

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, ClientKeyTests.PricedAnswer());
    }

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        _files.Dispose();
    }

    private static string Sha(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    private RelayConfig Config(params ClientConfig[] clients) =>
        TestConfig.Relay(
            [TestConfig.Provider("anthropic", _upstream.BaseUrl, ProviderType.Anthropic, keys: [ClientKeyTests.UpstreamKey])],
            clients: clients.Length == 0 ? [ClientKeyTests.Client("alice", ClientKeyTests.AliceKey, rpm: 100)] : clients,
            ledger: TestConfig.Ledger(LedgerPath))
        .With(
            grpc: GrpcConfig.Create(true, new ListenAddress("127.0.0.1", 0), Token),
            edge: EdgeConfigs.Edge(security: EdgeConfigs.Security(auditPath: AuditPath)));

    private static Metadata Auth => new() { { "authorization", "Bearer " + Token } };

    private static RelayManagement.RelayManagementClient Api(RelayHost relay, out GrpcChannel channel)
    {
        channel = GrpcChannel.ForAddress(relay.Addresses[^1]);
        return new RelayManagement.RelayManagementClient(channel);
    }

    private static async Task<HttpStatusCode> SendAsync(RelayHost relay, string key)
    {
        using var response = await relay.Client.SendAsync(Requests.Messages(
            """{"model":"claude-sonnet-4-6","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}""", apiKey: key));
        return response.StatusCode;
    }

    private List<JsonElement> AuditLines() =>
        [.. File.ReadAllLines(AuditPath).Select(line => JsonDocument.Parse(line).RootElement.Clone())];

    [Fact]
    public async Task AddRotateRevoke_TakeEffectAtOnce_AreAudited_AndNoKeyAppearsAnywhere()
    {
        // Arrange
        await using var relay = await RelayHost.StartAsync(Config());
        var api = Api(relay, out var channel);
        using var _ = channel;

        // Act: carol is added like alice; alice's key is rotated with an hour's grace; carol is revoked
        var added = await api.AddClientAsync(new AddClientRequest { Name = "carol", KeySha256 = Sha(CarolKey), Like = "alice", Actor = "cli" }, Auth);
        var carolServed = await SendAsync(relay, CarolKey);
        var rotated = await api.RotateClientAsync(new RotateClientRequest { Name = "alice", KeySha256 = Sha(AliceNewKey), GraceMs = 3_600_000, Actor = "cli" }, Auth);
        var aliceOld = await SendAsync(relay, ClientKeyTests.AliceKey);
        var aliceNew = await SendAsync(relay, AliceNewKey);
        var listed = await api.ListClientsAsync(new ListClientsRequest(), Auth);
        var revoked = await api.RevokeClientAsync(new RevokeClientRequest { Name = "carol", Actor = "cli" }, Auth);
        var carolAfter = await SendAsync(relay, CarolKey);

        // Assert: each took effect for the next request
        Assert.Equal(HttpStatusCode.OK, carolServed);
        Assert.Equal(HttpStatusCode.OK, aliceOld);
        Assert.Equal(HttpStatusCode.OK, aliceNew);
        Assert.Equal(HttpStatusCode.Unauthorized, carolAfter);
        Assert.Equal("runtime", added.Client.Source);
        Assert.Equal(Sha(CarolKey)[..8], added.Client.KeyId);
        Assert.Equal(Sha(ClientKeyTests.AliceKey)[..8], rotated.PreviousKeyId);
        Assert.True(rotated.GraceUntilUnixMs > 0);
        var alice = Assert.Single(listed.Clients, c => c.Name == "alice");
        Assert.Equal("config", alice.Source);
        Assert.Equal(Sha(AliceNewKey)[..8], alice.KeyId);
        Assert.Equal(Sha(ClientKeyTests.AliceKey)[..8], Assert.Single(alice.Grace).KeyId);
        Assert.Equal([Sha(CarolKey)[..8]], revoked.RevokedKeyIds);
        Assert.Equal("revoked", revoked.Client.State);

        // the request lines name the client each key belongs to (alice for both of her keys)
        var lines = await relay.Logs.RequestLinesAsync(4).WaitAsync(Bound);
        Assert.Equal(["carol", "alice", "alice", "-"], lines.Select(l => (string)l.Fields["client"]!));

        // audited: who (the CLI, with the token's id), what, which key id
        var changes = AuditLines().Where(l => l.GetProperty("event").GetString() == "client_key.changed").ToList();
        Assert.Equal(["added", "rotated", "revoked"], changes.Select(c => c.GetProperty("change").GetString()));
        Assert.All(changes, c => Assert.Equal("cli:token-" + KeyId.ofSecret(Token), c.GetProperty("actor").GetString()));
        Assert.Equal(Sha(ClientKeyTests.AliceKey)[..8], changes[1].GetProperty("previous_key_id").GetString());
        Assert.Equal("alice", changes[0].GetProperty("like").GetString());

        // no key anywhere: answers, audit log, ledger file (which holds only digests), logs
        await relay.Services.GetRequiredService<Ledger.IUsageLedger>().FlushAsync();
        var everything = string.Join("\n", new IMessage[] { added, rotated, listed, revoked }.Select(m => JsonFormatter.Default.Format(m)))
            + await File.ReadAllTextAsync(AuditPath)
            + Encoding.Latin1.GetString(await File.ReadAllBytesAsync(LedgerPath))
            + string.Join("\n", relay.Logs.Lines.Select(l => l.Message));
        foreach (var secret in new[] { CarolKey, AliceNewKey, ClientKeyTests.AliceKey, Token })
        {
            Assert.DoesNotContain(secret, everything, StringComparison.Ordinal);
        }

        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(LedgerPath));
        }
    }

    [Fact]
    public async Task ARevokedKey_ThatTheSnapshotRemembers_IsRefusedByTheNextRequest()
    {
        // Arrange: carol's key admitted twice on one snapshot (the second time recognised without hashing it)
        await using var relay = await RelayHost.StartAsync(Config());
        var api = Api(relay, out var channel);
        using var _ = channel;
        await api.AddClientAsync(new AddClientRequest { Name = "carol", KeySha256 = Sha(CarolKey), Like = "alice", Actor = "cli" }, Auth);
        var first = await SendAsync(relay, CarolKey);
        var second = await SendAsync(relay, CarolKey);
        var remembered = relay.Services.GetRequiredService<RelayState>().Current.ClientKeyIndex;

        // Act
        await api.RevokeClientAsync(new RevokeClientRequest { Name = "carol", Actor = "cli" }, Auth);
        var after = await SendAsync(relay, CarolKey);
        var alice = await SendAsync(relay, ClientKeyTests.AliceKey);

        // Assert
        Assert.Equal(HttpStatusCode.OK, first);
        Assert.Equal(HttpStatusCode.OK, second);
        Assert.Contains(Enumerable.Range(0, remembered.Count), remembered.Remembers);
        Assert.Equal(HttpStatusCode.Unauthorized, after);
        Assert.Equal(HttpStatusCode.OK, alice);
    }

    [Fact]
    public async Task RuntimeChanges_SurviveARestart_AndAReload()
    {
        // Arrange: carol added, alice revoked, on a first relay
        await using (var first = await RelayHost.StartAsync(Config()))
        {
            var api = Api(first, out var channel);
            using var _ = channel;
            await api.AddClientAsync(new AddClientRequest { Name = "carol", KeySha256 = Sha(CarolKey), Actor = "cli" }, Auth);
            await api.RevokeClientAsync(new RevokeClientRequest { Name = "alice", Actor = "cli" }, Auth);
        }

        // Act: a second relay on the same state file, then a reload of the same config
        await using var second = await RelayHost.StartAsync(Config());
        var afterRestart = (await SendAsync(second, CarolKey), await SendAsync(second, ClientKeyTests.AliceKey));
        second.State.Swap(second.State.Current.Config);
        var afterReload = (await SendAsync(second, CarolKey), await SendAsync(second, ClientKeyTests.AliceKey));

        // Assert
        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.Unauthorized), afterRestart);
        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.Unauthorized), afterReload);
    }

    [Fact]
    public async Task RefusedChanges_AnswerLocatedStatuses_AndChangeNothing()
    {
        await using var relay = await RelayHost.StartAsync(Config());
        var api = Api(relay, out var channel);
        using var _ = channel;

        var configName = await Assert.ThrowsAsync<RpcException>(async () =>
            await api.AddClientAsync(new AddClientRequest { Name = "alice", KeySha256 = Sha(CarolKey) }, Auth));
        var badDigest = await Assert.ThrowsAsync<RpcException>(async () =>
            await api.AddClientAsync(new AddClientRequest { Name = "carol", KeySha256 = CarolKey }, Auth));
        var unknown = await Assert.ThrowsAsync<RpcException>(async () =>
            await api.RevokeClientAsync(new RevokeClientRequest { Name = "zed" }, Auth));
        var tooLong = await Assert.ThrowsAsync<RpcException>(async () =>
            await api.RotateClientAsync(new RotateClientRequest { Name = "alice", KeySha256 = Sha(AliceNewKey), GraceMs = (long)TimeSpan.FromDays(31).TotalMilliseconds }, Auth));

        Assert.Equal(StatusCode.AlreadyExists, configName.StatusCode);
        Assert.Contains("config file", configName.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(StatusCode.InvalidArgument, badDigest.StatusCode);
        Assert.Contains("key_sha256", badDigest.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(CarolKey, badDigest.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
        Assert.Equal(StatusCode.InvalidArgument, tooLong.StatusCode);
        Assert.Equal(HttpStatusCode.OK, await SendAsync(relay, ClientKeyTests.AliceKey));
        Assert.Empty(relay.State.ClientKeyChanges);
        Assert.False(File.Exists(LedgerPath) && (await new SqliteClientKeyStore(LedgerPath).LoadAsync()).Count > 0);
    }

    [Fact]
    public async Task AnEmbeddedRelay_AuditsAuthenticationFailures()
    {
        // Arrange: the relay in an application of its own (AddCcRelay, MapCcRelay; no standalone middleware)
        var config = Config();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Services.AddCcRelay(options =>
        {
            options.Config = config;
            options.WatchConfig = false;
        });
        await using var app = builder.Build();
        app.MapCcRelay();
        await app.StartAsync();
        using var client = new HttpClient { BaseAddress = new Uri(CcRelayServer.Addresses(app)[0]) };

        // Act
        using var response = await client.SendAsync(Requests.Messages(
            """{"model":"claude-sonnet-4-6","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}""", apiKey: "wrong-key-embedded-0001"));
        await app.StopAsync();

        // Assert
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var failed = Assert.Single(AuditLines(), l => l.GetProperty("event").GetString() == "auth.failed");
        Assert.Equal("relay", failed.GetProperty("surface").GetString());
        Assert.Equal(KeyId.ofSecret("wrong-key-embedded-0001"), failed.GetProperty("actor").GetString());
        Assert.DoesNotContain("wrong-key-embedded-0001", await File.ReadAllTextAsync(AuditPath), StringComparison.Ordinal);
    }

    [Fact]
    public void ASettlement_AfterAReloadThatReorderedTheBudgets_ChargesTheBudgetsItReserved()
    {
        // Arrange: alice with a day budget and an Opus week budget, admitted for a Sonnet request
        var day = ClientKeyTests.Daily(10m);
        var opusWeek = new Budget(BudgetPeriod.Week, 5m, FSharpOption<string>.Some("claude-opus-*"));
        var before = ClientKeyTests.Client("alice", ClientKeyTests.AliceKey, budgets: [day, opusWeek]);
        var gate = new ClientGate(TestConfig.Relay([], clients: [before]), Ledger.NullLedger.Instance, TimeProvider.System);
        var ticket = gate.Admit(before, new ClientDemand("claude-sonnet-4-6", 10, 10, 1m)).ResultValue;

        // Act: a reload reorders the budgets (a request under the new config meets the cell), then the request ends
        var after = ClientKeyTests.Client("alice", ClientKeyTests.AliceKey, budgets: [opusWeek, day]);
        _ = gate.SpendOf(after);
        gate.Settle(before, ticket, null, 0.25m);

        // Assert: the day budget (now second) has the cost; the Opus week has nothing
        var spend = gate.SpendOf(after);
        Assert.Equal(0m, spend[0].Spent + spend[0].Reserved);
        Assert.Equal(0.25m, spend[1].Spent);
        Assert.Equal(0m, spend[1].Reserved);
    }
}
