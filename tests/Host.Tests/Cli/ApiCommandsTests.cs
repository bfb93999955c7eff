using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Tests.Infrastructure;
using Microsoft.FSharp.Core;

namespace CcRelay.Host.Tests.Cli;

/// <summary>
/// The commands over the management API (status, config reload, models, providers, keys) in-process against a
/// real relay with the API on 127.0.0.1:0 and two fake upstreams: their output, JSON and exit codes, and where
/// the address and token come from (flags, environment, the config's grpc section).
/// </summary>
public sealed class ApiCommandsTests : TwoUpstreamTests
{
    private const string Token = "cli-mgmt-token-0123";
    private const string SecretA = "sk-cli-secret-of-a-0001";

    private static RelayConfig Config(FakeUpstream a, FakeUpstream b) =>
        TestConfig.Relay([
            TestConfig.Provider("a", a.BaseUrl, keys: [SecretA], priority: 2, modelMapping: new Dictionary<string, string> { ["claude-sonnet-4-6"] = "a-model" }, models: ["a-model"]),
            TestConfig.Provider("b", b.BaseUrl, keys: ["sk-cli-secret-of-b-0002"], priority: 1),
        ]).With(grpc: new GrpcConfig(true, new ListenAddress("127.0.0.1", 0), FSharpOption<string>.Some(Token)));

    private static string Api(RelayHost relay) => relay.Addresses[^1].Authority;

