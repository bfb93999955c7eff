using CcRelay.Core;
using CcRelay.Host.Configuration;

namespace CcRelay.Cli;

/// <summary>Finds and loads the configuration for a command, printing every problem.</summary>
internal static class LoadConfig
{
    /// <summary>
    /// Where the config comes from: <paramref name="explicitPath"/>, else <c>$CC_RELAY_CONFIG</c>, else the
    /// discovery order of <see cref="ConfigDiscovery.find"/>. Relative paths are resolved against the working directory.
    /// </summary>
    public static ConfigSource Find(string? explicitPath, CliEnvironment environment) =>
        ConfigSource.Find(
            File.Exists,
            Option(explicitPath, environment),
            Option(environment.Variable("CC_RELAY_CONFIG"), environment),
            environment.WorkingDirectory,
            Option(environment.Home, environment));

    /// <summary>
    /// Which rule named or found a file. <see cref="ConfigDiscovery"/> calls an explicit path <c>--config</c>;
    /// <paramref name="explicitName"/> says what the command calls it.
    /// </summary>
    public static string Rule(string foundBy, string explicitName) => foundBy == "--config" ? explicitName : foundBy;

    /// <summary>
    /// The loaded config, its file and how it was found (both null for the built-in default) and its warnings; or null after
    /// printing every error to <paramref name="error"/>. <paramref name="explicitName"/> is what the command
    /// calls <paramref name="explicitPath"/> in messages.
    /// </summary>
    public static (RelayConfig Config, string? Path, string? Source, IReadOnlyList<ConfigIssue> Warnings)? Run(
        string? explicitPath, CliEnvironment environment, TextWriter error, string explicitName = "--config")
    {
        switch (Find(explicitPath, environment))
        {
            case ConfigSource.Missing missing:
                error.WriteLine($"cc-relay: config file not found: {missing.Path} (named by {Rule(missing.NamedBy, explicitName)})");
                return null;
            case ConfigSource.File file:
                var load = ConfigFile.Load(file.Path, environment.Variable);
                if (load is ConfigLoad.Invalid invalid)
                {
                    error.WriteLine($"cc-relay: invalid configuration in {file.Path}:");
                    WriteIssues(error, invalid.Errors, invalid.Warnings);
                    return null;
                }

                var loaded = (ConfigLoad.Loaded)load;
                return (loaded.Config, file.Path, $"{file.Path} (found by {Rule(file.FoundBy, explicitName)})", loaded.Warnings.ToArray());
            default:
                return (Config.defaults, null, null, []);
        }
    }

    /// <summary>Prints errors, then warnings, one per line with its key path, line and column.</summary>
    public static void WriteIssues(TextWriter writer, IEnumerable<ConfigIssue> errors, IEnumerable<ConfigIssue> warnings)
    {
        foreach (var issue in errors)
        {
            writer.WriteLine($"  error: {issue}");
        }

        foreach (var issue in warnings)
        {
            writer.WriteLine($"  warning: {issue}");
        }
    }

    private static string? Option(string? path, CliEnvironment environment) =>
        string.IsNullOrWhiteSpace(path) ? null : environment.FullPath(path);
}
