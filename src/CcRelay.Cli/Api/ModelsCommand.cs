using System.CommandLine;
using CcRelay.Host.Management;
using Grpc.Core;
using ProviderModels = CcRelay.Management.V1.ProviderModels;

namespace CcRelay.Cli.Api;

/// <summary>
/// <c>cc-relay models</c>: what each provider offers — its models and its model mapping — from the running relay
/// (ListModels), or, when none answers and no address was named, from the config file the relay would load.
/// </summary>
internal static class ModelsCommand
{
    public static Command Create(CliEnvironment environment)
    {
        var options = new ApiOptions();
        var command = new Command("models", """
            List each provider's models and model mapping: from the running relay, or from the config when no
            relay answers (and no --relay or $CC_RELAY_GRPC_ADDRESS was given).

            Examples:
              cc-relay models
              cc-relay models --json
              cc-relay models --config ./cc-relay.yaml
            """);
        return options.AddTo(command).WithAction(options, environment, RunAsync);
    }

    private static async Task<int> RunAsync(ApiContext context)
    {
        IReadOnlyList<ProviderModels> providers;
        string source;
        try
        {
            providers = (await context.Client.ListModelsAsync(context.Cancel)).Providers;
            source = "relay";
        }
        catch (RpcException e) when (RelayClient.IsUnreachable(e) && !context.Target.Explicit)
        {
            if (context.Target.Config is not { } config)
            {
                await context.Error.WriteLineAsync($"cc-relay: {context.Client.Describe(e)}; and the config does not load (run cc-relay config validate)");
                return ExitCodes.Failure;
            }

            providers = [.. Core.ProviderModels.OfConfig(config).Select(ManagementViews.Models)];
            source = "config";
        }

        if (context.Json)
        {
            await context.Output.WriteLineAsync(ApiCommand.Object(("source", ApiCommand.String(source)), ("providers", ApiCommand.Array(providers))));
            return ExitCodes.Success;
        }

        await context.Output.WriteLineAsync(source == "relay"
            ? $"Models of the running relay (API {context.Client.Address.Authority}):"
            : $"No relay answers at {context.Client.Address.Authority}; models of the config it would load:");
        foreach (var provider in providers)
        {
            await context.Output.WriteLineAsync();
            await context.Output.WriteLineAsync($"{provider.Provider} ({provider.Type}{(provider.EnabledInConfig ? "" : ", disabled in the config")})");
            await context.Output.WriteLineAsync(provider.Models.Count > 0
                ? $"  models:  {string.Join(", ", provider.Models)}"
                : "  models:  (none listed; a request's model goes upstream as asked)");
            foreach (var mapping in provider.Mapping)
            {
                await context.Output.WriteLineAsync($"  mapping: {mapping.From} -> {mapping.To}");
            }
        }

        return ExitCodes.Success;
    }
}
