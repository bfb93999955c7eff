using System.CommandLine;
using System.Globalization;

namespace CcRelay.Cli.Api;

/// <summary><c>cc-relay providers list|enable|disable</c>: the operator's switch over the API (SetProviderEnabled).</summary>
internal static class ProvidersCommand
{
    public static Command Create(CliEnvironment environment) =>
        new("providers", "List a running relay's providers; disable or enable one (the operator's switch beside its circuit breaker).")
        {
            List(environment),
            Switch(environment, enabled: false),
            Switch(environment, enabled: true),
        };

    private static Command List(CliEnvironment environment)
    {
        var options = new ApiOptions();
        var command = new Command("list", """
            List the providers of a running relay with their live state.

            Examples:
              cc-relay providers list
              cc-relay providers list --json
            """);
        return options.AddTo(command).WithAction(options, environment, async context =>
        {
            var providers = await context.Client.ListProvidersAsync(context.Cancel);
            if (context.Json)
            {
                await context.Output.WriteLineAsync(ApiCommand.Object(("providers", ApiCommand.Array(providers))));
                return ExitCodes.Success;
            }

            ApiCommand.Table(
                context.Output,
                ["PROVIDER", "TYPE", "ENABLED", "CIRCUIT", "UP", "KEYS", "BASE URL"],
                providers.Select(p => new[]
                {
                    p.Name, p.Type,
                    !p.EnabledInConfig ? "no (config)" : p.OperatorDisabled ? "no (operator)" : "yes",
                    p.Circuit.Replace('_', '-'), p.Up ? "yes" : "no", p.Keys.Count.ToString(CultureInfo.InvariantCulture), p.BaseUrl,
                }));
            return ExitCodes.Success;
        });
    }

    private static Command Switch(CliEnvironment environment, bool enabled)
    {
        var options = new ApiOptions();
        var name = new Argument<string>("name") { Description = "The provider's name, as in the config." };
        var verb = enabled ? "enable" : "disable";
        var command = new Command(verb, enabled
            ? """
              Route to a provider the operator disabled again. Its circuit breaker is as its own traffic left it:
              an open circuit stays open until its break ends. Survives a config reload, not a restart.

              Examples:
                cc-relay providers enable zai
              """
            : """
              Stop routing to a provider and stop probing it, until enabled again or the relay restarts
              (a config reload keeps it disabled while the provider keeps its name).

              Examples:
                cc-relay providers disable zai
                cc-relay providers disable zai --relay 10.0.0.5:8788 --token "$CC_RELAY_GRPC_TOKEN"
              """)
        {
            name,
        };
        return options.AddTo(command).WithAction(options, environment, async context =>
        {
            var provider = context.Parse.GetValue(name)!;
            var answer = await context.Client.SetProviderEnabledAsync(provider, enabled, context.Cancel);
            if (context.Json)
            {
                await context.Output.WriteLineAsync(ApiCommand.Json(answer));
                return ExitCodes.Success;
            }

            var state = enabled ? "enabled" : "disabled";
            await context.Output.WriteLineAsync(answer.Changed
                ? $"Provider {provider} {state} (circuit {answer.Provider.Circuit.Replace('_', '-')}, {(answer.Provider.Up ? "up" : "down")})."
                : $"Provider {provider} was already {state}; nothing changed.");
            return ExitCodes.Success;
        });
    }
}
