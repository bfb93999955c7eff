using System.CommandLine;
using CcRelay.Core;

namespace CcRelay.Cli;

/// <summary>
/// <c>cc-relay config cc init|remove|skill</c>: points Claude Code at the relay by setting
/// <c>env.ANTHROPIC_BASE_URL</c> in its <c>settings.json</c> (<c>$CLAUDE_CONFIG_DIR/settings.json</c>, else
/// <c>~/.claude/settings.json</c>), or takes that back. The edit itself is <see cref="ClaudeSettings"/>; this
/// class finds the file, derives the relay URL, and writes atomically. No credential is ever written.
/// </summary>
internal static class ClaudeCodeCommand
{
    private const string DefaultUrlSource = "server.listen of the config serve would load, else 127.0.0.1:8787";

    public static Command Create(CliEnvironment environment) =>
        new("cc", "Point Claude Code at the relay (env.ANTHROPIC_BASE_URL in its settings.json), install the cc-relay skill, or undo that.")
        {
            Init(environment),
            Remove(environment),
            Skill(environment),
        };

    private static Command Skill(CliEnvironment environment)
    {
        var command = new Command("skill", $$"""
            Install the cc-relay skill for Claude Code ({{ClaudeSkill.RelativePath}} in $CLAUDE_CONFIG_DIR, else
            ~/.claude): it lets Claude list the relay's models and providers (cc-relay models --json, status --json).
            config cc remove removes it again.

            Examples:
              cc-relay config cc skill
              CLAUDE_CONFIG_DIR=~/.claude-work cc-relay config cc skill
            """);
        command.SetAction(parse =>
        {
            var (output, error) = (parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error);
            return ClaudeDirectory(environment, error) is { } directory
                ? ClaudeSkill.Install(directory, output, error)
                : ExitCodes.Failure;
        });
        return command;
    }

    private static Command Init(CliEnvironment environment)
    {
        var url = UrlOption($"The relay URL Claude Code should use. Default: http://<{DefaultUrlSource}>.");
        var command = new Command("init", "Set env.ANTHROPIC_BASE_URL in Claude Code's settings.json; every other setting is kept.")
        {
            url,
        };
        command.SetAction(parse =>
        {
            var (output, error) = (parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error);
            var relayUrl = RelayUrl(parse.GetValue(url), environment, error, "pass --url");
            return relayUrl is null
                ? ExitCodes.InvalidConfig
                : Edit(environment, output, error, text => ClaudeSettings.setBaseUrl(text, relayUrl), createIfMissing: true);
        });
        return command.WithExamples(
            "cc-relay config cc init",
            "cc-relay config cc init --url http://127.0.0.1:9000");
    }

    private static Command Remove(CliEnvironment environment)
    {
        var url = UrlOption($"Remove ANTHROPIC_BASE_URL only if it is this URL. Default: http://<{DefaultUrlSource}>.");
        var force = new Option<bool>("--force")
        {
            Description = "Remove ANTHROPIC_BASE_URL whatever it points at.",
        };
        var command = new Command("remove", "Remove env.ANTHROPIC_BASE_URL from Claude Code's settings.json if it points at this relay.")
        {
            url,
            force,
        };
        command.SetAction(parse =>
        {
            var (output, error) = (parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error);
            string? expected;
            if (parse.GetValue(force))
            {
                expected = null;
            }
            else if (RelayUrl(parse.GetValue(url), environment, error, "pass --url, or --force") is { } relayUrl)
            {
                expected = relayUrl;
            }
            else
            {
                return ExitCodes.InvalidConfig;
            }

            var code = Edit(environment, output, error, text => SettingsEdit.RemoveBaseUrl(text, expected), createIfMissing: false);
            var skill = ClaudeDirectory(environment, TextWriter.Null) is { } directory ? ClaudeSkill.Remove(directory, output, error) : code;
            return Math.Max(code, skill);
        });
        return command.WithExamples(
            "cc-relay config cc remove",
            "cc-relay config cc remove --force");
    }

