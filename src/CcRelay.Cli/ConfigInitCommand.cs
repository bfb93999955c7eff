using System.CommandLine;
using CcRelay.Core;

namespace CcRelay.Cli;

/// <summary>
/// <c>cc-relay config init [--format yaml|toml] [--output path] [--force]</c>: writes the commented starter
/// config (<see cref="StarterConfig"/>), which validates as written. The file is created with mode 0600 and
/// written atomically; an existing file is left untouched unless <c>--force</c> is given.
/// </summary>
internal static class ConfigInitCommand
{
    public static Command Create(CliEnvironment environment)
    {
        var format = new Option<string?>("--format")
        {
            Description = "yaml or toml. Default: toml when --output ends in .toml, else yaml.",
        };
        format.AcceptOnlyFromAmong("yaml", "toml");
        var output = new Option<string?>("--output", "-o")
        {
            Description = "Where to write. Default: ./cc-relay.yaml (./cc-relay.toml for --format toml), which serve finds on its own.",
        };
        var force = new Option<bool>("--force")
        {
            Description = "Replace the file if it exists.",
        };
        var interactive = new Option<bool>("--interactive", "-i")
        {
            Description = "Ask for the providers (keys as ${VAR}), the routing strategy and stages, and write a YAML config from the answers.",
        };
        var command = new Command("init", "Write a commented starter config (mode 0600); never replaces a file without --force.")
        {
            format,
            output,
            force,
            interactive,
        };
        command.SetAction(parse => Run(
            parse.GetValue(format),
            parse.GetValue(output),
            parse.GetValue(force),
            parse.GetValue(interactive),
            environment,
            parse.InvocationConfiguration.Output,
            parse.InvocationConfiguration.Error));
        return command.WithExamples(
            "cc-relay config init",
            "cc-relay config init --interactive",
            "cc-relay config init --format toml",
            "cc-relay config init -o ~/.config/cc-relay/config.yaml --force");
    }

    private static int Run(string? format, string? output, bool force, bool interactive, CliEnvironment environment, TextWriter stdout, TextWriter error)
    {
        var extension = output is null ? null : Path.GetExtension(output).ToLowerInvariant();
        format ??= extension == ".toml" ? "toml" : "yaml";
        var allowed = format == "toml" ? new[] { ".toml" } : [".yaml", ".yml"];
        if (interactive && format != "yaml")
        {
            error.WriteLine("cc-relay: --interactive writes YAML (give --output a .yaml or .yml name)");
            return ExitCodes.InvalidConfig;
        }

        // The loader picks the format from the extension, so a mismatch would write a file nothing reads.
        if (extension is not null && !allowed.Contains(extension))
        {
            error.WriteLine($"cc-relay: --output {output}: a {format} config must end in {string.Join(" or ", allowed)}, since the format is taken from the extension");
            return ExitCodes.InvalidConfig;
        }

        var target = environment.FullPath(output ?? $"cc-relay.{format}");
        if (Directory.Exists(target))
        {
            error.WriteLine($"cc-relay: {target} is a directory; name a file with --output");
            return ExitCodes.InvalidConfig;
        }

        if (File.Exists(target) && !force)
        {
            error.WriteLine($"cc-relay: {target} already exists and was left as it is (--force replaces it)");
            return ExitCodes.InvalidConfig;
        }

        var content = StarterConfig.For(format);
        if (interactive)
        {
            if (Ask(environment.Input(), stdout) is not { } answered)
            {
                error.WriteLine("cc-relay: the input ended before a valid answer; nothing was written");
                return ExitCodes.InvalidConfig;
            }

            content = answered;
        }

        try
        {
            AtomicFile.Write(target, content, AtomicFile.OwnerOnly, overwrite: force);
        }
        catch (IOException) when (!force && File.Exists(target))
        {
            error.WriteLine($"cc-relay: {target} already exists and was left as it is (--force replaces it)");
            return ExitCodes.InvalidConfig;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"cc-relay: cannot write {target}: {e.Message}");
            return ExitCodes.Failure;
        }

        // serve finds ./cc-relay.yaml on its own, unless $CC_RELAY_CONFIG names another file.
        var isDiscovered = output is null && environment.NonEmpty("CC_RELAY_CONFIG") is null;
        stdout.WriteLine($"Wrote {target} (mode 0600).");
        stdout.WriteLine("Next:");
        stdout.WriteLine($"  cc-relay config validate {(isDiscovered ? "" : target)}".TrimEnd());
        stdout.WriteLine(isDiscovered ? "  cc-relay serve" : $"  cc-relay serve --config {target}");
        stdout.WriteLine("  cc-relay config cc init    # point Claude Code at the relay");
        return ExitCodes.Success;
    }

    /// <summary>
    /// Asks <see cref="ConfigWizard"/>'s questions one line each (an empty line takes the default shown in
    /// brackets; a wrong answer is explained and asked again); the config text, or null when the input ends on an
    /// answer that was not valid (an ended input otherwise takes the defaults).
    /// </summary>
    private static string? Ask(TextReader input, TextWriter stdout)
    {
        var state = ConfigWizard.start;
        var rejected = false;
        while (ConfigWizard.question(state) is { } question)
        {
            stdout.Write($"{question.Value.Prompt} [{question.Value.Default}]: ");
            var line = input.ReadLine();
            if (line is null && rejected)
            {
                return null;
            }

            var answered = ConfigWizard.answer(state, line ?? "");
            rejected = answered.IsError;
            if (answered.IsOk)
            {
                state = answered.ResultValue;
                continue;
            }

            stdout.WriteLine();
            stdout.WriteLine("  " + answered.ErrorValue);
        }

        stdout.WriteLine();
        return ConfigWizard.render(state);
    }
}
