namespace CcRelay.Host.Tests.Cli;

/// <summary><c>cc-relay config validate</c>: every issue with its position, and exit 0 or 2.</summary>
public sealed class ConfigValidateCommandTests : IDisposable
{
    private readonly CliSandbox _cli = new();

    public void Dispose() => _cli.Dispose();

    [Fact]
    public async Task Validate_ValidFile_Exits0_NamingTheFileAndEveryWarning()
    {
        // Arrange
        var path = _cli.Write("mine.yaml", """
            server:
              lsten: "127.0.0.1:8787"
            """);

        // Act
        var (code, output, error) = await _cli.RunAsync("config", "validate", path);

        // Assert
        Assert.Equal(0, code);
        Assert.Empty(error);
        Assert.Contains($"Validating {path} (found by the path argument)", output);
        Assert.Contains("  warning: server.lsten (line 2, column 3): unknown key", output);
        Assert.Contains($"{path} is valid (1 warning).", output);
    }

    [Fact]
    public async Task Validate_InvalidFile_Exits2_ListingEveryErrorWithLineAndColumn()
    {
        // Arrange
        var path = _cli.Write("bad.yaml", """
            server:
              listen: "127.0.0.1:notaport"
            providers:
              - name: a
                type: nonsense
              - name: b
                type: anthropic_compatible
            """);

        // Act
        var (code, output, _) = await _cli.RunAsync("config", "validate", path);

        // Assert
        Assert.Equal(2, code);
        Assert.Contains("  error: server.listen (line 2, column 11): ", output);
        Assert.Contains("  error: providers[0].type (line 5, column 11): ", output);
        Assert.Contains("  error: providers[1].base_url (line 6, column 5): ", output);
        Assert.Contains($"{path} is invalid: 3 errors, 1 warning.", output);
    }

    [Fact]
    public async Task Validate_MissingFile_Exits2_NamingIt()
    {
        var path = Path.Combine(_cli.WorkingDirectory, "nope.yaml");

        var (code, output, error) = await _cli.RunAsync("config", "validate", "nope.yaml");

        Assert.Equal(2, code);
        Assert.Empty(output);
        Assert.Contains($"config file not found: {path} (named by the path argument)", error);
    }

    [Fact]
    public async Task Validate_WithoutPath_ValidatesTheFileServeWouldFind()
    {
        var path = _cli.Write("cc-relay.yaml", "server:\n  listen: \"127.0.0.1:9000\"\n");

        var (code, output, _) = await _cli.RunAsync("config", "validate");

        Assert.Equal(0, code);
        Assert.Contains($"Validating {path} (found by ./cc-relay.yaml)", output);
    }

    [Fact]
    public async Task Validate_WithoutPath_HonoursCcRelayConfig()
    {
        _cli.Write("cc-relay.yaml", "server:\n  listen: \"127.0.0.1:9000\"\n");
        var named = _cli.Write("elsewhere/relay.yaml", "server:\n  listen: \"127.0.0.1:9001\"\n");
        _cli.Variables["CC_RELAY_CONFIG"] = named;

        var (code, output, _) = await _cli.RunAsync("config", "validate");

        Assert.Equal(0, code);
        Assert.Contains($"Validating {named} (found by $CC_RELAY_CONFIG)", output);
    }

    [Fact]
    public async Task Validate_NoConfigAnywhere_Exits0_SayingServeWouldUseTheBuiltInDefault()
    {
        var (code, output, _) = await _cli.RunAsync("config", "validate");

        Assert.Equal(0, code);
        Assert.Contains("No config file found", output);
        Assert.Contains("built-in default", output);
    }

    [Fact]
    public async Task Validate_ExpandsVariablesFromTheEnvironment_AsServeWould()
    {
        var path = _cli.Write("auth.yaml", """
            server:
              auth:
                api_key: "${RELAY_KEY}"
            """);

        var (unsetCode, unsetOutput, _) = await _cli.RunAsync("config", "validate", path);
        _cli.Variables["RELAY_KEY"] = "set";
        var (setCode, _, _) = await _cli.RunAsync("config", "validate", path);

        Assert.Equal(2, unsetCode);
        Assert.Contains("  error: server.auth.api_key (line 3, column 14): ", unsetOutput);
        Assert.Contains("RELAY_KEY", unsetOutput);
        Assert.Equal(0, setCode);
    }
}
