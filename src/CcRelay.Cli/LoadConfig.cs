using CcRelay.Core;
using CcRelay.Host.Configuration;
using Microsoft.FSharp.Core;

namespace CcRelay.Cli;

/// <summary>Finds and loads the configuration for a command, printing every problem.</summary>
internal static class LoadConfig
{
    /// <summary>
    /// The loaded config, its source (null for the built-in default) and its warnings; or null after
    /// printing every error to <paramref name="error"/>.
    /// </summary>
    public static (RelayConfig Config, string? Source, IReadOnlyList<ConfigIssue> Warnings)? Run(string? explicitPath, TextWriter error)
    {
        var source = ConfigDiscovery.find(
            FuncConvert.FromFunc<string, bool>(File.Exists),
            Option(explicitPath),
            Option(Environment.GetEnvironmentVariable("CC_RELAY_CONFIG")),
            Directory.GetCurrentDirectory(),
            Option(Environment.GetEnvironmentVariable("HOME")));

        switch (source)
        {
            case ConfigSource.Missing missing:
                error.WriteLine($"cc-relay: config file not found: {missing.Path} (named by {missing.NamedBy})");
                return null;
            case ConfigSource.File file:
                var load = ConfigFile.Load(file.Path, Environment.GetEnvironmentVariable);
                if (load is ConfigLoad.Invalid invalid)
                {
                    error.WriteLine($"cc-relay: invalid configuration in {file.Path}:");
                    foreach (var issue in invalid.Errors)
                    {
                        error.WriteLine($"  error: {issue}");
                    }

                    foreach (var issue in invalid.Warnings)
                    {
                        error.WriteLine($"  warning: {issue}");
                    }

                    return null;
                }

                var loaded = (ConfigLoad.Loaded)load;
                return (loaded.Config, $"{file.Path} (found by {file.FoundBy})", loaded.Warnings.ToArray());
            default:
                return (Config.defaults, null, []);
        }
    }

    private static FSharpOption<string> Option(string? value) =>
        string.IsNullOrWhiteSpace(value) ? FSharpOption<string>.None : FSharpOption<string>.Some(value);
}
