using CcRelay.Core;

namespace CcRelay.Host.Configuration;

/// <summary>Loads a config file (placeholder until the YAML reader lands).</summary>
public static class ConfigFile
{
    /// <summary>Reads, parses and decodes a config file.</summary>
    public static ConfigLoad Load(string path, Func<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(environment);
        return ConfigLoad.NewLoaded(CcRelay.Core.Config.defaults, Microsoft.FSharp.Collections.FSharpList<ConfigIssue>.Empty);
    }
}
