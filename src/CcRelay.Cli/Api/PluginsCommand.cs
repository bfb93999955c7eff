using System.CommandLine;
using System.Globalization;

namespace CcRelay.Cli.Api;

/// <summary><c>cc-relay plugins</c>: a running relay's plugins with their process state (ListPlugins).</summary>
internal static class PluginsCommand
{
    public static Command Create(CliEnvironment environment)
    {
        var options = new ApiOptions();
        var command = new Command("plugins", """
            List a running relay's plugins (docs/plugins.md): state (idle, running, stopped), calls, failures,
            restarts, the median round trip of the last calls, and the last error.

            Examples:
              cc-relay plugins
              cc-relay plugins --json
            """);
        return options.AddTo(command).WithAction(options, environment, async context =>
        {
            var plugins = (await context.Client.ListPluginsAsync(context.Cancel)).Plugins;
            if (context.Json)
            {
                await context.Output.WriteLineAsync(ApiCommand.Object(("plugins", ApiCommand.Array(plugins))));
                return ExitCodes.Success;
            }

            if (plugins.Count == 0)
            {
                await context.Output.WriteLineAsync("no plugins are configured");
                return ExitCodes.Success;
            }

            ApiCommand.Table(
                context.Output,
                ["PLUGIN", "STATE", "PROCESSES", "BUSY", "WAITING", "CALLS", "FAILURES", "RESTARTS", "P50", "SANDBOX", "LAST ERROR"],
                plugins.Select(p => new[]
                {
                    p.Name, p.State,
                    string.Create(CultureInfo.InvariantCulture, $"{p.Running}/{p.Processes}") + (p.Draining > 0 ? string.Create(CultureInfo.InvariantCulture, $" (+{p.Draining} draining)") : ""),
                    p.Busy.ToString(CultureInfo.InvariantCulture),
                    p.Waiting.ToString(CultureInfo.InvariantCulture),
                    p.Calls.ToString(CultureInfo.InvariantCulture),
                    p.Failures.ToString(CultureInfo.InvariantCulture),
                    p.Restarts.ToString(CultureInfo.InvariantCulture),
                    p.Calls == 0 ? "-" : p.P50Ms.ToString("0.###", CultureInfo.InvariantCulture) + " ms",
                    p.Sandboxed ? "yes" : "no",
                    p.LastError.Length > 0 ? p.LastError : "-",
                }));
            return ExitCodes.Success;
        });
    }
}
