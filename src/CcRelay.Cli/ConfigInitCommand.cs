using System.CommandLine;
using CcRelay.Core;

namespace CcRelay.Cli;

/// <summary>
/// <c>cc-relay config init [--format yaml|toml] [--output path] [--force]</c>: writes the commented starter
/// config (<see cref="StarterConfig"/>), which validates as written; with <c>--interactive</c> or with
/// <c>--provider</c>, <c>--strategy</c>, <c>--stage</c> and <c>--listen</c>, the config those answers describe
/// (<see cref="ConfigWizard"/>). The file is created with mode 0600 and written atomically; an existing file is
/// left untouched unless <c>--force</c> is given.
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
            Description = "Ask for the providers (keys as ${VAR}), the routing strategy and stages, and write a config from the answers.",
        };
        var provider = new Option<string[]>("--provider")
        {
            Description = "NAME:TYPE[:KEY_ENV], repeatable: a provider (types: anthropic, zai, minimax, ollama, openai, gemini) and the environment variable holding its key ('-': none; default: the type's usual one). Default: anthropic:anthropic with no key.",
            AllowMultipleArgumentsPerToken = false,
        };
        var strategy = new Option<string?>("--strategy")
        {
            Description = "The routing strategy. Default: failover.",
        };
        var stage = new Option<string[]>("--stage")
        {
            Description = "STAGE=PROVIDER[,MODEL], repeatable: where a routing stage's requests go.",
            AllowMultipleArgumentsPerToken = false,
        };
        var listen = new Option<string?>("--listen")
        {
            Description = "HOST:PORT the relay listens on. Default: 127.0.0.1:8787.",
        };
        var command = new Command("init", "Write a commented starter config (mode 0600); never replaces a file without --force.")
        {
            format,
            output,
            force,
            interactive,
            provider,
            strategy,
            stage,
            listen,
        };
        command.SetAction(parse => Run(
            parse.GetValue(format),
            parse.GetValue(output),
            parse.GetValue(force),
            parse.GetValue(interactive),
            Flags(parse.GetValue(provider), parse.GetValue(strategy), parse.GetValue(stage), parse.GetValue(listen)),
            environment,
            parse.InvocationConfiguration.Output,
            parse.InvocationConfiguration.Error));
        return command.WithExamples(
            "cc-relay config init",
            "cc-relay config init --interactive",
            "cc-relay config init --provider anthropic:anthropic --provider glm:zai:ZAI_API_KEY --stage background=glm,GLM-4.5-Air",
            "cc-relay config init --format toml",
            "cc-relay config init -o ~/.config/cc-relay/config.yaml --force");
    }

    /// <summary>The answering flags, or null when none was given.</summary>
    private static WizardFlags? Flags(string[]? providers, string? strategy, string[]? stages, string? listen) =>
        providers is { Length: > 0 } || strategy is not null || stages is { Length: > 0 } || listen is not null
            ? WizardFlags.Create(providers ?? [], strategy, stages ?? [], listen)
            : null;

    private static int Run(string? format, string? output, bool force, bool interactive, WizardFlags? flags, CliEnvironment environment, TextWriter stdout, TextWriter error)
    {
        var extension = output is null ? null : Path.GetExtension(output).ToLowerInvariant();
        format ??= extension == ".toml" ? "toml" : "yaml";
        var allowed = format == "toml" ? new[] { ".toml" } : [".yaml", ".yml"];
        var configFormat = format == "toml" ? ConfigFormat.Toml : ConfigFormat.Yaml;
        if (interactive && flags is not null)
        {
            error.WriteLine("cc-relay: --interactive asks what --provider, --strategy, --stage and --listen give: use one or the other");
            return ExitCodes.InvalidConfig;
        }

        var content = StarterConfig.For(format);
        if (flags is not null)
        {
            var answers = flags.Answers();
            if (answers.IsError)
            {
                foreach (var problem in answers.ErrorValue)
                {
                    error.WriteLine($"cc-relay: {problem}");
                }

                error.WriteLine("cc-relay: nothing was written");
                return ExitCodes.InvalidConfig;
            }

            content = ConfigWizard.render(configFormat, answers.ResultValue);
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

        if (interactive)
        {
            if (Ask(environment.Input(), stdout, configFormat) is not { } answered)
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
    private static string? Ask(TextReader input, TextWriter stdout, ConfigFormat format)
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
        return ConfigWizard.render(format, state);
    }
}
