using System.CommandLine;
using CcRelay.Cli.Api;
using CcRelay.Core;

namespace CcRelay.Cli.Tui;

/// <summary>
/// <c>cc-relay tui</c>: the live dashboard of a running relay, over its management API (docs/tui.md). Exits 0 when the
/// operator quits, 2 for a usage error (no terminal, an unreadable address or config).
/// </summary>
internal static class TuiCommand
{
    public static Command Create(CliEnvironment environment)
    {
        var relay = new Option<string?>("--relay")
        {
            Description = $"The relay's management API, host:port or http://host:port. Default: ${RelayTarget.AddressVariable}, else the config's grpc.listen, else 127.0.0.1:8788.",
        };
        var token = new Option<string?>("--token")
        {
            Description = $"The management token (grpc.auth_token). Default: ${RelayTarget.TokenVariable}, else the config's grpc.auth_token.",
        };
        var config = new Option<string?>("--config", "-c")
        {
            Description = "Read the address and token from this config's grpc section (default: the file serve would load).",
        };
        var command = new Command("tui", "Live dashboard of a running relay: providers, keys, requests; enable/disable providers, reload the config.")
        {
            relay,
            token,
            config,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var error = parse.InvocationConfiguration.Error;
            if (Resolve(parse.GetValue(relay), parse.GetValue(token), parse.GetValue(config), environment, error) is not { } target)
            {
                return ExitCodes.InvalidConfig;
            }

            if (Console.IsInputRedirected || Console.IsOutputRedirected)
            {
                await error.WriteLineAsync("cc-relay tui: needs a terminal (stdin and stdout must not be redirected)");
                return ExitCodes.InvalidConfig;
            }

            await TuiApp.RunAsync(target, cancellationToken);
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>
    /// The target from the flags, the environment and (only for what those leave open) the config's grpc section;
    /// null after printing why it cannot be had.
    /// </summary>
    internal static RelayTarget? Resolve(string? relay, string? token, string? configPath, CliEnvironment environment, TextWriter error)
    {
        GrpcConfig? grpc = null;
        var open = (relay ?? environment.NonEmpty(RelayTarget.AddressVariable)) is null || (token ?? environment.NonEmpty(RelayTarget.TokenVariable)) is null;
        if (configPath is not null || open)
        {
            var loaded = LoadConfig.Run(configPath, environment, error);
            if (loaded is null)
            {
                return null;
            }

            grpc = loaded.Value.Path is null ? null : loaded.Value.Config.Grpc;
        }

        var (target, problem) = RelayTarget.From(relay, token, environment.Variable, grpc);
        if (target is null)
        {
            error.WriteLine($"cc-relay tui: {problem}");
        }

        return target;
    }
}
