using System.Runtime.Versioning;
using CcRelay.Core;
using CcRelay.Host.Configuration;

namespace CcRelay.Host.Tests.Cli;

/// <summary><c>cc-relay config init</c>: a starter that validates, written safely, never over a file by accident.</summary>
public sealed class ConfigInitCommandTests : IDisposable
{
    private readonly CliSandbox _cli = new();

    public void Dispose() => _cli.Dispose();

    private string InWorkingDirectory(string name) => Path.Combine(_cli.WorkingDirectory, name);

    [Fact]
    public async Task Init_Default_WritesCcRelayYaml_ThatValidatesWithoutWarnings()
    {
        // Act
        var (code, output, error) = await _cli.RunAsync("config", "init");

        // Assert
        var path = InWorkingDirectory("cc-relay.yaml");
        Assert.Equal(0, code);
        Assert.Empty(error);
        Assert.Contains($"Wrote {path} (mode 0600).", output);
        var loaded = Assert.IsType<ConfigLoad.Loaded>(ConfigFile.Load(path, _ => null));
        Assert.Empty(loaded.Warnings);
        Assert.Equal(Config.defaults, loaded.Config);
        var (validateCode, validateOutput, _) = await _cli.RunAsync("config", "validate");
        Assert.Equal(0, validateCode);
        Assert.Contains($"{path} is valid (0 warnings).", validateOutput);
    }

