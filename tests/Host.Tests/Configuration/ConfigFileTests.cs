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

    /// <summary>Finds <c>shared/reference</c> by walking up from the test binaries (the repo's sibling <c>shared/</c>).</summary>
    private static string ReferenceConfig()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared", "reference", "cc-relay-example.yaml");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException("shared/reference/cc-relay-example.yaml not found above " + AppContext.BaseDirectory);
    }

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
            ["anthropic-pool", "zai", "minimax", "ollama"],
            config.Providers.Select(p => p.Name));
        var enabled = config.Providers.Where(p => p.Enabled).Select(p => p.Name);
        Assert.Equal(["anthropic-pool", "ollama"], enabled);
        Assert.Equal(LogLevel.Info, config.Logging.Level);
        Assert.Equal(LogFormat.Text, config.Logging.Format);
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

    [Fact]
    public void Load_Toml_IsNotAvailableYet()
    {
        var path = Write("config.toml", "[server]\n");

        var load = ConfigFile.Load(path, NoEnvironment);

        var issue = Assert.Single(Assert.IsType<ConfigLoad.Invalid>(load).Errors);
        Assert.Contains("TOML support is not available yet", issue.Message, StringComparison.Ordinal);
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
        Assert.Contains(".yaml, .yml", issue.Message, StringComparison.Ordinal);
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
