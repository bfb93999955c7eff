using System.CommandLine;
using CcRelay.Cli.Api;
using CcRelay.Cli.Claude;
using CcRelay.Cli.Tui;
using CcRelay.Host;

namespace CcRelay.Cli;

/// <summary>
/// <c>cc-relay</c>: parses arguments, calls the host and core, prints, returns documented exit codes
/// (0 success, 1 runtime failure, 2 invalid configuration or usage; see docs/cli.md).
/// </summary>
internal static class Program
{
    private static Task<int> Main(string[] args)
    {
        PreferInlineSocketCompletions();
        return RunAsync(args, CliEnvironment.FromProcess(), new InvocationConfiguration());
    }

    /// <summary>
    /// Socket completions run on the socket event threads (one per core) instead of being queued to the thread
    /// pool: a relayed request then crosses no thread boundary between its client socket and its upstream socket
    /// (measured: context switches per request 3.7 → 1.0, CPU per request −15 % on a minimal proxy, see
    /// bench/RESULTS.md). The runtime reads the variable once, when the first socket is created, so it is set here,
    /// before anything else runs; an operator's own value (e.g. <c>0</c>) is left alone.
    /// </summary>
    private static void PreferInlineSocketCompletions()
    {
        const string Name = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";
        if (Environment.GetEnvironmentVariable(Name) is null)
        {
            Environment.SetEnvironmentVariable(Name, "1");
        }
    }

    /// <summary>
    /// Parses and runs <paramref name="args"/>. A usage error (unknown option, bad value, missing subcommand)
    /// exits 2 as documented; System.CommandLine itself would return 1, which is the runtime-failure code.
    /// </summary>
    internal static async Task<int> RunAsync(string[] args, CliEnvironment environment, InvocationConfiguration configuration)
    {
        // cc-relay claude …: every argument after "claude" is Claude Code's (its -c, -p, --model…), so none is
        // parsed here; only a lone --help/-h shows this command's help ("cc-relay claude -- --help": Claude Code's)
        if (args is ["claude", .. var claudeArgs] && claudeArgs is not (["--help"] or ["-h"]))
        {
            return await ClaudeCommand.RunAsync(claudeArgs is ["--", .. var rest] ? rest : claudeArgs, environment, configuration.Error, CancellationToken.None);
        }

        var parse = BuildCommand(environment).Parse(args);
        var code = await parse.InvokeAsync(configuration);
        return parse.Errors.Count > 0 ? ExitCodes.InvalidConfig : code;
    }

    /// <summary>The commands, reading the process's environment.</summary>
    internal static RootCommand BuildCommand() => BuildCommand(CliEnvironment.FromProcess());

    /// <summary>The commands, reading <paramref name="environment"/> instead of the process's (for tests).</summary>
    internal static RootCommand BuildCommand(CliEnvironment environment)
    {
        var root = new RootCommand("cc-relay: a relay between Claude Code and the LLM providers you use.");
        root.Add(ServeCommand.Create(environment));
        root.Add(StatusCommand.Create(environment));
        root.Add(ModelsCommand.Create(environment));
        root.Add(ProvidersCommand.Create(environment));
        root.Add(PluginsCommand.Create(environment));
        root.Add(KeysCommand.Create(environment));
        root.Add(ClientsCommand.Create(environment));
        root.Add(ClaudeCommand.Create(environment));
        root.Add(ConfigCommand(environment));
        root.Add(new Command("route", "Ask where requests would go.")
        {
            RouteExplainCommand.Create(environment).WithExamples(
                "cc-relay route explain request.json",
                "cat request.json | cc-relay route explain --json",
                "cc-relay route explain request.json --config ./cc-relay.yaml --header \"x-claude-code-agent-id: a1\""),
        }.WithExamples("cc-relay route explain request.json"));
        root.Add(TuiCommand.Create(environment).WithExamples(
            "cc-relay tui",
            "cc-relay tui --relay 127.0.0.1:8788 --token \"$CC_RELAY_GRPC_TOKEN\"",
            "CC_RELAY_GRPC_ADDRESS=10.0.0.5:8788 cc-relay tui"));
        root.Add(UsageCommand.Create(environment).WithExamples(
            "cc-relay usage",
            "cc-relay usage --by model --since 30d",
            "cc-relay usage --by day --csv > usage.csv"));
        root.Add(TransformersCommand.Create().WithExamples(
            "cc-relay transformers",
            "cc-relay transformers --json | jq '.[].name'"));
        root.Add(VersionCommand());
        return root.ShowingExamples();
    }

    private static Command ConfigCommand(CliEnvironment environment) =>
        new("config", "Create, check and show the config; reload a running relay's; point Claude Code at the relay.")
        {
            ConfigValidateCommand.Create(environment),
            ConfigInitCommand.Create(environment),
            ConfigShowCommand.Create(environment),
            ConfigReloadCommand.Create(environment),
            ClaudeCodeCommand.Create(environment),
        };

    private static Command VersionCommand()
    {
        var command = new Command("version", "Print the version and exit.");
        command.SetAction(parse =>
        {
            parse.InvocationConfiguration.Output.WriteLine($"cc-relay {RelayInfo.Version}");
            return 0;
        });
        return command.WithExamples(
            "cc-relay version");
    }
}