    /// <summary>A loopback port nothing listens on.</summary>
    private static int DeadPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [Fact]
    public async Task Status_PrintsOneScreen_Exits0_WhileSomeProviderCanServe_1_WhenNoneCan_2_WhenUnreachable()
    {
        await using var relay = await RelayHost.StartAsync(Config(A, B));
        using var sandbox = new CliSandbox();

        var (code, output, _) = await sandbox.RunAsync("status", "--relay", Api(relay), "--token", Token);
        Assert.Equal(0, code);
        Assert.Contains($"cc-relay {RelayInfo.Version} (API {Api(relay)})", output, StringComparison.Ordinal);
        Assert.Contains("routing:  failover", output, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^a\s+anthropic_compatible\s+up\s+closed\s+1/1 ready", output);
        Assert.Contains("2 of 2 providers can serve.", output, StringComparison.Ordinal);
        Assert.DoesNotContain(SecretA, output, StringComparison.Ordinal);

        // none can serve: exit 1 (and the JSON says why)
        Assert.Equal(0, (await sandbox.RunAsync("providers", "disable", "a", "--relay", Api(relay), "--token", Token)).Code);
        Assert.Equal(0, (await sandbox.RunAsync("providers", "disable", "b", "--relay", Api(relay), "--token", Token)).Code);
        var (none, json, _) = await sandbox.RunAsync("status", "--relay", Api(relay), "--token", Token, "--json");
        Assert.Equal(1, none);
        using var document = JsonDocument.Parse(json);
        Assert.Equal(0, document.RootElement.GetProperty("status").GetProperty("providers_up").GetInt32());
        Assert.All(document.RootElement.GetProperty("providers").EnumerateArray(), p => Assert.True(p.GetProperty("operator_disabled").GetBoolean()));

        // nothing listens: exit 2, saying where it looked
        var dead = $"127.0.0.1:{DeadPort()}";
        var (unreachable, _, error) = await sandbox.RunAsync("status", "--relay", dead);
        Assert.Equal(2, unreachable);
        Assert.Contains($"no relay answers at http://{dead}/", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheAddressAndToken_ComeFromTheConfigsGrpcSection_ThenTheEnvironment_ThenTheFlags()
    {
        await using var relay = await RelayHost.StartAsync(Config(A, B));
        using var sandbox = new CliSandbox();
        sandbox.Variables["MGMT_TOKEN"] = Token;
        sandbox.Write("cc-relay.yaml", $"""
            grpc:
              listen: "{Api(relay)}"
              auth_token: "${"{"}MGMT_TOKEN{"}"}"
            providers:
              - name: a
                type: anthropic_compatible
                base_url: "{A.BaseUrl}"
            """);

        // from the config found in the working directory
        Assert.Equal(0, (await sandbox.RunAsync("status")).Code);

        // a wrong token from the environment wins over the config's, and is refused (exit 1)
        sandbox.Variables["CC_RELAY_GRPC_TOKEN"] = "wrong";
        var (refused, _, error) = await sandbox.RunAsync("status");
        Assert.Equal(1, refused);
        Assert.Contains("refused the management token", error, StringComparison.Ordinal);
        Assert.DoesNotContain("wrong", error.Replace("wrong token", "", StringComparison.Ordinal), StringComparison.Ordinal);

        // … and the flag wins over the environment; an address from the environment over the config's
        sandbox.Variables["CC_RELAY_GRPC_ADDRESS"] = $"127.0.0.1:{DeadPort()}";
        Assert.Equal(2, (await sandbox.RunAsync("status", "--token", Token)).Code);
        Assert.Equal(0, (await sandbox.RunAsync("status", "--token", Token, "--relay", "http://" + Api(relay))).Code);

        // a bad --relay is a usage error
        var (usage, _, bad) = await sandbox.RunAsync("status", "--relay", "not an address");
        Assert.Equal(2, usage);
        Assert.Contains("--relay: expected host:port", bad, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConfigReload_Refused_PrintsTheLocatedErrors_AndExits2_Applied_Exits0()
    {
        var dir = Directory.CreateTempSubdirectory("cc-relay-cli-reload-");
        try
        {
            var path = Path.Combine(dir.FullName, "cc-relay.yaml");
            await File.WriteAllTextAsync(path, "providers: []\n");
            await using var relay = await RelayHost.StartAsync(Config(A, B), configPath: path, watchConfig: false);
            using var sandbox = new CliSandbox();
            string[] flags = ["--relay", Api(relay), "--token", Token];

            await File.WriteAllTextAsync(path, $"""
                providers:
                  - name: a
                    type: anthropic_compatible
                    base_url: "{A.BaseUrl}"
                    keys:
                      - key: "sk-in-the-file-0009"
                        rpm_limit: -5
                """);
            var (refused, _, errors) = await sandbox.RunAsync(["config", "reload", .. flags]);

            await File.WriteAllTextAsync(path, $"""
                providers:
                  - name: a
                    type: anthropic_compatible
                    base_url: "{A.BaseUrl}"
                    keys:
                      - key: "{SecretA}"
                """);
            var (applied, output, _) = await sandbox.RunAsync(["config", "reload", .. flags]);

            Assert.Equal(2, refused);
            Assert.Contains("the relay refused the config (1 error(s)); it keeps running generation 1", errors, StringComparison.Ordinal);
            Assert.Contains("  error: providers[0].keys[0].rpm_limit (line 7, column", errors, StringComparison.Ordinal);
            Assert.DoesNotContain("sk-in-the-file-0009", errors, StringComparison.Ordinal);
            Assert.Equal(0, applied);
            Assert.StartsWith("Config reloaded (generation 2):\n  - ", output, StringComparison.Ordinal);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Models_FromTheRunningRelay_OrFromTheConfigWhenNoneAnswers()
    {
        await using var relay = await RelayHost.StartAsync(Config(A, B));
        using var sandbox = new CliSandbox();

        var (code, output, _) = await sandbox.RunAsync("models", "--relay", Api(relay), "--token", Token);
        Assert.Equal(0, code);
        Assert.Contains("Models of the running relay", output, StringComparison.Ordinal);
        Assert.Contains("a (anthropic_compatible)\n  models:  a-model\n  mapping: claude-sonnet-4-6 -> a-model\n", output, StringComparison.Ordinal);

        // no relay at the config's grpc.listen: the config's own providers
        sandbox.Write("cc-relay.yaml", $"""
            grpc:
              listen: "127.0.0.1:{DeadPort()}"
            providers:
              - name: zai
                type: zai
                keys:
                  - key: "sk-zai-in-config-0007"
                model_mapping:
                  "claude-sonnet-4-6": "GLM-4.7"
            """);
        var (fallback, json, _) = await sandbox.RunAsync("models", "--json");
        Assert.Equal(0, fallback);
        using var document = JsonDocument.Parse(json);
        Assert.Equal("config", document.RootElement.GetProperty("source").GetString());
        var zai = Assert.Single(document.RootElement.GetProperty("providers").EnumerateArray());
        Assert.Equal("zai", zai.GetProperty("provider").GetString());
        Assert.Contains("GLM-4.7", zai.GetProperty("models").EnumerateArray().Select(m => m.GetString()));
        Assert.Equal("GLM-4.7", zai.GetProperty("mapping")[0].GetProperty("to").GetString());
        Assert.DoesNotContain("sk-zai-in-config-0007", json, StringComparison.Ordinal);

        // a named address that does not answer is not replaced by the config
        var (named, _, error) = await sandbox.RunAsync("models", "--relay", $"127.0.0.1:{DeadPort()}");
        Assert.Equal(1, named);
        Assert.Contains("no relay answers", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ProvidersAndKeys_ActOnTheLiveRelay_ShowingKeysOnlyById_AndRefusalsExit2()
    {
        const string NewKey = "sk-cli-added-key-0003";
        await using var relay = await RelayHost.StartAsync(Config(A, B));
        using var sandbox = new CliSandbox();
        string[] flags = ["--relay", Api(relay), "--token", Token];

        var (disabled, disabledOut, _) = await sandbox.RunAsync(["providers", "disable", "a", .. flags]);
        var (again, againOut, _) = await sandbox.RunAsync(["providers", "disable", "a", .. flags]);
        var (listed, list, _) = await sandbox.RunAsync(["providers", "list", .. flags]);
        var (enabled, enabledOut, _) = await sandbox.RunAsync(["providers", "enable", "a", .. flags]);
        var (unknown, _, unknownErr) = await sandbox.RunAsync(["providers", "disable", "zz", .. flags]);

        Assert.Equal((0, "Provider a disabled (circuit disabled, down).\n"), (disabled, disabledOut));
        Assert.Equal((0, "Provider a was already disabled; nothing changed.\n"), (again, againOut));
        Assert.Equal(0, listed);
        Assert.Matches(@"(?m)^a\s+anthropic_compatible\s+no \(operator\)\s+disabled", list);
        Assert.Equal((0, "Provider a enabled (circuit closed, up).\n"), (enabled, enabledOut));
        Assert.Equal(2, unknown);
        Assert.Contains("no provider is named \"zz\"", unknownErr, StringComparison.Ordinal);

        sandbox.StandardInput = NewKey + "\n";
        var (added, addedOut, _) = await sandbox.RunAsync(["keys", "add", "a", "--rpm", "30", .. flags]);
        var (keysCode, keys, _) = await sandbox.RunAsync(["keys", "list", "--provider", "a", .. flags]);
        var (removed, removedOut, _) = await sandbox.RunAsync(["keys", "remove", "a", KeyId.ofSecret(NewKey), .. flags]);
        var (last, _, lastErr) = await sandbox.RunAsync(["keys", "remove", "a", KeyId.ofSecret(SecretA), .. flags]);
        sandbox.Variables["NEW_KEY"] = NewKey;
        var (fromEnv, fromEnvJson, _) = await sandbox.RunAsync(["keys", "add", "a", "--from-env", "NEW_KEY", "--json", .. flags]);
        sandbox.StandardInput = "";
        var (noKey, _, noKeyErr) = await sandbox.RunAsync(["keys", "add", "a", .. flags]);
        var (negative, _, _) = await sandbox.RunAsync(["keys", "add", "a", "--rpm", "-1", .. flags]);

        Assert.Equal(0, added);
        Assert.StartsWith($"Added key {KeyId.ofSecret(NewKey)} to a (config generation 2).", addedOut, StringComparison.Ordinal);
        Assert.Equal(0, keysCode);
        Assert.Matches($@"(?m)^a\s+{KeyId.ofSecret(NewKey)}\s+0\s+1\s+30/30\s+unlimited\s+unlimited\s+100%\s+ready$", keys);
        Assert.Contains(KeyId.ofSecret(SecretA), keys, StringComparison.Ordinal);
        Assert.Equal(0, removed);
        Assert.Equal($"Removed key {KeyId.ofSecret(NewKey)} from a (config generation 3).\n", removedOut);
        Assert.Equal(2, last);
        Assert.Contains("disable the provider instead", lastErr, StringComparison.Ordinal);
        Assert.Equal(0, fromEnv);
        using (var document = JsonDocument.Parse(fromEnvJson))
        {
            Assert.True(document.RootElement.GetProperty("added").GetBoolean());
            Assert.Equal(KeyId.ofSecret(NewKey), document.RootElement.GetProperty("key_id").GetString());
        }

        Assert.Equal(2, noKey);
        Assert.Contains("no key on standard input", noKeyErr, StringComparison.Ordinal);
        Assert.Equal(2, negative);
        foreach (var text in new[] { addedOut, keys, removedOut, lastErr, fromEnvJson })
        {
            Assert.DoesNotContain(NewKey, text, StringComparison.Ordinal);
            Assert.DoesNotContain(SecretA, text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task EveryApiCommand_HasHelpWithExamples_AndTheSameGlobalOptions()
    {
        using var sandbox = new CliSandbox();
        foreach (var command in new[] { "status", "models", "config reload", "providers list", "providers enable", "providers disable", "keys list", "keys add", "keys remove", "clients list", "clients add", "clients revoke", "clients rotate" })
        {
            var (code, output, _) = await sandbox.RunAsync([.. command.Split(' '), "--help"]);
            Assert.Equal(0, code);
            Assert.Contains("Examples:", output, StringComparison.Ordinal);
            foreach (var option in new[] { "--config", "--relay", "--token", "--json" })
            {
                Assert.Contains(option, output, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public async Task Clients_AddRotateRevoke_PrintANewKeyOnce_WhichWorks_AndRefusalsExit2()
    {
        // Arrange: a relay with one config client
        var config = TestConfig.Relay(
            [TestConfig.Provider("a", A.BaseUrl, keys: [SecretA])],
            clients: [Teams.ClientKeyTests.Client("alice", Teams.ClientKeyTests.AliceKey)])
            .With(grpc: new GrpcConfig(true, new ListenAddress("127.0.0.1", 0), FSharpOption<string>.Some(Token)));
        await using var relay = await RelayHost.StartAsync(config);
        A.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-a"));
        using var sandbox = new CliSandbox();
        string[] api = ["--relay", Api(relay), "--token", Token];
        async Task<HttpStatusCode> SendAsync(string key)
        {
            using var response = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody, apiKey: key));
            return response.StatusCode;
        }

        // Act + Assert: add prints the key once (the last line); it works at once
        var (added, addOutput, _) = await sandbox.RunAsync(["clients", "add", "carol", "--like", "alice", "--expires", "30d", .. api]);
        Assert.Equal(0, added);
        var carolKey = addOutput.Trim().Split('\n')[^1].Trim();
        Assert.Matches("^ccr_[A-Za-z0-9_-]{43}$", carolKey);
        Assert.Equal(HttpStatusCode.OK, await SendAsync(carolKey));

        // rotate with grace, as JSON: the new key in "key"; both keys work
        var (rotated, rotateJson, _) = await sandbox.RunAsync(["clients", "rotate", "carol", "--grace", "1h", "--json", .. api]);
        Assert.Equal(0, rotated);
        using var rotation = JsonDocument.Parse(rotateJson);
        var newKey = rotation.RootElement.GetProperty("key").GetString()!;
        Assert.StartsWith("ccr_", newKey, StringComparison.Ordinal);
        Assert.NotEqual(carolKey, newKey);
        Assert.Equal(HttpStatusCode.OK, await SendAsync(carolKey));
        Assert.Equal(HttpStatusCode.OK, await SendAsync(newKey));

        // list shows the key ids, never a key
        var (listed, list, _) = await sandbox.RunAsync(["clients", "list", .. api]);
        Assert.Equal(0, listed);
        Assert.Matches(@"(?m)^carol\s+runtime\s+[0-9a-f]{8}\s+active", list);
        Assert.Matches(@"(?m)^alice\s+config\s+[0-9a-f]{8}\s+active", list);
        Assert.DoesNotContain(carolKey, list, StringComparison.Ordinal);
        Assert.DoesNotContain(newKey, list, StringComparison.Ordinal);

        // revoke: both of carol's keys stop at once
        var (revoked, revokeOutput, _) = await sandbox.RunAsync(["clients", "revoke", "carol", .. api]);
        Assert.Equal(0, revoked);
        Assert.Contains("Revoked client carol's keys", revokeOutput, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Unauthorized, await SendAsync(carolKey));
        Assert.Equal(HttpStatusCode.Unauthorized, await SendAsync(newKey));

        // refusals: exit 2 with the relay's reason
        var (unknown, _, unknownError) = await sandbox.RunAsync(["clients", "revoke", "zed", .. api]);
        Assert.Equal(2, unknown);
        Assert.Contains("no client named zed", unknownError, StringComparison.Ordinal);
        var (badGrace, _, graceError) = await sandbox.RunAsync(["clients", "rotate", "alice", "--grace", "forever", .. api]);
        Assert.Equal(2, badGrace);
        Assert.Contains("--grace", graceError, StringComparison.Ordinal);
        var (fileName, _, fileError) = await sandbox.RunAsync(["clients", "add", "alice", .. api]);
        Assert.Equal(2, fileName);
        Assert.Contains("config file", fileError, StringComparison.Ordinal);
    }
}
