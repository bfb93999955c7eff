using System.Security;
using CcRelay.Core;

namespace CcRelay.Host.Configuration;

/// <summary>
/// Loads a config file: picks the format from the extension, reads, parses and decodes it. User errors
/// (a missing file, bad YAML, an invalid value) come back as <see cref="ConfigLoad.Invalid"/>, never as exceptions.
/// </summary>
public static class ConfigFile
{
    /// <summary>The extensions <see cref="Load"/> reads, in documentation order.</summary>
    public static IReadOnlyList<string> SupportedExtensions { get; } = [".yaml", ".yml"];

    /// <summary>Loads <paramref name="path"/>; <paramref name="env"/> returns a variable's value, or null when unset.</summary>
    public static ConfigLoad Load(string path, Func<string, string?> env)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(env);

        var extension = Path.GetExtension(path).ToLowerInvariant();
        if (extension == ".toml")
        {
            return Failed(path, "TOML support is not available yet; use a .yaml or .yml file");
        }

        if (!SupportedExtensions.Contains(extension))
        {
            var shown = extension.Length == 0 ? "no extension" : $"\"{extension}\"";
            return Failed(path, $"unsupported config format ({shown}); allowed: {string.Join(", ", SupportedExtensions)}");
        }

        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or SecurityException
                                       or NotSupportedException or ArgumentException)
        {
            return Failed(path, $"cannot read the config file: {ex.Message}");
        }

        return YamlConfigReader.TryRead(text, out var document, out var errors)
            ? ConfigDecoder.Decode(document, name => env(name))
            : ConfigLoad.Failed(errors);
    }

    private static ConfigLoad Failed(string path, string message) =>
        ConfigLoad.Failed([ConfigIssue.Unplaced(path, message)]);
}
