using CcRelay.Core;
using CcRelay.Host.Configuration;

namespace CcRelay.Host.Tests.Configuration;

public sealed class ConfigFileTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("ccrelay-config-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static string? NoEnvironment(string name) => null;

    private string Write(string fileName, string text)
    {
        var path = Path.Combine(_directory, fileName);
        File.WriteAllText(path, text);
        return path;
    }

    /// <summary>Finds <paramref name="relative"/> by walking up from the test binaries to the repository.</summary>
    private static string Above(string relative)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, relative);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException(relative + " not found above " + AppContext.BaseDirectory);
    }

    private static string ReferenceConfig() => Above(Path.Combine("tests", "fixtures", "reference", "cc-relay-example.yaml"));

    private static string TomlExample() => Above(Path.Combine("examples", "config.toml"));

    /// <summary>Warnings without positions (the same key sits on different lines in YAML and TOML).</summary>
    private static IEnumerable<(string Path, string Message)> Unplaced(IEnumerable<ConfigIssue> issues) =>
        issues.Select(i => (i.Path, i.Message));

    [Fact]
    public void Load_ReferenceExampleWithoutEnvironment_LoadsWithWarnings()
    {
        // Arrange
        var path = ReferenceConfig();

        // Act
        var load = ConfigFile.Load(path, NoEnvironment);

        // Assert
        var loaded = Assert.IsType<ConfigLoad.Loaded>(load);
        Assert.NotEmpty(loaded.Warnings);
        var config = loaded.Config;
        Assert.Equal("127.0.0.1", config.Server.Listen.Host);
        Assert.Equal(8787, config.Server.Listen.Port);
        Assert.True(config.Server.Auth.AllowBearer);
        Assert.True(config.Server.EnableHttp2);
        Assert.Equal(
            ["anthropic-pool", "zai", "minimax", "ollama", "bedrock", "azure"],
            config.Providers.Select(p => p.Name));
        var enabled = config.Providers.Where(p => p.Enabled).Select(p => p.Name);
        Assert.Equal(["anthropic-pool", "ollama"], enabled);
        Assert.Equal(LogLevel.Info, config.Logging.Level);
        Assert.Equal(LogFormat.Text, config.Logging.Format);
        Assert.True(config.Metrics.Enabled);
        Assert.Equal("/metrics", config.Metrics.Path);
        Assert.Equal("127.0.0.1:9100", config.Metrics.Listen?.Value.ToString());
        Assert.DoesNotContain(loaded.Warnings, w => w.Path.StartsWith("metrics", StringComparison.Ordinal));
    }

    [Fact]
    public void Load_ObservabilityKeysInYaml_AreStored()
    {
        // Arrange: the examples of docs/configuration.md
        var path = Write("config.yaml", """
            metrics:
              path: /prom
              max_model_labels: 50
            otel:
              endpoint: http://localhost:4317
              service_name: relay-a
            logging:
              debug_options:
                log_request_body: true
                max_body_log_size: 0
            providers:
              - name: zai
                type: zai
                keys: [{ key: "zai-1" }]
                pricing:
                  "glm-5": { input: 1, output: 3.2, cache_read: 0.2 }
                  "glm-4*": { input: 0.6, output: 2.2 }
              - name: local
                type: ollama
                pricing:
                  "*": { input: 0, output: 0 }
            """);

        // Act
        var load = ConfigFile.Load(path, NoEnvironment);

        // Assert
        var loaded = Assert.IsType<ConfigLoad.Loaded>(load);
        Assert.Empty(loaded.Warnings);
        var config = loaded.Config;
        Assert.Equal("/prom", config.Metrics.Path);
        Assert.Equal(50, config.Metrics.MaxModelLabels);
        Assert.Equal(new Uri("http://localhost:4317"), config.Otel.Endpoint?.Value);
        Assert.Equal("relay-a", config.Otel.ServiceName);
        Assert.True(config.Logging.DebugOptions.LogRequestBody);
        Assert.Equal(1000, config.Logging.DebugOptions.MaxBodyLogSize);
        var zai = config.Providers.Single(p => p.Name == "zai");
        Assert.Equal(["glm-5", "glm-4*"], zai.Pricing.Select(r => r.Pattern));
        Assert.Equal(new ModelPrice(1m, 3.2m, 0.2m, 1m), zai.Pricing.Head.Price);
        var local = config.Providers.Single(p => p.Name == "local");
        var free = Pricing.withOverrides(local.Pricing, Pricing.builtIn);
        Assert.Equal(0m, Pricing.cost(free, "llama3", new Usage(1000, 1000, 0, 0))?.Value);
    }

    [Fact]
    public void Load_ReferenceExampleWithKeys_EnablesZai()
    {
        // Arrange
        var env = new Dictionary<string, string> { ["ANTHROPIC_API_KEY"] = "sk-ant-1", ["ZAI_API_KEY"] = "zai-1" };

        // Act
        var load = ConfigFile.Load(ReferenceConfig(), name => env.GetValueOrDefault(name));

        // Assert
        var config = Assert.IsType<ConfigLoad.Loaded>(load).Config;
        var zai = config.Providers.Single(p => p.Name == "zai");
        Assert.True(zai.Enabled);
        Assert.Equal("zai-1", Assert.Single(zai.Keys).Key);
        Assert.Equal("GLM-4.7", zai.ModelMapping["claude-sonnet-4-5"]);
        var anthropic = config.Providers.Single(p => p.Name == "anthropic-pool");
        var key = Assert.Single(anthropic.Keys);
        Assert.Equal(60, key.RpmLimit);
        Assert.Equal(100000, key.TpmLimit);
    }

    [Fact]
    public void Load_MissingFile_IsInvalidWithPath()
    {
        var path = Path.Combine(_directory, "absent.yaml");

        var load = ConfigFile.Load(path, NoEnvironment);

        var issue = Assert.Single(Assert.IsType<ConfigLoad.Invalid>(load).Errors);
        Assert.Equal(path, issue.Path);
        Assert.Contains("cannot read", issue.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Load_TomlExample_EqualsReferenceYaml(bool withKeys)
    {
        // Arrange
        var env = withKeys
            ? new Dictionary<string, string> { ["ANTHROPIC_API_KEY"] = "sk-ant-1", ["ZAI_API_KEY"] = "zai-1" }
            : [];

        // Act
        var yaml = ConfigFile.Load(ReferenceConfig(), name => env.GetValueOrDefault(name));
        var toml = ConfigFile.Load(TomlExample(), name => env.GetValueOrDefault(name));

        // Assert
        var fromYaml = Assert.IsType<ConfigLoad.Loaded>(yaml);
        var fromToml = Assert.IsType<ConfigLoad.Loaded>(toml);
        Assert.Equal(fromYaml.Config, fromToml.Config);
        Assert.Equal(Unplaced(fromYaml.Warnings), Unplaced(fromToml.Warnings));
    }

    [Fact]
    public void Load_TomlAndYaml_DecodeToTheSameConfig()
    {
        // Arrange
        var yaml = Write("config.yaml", """
            server:
              listen: 127.0.0.1:9000
              timeout_ms: 0x3C
              auth:
                allow_bearer: true
                allow_any_bearer: true
            providers:
              - name: local
                type: ollama
                models: [qwen3]
                model_mapping:
                  claude-sonnet-4-5: "qwen3:32b"
              - name: z
                type: zai
                keys:
                  - key: k1
                    rpm_limit: 60
                    priority: 2
            logging:
              level: debug
            """);
        var toml = Write("config.toml", """
            server.listen = "127.0.0.1:9000"
            server.timeout_ms = 60
            server.auth = { allow_bearer = true, allow_any_bearer = true }

            [[providers]]
            name = "local"
            type = "ollama"
            models = ["qwen3"]
            model_mapping."claude-sonnet-4-5" = "qwen3:32b"

            [[providers]]
            name = "z"
            type = "zai"

            [[providers.keys]]
            key = 'k1'
            rpm_limit = 60
            priority = 2

            [logging]
            level = "debug"
            """);

        // Act
        var fromYaml = ConfigFile.Load(yaml, NoEnvironment);
        var fromToml = ConfigFile.Load(toml, NoEnvironment);

        // Assert
        var config = Assert.IsType<ConfigLoad.Loaded>(fromToml).Config;
        Assert.Equal(Assert.IsType<ConfigLoad.Loaded>(fromYaml).Config, config);
        Assert.Equal(9000, config.Server.Listen.Port);
        Assert.Equal(["local", "z"], config.Providers.Select(p => p.Name));
    }

    [Fact]
    public void Load_TomlSyntaxError_IsInvalidWithLineAndColumn()
    {
        var path = Write("config.toml", "[server]\nlisten = \"127.0.0.1:9000\"\n\n[server]\n");

        var load = ConfigFile.Load(path, NoEnvironment);

        var issue = Assert.Single(Assert.IsType<ConfigLoad.Invalid>(load).Errors);
        Assert.Equal(new Position(4, 2), issue.Position!.Value);
        Assert.Contains("TOML syntax error", issue.Message, StringComparison.Ordinal);
        Assert.Contains("line 1", issue.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_TomlValueErrors_AreReportedWithPathsAndLines()
    {
        var path = Write("config.toml", """
            [server]
            listen = 8787

            [[providers]]
            name = "a"
            type = "zai"
            enabled = "yes"

            [[providers.keys]]
            key = "k"
            rpm_limit = "60"
            """);

        var load = ConfigFile.Load(path, NoEnvironment);

        var errors = Assert.IsType<ConfigLoad.Invalid>(load).Errors;
        Assert.Equal(
            [("server.listen", 2), ("providers[0].enabled", 7), ("providers[0].keys[0].rpm_limit", 11)],
            errors.Select(e => (e.Path, e.Position!.Value.Line)));
    }

    [Theory]
    [InlineData("config.json", "\".json\"")]
    [InlineData("config", "no extension")]
    public void Load_OtherExtension_ListsAllowedExtensions(string fileName, string shown)
    {
        var path = Write(fileName, "{}");

        var load = ConfigFile.Load(path, NoEnvironment);

        var issue = Assert.Single(Assert.IsType<ConfigLoad.Invalid>(load).Errors);
        Assert.Contains(shown, issue.Message, StringComparison.Ordinal);
        Assert.Contains(".yaml, .yml, .toml", issue.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_UpperCaseYmlExtension_IsYaml()
    {
        var path = Write("CONFIG.YML", "server:\n  listen: 127.0.0.1:9000\n");

        var load = ConfigFile.Load(path, NoEnvironment);

        Assert.Equal(9000, Assert.IsType<ConfigLoad.Loaded>(load).Config.Server.Listen.Port);
    }

    [Fact]
    public void Load_SyntaxError_IsInvalidWithPosition()
    {
        var path = Write("bad.yaml", "server:\n  listen: [1, 2\n");

        var load = ConfigFile.Load(path, NoEnvironment);

        var issue = Assert.Single(Assert.IsType<ConfigLoad.Invalid>(load).Errors);
        Assert.True(issue.Position is not null);
        Assert.Contains("YAML syntax error", issue.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_ValueErrors_AreReportedWithPathsAndLines()
    {
        var path = Write("config.yaml", """
            server:
              listen: "nowhere"
            providers:
              - name: a
                type: zai
                base_url: ftp://example.com
                keys:
                  - key: k
                    rpm_limit: -1
            """);

        var load = ConfigFile.Load(path, NoEnvironment);

        var errors = Assert.IsType<ConfigLoad.Invalid>(load).Errors;
        Assert.Equal(
            [("server.listen", 2), ("providers[0].base_url", 6), ("providers[0].keys[0].rpm_limit", 9)],
            errors.Select(e => (e.Path, e.Position!.Value.Line)));
    }
}
