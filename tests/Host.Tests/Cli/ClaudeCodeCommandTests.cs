using System.Runtime.Versioning;
using System.Text.Json.Nodes;

namespace CcRelay.Host.Tests.Cli;

/// <summary>
/// <c>cc-relay config cc init|remove</c>: only <c>env.ANTHROPIC_BASE_URL</c> changes in Claude Code's
/// settings.json, never a credential, and a file it cannot read safely stays untouched.
/// </summary>
public sealed class ClaudeCodeCommandTests : IDisposable
{
    private readonly CliSandbox _cli = new();

    public void Dispose() => _cli.Dispose();

    private string SettingsPath => Path.Combine(_cli.Home, ".claude", "settings.json");

    private void WriteSettings(string text)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(SettingsPath)!);
        File.WriteAllText(SettingsPath, text);
    }

    private JsonObject ReadSettings() => JsonNode.Parse(File.ReadAllText(SettingsPath))!.AsObject();

    [Fact]
    [UnsupportedOSPlatform("windows")]
    public async Task CcInit_NoSettings_CreatesTheFileOwnerOnly_WithOnlyTheBaseUrl()
    {
        // Act
        var (code, output, error) = await _cli.RunAsync("config", "cc", "init");

        // Assert
        Assert.Equal(0, code);
        Assert.Empty(error);
        Assert.Contains($"Created {SettingsPath}:", output);
        Assert.Equal("""{"env":{"ANTHROPIC_BASE_URL":"http://127.0.0.1:8787"}}""", ReadSettings().ToJsonString());
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(SettingsPath));
    }

    [Fact]
    public async Task CcInit_UsesClaudeConfigDir_WhenSet()
    {
        var configDirectory = Path.Combine(_cli.WorkingDirectory, "claude-config");
        _cli.Variables["CLAUDE_CONFIG_DIR"] = configDirectory;

        var (code, _, _) = await _cli.RunAsync("config", "cc", "init", "--url", "http://relay.internal:8080");

        Assert.Equal(0, code);
        var written = JsonNode.Parse(File.ReadAllText(Path.Combine(configDirectory, "settings.json")))!;
        Assert.Equal("http://relay.internal:8080", (string?)written["env"]!["ANTHROPIC_BASE_URL"]);
        Assert.False(File.Exists(SettingsPath));
    }

    [Fact]
    public async Task CcInit_KeepsEveryOtherKey_InItsOrder()
    {
        // Arrange
        WriteSettings("""
            {
              "model": "opus",
              "env": { "FOO": "1", "ANTHROPIC_BASE_URL": "https://gateway.example", "BAR": "x" },
              "permissions": { "allow": ["Bash(ls:*)"], "deny": [] },
              "hooks": {}
            }
            """);

        // Act
        var (code, output, _) = await _cli.RunAsync("config", "cc", "init", "--url", "http://127.0.0.1:9000");

        // Assert
        Assert.Equal(0, code);
        Assert.Contains("changed env.ANTHROPIC_BASE_URL from https://gateway.example to http://127.0.0.1:9000", output);
        Assert.Equal(
            """{"model":"opus","env":{"FOO":"1","ANTHROPIC_BASE_URL":"http://127.0.0.1:9000","BAR":"x"},"permissions":{"allow":["Bash(ls:*)"],"deny":[]},"hooks":{}}""",
            ReadSettings().ToJsonString());
    }

    [Fact]
    public async Task CcInit_IsIdempotent_AndDoesNotRewriteAnUnchangedFile()
    {
        // Arrange
        await _cli.RunAsync("config", "cc", "init");
        var before = File.GetLastWriteTimeUtc(SettingsPath);
        File.SetLastWriteTimeUtc(SettingsPath, before.AddHours(-1));
        var bytes = await File.ReadAllBytesAsync(SettingsPath);

        // Act
        var (code, output, _) = await _cli.RunAsync("config", "cc", "init");

        // Assert
        Assert.Equal(0, code);
        Assert.Contains("env.ANTHROPIC_BASE_URL is already http://127.0.0.1:8787", output);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(SettingsPath));
        Assert.Equal(before.AddHours(-1), File.GetLastWriteTimeUtc(SettingsPath));
        Assert.Equal([SettingsPath], Directory.GetFiles(Path.GetDirectoryName(SettingsPath)!));
    }

    [Fact]
    public async Task CcInit_WritesNoCredential_AndRemovesTheGoPlaceholderToken()
    {
        // Arrange: what the Go cc-relay left behind (seed §16 #3).
        WriteSettings("""{"env":{"ANTHROPIC_BASE_URL":"http://127.0.0.1:8787","ANTHROPIC_AUTH_TOKEN":"managed-by-cc-relay"}}""");

        // Act
        var (code, output, _) = await _cli.RunAsync("config", "cc", "init");

        // Assert
        Assert.Equal(0, code);
        Assert.Contains("removed env.ANTHROPIC_AUTH_TOKEN", output);
        var env = ReadSettings()["env"]!.AsObject();
        Assert.Equal(["ANTHROPIC_BASE_URL"], env.Select(pair => pair.Key));
    }

    [Fact]
    public async Task CcInit_DefaultUrl_ComesFromTheDiscoveredConfig_ThroughLoopbackForAWildcard()
    {
        _cli.Write("cc-relay.yaml", "server:\n  listen: \"0.0.0.0:9100\"\n");

        var (code, _, _) = await _cli.RunAsync("config", "cc", "init");

        Assert.Equal(0, code);
        Assert.Equal("http://127.0.0.1:9100", (string?)ReadSettings()["env"]!["ANTHROPIC_BASE_URL"]);
    }

    [Fact]
    public async Task CcInit_InvalidDiscoveredConfig_Exits2_WritingNothing()
    {
        _cli.Write("cc-relay.yaml", "server:\n  listen: \"nowhere\"\n");

        var (code, _, error) = await _cli.RunAsync("config", "cc", "init");

        Assert.Equal(2, code);
        Assert.Contains("error: server.listen", error);
        Assert.Contains("pass --url", error);
        Assert.False(File.Exists(SettingsPath));
    }

    [Theory]
    [InlineData("{\"env\": {")]
    [InlineData("[]")]
    [InlineData("{\"env\": \"ANTHROPIC_BASE_URL=x\"}")]
    public async Task CcInit_SettingsItCannotEditSafely_Exits2_AndLeavesThemUntouched(string settings)
    {
        WriteSettings(settings);

        var (code, _, error) = await _cli.RunAsync("config", "cc", "init");

        Assert.Equal(2, code);
        Assert.Contains($"{SettingsPath} was left untouched: ", error);
        Assert.Equal(settings, await File.ReadAllTextAsync(SettingsPath));
    }

    [Theory]
    [InlineData("127.0.0.1:8787")]
    [InlineData("ftp://127.0.0.1:8787")]
    [InlineData("http://127.0.0.1:8787/?token=x")]
    public async Task CcInit_UrlThatIsNotAnHttpUrl_IsAUsageError_Exit2(string url)
    {
        var (code, _, error) = await _cli.RunAsync("config", "cc", "init", "--url", url);

        Assert.Equal(2, code);
        Assert.Contains("--url: expected an absolute http:// or https:// URL", error);
        Assert.False(File.Exists(SettingsPath));
    }

    [Fact]
    [UnsupportedOSPlatform("windows")]
    public async Task CcInit_KeepsTheFileMode_AndASymlinkedSettingsFile()
    {
        // Arrange: a dotfiles-style link to a group-readable file.
        var target = _cli.Write("dotfiles/claude-settings.json", """{"model":"opus"}""");
        File.SetUnixFileMode(target, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        Directory.CreateDirectory(Path.GetDirectoryName(SettingsPath)!);
        File.CreateSymbolicLink(SettingsPath, target);

        // Act
        var (code, _, _) = await _cli.RunAsync("config", "cc", "init");

        // Assert
        Assert.Equal(0, code);
        Assert.Equal(target, new FileInfo(SettingsPath).LinkTarget);
        Assert.Contains("ANTHROPIC_BASE_URL", await File.ReadAllTextAsync(target));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(target));
    }

    [Fact]
    public async Task CcRemove_RemovesOnlyTheBaseUrl_AndAnEnvItLeavesEmpty()
    {
        // Arrange
        WriteSettings("""{"model":"opus","env":{"ANTHROPIC_BASE_URL":"http://127.0.0.1:8787"},"hooks":{}}""");

        // Act
        var (code, output, _) = await _cli.RunAsync("config", "cc", "remove");

        // Assert
        Assert.Equal(0, code);
        Assert.Contains("removed env.ANTHROPIC_BASE_URL", output);
        Assert.Equal("""{"model":"opus","hooks":{}}""", ReadSettings().ToJsonString());
    }

    [Fact]
    public async Task CcRemove_AfterInit_RestoresTheOtherSettings()
    {
        WriteSettings("""{"env":{"FOO":"1"},"model":"opus"}""");

        await _cli.RunAsync("config", "cc", "init", "--url", "http://127.0.0.1:9000");
        var (code, _, _) = await _cli.RunAsync("config", "cc", "remove", "--url", "http://127.0.0.1:9000/");

        Assert.Equal(0, code);
        Assert.Equal("""{"env":{"FOO":"1"},"model":"opus"}""", ReadSettings().ToJsonString());
    }

    [Fact]
    public async Task CcRemove_UrlPointingElsewhere_IsLeft_UnlessForced()
    {
        // Arrange
        const string Settings = """{"env":{"ANTHROPIC_BASE_URL":"https://gateway.example"}}""";
        WriteSettings(Settings);

        // Act
        var (keptCode, keptOutput, _) = await _cli.RunAsync("config", "cc", "remove");
        var kept = await File.ReadAllTextAsync(SettingsPath);
        var (forcedCode, _, _) = await _cli.RunAsync("config", "cc", "remove", "--force");

        // Assert
        Assert.Equal(0, keptCode);
        Assert.Contains("is https://gateway.example, not this relay's URL http://127.0.0.1:8787; it was left as it is", keptOutput);
        Assert.Equal(Settings, kept);
        Assert.Equal(0, forcedCode);
        Assert.Equal("{}", ReadSettings().ToJsonString());
    }

    [Fact]
    public async Task CcRemove_NoSettingsFile_Exits0_CreatingNothing()
    {
        var (code, output, _) = await _cli.RunAsync("config", "cc", "remove");

        Assert.Equal(0, code);
        Assert.Contains("does not exist; nothing to remove", output);
        Assert.False(Directory.Exists(Path.GetDirectoryName(SettingsPath)));
    }

    [Fact]
    public async Task CcRemove_InvalidJson_Exits2_AndLeavesItUntouched()
    {
        WriteSettings("{ not json");

        var (code, _, error) = await _cli.RunAsync("config", "cc", "remove", "--force");

        Assert.Equal(2, code);
        Assert.Contains("is not valid JSON", error);
        Assert.Equal("{ not json", await File.ReadAllTextAsync(SettingsPath));
    }
}
