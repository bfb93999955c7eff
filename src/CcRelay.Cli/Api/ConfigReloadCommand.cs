using System.CommandLine;

namespace CcRelay.Cli.Api;

/// <summary>
/// <c>cc-relay config reload</c>: asks the running relay to read its config file again (ReloadConfig). Applied or
/// unchanged: exit 0. Refused: the located errors on stderr, as <c>config validate</c> prints them, exit 2 (the
/// relay keeps running its config).
/// </summary>
internal static class ConfigReloadCommand
{
    public static Command Create(CliEnvironment environment)
    {
        var options = new ApiOptions();
        var command = new Command("reload", """
            Make the running relay read its config file again. An invalid file is refused with every error
            located (exit 2); the relay keeps running the config it had.

            Examples:
              cc-relay config reload
              cc-relay config reload --relay 127.0.0.1:8788 --json
            """);
        return options.AddTo(command).WithAction(options, environment, RunAsync);
    }

    private static async Task<int> RunAsync(ApiContext context)
    {
        var answer = await context.Client.ReloadConfigAsync(context.Cancel);
        var refused = answer.Outcome == "rejected";
        if (context.Json)
        {
            await context.Output.WriteLineAsync(ApiCommand.Json(answer));
            return refused ? ExitCodes.InvalidConfig : ExitCodes.Success;
        }

        switch (answer.Outcome)
        {
            case "applied":
                await context.Output.WriteLineAsync($"Config reloaded (generation {answer.ConfigGeneration}):");
                foreach (var change in answer.Changes)
                {
                    await context.Output.WriteLineAsync($"  - {change}");
                }

                break;
            case "unchanged":
                await context.Output.WriteLineAsync($"Config unchanged (generation {answer.ConfigGeneration}).");
                break;
            case "restart_required":
                await context.Output.WriteLineAsync($"Config not applied: what changed needs a restart; the relay keeps running generation {answer.ConfigGeneration}:");
                foreach (var change in answer.Changes)
                {
                    await context.Output.WriteLineAsync($"  - {change}");
                }

                break;
            default:
                await context.Error.WriteLineAsync($"cc-relay: the relay refused the config ({answer.Errors.Count} error(s)); it keeps running generation {answer.ConfigGeneration}:");
                foreach (var issue in answer.Errors)
                {
                    await context.Error.WriteLineAsync($"  error: {issue.Text}");
                }

                break;
        }

        foreach (var warning in answer.Warnings)
        {
            await context.Error.WriteLineAsync($"  warning: {warning.Text}");
        }

        return refused ? ExitCodes.InvalidConfig : ExitCodes.Success;
    }
}
