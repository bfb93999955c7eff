using System.Net;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;
using CcRelay.Management.V1;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Microsoft.FSharp.Core;
using HealthClient = Grpc.Health.V1.Health.HealthClient;

namespace CcRelay.Host.Tests.Management;

/// <summary>
/// The gRPC management API against a real relay (grpc enabled on 127.0.0.1:0) and two fake upstreams, called
/// with Grpc.Net.Client: every method, the token, the listener separation, and no secret in any answer.
/// </summary>
public sealed class ManagementApiTests : TwoUpstreamTests
{
    private const string Token = "mgmt-token-0123456789";
    private const string SecretA = "sk-secret-key-of-a-0001";
    private const string SecretB = "sk-secret-key-of-b-0002";

    private static RelayConfig Config(FakeUpstream a, FakeUpstream b, string? token = Token) =>
        TestConfig.Relay([
            TestConfig.Provider("a", a.BaseUrl, keys: [SecretA], priority: 2),
            TestConfig.Provider("b", b.BaseUrl, keys: [SecretB], priority: 1),
        ]).With(grpc: new GrpcConfig(true, new ListenAddress("127.0.0.1", 0), token is null ? FSharpOption<string>.None : FSharpOption<string>.Some(token), FSharpOption<ListenAddress>.None));

    private static GrpcChannel Channel(RelayHost relay) => GrpcChannel.ForAddress(relay.Addresses[^1]);

    private static Metadata Auth(string token = Token) => new() { { "authorization", "Bearer " + token } };

