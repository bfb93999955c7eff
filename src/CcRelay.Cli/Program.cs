using System.CommandLine;
using CcRelay.Host;

namespace CcRelay.Cli;

/// <summary>
/// <c>cc-relay</c>: parses arguments, calls the host and core, prints, returns documented exit codes
/// (0 success, 1 runtime failure, 2 invalid configuration or usage).
/// </summary>
internal static class Program
{
    private static Task<int> Main(string[] args) => BuildCommand().Parse(args).InvokeAsync();

    internal static RootCommand BuildCommand()
    {
        var root = new RootCommand("cc-relay: a relay between Claude Code and the LLM providers you use.");
        root.Add(ServeCommand.Create());
        root.Add(VersionCommand());
        return root;
    }

    private static Command VersionCommand()
    {
        var command = new Command("version", "Print the version and exit.");
        command.SetAction(parse =>
        {
            parse.InvocationConfiguration.Output.WriteLine($"cc-relay {RelayInfo.Version}");
            return 0;
        });
        return command;
    }
}
