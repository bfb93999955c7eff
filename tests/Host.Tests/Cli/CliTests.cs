using System.CommandLine;
using CcRelay.Cli;

namespace CcRelay.Host.Tests.Cli;

/// <summary>The command line in-process: output and documented exit codes.</summary>
public sealed class CliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cc-relay-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static async Task<(int Code, string Out, string Err)> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = await Program.BuildCommand().Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error });
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public async Task Version_PrintsTheVersion()
    {
        var (code, output, _) = await RunAsync("version");

        Assert.Equal(0, code);
        Assert.Equal($"cc-relay {RelayInfo.Version}\n", output);
    }

    [Fact]
    public async Task Help_ListsCommandsWithDescriptions()
    {
        var (code, output, _) = await RunAsync("--help");

        Assert.Equal(0, code);
        Assert.Matches(@"serve\s+Run the relay", output);
        Assert.Matches(@"version\s+Print the version", output);
        Assert.Matches(@"config\s+Create, check and show the config", output);
    }

    [Fact]
    public async Task EveryCommand_HelpEndsWithExamples_AndTheListingKeepsThemOut()
    {
        static IEnumerable<string[]> Paths(Command command, string[] path) =>
            command.Subcommands.Count == 0
                ? [path]
                : command.Subcommands.SelectMany(sub => Paths(sub, [.. path, sub.Name]));

        var commands = Paths(Program.BuildCommand(), []).ToList();
        Assert.Contains(commands, p => p.SequenceEqual(["config", "cc", "skill"]));
        foreach (var path in commands)
        {
            var (code, output, _) = await RunAsync([.. path, "--help"]);
            Assert.Equal(0, code);
            var examples = output.IndexOf("\nExamples:\n  ", StringComparison.Ordinal);
            Assert.True(examples > 0, $"cc-relay {string.Join(' ', path)} --help shows no examples:\n{output}");
            Assert.True(output.IndexOf("Options:", StringComparison.Ordinal) < examples, string.Join(' ', path));
        }

        var (_, listing, _) = await RunAsync("--help");
        Assert.DoesNotContain("Examples:", listing, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_MissingConfigFile_Exits2_NamingIt()
    {
        var path = Path.Combine(_dir, "nope.yaml");

        var (code, _, error) = await RunAsync("serve", "--config", path);

        Assert.Equal(2, code);
        Assert.Contains($"config file not found: {path} (named by --config)", error);
    }

    [Fact]
    public async Task Serve_InvalidConfig_Exits2_ListingEveryErrorWithItsPath()
    {
        var path = Path.Combine(_dir, "bad.yaml");
        await File.WriteAllTextAsync(path, """
            server:
              listen: "127.0.0.1:notaport"
            providers:
              - name: a
                type: nonsense
              - name: b
                type: anthropic_compatible
            """);

        var (code, _, error) = await RunAsync("serve", "--config", path);

        Assert.Equal(2, code);
        Assert.Contains("server.listen", error);
        Assert.Contains("providers[0].type", error);
        Assert.Contains("providers[1].base_url", error);
    }

    [Fact]
    public async Task Serve_BadListenFlag_Exits2()
    {
        var (code, _, error) = await RunAsync("serve", "--listen", "nowhere");

        Assert.Equal(2, code);
        Assert.Contains("--listen", error);
    }
}
