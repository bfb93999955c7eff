using System.CommandLine;
using CcRelay.Core;

namespace CcRelay.Cli;

/// <summary>
/// <c>cc-relay config show [path]</c>: the configuration the relay would run with, after defaults and
/// <c>${VAR}</c> expansion, as YAML on stdout. Secrets are redacted and keys are shown by their key id
/// (<see cref="ConfigRender"/>); warnings go to stderr so that stdout stays YAML.
/// </summary>
internal static class ConfigShowCommand
{
    public static Command Create(CliEnvironment environment)
    {
        var path = new Argument<string?>("path")
        {
            Description = "The config file. Default: the file serve would load, else the built-in default.",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var command = new Command("show", "Print the effective configuration (defaults applied, variables expanded) as YAML, secrets redacted.")
        {
            path,
        };
        command.SetAction(parse => Run(parse.GetValue(path), environment, parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error));
        return command.WithExamples(
            "cc-relay config show",
            "cc-relay config show ./cc-relay.yaml > effective.yaml");
    }

    private static int Run(string? path, CliEnvironment environment, TextWriter output, TextWriter error)
    {
        var loaded = LoadConfig.Run(path, environment, error, ConfigValidateCommand.PathArgumentName);
        if (loaded is null)
        {
            return ExitCodes.InvalidConfig;
        }

        var (config, _, source, warnings) = loaded.Value;
        foreach (var warning in warnings)
        {
            error.WriteLine($"cc-relay: warning: {warning}");
        }

        // A path may hold a line break; a comment must stay one line.
        var described = (source ?? "the built-in default (no config file found)").ReplaceLineEndings(" ");
        output.Write($$"""
            # Effective configuration of {{described}}.
            # Defaults applied and ${VAR} expanded. Secrets read "{{ConfigRender.redacted}}"; keys are shown by key_id.
            # Sections this version accepts but does not act on yet are not shown (see config validate).


            """.ReplaceLineEndings("\n"));
        output.Write(ConfigRender.toYaml(config));
        return ExitCodes.Success;
    }
}
