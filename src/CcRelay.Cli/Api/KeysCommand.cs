using System.CommandLine;
using System.Globalization;
using CcRelay.Management.V1;

namespace CcRelay.Cli.Api;

/// <summary>
/// <c>cc-relay keys list|add|remove</c>: the live key pools over the API (ListKeys, AddKey, RemoveKey). A key to
/// add is read from standard input or an environment variable, never from the command line (where <c>ps</c> and
/// shell history would show it); every answer names keys by key id.
/// </summary>
internal static class KeysCommand
{
    public static Command Create(CliEnvironment environment) =>
        new("keys", "List, add and remove the keys of a running relay's providers (keys are shown by key id only).")
        {
            List(environment),
            Add(environment),
            Remove(environment),
        };

    private static Command List(CliEnvironment environment)
    {
        var options = new ApiOptions();
        var provider = new Option<string?>("--provider", "-p") { Description = "Only this provider's keys." };
        var command = new Command("list", """
            List the keys of the live pools: key id, priority, weight, the limits in effect, what is left this
            minute, capacity, cooldown.

            Examples:
              cc-relay keys list
              cc-relay keys list --provider zai --json
            """)
        {
            provider,
        };
        return options.AddTo(command).WithAction(options, environment, async context =>
        {
            var keys = await context.Client.ListKeysAsync(context.Parse.GetValue(provider) ?? "", context.Cancel);
            if (context.Json)
            {
                await context.Output.WriteLineAsync(ApiCommand.Object(("keys", ApiCommand.Array(keys))));
                return ExitCodes.Success;
            }

            var c = CultureInfo.InvariantCulture;
            static string Left(long remaining, int limit) => limit <= 0 ? "unlimited" : $"{remaining}/{limit}";
            ApiCommand.Table(
                context.Output,
                ["PROVIDER", "KEY ID", "PRIORITY", "WEIGHT", "RPM", "INPUT TPM", "OUTPUT TPM", "CAPACITY", "STATE"],
                keys.Select(k => new[]
                {
                    k.Provider, k.KeyId, k.Priority.ToString(c), k.Weight.ToString(c),
                    Left(k.RpmRemaining, k.RpmLimit), Left(k.InputTokensRemaining, k.InputTpmLimit), Left(k.OutputTokensRemaining, k.OutputTpmLimit),
                    string.Create(c, $"{k.Capacity:0%}"),
                    k.Revoked ? "revoked" : k.CooldownRemainingMs > 0 ? $"cooling down ({ApiCommand.Duration(k.CooldownRemainingMs)})" : "ready",
                }));
            return ExitCodes.Success;
        });
    }

    private static Command Add(CliEnvironment environment)
    {
        var options = new ApiOptions();
        var provider = new Argument<string>("provider") { Description = "The provider's name." };
        var fromEnv = new Option<string?>("--from-env") { Description = "Read the key from this environment variable instead of standard input." };
        var rpm = Limit("--rpm", "Requests per minute (0: unlimited).");
        var itpm = Limit("--itpm", "Input tokens per minute (0: unlimited).");
        var otpm = Limit("--otpm", "Output tokens per minute (0: unlimited).");
        var priority = new Option<int>("--priority") { Description = "Its tier: higher tiers are used first (as keys[].priority)." };
        var weight = Limit("--weight", "Its share within its tier (as keys[].weight).");
        var command = new Command("add", """
            Add a key to a provider's live pool. The key is read from standard input (typed at a terminal, it is
            not shown) or --from-env, never taken on the command line; the answer names it by key id. The config file is not changed: the next config
            reload makes the pools the file's again, and a restart starts from the file.

            Examples:
              printf '%s' "$NEW_ZAI_KEY" | cc-relay keys add zai --rpm 60
              cc-relay keys add zai --from-env NEW_ZAI_KEY --priority 1
            """)
        {
            provider, fromEnv, rpm, itpm, otpm, priority, weight,
        };
        return options.AddTo(command).WithAction(options, environment, async context =>
        {
            var variable = context.Parse.GetValue(fromEnv);
            var input = environment.Input();
            var secret = variable is not null ? environment.Variable(variable)
                : ReferenceEquals(input, Console.In) && !Console.IsInputRedirected ? ReadHidden(context.Error, context.Parse.GetValue(provider)!)
                : await input.ReadLineAsync(context.Cancel);
            secret = secret?.Trim();
            if (string.IsNullOrEmpty(secret))
            {
                await context.Error.WriteLineAsync(variable is not null
                    ? $"cc-relay: environment variable {variable} is not set or empty"
                    : "cc-relay: no key on standard input (pipe it in, or use --from-env VAR)");
                return ExitCodes.InvalidConfig;
            }

            var answer = await context.Client.AddKeyAsync(
                new AddKeyRequest
                {
                    Provider = context.Parse.GetValue(provider)!,
                    Key = secret,
                    RpmLimit = context.Parse.GetValue(rpm),
                    ItpmLimit = context.Parse.GetValue(itpm),
                    OtpmLimit = context.Parse.GetValue(otpm),
                    Priority = context.Parse.GetValue(priority),
                    Weight = context.Parse.GetValue(weight),
                },
                context.Cancel);
            if (context.Json)
            {
                await context.Output.WriteLineAsync(ApiCommand.Json(answer));
                return ExitCodes.Success;
            }

            await context.Output.WriteLineAsync(answer.Added
                ? $"Added key {answer.KeyId} to {context.Parse.GetValue(provider)} (config generation {answer.ConfigGeneration}). It lasts until the next config reload or restart."
                : $"{context.Parse.GetValue(provider)} already has key {answer.KeyId}; nothing changed.");
            return ExitCodes.Success;
        });
    }

    private static Command Remove(CliEnvironment environment)
    {
        var options = new ApiOptions();
        var provider = new Argument<string>("provider") { Description = "The provider's name." };
        var keyId = new Argument<string>("key-id") { Description = "The key's id, as keys list shows it." };
        var command = new Command("remove", """
            Remove a key (by key id) from a provider's live pool. A provider's last key is not removed (disable the
            provider instead). The next config reload brings the key back if the file has it.

            Examples:
              cc-relay keys remove zai c2f6951f
            """)
        {
            provider, keyId,
        };
        return options.AddTo(command).WithAction(options, environment, async context =>
        {
            var answer = await context.Client.RemoveKeyAsync(context.Parse.GetValue(provider)!, context.Parse.GetValue(keyId)!, context.Cancel);
            await context.Output.WriteLineAsync(context.Json
                ? ApiCommand.Json(answer)
                : $"Removed key {answer.KeyId} from {context.Parse.GetValue(provider)} (config generation {answer.ConfigGeneration}).");
            return ExitCodes.Success;
        });
    }

    /// <summary>Reads a key typed at the terminal without echoing it.</summary>
    private static string ReadHidden(TextWriter prompt, string provider)
    {
        prompt.Write($"Key for {provider} (not shown): ");
        var typed = new System.Text.StringBuilder();
        for (var key = Console.ReadKey(intercept: true); key.Key != ConsoleKey.Enter; key = Console.ReadKey(intercept: true))
        {
            if (key.Key == ConsoleKey.Backspace)
            {
                typed.Length = Math.Max(0, typed.Length - 1);
            }
            else if (!char.IsControl(key.KeyChar))
            {
                typed.Append(key.KeyChar);
            }
        }

        prompt.WriteLine();
        return typed.ToString();
    }

    private static Option<int> Limit(string name, string description)
    {
        var option = new Option<int>(name) { Description = description };
        option.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int>() < 0)
            {
                result.AddError($"{name} must be 0 or more");
            }
        });
        return option;
    }
}
