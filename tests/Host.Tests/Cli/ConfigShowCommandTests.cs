using CcRelay.Core;
using CcRelay.Host.Configuration;

namespace CcRelay.Host.Tests.Cli;

/// <summary><c>cc-relay config show</c>: the effective config as YAML, and never a secret.</summary>
public sealed class ConfigShowCommandTests : IDisposable
{
    private const string Header = """
        # Defaults applied and ${VAR} expanded. Secrets read "<redacted>"; keys are shown by key_id.
        """;

    private readonly CliSandbox _cli = new();

    public void Dispose() => _cli.Dispose();

    [Fact]
    public async Task Show_NeverPrintsASecret_AndShowsEachKeyById()
    {
        // Arrange: every place a secret can sit, each fed through the environment.
        var secrets = new Dictionary<string, string>
        {
            ["RELAY_KEY"] = "relay-key-0001",
            ["LEGACY_KEY"] = "legacy-key-0002",
            ["BEARER"] = "bearer-secret-0003",
            ["ANTHROPIC_KEY"] = "sk-ant-0004",
            ["ZAI_KEY"] = "zai-0005",
            ["ZAI_KEY_2"] = "zai-0006",
            ["MINIMAX_KEY"] = "minimax-0007",
        };
        foreach (var (name, value) in secrets)
        {
            _cli.Variables[name] = value;
        }

        var path = _cli.Write("cc-relay.yaml", """
            server:
              api_key: "${LEGACY_KEY}"
              auth:
                api_key: "${RELAY_KEY}"
                allow_bearer: true
                bearer_secret: "${BEARER}"
            providers:
              - name: anthropic
                type: anthropic
                keys:
                  - key: "${ANTHROPIC_KEY}"
              - name: zai
                type: zai
                keys:
                  - key: "${ZAI_KEY}"
                    rpm_limit: 60
                  - key: "${ZAI_KEY_2}"
              - name: minimax
                type: minimax
                enabled: false
                keys:
                  - key: "${MINIMAX_KEY}"
            """);

        // Act
        var (code, output, error) = await _cli.RunAsync("config", "show", path);

        // Assert
        Assert.Equal(0, code);
        foreach (var secret in secrets.Values)
        {
            Assert.DoesNotContain(secret, output);
            Assert.DoesNotContain(secret, error);
        }

        foreach (var key in new[] { "sk-ant-0004", "zai-0005", "zai-0006", "minimax-0007" })
        {
            Assert.Contains($"      - key_id: \"{KeyId.ofSecret(key)}\"\n", output);
        }

        Assert.Contains("    api_key: \"<redacted>\"\n", output);
        Assert.Contains("    bearer_secret: \"<redacted>\"\n", output);
        Assert.Contains("server.api_key", error); // the ignored legacy key is a warning, on stderr
    }

    [Fact]
    public async Task Show_PrintsYamlAfterDefaultsAndExpansion()
    {
        // Arrange
        _cli.Variables["PORT"] = "9100";
        var path = _cli.Write("cc-relay.yaml", """
            server:
              listen: "${HOST:-127.0.0.1}:${PORT}"
            logging:
              level: debug
            """);

        // Act
        var (code, output, error) = await _cli.RunAsync("config", "show");

        // Assert
        Assert.Equal(0, code);
        Assert.Empty(error);
        Assert.StartsWith($"# Effective configuration of {path} (found by ./cc-relay.yaml).\n{Header}\n", output);
        Assert.Contains("  listen: \"127.0.0.1:9100\"\n", output);
        Assert.Contains("  timeout_ms: 600000\n", output);
        Assert.Contains("  level: debug\n", output);
        Assert.True(YamlConfigReader.TryRead(output, out _, out var errors), string.Join("\n", errors));
    }

    [Fact]
    public async Task Show_NoConfig_PrintsTheBuiltInDefault()
    {
        var (code, output, _) = await _cli.RunAsync("config", "show");

        Assert.Equal(0, code);
        Assert.StartsWith("# Effective configuration of the built-in default (no config file found).\n", output);
        Assert.EndsWith("\n\n" + ConfigRender.toYaml(Config.defaults), output);
    }

    [Fact]
    public async Task Show_InvalidConfig_Exits2_WithTheErrorsOnStderr()
    {
        var path = _cli.Write("bad.yaml", "server:\n  timeout_ms: -1\n");

        var (code, output, error) = await _cli.RunAsync("config", "show", path);

        Assert.Equal(2, code);
        Assert.Empty(output);
        Assert.Contains("  error: server.timeout_ms (line 2, column 15): ", error);
    }

    [Fact]
    public async Task Show_MissingFile_Exits2()
    {
        var (code, _, error) = await _cli.RunAsync("config", "show", "nope.yaml");

        Assert.Equal(2, code);
        Assert.Contains("config file not found", error);
    }
}
