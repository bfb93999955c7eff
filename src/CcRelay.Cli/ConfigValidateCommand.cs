using System.CommandLine;
using CcRelay.Core;
using CcRelay.Host.Configuration;

namespace CcRelay.Cli;

/// <summary>
/// <c>cc-relay config validate [path]</c>: loads a config exactly as <c>serve</c> would (same discovery, same
/// environment) and prints every error and warning with its key path, line and column. Exit 0 when it is
/// valid (warnings allowed), 2 when it is not or the named file is missing.
/// </summary>
internal static class ConfigValidateCommand
{
    /// <summary>What messages call a path given as the command's argument.</summary>
    public const string PathArgumentName = "the path argument";

    public static Command Create(CliEnvironment environment)
    {
        var path = new Argument<string?>("path")
        {
            Description = "The config file. Default: the file serve would load ($CC_RELAY_CONFIG, ./cc-relay.{yaml,yml,toml}, ~/.config/cc-relay/config.{yaml,yml,toml}).",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var command = new Command("validate", "Check a config file as serve would load it: every error and warning with its line and column.")
        {
            path,
        };
        command.SetAction(parse => Run(parse.GetValue(path), environment, parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error));
        return command.WithExamples(
            "cc-relay config validate",
            "cc-relay config validate ./cc-relay.toml");
    }

    private static int Run(string? path, CliEnvironment environment, TextWriter output, TextWriter error)
    {
        switch (LoadConfig.Find(path, environment))
        {
            case ConfigSource.Missing missing:
                error.WriteLine($"cc-relay: config file not found: {missing.Path} (named by {LoadConfig.Rule(missing.NamedBy, PathArgumentName)})");
                return ExitCodes.InvalidConfig;

            case ConfigSource.File file:
                output.WriteLine($"Validating {file.Path} (found by {LoadConfig.Rule(file.FoundBy, PathArgumentName)})");
                var load = ConfigFile.Load(file.Path, environment.Variable);
                if (load is ConfigLoad.Invalid invalid)
                {
                    LoadConfig.WriteIssues(output, invalid.Errors, invalid.Warnings);
                    output.WriteLine($"{file.Path} is invalid: {Count(invalid.Errors.Length, "error")}, {Count(invalid.Warnings.Length, "warning")}.");
                    return ExitCodes.InvalidConfig;
                }

                var warnings = load.AllWarnings;
                LoadConfig.WriteIssues(output, [], warnings);
                output.WriteLine($"{file.Path} is valid ({Count(warnings.Length, "warning")}).");
                return ExitCodes.Success;

            default:
                var home = environment.Home is { } h ? Path.Combine(h, ".config", "cc-relay", "config.{yaml,yml,toml}") : "~/.config/cc-relay/config.{yaml,yml,toml} (no home directory)";
                output.WriteLine("No config file found: $CC_RELAY_CONFIG is not set, and neither "
                                 + $"{Path.Combine(environment.WorkingDirectory, "cc-relay.{yaml,yml,toml}")} nor {home} exists.");
                output.WriteLine("serve would run the built-in default: an Anthropic passthrough on 127.0.0.1:8787. Create a config with: cc-relay config init");
                return ExitCodes.Success;
        }
    }

    private static string Count(int count, string noun) => count == 1 ? $"1 {noun}" : $"{count} {noun}s";
}
