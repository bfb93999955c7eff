using CcRelay.Cli.Tui;

namespace CcRelay.Host.Tests.Cli.Tui;

/// <summary>
/// <c>cc-relay tui</c> and <c>serve --tui</c> in-process, where stdout is not a terminal: the usage errors and
/// where the dashboard would connect. The dashboard itself is driven in tmux by tests/Tui/run.sh.
/// </summary>
public sealed class TuiCommandTests
{
    [Fact]
    public async Task Tui_WithoutATerminal_Exits2_SayingSo()
    {
        using var sandbox = new CliSandbox();

        var (code, _, error) = await sandbox.RunAsync("tui", "--relay", "127.0.0.1:1");

        Assert.Equal(2, code);
        Assert.Contains("cc-relay tui: needs a terminal", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tui_AnUnreadableAddress_Exits2_NamingIt()
    {
        using var sandbox = new CliSandbox();

        var (code, _, error) = await sandbox.RunAsync("tui", "--relay", "ftp://relay:1");

        Assert.Equal(2, code);
        Assert.Contains("cannot read the relay's management address 'ftp://relay:1'", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tui_AMissingConfig_Exits2()
    {
        using var sandbox = new CliSandbox();

        var (code, _, error) = await sandbox.RunAsync("tui", "--config", "nope.yaml");

        Assert.Equal(2, code);
        Assert.Contains("config file not found", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Tui_ReadsTheAddressAndTokenFromTheConfigsGrpcSection_ExpandingVariables()
    {
        using var sandbox = new CliSandbox();
        sandbox.Variables["MGMT_TOKEN"] = "from-the-environment";
        sandbox.Write("cc-relay.yaml", """
            providers:
              - name: a
                type: anthropic
            grpc:
              listen: "0.0.0.0:9788"
              auth_token: "${MGMT_TOKEN}"
            """);

        var target = TuiCommand.Resolve(null, null, null, sandbox.Environment, TextWriter.Null);
        var flagged = TuiCommand.Resolve("127.0.0.1:7000", null, null, sandbox.Environment, TextWriter.Null);

        Assert.Equal("http://127.0.0.1:9788/", target?.Address.ToString());
        Assert.Equal("from-the-environment", target?.Token);
        Assert.Equal("http://127.0.0.1:7000/", flagged?.Address.ToString());
        Assert.Equal("from-the-environment", flagged?.Token);
    }

    [Fact]
    public async Task ServeTui_WithoutATerminal_Exits2_BeforeStarting()
    {
        using var sandbox = new CliSandbox();

        var (code, _, error) = await sandbox.RunAsync("serve", "--tui", "--listen", "127.0.0.1:0");

        Assert.Equal(2, code);
        Assert.Contains("--tui needs a terminal", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_ListsTui_AndServesTuiFlag()
    {
        using var sandbox = new CliSandbox();

        var (_, root, _) = await sandbox.RunAsync("--help");
        var (_, serve, _) = await sandbox.RunAsync("serve", "--help");

        Assert.Matches(@"tui\s+Live dashboard of a running relay", root);
        Assert.Contains("--tui", serve, StringComparison.Ordinal);
    }
}