    [Fact]
    public async Task GetStatus_ListProviders_ListKeys_GetConfig_ShowTheLiveRelay_WithKeysOnlyAsIds()
    {
        await using var relay = await RelayHost.StartAsync(Config(A, B));
        using var channel = Channel(relay);
        var client = new RelayManagement.RelayManagementClient(channel);
        A.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-a"));
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using (var watch = client.WatchRequests(new WatchRequestsRequest(), Auth(), cancellationToken: cancel.Token))
        {
            // the request's record is complete once it is streamed: the totals below include it
            await watch.ResponseHeadersAsync;
            await SendAsync(relay);
            Assert.True(await watch.ResponseStream.MoveNext(cancel.Token));
        }

        var status = await client.GetStatusAsync(new GetStatusRequest(), Auth());
        var providers = await client.ListProvidersAsync(new ListProvidersRequest(), Auth());
        var keys = await client.ListKeysAsync(new ListKeysRequest { Provider = "a" }, Auth());
        var config = await client.GetConfigAsync(new GetConfigRequest(), Auth());

        Assert.Equal(RelayInfo.Version, status.Version);
        Assert.Equal(1, status.ConfigGeneration);
        Assert.Equal("failover", status.RoutingStrategy);
        Assert.Equal(2, status.ProvidersTotal);
        Assert.Equal(2, status.ProvidersUp);
        Assert.Equal(1, status.Totals.Requests);
        Assert.Equal(3, status.Totals.InputTokens);
        Assert.Equal("off", status.SharedState.Status);
        Assert.Contains("state.postgres is not set", status.SharedState.Detail);
        Assert.Equal(0, status.SharedState.SinceUnixMs);
        Assert.Equal(["a", "b"], providers.Providers.Select(p => p.Name));
        var a = providers.Providers[0];
        Assert.Equal("closed", a.Circuit);
        Assert.True(a.Up);
        Assert.Equal("unknown", a.Probe);
        Assert.Equal([KeyId.ofSecret(SecretA)], a.Keys.Select(k => k.KeyId));
        Assert.Equal([KeyId.ofSecret(SecretA)], keys.Keys.Select(k => k.KeyId));
        Assert.Contains("key_id: \"" + KeyId.ofSecret(SecretA) + "\"", config.Yaml, StringComparison.Ordinal);
        Assert.Contains("auth_token: \"<redacted>\"", config.Yaml, StringComparison.Ordinal);

        // no answer carries a secret
        foreach (var message in new IMessage[] { status, providers, keys, config })
        {
            var json = JsonFormatter.Default.Format(message);
            Assert.DoesNotContain(SecretA, json, StringComparison.Ordinal);
            Assert.DoesNotContain(SecretB, json, StringComparison.Ordinal);
            Assert.DoesNotContain(Token, json, StringComparison.Ordinal);
        }

        var missing = await Assert.ThrowsAsync<RpcException>(() => client.ListKeysAsync(new ListKeysRequest { Provider = "nope" }, Auth()).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task EveryCall_WithoutTheToken_OrWithAWrongOne_IsUnauthenticated_HealthAndReflectionIncluded()
    {
        await using var relay = await RelayHost.StartAsync(Config(A, B));
        using var channel = Channel(relay);
        var client = new RelayManagement.RelayManagementClient(channel);
        var health = new HealthClient(channel);

        var none = await Assert.ThrowsAsync<RpcException>(() => client.GetStatusAsync(new GetStatusRequest()).ResponseAsync);
        var wrong = await Assert.ThrowsAsync<RpcException>(() => client.ListProvidersAsync(new ListProvidersRequest(), Auth("nope")).ResponseAsync);
        var healthNone = await Assert.ThrowsAsync<RpcException>(() => health.CheckAsync(new HealthCheckRequest()).ResponseAsync);
        using var stream = client.WatchRequests(new WatchRequestsRequest());
        var streamNone = await Assert.ThrowsAsync<RpcException>(() => stream.ResponseStream.MoveNext());

        Assert.All([none, wrong, healthNone, streamNone], e => Assert.Equal(StatusCode.Unauthenticated, e.StatusCode));
        Assert.DoesNotContain(Token, none.Status.Detail, StringComparison.Ordinal);
        var serving = await health.CheckAsync(new HealthCheckRequest(), Auth());
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, serving.Status);
    }

    [Fact]
    public async Task WithoutAToken_OnLoopback_CallsNeedNoAuthorization_AndTheApiIsOnlyOnItsOwnListener()
    {
        await using var relay = await RelayHost.StartAsync(Config(A, B, token: null));
        using var channel = Channel(relay);
        var client = new RelayManagement.RelayManagementClient(channel);

        var status = await client.GetStatusAsync(new GetStatusRequest());
        Assert.Equal(2, status.ProvidersTotal);

        // the relay's routes are not on the management listener, and the API is not on the relay's
        using var http2 = new HttpClient { DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        using var models = await http2.GetAsync(new Uri(relay.Addresses[^1], "/v1/models"));
        Assert.Equal(HttpStatusCode.NotFound, models.StatusCode);
        using var onRelay = await relay.Client.PostAsync("/ccrelay.v1.RelayManagement/GetStatus", new ByteArrayContent([]));
        Assert.Equal(HttpStatusCode.NotFound, onRelay.StatusCode);
    }

    [Fact]
    public async Task SetProviderEnabled_False_SendsTrafficElsewhere_AndTrue_BringsItBack()
    {
        await using var relay = await RelayHost.StartAsync(Config(A, B));
        using var channel = Channel(relay);
        var client = new RelayManagement.RelayManagementClient(channel);
        A.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-a"));

        var disabled = await client.SetProviderEnabledAsync(new SetProviderEnabledRequest { Name = "a", Enabled = false }, Auth());
        var again = await client.SetProviderEnabledAsync(new SetProviderEnabledRequest { Name = "a", Enabled = false }, Auth());
        var whileDisabled = await SendAsync(relay);
        var enabled = await client.SetProviderEnabledAsync(new SetProviderEnabledRequest { Name = "a", Enabled = true }, Auth());
        var afterwards = await SendAsync(relay);

        Assert.True(disabled.Changed);
        Assert.True(disabled.Provider.OperatorDisabled);
        Assert.Equal("disabled", disabled.Provider.Circuit);
        Assert.False(again.Changed);
        Assert.Contains("from-b", whileDisabled, StringComparison.Ordinal);
        Assert.True(enabled.Changed);
        Assert.Equal("closed", enabled.Provider.Circuit);
        Assert.Contains("from-a", afterwards, StringComparison.Ordinal);
        var unknown = await Assert.ThrowsAsync<RpcException>(() => client.SetProviderEnabledAsync(new SetProviderEnabledRequest { Name = "zz" }, Auth()).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
    }

    [Fact]
    public async Task WatchRequests_StreamsEachCompletedRequest_WithItsKeyId_Status_AndTokens()
    {
        await using var relay = await RelayHost.StartAsync(Config(A, B));
        using var channel = Channel(relay);
        var client = new RelayManagement.RelayManagementClient(channel);
        A.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-a"));
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var call = client.WatchRequests(new WatchRequestsRequest(), Auth(), cancellationToken: cancel.Token);
        await call.ResponseHeadersAsync; // subscribed

        await SendAsync(relay);
        Assert.True(await call.ResponseStream.MoveNext(cancel.Token));
        var completed = call.ResponseStream.Current;

        Assert.Equal("a", completed.Provider);
        Assert.Equal("claude-sonnet-4-6", completed.Model);
        Assert.Equal(KeyId.ofSecret(SecretA), completed.KeyId);
        Assert.Equal(200, completed.Status);
        Assert.Equal("ok", completed.Result);
        Assert.Equal("", completed.ErrorClass);
        Assert.Equal(3, completed.InputTokens);
        Assert.Equal(2, completed.OutputTokens);
        Assert.True(completed.LatencyMs > 0);
        Assert.DoesNotContain(SecretA, JsonFormatter.Default.Format(completed), StringComparison.Ordinal);
    }

    [Fact]
    public async Task WatchRequests_AFailedOverRequest_NamesTheProvidersItLeft()
    {
        await using var relay = await RelayHost.StartAsync(Config(A, B));
        using var channel = Channel(relay);
        var client = new RelayManagement.RelayManagementClient(channel);
        A.Handler = context => Fake.WriteJsonAsync(context, 529, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}");
        B.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-b"));
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var call = client.WatchRequests(new WatchRequestsRequest(), Auth(), cancellationToken: cancel.Token);
        await call.ResponseHeadersAsync; // subscribed

        var answer = await SendAsync(relay);
        Assert.True(await call.ResponseStream.MoveNext(cancel.Token));
        var completed = call.ResponseStream.Current;

        Assert.Contains("from-b", answer, StringComparison.Ordinal);
        Assert.Equal("b", completed.Provider);
        Assert.Equal(["a"], completed.FailedOver);
        Assert.Equal(2, completed.Attempts);
    }

    [Fact]
    public async Task WatchStats_SendsOneMessagePerInterval_WithTheWindowPerProvider()
    {
        await using var relay = await RelayHost.StartAsync(Config(A, B));
        using var channel = Channel(relay);
        var client = new RelayManagement.RelayManagementClient(channel);
        A.Handler = context => Fake.WriteJsonAsync(context, 429, """{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}""");
        await SendAsync(relay); // a: 429 → b answers
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var call = client.WatchStats(new WatchStatsRequest { IntervalMs = 100 }, Auth(), cancellationToken: cancel.Token);

        var messages = new List<Stats>();
        while (messages.Count < 3 && await call.ResponseStream.MoveNext(cancel.Token))
        {
            messages.Add(call.ResponseStream.Current);
        }

        var last = messages[^1];
        Assert.Equal(60_000, last.WindowMs);
        Assert.True(messages[2].UptimeMs - messages[0].UptimeMs >= 150, "two intervals of 100 ms apart");
        var b = last.Providers.Single(p => p.Name == "b");
        Assert.Equal(1, b.Requests);
        Assert.True(b.RequestsPerSecond > 0);
        Assert.True(b.LatencyMs.P99 > 0);
        Assert.Equal(3, b.InputTokens);
        Assert.Equal([KeyId.ofSecret(SecretB)], b.Keys.Select(k => k.KeyId));
        var a = last.Providers.Single(p => p.Name == "a");
        Assert.Equal(0, a.Requests); // the request is counted where it ended
        Assert.Equal(1, a.FailedAttempts); // and its failed attempt against the provider that failed it
        Assert.Equal(1, a.Attempts);
        Assert.Equal(1, a.Errors);
        Assert.True(a.ErrorsPerSecond["failed_over"] > 0);
        Assert.Equal(0, b.Errors);
        Assert.Equal(1, b.Attempts);
        Assert.Equal(1, last.Totals.Requests);
        var invalid = client.WatchStats(new WatchStatsRequest { WindowMs = 10 }, Auth());
        var error = await Assert.ThrowsAsync<RpcException>(() => invalid.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
    }

    [Fact]
    public async Task ReloadConfig_Invalid_AnswersTheLocatedErrors_AndKeepsTheRunningConfig_Valid_Applies()
    {
        var dir = Directory.CreateTempSubdirectory("ccrelay-grpc-");
        try
        {
            var path = Path.Combine(dir.FullName, "cc-relay.yaml");
            await File.WriteAllTextAsync(path, "providers: []\n");
            await using var relay = await RelayHost.StartAsync(Config(A, B), configPath: path, watchConfig: false); // only the API reloads: no race with the file watcher
            using var channel = Channel(relay);
            var client = new RelayManagement.RelayManagementClient(channel);

            await File.WriteAllTextAsync(path, $"""
                providers:
                  - name: a
                    type: anthropic_compatible
                    base_url: "{A.BaseUrl}"
                    keys:
                      - key: "sk-new-secret-in-file-9999"
                        rpm_limit: -5
                """);
            var rejected = await client.ReloadConfigAsync(new ReloadConfigRequest(), Auth());
            var stillRunning = await client.ListProvidersAsync(new ListProvidersRequest(), Auth());

            await File.WriteAllTextAsync(path, $"""
                providers:
                  - name: a
                    type: anthropic_compatible
                    base_url: "{A.BaseUrl}"
                    keys:
                      - key: "{SecretA}"
                """);
            var applied = await client.ReloadConfigAsync(new ReloadConfigRequest(), Auth());
            var status = await client.GetStatusAsync(new GetStatusRequest(), Auth());

            Assert.Equal("rejected", rejected.Outcome);
            var issue = Assert.Single(rejected.Errors);
            Assert.Equal("providers[0].keys[0].rpm_limit", issue.Path);
            Assert.Equal(7, issue.Line);
            Assert.True(issue.Column > 0);
            Assert.StartsWith("providers[0].keys[0].rpm_limit (line 7, column", issue.Text, StringComparison.Ordinal);
            Assert.DoesNotContain("sk-new-secret-in-file-9999", JsonFormatter.Default.Format(rejected), StringComparison.Ordinal);
            Assert.Equal(["a", "b"], stillRunning.Providers.Select(p => p.Name));
            Assert.Equal(1, rejected.ConfigGeneration);

            Assert.Equal("applied", applied.Outcome);
            Assert.Equal(2, applied.ConfigGeneration);
            Assert.Equal(2, status.ConfigGeneration);
            Assert.Equal(path, status.ConfigPath);
            Assert.Equal(1, status.ProvidersTotal);

            // the same file again: it still has no grpc section while the relay serves the API, which only a
            // restart changes; nothing is applied, and the answer says so rather than "applied"
            var again = await client.ReloadConfigAsync(new ReloadConfigRequest(), Auth());
            Assert.Equal("restart_required", again.Outcome);
            Assert.Equal(2, again.ConfigGeneration);
            Assert.Contains(again.Changes, c => c.Contains("grpc.enabled", StringComparison.Ordinal));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task AddKey_And_RemoveKey_ChangeTheLivePool_AnswerOnlyKeyIds_AndRefuseWhatTheyCannotDo()
    {
        const string Added = "sk-added-through-the-api-0003";
        await using var relay = await RelayHost.StartAsync(Config(A, B));
        using var channel = Channel(relay);
        var client = new RelayManagement.RelayManagementClient(channel);
        A.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-a"));

        var added = await client.AddKeyAsync(new AddKeyRequest { Provider = "a", Key = Added, RpmLimit = 7, Priority = 1 }, Auth());
        var again = await client.AddKeyAsync(new AddKeyRequest { Provider = "a", Key = Added }, Auth());
        var keys = await client.ListKeysAsync(new ListKeysRequest { Provider = "a" }, Auth());
        var removed = await client.RemoveKeyAsync(new RemoveKeyRequest { Provider = "a", KeyId = KeyId.ofSecret(SecretA) }, Auth());
        await SendAsync(relay);
        var status = await client.GetStatusAsync(new GetStatusRequest(), Auth());

        Assert.True(added.Added);
        Assert.Equal(KeyId.ofSecret(Added), added.KeyId);
        Assert.Equal(7, added.State.RpmLimit);
        Assert.Equal(1, added.State.Priority);
        Assert.Equal(2, added.ConfigGeneration);
        Assert.False(again.Added);
        Assert.Equal(added.KeyId, again.KeyId);
        Assert.Equal([KeyId.ofSecret(SecretA), KeyId.ofSecret(Added)], keys.Keys.Select(k => k.KeyId));
        Assert.Equal(KeyId.ofSecret(SecretA), removed.KeyId);
        Assert.Equal(3, removed.ConfigGeneration);
        Assert.Equal(3, status.ConfigGeneration);
        // the request went out with the added key, the only one left
        Assert.Equal(Added, A.Requests[^1].Header("x-api-key"));
        foreach (var message in new IMessage[] { added, again, keys, removed })
        {
            Assert.DoesNotContain(Added, JsonFormatter.Default.Format(message), StringComparison.Ordinal);
        }

        async Task<StatusCode> Refused(Func<AsyncUnaryCall<RemoveKeyResponse>> call) =>
            (await Assert.ThrowsAsync<RpcException>(() => call().ResponseAsync)).StatusCode;
        async Task<RpcException> RefusedAdd(AddKeyRequest request) =>
            await Assert.ThrowsAsync<RpcException>(() => client.AddKeyAsync(request, Auth()).ResponseAsync);

        Assert.Equal(StatusCode.NotFound, await Refused(() => client.RemoveKeyAsync(new RemoveKeyRequest { Provider = "a", KeyId = "00000000" }, Auth())));
        Assert.Equal(StatusCode.NotFound, await Refused(() => client.RemoveKeyAsync(new RemoveKeyRequest { Provider = "zz", KeyId = added.KeyId }, Auth())));
        // the last key of a provider is not removed: disabling it is the operator's tool
        Assert.Equal(StatusCode.InvalidArgument, await Refused(() => client.RemoveKeyAsync(new RemoveKeyRequest { Provider = "a", KeyId = added.KeyId }, Auth())));
        Assert.Equal(StatusCode.NotFound, (await RefusedAdd(new AddKeyRequest { Provider = "zz", Key = "sk-x" })).StatusCode);
        var empty = await RefusedAdd(new AddKeyRequest { Provider = "a", Key = "" });
        Assert.Equal(StatusCode.InvalidArgument, empty.StatusCode);
        var negative = await RefusedAdd(new AddKeyRequest { Provider = "a", Key = "sk-negative-limit-0004", RpmLimit = -1 });
        Assert.Equal(StatusCode.InvalidArgument, negative.StatusCode);
        Assert.DoesNotContain("sk-negative-limit-0004", negative.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AReload_MakesThePoolsTheFilesAgain_WhileTheOperatorSwitchSurvives()
    {
        var dir = Directory.CreateTempSubdirectory("ccrelay-grpc-");
        try
        {
            var path = Path.Combine(dir.FullName, "cc-relay.yaml");
            await File.WriteAllTextAsync(path, $"""
                providers:
                  - name: a
                    type: anthropic_compatible
                    base_url: "{A.BaseUrl}"
                    keys:
                      - key: "{SecretA}"
                  - name: b
                    type: anthropic_compatible
                    base_url: "{B.BaseUrl}"
                    keys:
                      - key: "{SecretB}"
                    model_mapping:
                      "claude-sonnet-4-6": "b-model"
                    models: ["b-model"]
                """);
            await using var relay = await RelayHost.StartAsync(Config(A, B), configPath: path, watchConfig: false);
            using var channel = Channel(relay);
            var client = new RelayManagement.RelayManagementClient(channel);

            await client.AddKeyAsync(new AddKeyRequest { Provider = "a", Key = "sk-runtime-only-0005" }, Auth());
            await client.SetProviderEnabledAsync(new SetProviderEnabledRequest { Name = "b", Enabled = false }, Auth());
            var reloaded = await client.ReloadConfigAsync(new ReloadConfigRequest(), Auth());
            var providers = await client.ListProvidersAsync(new ListProvidersRequest(), Auth());
            var models = await client.ListModelsAsync(new ListModelsRequest(), Auth());

            Assert.Equal("applied", reloaded.Outcome);
            Assert.Equal([KeyId.ofSecret(SecretA)], providers.Providers[0].Keys.Select(k => k.KeyId));
            Assert.True(providers.Providers[1].OperatorDisabled);
            var b = models.Providers.Single(p => p.Provider == "b");
            Assert.Equal(["b-model"], b.Models);
            Assert.Equal("claude-sonnet-4-6", Assert.Single(b.Mapping).From);
            Assert.Equal("b-model", b.Mapping[0].To);
            Assert.DoesNotContain("sk-runtime-only-0005", JsonFormatter.Default.Format(reloaded), StringComparison.Ordinal);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static async Task<string> SendAsync(RelayHost relay)
    {
        using var answer = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody));
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        return await answer.Content.ReadAsStringAsync();
    }
}
