using System.Text.Json;

namespace CcRelay.Host.Tests.Cli;

/// <summary><c>cc-relay route explain</c>: a dry run from the config alone; exit 0 routable, 1 not, 2 invalid.</summary>
public sealed class RouteExplainCommandTests : IDisposable
{
    private const string Config = """
        providers:
          - name: main
            type: anthropic
            keys:
              - key: "${MAIN_KEY}"
          - name: cheap
            type: anthropic_compatible
            base_url: https://cheap.example.test
            keys:
              - key: "${CHEAP_KEY}"
          - name: retired
            type: anthropic
            enabled: false
        routing:
          stages:
            background: cheap,claude-haiku-4-5
            default: main
        """;

    private readonly CliSandbox _cli = new();

    public RouteExplainCommandTests()
    {
        _cli.Variables["MAIN_KEY"] = "sk-ant-main-secret-0001";
        _cli.Variables["CHEAP_KEY"] = "sk-cheap-secret-0002";
        _cli.Write("cc-relay.yaml", Config);
    }

    public void Dispose() => _cli.Dispose();

    [Fact]
    public async Task Explain_NamesStageProvidersKeyAndSkips_WithoutASecret()
    {
        // Arrange: Claude Code's quota check
        var request = _cli.Write("quota.json", """{"model":"claude-sonnet-4-6","max_tokens":1,"messages":[{"role":"user","content":"quota"}]}""");

        // Act
        var (code, output, error) = await _cli.RunAsync("route", "explain", request, "--config", "cc-relay.yaml");

        // Assert
        Assert.Equal(0, code);
        Assert.Equal("", error);
        Assert.Contains("stage:     background (probe)", output, StringComparison.Ordinal);
        Assert.Contains("strategy:  failover", output, StringComparison.Ordinal);
        Assert.Contains($"1. cheap  model=claude-haiku-4-5  key_id={Core.KeyId.ofSecret("sk-cheap-secret-0002")}", output, StringComparison.Ordinal);
        Assert.Contains("main: not a target of stage background", output, StringComparison.Ordinal);
        Assert.Contains("retired: disabled", output, StringComparison.Ordinal);
        Assert.DoesNotContain("secret", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ExplainJson_ForAProviderModelName()
    {
        // Arrange
        var request = _cli.Write("switch.json", """{"model":"main,claude-opus-4-8","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}""");

        // Act
        var (code, output, _) = await _cli.RunAsync("route", "explain", request, "--json");

        // Assert
        Assert.Equal(0, code);
        using var json = JsonDocument.Parse(output);
        var root = json.RootElement;
        Assert.Equal("direct", root.GetProperty("stage").GetString());
        Assert.Equal("model-switch", root.GetProperty("reason").GetString());
        var only = Assert.Single(root.GetProperty("providers").EnumerateArray().ToArray());
        Assert.Equal("main", only.GetProperty("provider").GetString());
        Assert.Equal("claude-opus-4-8", only.GetProperty("model").GetString());
    }

    [Fact]
    public async Task Explain_ExitsOne_WhenNoProviderWouldBeTried()
    {
        // Arrange: the only target is disabled
        _cli.Write("cc-relay.yaml", Config.Replace("background: cheap,claude-haiku-4-5", "background: retired", StringComparison.Ordinal));
        var request = _cli.Write("quota.json", """{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"quota"}]}""");

        // Act
        var (code, output, _) = await _cli.RunAsync("route", "explain", request);

        // Assert
        Assert.Equal(1, code);
        Assert.Contains("none: no provider would be tried", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"max_tokens":1}""")]
    [InlineData("not json")]
    public async Task Explain_ExitsTwo_ForARequestTheRelayWouldRefuse(string body)
    {
        // Arrange
        var request = _cli.Write("bad.json", body);

        // Act
        var (code, _, error) = await _cli.RunAsync("route", "explain", request);

        // Assert
        Assert.Equal(2, code);
        Assert.Contains("the request would be refused", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Explain_ExitsTwo_ForAnInvalidConfig()
    {
        // Arrange
        _cli.Write("cc-relay.yaml", Config.Replace("background:", "backgroundd:", StringComparison.Ordinal));
        var request = _cli.Write("quota.json", """{"model":"m","max_tokens":1,"messages":[]}""");

        // Act
        var (code, _, error) = await _cli.RunAsync("route", "explain", request);

        // Assert
        Assert.Equal(2, code);
        Assert.Contains("routing.stages.backgroundd", error, StringComparison.Ordinal);
    }
}