    private static Option<string?> UrlOption(string description)
    {
        var option = new Option<string?>("--url") { Description = description };
        option.Validators.Add(result =>
        {
            var text = result.GetValueOrDefault<string?>();
            if (text is not null && !IsRelayUrl(text))
            {
                result.AddError($"--url: expected an absolute http:// or https:// URL such as http://127.0.0.1:8787, got \"{text}\"");
            }
        });
        return option;
    }

    private static bool IsRelayUrl(string text) =>
        Uri.TryCreate(text, UriKind.Absolute, out var uri)
        && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
        && uri.Host.Length > 0
        && uri.Query.Length == 0
        && uri.Fragment.Length == 0;

    /// <summary>The URL from <c>--url</c>, else from the listen address of the config serve would load.</summary>
    private static string? RelayUrl(string? explicitUrl, CliEnvironment environment, TextWriter error, string hint)
    {
        if (explicitUrl is not null)
        {
            return explicitUrl;
        }

        var loaded = LoadConfig.Run(null, environment, error);
        if (loaded is null)
        {
            error.WriteLine($"cc-relay: the relay URL comes from that config's server.listen; fix the config, or {hint}");
            return null;
        }

        var url = ClaudeSettings.clientUrl(loaded.Value.Config.Server.Listen);
        if (url.IsError)
        {
            error.WriteLine($"cc-relay: cannot tell the relay URL: {url.ErrorValue}; {hint}");
            return null;
        }

        return url.ResultValue;
    }

    /// <summary>Where Claude Code keeps its user settings, or null (after saying why) when unknown.</summary>
    private static string? SettingsPath(CliEnvironment environment, TextWriter error) =>
        ClaudeDirectory(environment, error) is { } directory ? Path.Combine(directory, "settings.json") : null;

    /// <summary>Claude Code's user directory (<c>$CLAUDE_CONFIG_DIR</c>, else <c>~/.claude</c>), or null (after saying why) when unknown.</summary>
    private static string? ClaudeDirectory(CliEnvironment environment, TextWriter error)
    {
        if (environment.NonEmpty("CLAUDE_CONFIG_DIR") is { } configDirectory)
        {
            return environment.FullPath(configDirectory);
        }

        if (environment.Home is { } home)
        {
            return Path.Combine(home, ".claude");
        }

        error.WriteLine("cc-relay: cannot find Claude Code's settings: neither CLAUDE_CONFIG_DIR nor HOME is set");
        return null;
    }

    private static int Edit(CliEnvironment environment, TextWriter output, TextWriter error, Func<string, SettingsEdit> decide, bool createIfMissing)
    {
        var path = SettingsPath(environment, error);
        if (path is null)
        {
            return ExitCodes.Failure;
        }

        var exists = File.Exists(path);
        if (!exists && !createIfMissing)
        {
            output.WriteLine($"{path} does not exist; nothing to remove.");
            return ExitCodes.Success;
        }

        string text;
        try
        {
            text = exists ? File.ReadAllText(path) : "";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"cc-relay: cannot read {path}: {e.Message}");
            return ExitCodes.Failure;
        }

        switch (decide(text))
        {
            case SettingsEdit.Refused refused:
                error.WriteLine($"cc-relay: {path} was left untouched: {refused.Reason}");
                return ExitCodes.InvalidConfig;

            case SettingsEdit.Unchanged unchanged:
                output.WriteLine($"{path}: {unchanged.Reason}.");
                return ExitCodes.Success;

            case SettingsEdit.Write write:
                try
                {
                    // The file may hold credentials (env.ANTHROPIC_API_KEY): keep its permissions, 0600 when new.
                    AtomicFile.Write(path, write.Text, AtomicFile.ModeOf(path, AtomicFile.OwnerOnly), overwrite: true);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    error.WriteLine($"cc-relay: cannot write {path}: {e.Message}");
                    return ExitCodes.Failure;
                }

                output.WriteLine($"{(exists ? "Updated" : "Created")} {path}:");
                foreach (var change in write.Changes)
                {
                    output.WriteLine($"  - {change}");
                }

                output.WriteLine("Start a new Claude Code session for the change to take effect.");
                return ExitCodes.Success;

            default:
                throw new InvalidOperationException("unknown SettingsEdit case");
        }
    }
}
