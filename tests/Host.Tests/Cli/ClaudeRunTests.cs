using System.Diagnostics;
using System.Net.Sockets;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Cli;

/// <summary>
/// <c>cc-relay claude</c> with a stub <c>claude</c> (a bash script that records its environment, arguments and
/// stdin, asks the relay it was pointed at for <c>/</c>, and exits 7): a relay started in the background and
/// stopped afterwards, a running relay found, every argument/stdin/exit code passed through, and claude missing.
/// </summary>
public sealed class ClaudeRunTests : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(90);
    private readonly string _dir = Directory.CreateTempSubdirectory("cc-relay-claude-").FullName;
    private FakeUpstream _upstream = null!;

    private string StubDirectory => Path.Combine(_dir, "bin");

    private string Recorded(string name) => File.ReadAllText(Path.Combine(_dir, name));

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        Directory.CreateDirectory(StubDirectory);
        var stub = Path.Combine(StubDirectory, "claude");
        await File.WriteAllTextAsync(stub, $$"""
            #!/usr/bin/env bash
            out='{{_dir}}'
            printf '%s' "$ANTHROPIC_BASE_URL" > "$out/url"
            printf '%s' "${ANTHROPIC_API_KEY-unset}" > "$out/key"
            printf '%s\n' "$@" > "$out/args"
            cat > "$out/stdin"
            hostport=${ANTHROPIC_BASE_URL#http://}
            exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}"
            printf 'GET / HTTP/1.0\r\nHost: relay\r\n\r\n' >&3
            cat <&3 > "$out/root"
            exit 7

            """.ReplaceLineEndings("\n"));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(stub, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private static int DeadPort()
    {
        using var listener = new TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static bool Accepts(Uri url)
    {
        try
        {
            using var client = new TcpClient();
            client.Connect(url.Host, url.Port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    [Fact]
    public async Task NoRelayRunning_StartsOne_PassesArgumentsStdinAndExitCode_ThenStopsIt()
    {
        // Arrange: a config whose relay is not running (nothing listens on its port), with client auth
        var config = Path.Combine(_dir, "relay.yaml");
        await File.WriteAllTextAsync(config, $"""
            server:
              listen: "127.0.0.1:{DeadPort()}"
              auth:
                api_key: "relay-client-key-0001"
            providers:
              - name: fake
                type: anthropic_compatible
                base_url: "{_upstream.BaseUrl}"
                keys:
                  - key: "k"
            """);
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "cc-relay.dll"), "claude", "-p", "two words", "-c", "--model", "claude-sonnet-4-6", "--", "--help"])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = _dir,
        };
        start.Environment["PATH"] = StubDirectory + Path.PathSeparator + Environment.GetEnvironmentVariable("PATH");
        start.Environment["CC_RELAY_CONFIG"] = config;
        start.Environment["HOME"] = _dir;

        // Act
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEndAsync();
        await process.StandardInput.WriteAsync("from stdin\n");
        process.StandardInput.Close();
        try
        {
            await process.WaitForExitAsync(new CancellationTokenSource(Bound).Token);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        // Assert: claude's exit code, every argument as given, stdin, the relay it was pointed at answered…
        var error = await stderr;
        Assert.True(7 == process.ExitCode, error + await stdout);
        Assert.Equal("-p\ntwo words\n-c\n--model\nclaude-sonnet-4-6\n--\n--help\n", Recorded("args"));
        Assert.Equal("from stdin\n", Recorded("stdin"));
        var url = new Uri(Recorded("url"));
        Assert.Equal("127.0.0.1", url.Host);
        Assert.Contains($"cc-relay: started a relay at {url.GetLeftPart(UriPartial.Authority)} ({config})", error, StringComparison.Ordinal);
        Assert.Contains($"cc-relay {RelayInfo.Version}", Recorded("root"), StringComparison.Ordinal);
        Assert.Equal("relay-client-key-0001", Recorded("key"));

        // … and the relay it started is gone
        Assert.False(Accepts(url), "the relay started for Claude Code still listens");
    }

    [Fact]
    public async Task ASigtermToCcRelayClaude_IsPassedOnToClaude_WhoseExitCodeComesBack_AndTheRelayStops()
    {
        // Arrange: a claude that says "ready" on stdout, then waits for SIGTERM, records it and exits 143
        var bin = Path.Combine(_dir, "bin-term");
        Directory.CreateDirectory(bin);
        var stub = Path.Combine(bin, "claude");
        await File.WriteAllTextAsync(stub, $$"""
            #!/usr/bin/env bash
            trap 'printf term > "{{_dir}}/signal"; exit 143' TERM
            printf '%s' "$ANTHROPIC_BASE_URL" > "{{_dir}}/url"
            echo ready
            while :; do sleep 0.1; done

            """.ReplaceLineEndings("\n"));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(stub, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        var config = Path.Combine(_dir, "relay.yaml");
        await File.WriteAllTextAsync(config, $"""
            server:
              listen: "127.0.0.1:{DeadPort()}"
            providers:
              - name: fake
                type: anthropic_compatible
                base_url: "{_upstream.BaseUrl}"
            """);
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "cc-relay.dll"), "claude"])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = _dir,
        };
        start.Environment["PATH"] = bin + Path.PathSeparator + Environment.GetEnvironmentVariable("PATH");
        start.Environment["CC_RELAY_CONFIG"] = config;
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        using var bound = new CancellationTokenSource(Bound);
        try
        {
            // Act: once claude runs, SIGTERM cc-relay claude
            Assert.Equal("ready", await process.StandardOutput.ReadLineAsync(bound.Token));
            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync(bound.Token);
            }

            await process.WaitForExitAsync(bound.Token);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        // Assert: claude got the signal and its exit code came back; the relay started for it is gone
        Assert.True(143 == process.ExitCode, await stderr);
        Assert.Equal("term", Recorded("signal"));
        Assert.False(Accepts(new Uri(Recorded("url"))), "the relay started for Claude Code still listens");
    }

    [Fact]
    public async Task ARelayRunning_AtTheConfigsAddress_IsUsed_AndLeftRunning()
    {
        var relayConfig = TestConfig.Relay([TestConfig.Provider("fake", _upstream.BaseUrl, keys: ["k"])]);
        await using var relay = await RelayHost.StartAsync(relayConfig);
        using var sandbox = new CliSandbox();
        sandbox.Variables["PATH"] = StubDirectory;
        var address = relay.Addresses[0];
        sandbox.Write("cc-relay.yaml", $"""
            server:
              listen: "{address.Authority}"
            providers:
              - name: fake
                type: anthropic_compatible
                base_url: "{_upstream.BaseUrl}"
            """);

        var (code, _, error) = await sandbox.RunAsync("claude", "--version");

        Assert.Equal(7, code);
        Assert.Equal(address.GetLeftPart(UriPartial.Authority), Recorded("url"));
        Assert.Equal("--version\n", Recorded("args"));
        Assert.Equal("unset", Recorded("key")); // no client auth: Claude Code sends its own credential
        Assert.Contains($"cc-relay: Claude Code uses the relay at {address.GetLeftPart(UriPartial.Authority)}", error, StringComparison.Ordinal);
        Assert.True(Accepts(address));
    }

    [Fact]
    public async Task ClaudeNotOnPath_Exits127_SayingHowToInstallIt_AndStartsNothing()
    {
        using var sandbox = new CliSandbox();
        sandbox.Variables["PATH"] = sandbox.Home;

        var (code, _, error) = await sandbox.RunAsync("claude", "-p", "hi");

        Assert.Equal(127, code);
        Assert.Contains("claude (Claude Code) is not on PATH", error, StringComparison.Ordinal);
        Assert.Contains("npm install -g @anthropic-ai/claude-code", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_DescribesTheCommand_WithExamples()
    {
        using var sandbox = new CliSandbox();

        var (code, output, _) = await sandbox.RunAsync("claude", "--help");

        Assert.Equal(0, code);
        Assert.Contains("Run Claude Code through the relay", output, StringComparison.Ordinal);
        Assert.Contains("Examples:", output, StringComparison.Ordinal);
    }
}
