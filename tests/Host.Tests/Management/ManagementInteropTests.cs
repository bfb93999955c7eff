using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Management;

/// <summary>
/// The management API called by a stock client that is not .NET: <c>@grpc/grpc-js</c> with the proto loaded by
/// <c>@grpc/proto-loader</c>, run by node through <c>tests/Interop/grpc.mjs</c> (node and <c>npm ci</c> in
/// tests/Interop are required: tests/run-all.sh does both).
/// </summary>
public sealed class ManagementInteropTests : TwoUpstreamTests
{
    private const string Token = "interop-token-42";
    private const string SecretA = "sk-interop-secret-a";
    private const string NewKey = "sk-interop-added-key";
    private const string ClientKey = "ccr_interop-client-key-never-sent";

    [Fact]
    public async Task GrpcJs_WithoutTheToken_IsRefused_WithIt_CallsEveryMethod_AndBothStreams_AndEditsAKey()
    {
        A.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-a"));
        // the ledger file also holds the runtime client-key changes AddClient/RotateClient/RevokeClient make
        var ledgerDirectory = Directory.CreateTempSubdirectory("cc-relay-interop-");
        using var cleanup = new DirectoryCleanup(ledgerDirectory);
        var config = TestConfig.Relay([
            TestConfig.Provider("a", A.BaseUrl, keys: [SecretA], priority: 2),
            TestConfig.Provider("b", B.BaseUrl, keys: ["sk-interop-secret-b"], priority: 1),
        ], ledger: TestConfig.Ledger(Path.Combine(ledgerDirectory.FullName, "ledger.db")))
            .With(grpc: GrpcConfig.Create(true, new ListenAddress("127.0.0.1", 0), Token));
        await using var relay = await RelayHost.StartAsync(config);
        var directory = InteropDirectory();
        Assert.True(
            Directory.Exists(Path.Combine(directory, "node_modules", "@grpc", "grpc-js")),
            $"@grpc/grpc-js is not installed: run `npm ci` in {directory} (tests/run-all.sh does)");
        var input = JsonSerializer.Serialize(new Dictionary<string, string>
        {
            ["address"] = relay.Addresses[^1].Authority,
            ["token"] = Token,
            ["proto"] = Path.Combine(directory, "..", "..", "proto", "ccrelay", "v1", "management.proto"),
            ["relay"] = relay.BaseUrl.ToString().TrimEnd('/'),
            ["newKey"] = NewKey,
            ["clientKey"] = ClientKey,
        });

        var (exitCode, output, error) = await ToolProcess.RunAsync("node", ["grpc.mjs"], input, "the gRPC interop test needs Node.js (tests/run-all.sh installs it)", directory);

        Assert.True(exitCode == 0, $"node grpc.mjs exited {exitCode}: {error}");
        using var json = JsonDocument.Parse(output);
        var root = json.RootElement;
        Assert.Equal(16, root.GetProperty("unauthenticated").GetProperty("code").GetInt32()); // UNAUTHENTICATED
        Assert.Equal("failover", root.GetProperty("status").GetProperty("routingStrategy").GetString());
        Assert.Equal("1", root.GetProperty("status").GetProperty("configGeneration").GetString());
        Assert.Equal("off", root.GetProperty("status").GetProperty("sharedState").GetProperty("status").GetString());
        var providers = root.GetProperty("providers").GetProperty("providers").EnumerateArray().ToArray();
        Assert.Equal(["a", "b"], providers.Select(p => p.GetProperty("name").GetString()));
        Assert.Equal(KeyId.ofSecret(SecretA), providers[0].GetProperty("keys")[0].GetProperty("keyId").GetString());
        Assert.Equal(2, root.GetProperty("keys").GetProperty("keys").GetArrayLength());
        Assert.Contains("auth_token: \"<redacted>\"", root.GetProperty("config").GetProperty("yaml").GetString(), StringComparison.Ordinal);
        Assert.Equal("disabled", root.GetProperty("disabled").GetProperty("provider").GetProperty("circuit").GetString());
        Assert.Equal("closed", root.GetProperty("enabled").GetProperty("provider").GetProperty("circuit").GetString());
        var request = root.GetProperty("request");
        Assert.Equal("a", request.GetProperty("provider").GetString());
        Assert.Equal(200, request.GetProperty("status").GetInt32());
        Assert.Equal(KeyId.ofSecret(SecretA), request.GetProperty("keyId").GetString());
        var stats = root.GetProperty("stats").EnumerateArray().ToArray();
        Assert.Equal(2, stats.Length);
        Assert.Equal("60000", stats[1].GetProperty("windowMs").GetString());
        Assert.Equal(1, stats[1].GetProperty("providers").EnumerateArray().Single(p => p.GetProperty("name").GetString() == "a").GetProperty("requests").GetInt32());
        Assert.Equal(["a", "b"], root.GetProperty("models").GetProperty("providers").EnumerateArray().Select(p => p.GetProperty("provider").GetString()));
        Assert.True(root.GetProperty("added").GetProperty("added").GetBoolean());
        Assert.Equal(KeyId.ofSecret(NewKey), root.GetProperty("added").GetProperty("keyId").GetString());
        Assert.Equal(5, root.GetProperty("added").GetProperty("state").GetProperty("rpmLimit").GetInt32());
        Assert.Equal(KeyId.ofSecret(NewKey), root.GetProperty("removed").GetProperty("keyId").GetString());
        Assert.Equal("3", root.GetProperty("removed").GetProperty("configGeneration").GetString());
        Assert.Equal(9, root.GetProperty("reload").GetProperty("code").GetInt32()); // FAILED_PRECONDITION: no config file
        Assert.True(root.GetProperty("usage").GetProperty("ledgerEnabled").GetBoolean());
        Assert.Equal("runtime", root.GetProperty("clientAdded").GetProperty("client").GetProperty("source").GetString());
        Assert.Equal(ClientKeyId(ClientKey), root.GetProperty("clientAdded").GetProperty("client").GetProperty("keyId").GetString());
        Assert.Equal(ClientKeyId(ClientKey), root.GetProperty("clientRotated").GetProperty("previousKeyId").GetString());
        Assert.Equal(
            [ClientKeyId(ClientKey + "-next"), ClientKeyId(ClientKey)],
            root.GetProperty("clientRevoked").GetProperty("revokedKeyIds").EnumerateArray().Select(k => k.GetString()).Order());
        var interop = root.GetProperty("clients").GetProperty("clients").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "interop");
        Assert.Equal("revoked", interop.GetProperty("state").GetString());
        Assert.Equal(0, root.GetProperty("plugins").GetProperty("plugins").GetArrayLength());
        Assert.DoesNotContain(ClientKey, output, StringComparison.Ordinal);
        Assert.DoesNotContain(SecretA, output, StringComparison.Ordinal);
        Assert.DoesNotContain(NewKey, output, StringComparison.Ordinal);
        Assert.DoesNotContain(Token, output, StringComparison.Ordinal);
    }

    /// <summary>A client key's id: the first 8 hex digits of its SHA-256 (docs/teams.md).</summary>
    private static string ClientKeyId(string key) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(key)))[..8];

    /// <summary>Deletes a temporary directory at the end of a test.</summary>
    private sealed class DirectoryCleanup(DirectoryInfo directory) : IDisposable
    {
        public void Dispose() => directory.Delete(recursive: true);
    }

    /// <summary>Finds tests/Interop by walking up from the test binaries to the repository root.</summary>
    private static string InteropDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "Interop");
            if (File.Exists(Path.Combine(candidate, "grpc.mjs")) && File.Exists(Path.Combine(dir.FullName, "CcRelay.sln")))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("tests/Interop/grpc.mjs not found above " + AppContext.BaseDirectory);
    }
}
