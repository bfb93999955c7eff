using System.CommandLine;
using System.Globalization;
using CcRelay.Management.V1;

namespace CcRelay.Cli.Api;

/// <summary>
/// <c>cc-relay status</c>: one screen about a running relay (GetStatus and ListProviders). Exit 0 when some
/// provider can serve, 1 when none can, 2 when the relay cannot be reached.
/// </summary>
internal static class StatusCommand
{
    public const int Unreachable = 2;

    public static Command Create(CliEnvironment environment)
    {
        var options = new ApiOptions();
        var command = new Command("status", """
            Show a running relay: version, uptime, config, traffic, and each provider's health.
            Exit 0 when some provider can serve, 1 when none can, 2 when the relay cannot be reached.

            Examples:
              cc-relay status
              cc-relay status --relay 127.0.0.1:8788 --token "$CC_RELAY_GRPC_TOKEN"
              cc-relay status --json | jq '.providers[] | {name, circuit, up}'
            """);
        return options.AddTo(command).WithAction(options, environment, RunAsync, unreachable: Unreachable);
    }

    private static async Task<int> RunAsync(ApiContext context)
    {
        var status = await context.Client.GetStatusAsync(context.Cancel);
        var providers = await context.Client.ListProvidersAsync(context.Cancel);
        var code = status.ProvidersUp > 0 ? ExitCodes.Success : ExitCodes.Failure;
        if (context.Json)
        {
            await context.Output.WriteLineAsync(ApiCommand.Object(("status", ApiCommand.Json(status)), ("providers", ApiCommand.Array(providers))));
            return code;
        }

        Write(context.Output, context.Client.Address, status, providers);
        return code;
    }

    /// <summary>The text summary.</summary>
    public static void Write(TextWriter output, Uri address, Status status, IReadOnlyList<Provider> providers)
    {
        var c = CultureInfo.InvariantCulture;
        var totals = status.Totals ?? new Totals();
        output.WriteLine($"cc-relay {status.Version} (API {address.Authority}), up {ApiCommand.Duration(status.UptimeMs)}");
        output.WriteLine($"config:   {(status.ConfigPath.Length > 0 ? status.ConfigSource : "built-in default (no config file)")}, generation {status.ConfigGeneration}");
        output.WriteLine($"routing:  {status.RoutingStrategy}");
        output.WriteLine(string.Create(c, $"traffic:  {totals.Requests} requests, {totals.Errors} errors, {totals.InFlight} in flight; tokens {totals.InputTokens} in, {totals.OutputTokens} out; cost ${totals.CostUsd:0.####}"));
        output.WriteLine();
        ApiCommand.Table(
            output,
            ["PROVIDER", "TYPE", "HEALTH", "CIRCUIT", "KEYS", "IN FLIGHT", "LATENCY"],
            providers.Select(p => new[]
            {
                p.Name,
                p.Type,
                Health(p),
                p.Circuit.Replace('_', '-') + (p.CircuitChangesInMs > 0 ? $" ({ApiCommand.Duration(p.CircuitChangesInMs)} left)" : ""),
                p.Keys.Count == 0 ? "-" : $"{p.Keys.Count(k => k.Capacity > 0)}/{p.Keys.Count} ready",
                p.InFlight.ToString(c),
                p.LatencyEwmaMs >= 0 ? string.Create(c, $"{p.LatencyEwmaMs:0} ms") : "-",
            }));
        output.WriteLine();
        output.WriteLine(status.ProvidersUp > 0
            ? $"{status.ProvidersUp} of {status.ProvidersTotal} providers can serve."
            : $"No provider can serve ({status.ProvidersTotal} configured).");
    }

    private static string Health(Provider provider) =>
        !provider.EnabledInConfig ? "off (config)"
        : provider.OperatorDisabled ? "disabled"
        : provider.Up ? "up"
        : "down";
}