    [Fact]
    [UnsupportedOSPlatform("windows")]
    public async Task Init_CreatesTheFileOwnerReadWriteOnly()
    {
        await _cli.RunAsync("config", "init");

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(InWorkingDirectory("cc-relay.yaml")));
    }

    [Fact]
    public async Task Init_ExistingFile_Exits2_AndLeavesItUntouched()
    {
        // Arrange
        var path = _cli.Write("cc-relay.yaml", "# mine\n");

        // Act
        var (code, output, error) = await _cli.RunAsync("config", "init");

        // Assert
        Assert.Equal(2, code);
        Assert.Empty(output);
        Assert.Contains($"{path} already exists and was left as it is (--force replaces it)", error);
        Assert.Equal("# mine\n", await File.ReadAllTextAsync(path));
        Assert.Equal([path], Directory.GetFiles(_cli.WorkingDirectory));
    }

    [Fact]
    [UnsupportedOSPlatform("windows")]
    public async Task Init_Force_ReplacesTheFile_WithMode0600()
    {
        // Arrange
        var path = _cli.Write("cc-relay.yaml", "# mine\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        // Act
        var (code, _, _) = await _cli.RunAsync("config", "init", "--force");

        // Assert
        Assert.Equal(0, code);
        Assert.StartsWith("# cc-relay configuration, written by `cc-relay config init`.", await File.ReadAllTextAsync(path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Equal([path], Directory.GetFiles(_cli.WorkingDirectory));
    }

    [Fact]
    public async Task Init_Output_CreatesMissingDirectories()
    {
        var (code, _, _) = await _cli.RunAsync("config", "init", "--output", "conf/relay/main.yml");

        Assert.Equal(0, code);
        Assert.IsType<ConfigLoad.Loaded>(ConfigFile.Load(InWorkingDirectory("conf/relay/main.yml"), _ => null));
    }

    // NOTE: once ConfigFile.Load reads .toml (the TOML branch), this test should also load the written file
    // and assert ConfigLoad.Loaded with no warnings, as Init_Default_WritesCcRelayYaml_... does for YAML.
    [Theory]
    [InlineData("--format", "toml")]
    [InlineData("--output", "cc-relay.toml")]
    public async Task Init_Toml_WritesTheTomlTemplate_WithEverySection(string option, string value)
    {
        // Act
        var (code, _, _) = await _cli.RunAsync("config", "init", option, value);

        // Assert
        Assert.Equal(0, code);
        var lines = await File.ReadAllLinesAsync(InWorkingDirectory("cc-relay.toml"));
        Assert.Equal(
            ["[server]", "[[providers]]", "[logging]"],
            lines.Where(line => line.StartsWith('[')).ToArray());
        Assert.Contains("listen = \"127.0.0.1:8787\"", lines);
        Assert.Contains("name = \"anthropic\"", lines);
        Assert.Contains("type = \"anthropic\"", lines);
        Assert.False(File.Exists(InWorkingDirectory("cc-relay.yaml")));
    }

    [Theory]
    [InlineData("yaml", "relay.toml")]
    [InlineData("toml", "relay.yaml")]
    [InlineData("yaml", "relay")]
    public async Task Init_OutputExtensionNotOfTheFormat_Exits2_WritingNothing(string format, string output)
    {
        var (code, _, error) = await _cli.RunAsync("config", "init", "--format", format, "--output", output);

        Assert.Equal(2, code);
        Assert.Contains("since the format is taken from the extension", error);
        Assert.Empty(Directory.GetFileSystemEntries(_cli.WorkingDirectory));
    }

    [Fact]
    public async Task Init_UnknownFormat_IsAUsageError_Exit2()
    {
        var (code, _, error) = await _cli.RunAsync("config", "init", "--format", "json");

        Assert.Equal(2, code);
        Assert.Contains("'json'", error);
        Assert.Empty(Directory.GetFileSystemEntries(_cli.WorkingDirectory));
    }

    [Fact]
    public async Task Interactive_DrivenByStdin_WritesAConfigThatValidates_WithKeysAsVariables_AndStages()
    {
        // Arrange: providers, their keys' variables (the defaults for two of them), strategy, stages
        _cli.StandardInput = "anthropic, openai ,ollama\n-\n\n\nround_robin\nbackground=ollama,qwen3:8b think=openai,o3\n";
        _cli.Variables["OPENAI_API_KEY"] = "sk-test-openai-0001";

        // Act
        var (code, output, error) = await _cli.RunAsync("config", "init", "--interactive");

        // Assert: every question was asked with its default, the file validates, the key only as ${VAR}
        Assert.Equal(0, code);
        Assert.Empty(error);
        Assert.Contains("Providers, separated by commas (anthropic, zai, minimax, ollama, openai, gemini) [anthropic]: ", output);
        Assert.Contains("openai key, written as ${VAR} ('-': no key) [OPENAI_API_KEY]: ", output);
        Assert.Contains("Routing strategy (failover, ", output);
        var path = InWorkingDirectory("cc-relay.yaml");
        var text = await File.ReadAllTextAsync(path);
        Assert.Contains("key: \"${OPENAI_API_KEY}\"", text);
        Assert.DoesNotContain("sk-test-openai-0001", text);
        var loaded = Assert.IsType<ConfigLoad.Loaded>(ConfigFile.Load(path, name => _cli.Variables.GetValueOrDefault(name)));
        Assert.Equal(["anthropic", "openai", "ollama"], loaded.Config.Providers.Select(p => p.Name));
        Assert.Equal(RoutingStrategy.RoundRobin, loaded.Config.Routing.Strategy);
        Assert.Equal([Stage.Background, Stage.Think], loaded.Config.Routing.Stages.Routes.Select(r => r.Item1));
        var (validateCode, validateOutput, _) = await _cli.RunAsync("config", "validate");
        Assert.Equal(0, validateCode);
        Assert.Contains($"{path} is valid", validateOutput);
    }

    [Fact]
    public async Task Interactive_AWrongAnswerIsExplainedAndAskedAgain_AnEndedInputTakesTheDefaults()
    {
        // Arrange: a typo, then the fix; the input ends before the other questions
        _cli.StandardInput = "antropic\nanthropic\n";

        // Act
        var (code, output, _) = await _cli.RunAsync("config", "init", "--interactive");

        // Assert
        Assert.Equal(0, code);
        Assert.Contains("unknown provider type \"antropic\"; offered: anthropic, zai, minimax, ollama, openai, gemini", output);
        var loaded = Assert.IsType<ConfigLoad.Loaded>(ConfigFile.Load(InWorkingDirectory("cc-relay.yaml"), _ => null));
        Assert.Equal(["anthropic"], loaded.Config.Providers.Select(p => p.Name));
        Assert.Empty(loaded.Warnings);
    }

    [Fact]
    public async Task Interactive_NeverReplacesAFileWithoutForce_AndAnInputEndingOnABadAnswerWritesNothing()
    {
        // Arrange
        _cli.Write("cc-relay.yaml", "# mine\n");
        _cli.StandardInput = "anthropic\n";

        // Act
        var (kept, _, keptError) = await _cli.RunAsync("config", "init", "--interactive");
        _cli.StandardInput = "nope\n";
        var (refused, _, refusedError) = await _cli.RunAsync("config", "init", "--interactive", "--force");

        // Assert
        Assert.Equal(2, kept);
        Assert.Contains("already exists", keptError);
        Assert.Equal(2, refused);
        Assert.Contains("nothing was written", refusedError);
        Assert.Equal("# mine\n", await File.ReadAllTextAsync(InWorkingDirectory("cc-relay.yaml")));
    }

    private static readonly string[] Flags =
    [
        "--provider", "main:anthropic",
        "--provider", "glm:zai:GLM_KEY",
        "--provider", "local:ollama",
        "--strategy", "round_robin",
        "--stage", "background=local,qwen3:8b",
        "--stage", "think=glm,GLM-5",
        "--listen", "127.0.0.1:9100",
    ];

    [Theory]
    [InlineData("cc-relay.yaml")]
    [InlineData("cc-relay.toml")]
    [UnsupportedOSPlatform("windows")]
    public async Task Flags_WriteAConfig_Mode0600_ThatTheLoaderReadsBackWithTheAnswers(string file)
    {
        // Arrange
        _cli.Variables["GLM_KEY"] = "glm-test-key-0001";

        // Act
        var (code, output, error) = await _cli.RunAsync(["config", "init", .. Flags, "--output", file]);

        // Assert: the answers, the key only as ${GLM_KEY}, owner-only, and `config validate` agrees
        Assert.Equal(0, code);
        Assert.Empty(error);
        var path = InWorkingDirectory(file);
        Assert.Contains($"Wrote {path} (mode 0600).", output);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        var text = await File.ReadAllTextAsync(path);
        Assert.Contains("${GLM_KEY}", text);
        Assert.DoesNotContain("glm-test-key-0001", text);
        var loaded = Assert.IsType<ConfigLoad.Loaded>(ConfigFile.Load(path, name => _cli.Variables.GetValueOrDefault(name)));
        var config = loaded.Config;
        Assert.Equal(new ListenAddress("127.0.0.1", 9100), config.Server.Listen);
        Assert.Equal(["main", "glm", "local"], config.Providers.Select(p => p.Name));
        Assert.Equal([ProviderType.Anthropic, ProviderType.Zai, ProviderType.Ollama], config.Providers.Select(p => p.Type));
        Assert.Equal(["glm-test-key-0001"], config.Providers[1].Keys.Select(k => k.Key));
        Assert.Equal(RoutingStrategy.RoundRobin, config.Routing.Strategy);
        Assert.Equal([Stage.Background, Stage.Think], config.Routing.Stages.Routes.Select(r => r.Item1));
        Assert.Equal(
            ["local qwen3:8b", "glm GLM-5"],
            config.Routing.Stages.Routes.Select(r => $"{r.Item2.Single().Provider} {r.Item2.Single().Model?.Value}"));
        var (validateCode, validateOutput, _) = await _cli.RunAsync("config", "validate", path);
        Assert.Equal(0, validateCode);
        Assert.Contains($"{path} is valid", validateOutput);
    }

    [Fact]
    public async Task Flags_NeverReplaceAFileWithoutForce_AndReplaceItWithForce()
    {
        // Arrange
        var path = _cli.Write("cc-relay.yaml", "# mine\n");

        // Act
        var (kept, keptOutput, keptError) = await _cli.RunAsync("config", "init", "--provider", "local:ollama");
        var keptText = await File.ReadAllTextAsync(path);
        var (replaced, _, _) = await _cli.RunAsync("config", "init", "--provider", "local:ollama", "--force");

        // Assert
        Assert.Equal(2, kept);
        Assert.Empty(keptOutput);
        Assert.Contains($"{path} already exists and was left as it is (--force replaces it)", keptError);
        Assert.Equal("# mine\n", keptText);
        Assert.Equal(0, replaced);
        var loaded = Assert.IsType<ConfigLoad.Loaded>(ConfigFile.Load(path, _ => null));
        Assert.Equal(["local"], loaded.Config.Providers.Select(p => p.Name));
        Assert.Equal([path], Directory.GetFiles(_cli.WorkingDirectory));
    }

    [Theory]
    [InlineData("--provider", "zai", "--provider \"zai\": expected NAME:TYPE or NAME:TYPE:KEY_ENV")]
    [InlineData("--provider", "x:bedrock", "--provider \"x:bedrock\": unknown provider type \"bedrock\"; offered: anthropic, zai, minimax, ollama, openai, gemini")]
    [InlineData("--provider", "z:zai:sk-live-0123", "--provider \"z:zai:…\": that is not an environment variable name")]
    [InlineData("--strategy", "fastest", "--strategy: unknown strategy \"fastest\"; allowed: failover, round_robin")]
    [InlineData("--strategy", "model_based", "--strategy: model_based needs routing.model_mapping rules")]
    [InlineData("--stage", "thinking=anthropic", "--stage \"thinking=anthropic\": unknown stage \"thinking\"; stages: long_context, ")]
    [InlineData("--stage", "think=openai", "--stage \"think=openai\": stage think: \"openai\" is not one of the providers (anthropic)")]
    [InlineData("--listen", "localhost", "--listen \"localhost\": got \"localhost\"; expected host:port")]
    public async Task ABadFlag_Exits2_NamingTheFlagAndWhatIsAllowed_WritingNothing(string flag, string value, string expected)
    {
        var (code, output, error) = await _cli.RunAsync("config", "init", flag, value);

        Assert.Equal(2, code);
        Assert.Empty(output);
        Assert.Contains($"cc-relay: {expected}", error);
        Assert.Contains("nothing was written", error);
        Assert.DoesNotContain("sk-live-0123", error);
        Assert.Empty(Directory.GetFileSystemEntries(_cli.WorkingDirectory));
    }

    [Fact]
    public async Task EveryBadFlagIsListed_NotOnlyTheFirst()
    {
        var (code, _, error) = await _cli.RunAsync("config", "init", "--provider", "a:nope", "--strategy", "x", "--listen", "nowhere");

        Assert.Equal(2, code);
        Assert.Contains("--provider \"a:nope\"", error);
        Assert.Contains("--strategy:", error);
        Assert.Contains("--listen \"nowhere\"", error);
        Assert.Empty(Directory.GetFileSystemEntries(_cli.WorkingDirectory));
    }

    [Fact]
    public async Task InteractiveWithAnsweringFlags_Exits2_WritingNothing()
    {
        _cli.StandardInput = "anthropic\n";

        var (code, _, error) = await _cli.RunAsync("config", "init", "--interactive", "--provider", "local:ollama");

        Assert.Equal(2, code);
        Assert.Contains("use one or the other", error);
        Assert.Empty(Directory.GetFileSystemEntries(_cli.WorkingDirectory));
    }

    [Fact]
    public async Task Interactive_Toml_WritesATomlConfigThatLoads()
    {
        // Arrange
        _cli.StandardInput = "anthropic,zai\n-\n\nshuffle\nbackground=zai,GLM-4.5-Air\n";
        _cli.Variables["ZAI_API_KEY"] = "zai-test-key-0001";

        // Act
        var (code, _, error) = await _cli.RunAsync("config", "init", "--interactive", "--format", "toml");

        // Assert
        Assert.Equal(0, code);
        Assert.Empty(error);
        var loaded = Assert.IsType<ConfigLoad.Loaded>(ConfigFile.Load(InWorkingDirectory("cc-relay.toml"), name => _cli.Variables.GetValueOrDefault(name)));
        Assert.Equal(["anthropic", "zai"], loaded.Config.Providers.Select(p => p.Name));
        Assert.Equal(RoutingStrategy.Shuffle, loaded.Config.Routing.Strategy);
        Assert.Equal([Stage.Background], loaded.Config.Routing.Stages.Routes.Select(r => r.Item1));
    }
}
