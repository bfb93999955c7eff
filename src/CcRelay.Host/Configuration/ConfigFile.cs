using System.Diagnostics.CodeAnalysis;
using System.Security;
using CcRelay.Core;

namespace CcRelay.Host.Configuration;

/// <summary>
/// Loads a config file: picks the format (YAML or TOML) from the extension, reads, parses and decodes it.
/// Both formats decode through the same <see cref="ConfigDecoder"/>. User errors (a missing file, bad YAML or
/// TOML, an invalid value) come back as <see cref="ConfigLoad.Invalid"/>, never as exceptions.
/// </summary>
public static class ConfigFile
{
    /// <summary>The extensions <see cref="Load"/> reads, in documentation order.</summary>
    public static IReadOnlyList<string> SupportedExtensions { get; } = [".yaml", ".yml", ".toml"];

    /// <summary>Loads <paramref name="path"/>; <paramref name="env"/> returns a variable's value, or null when unset.</summary>
    public static ConfigLoad Load(string path, Func<string, string?> env)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(env);

        var extension = Path.GetExtension(path).ToLowerInvariant();
        if (!SupportedExtensions.Contains(extension))
        {
            var shown = extension.Length == 0 ? "no extension" : $"\"{extension}\"";
            return Failed(path, $"unsupported config format ({shown}); allowed: {string.Join(", ", SupportedExtensions)}");
        }

        ConfigNode document;
        IReadOnlyList<ConfigIssue> errors;
        if (extension == ".toml")
        {
            // Bytes, not text: TOML must be UTF-8, and the parser reports where it is not.
            if (!TryReadFile(path, File.ReadAllBytes, out var bytes, out var failure))
            {
                return failure;
            }

            if (!TomlConfigReader.TryRead(bytes, out document, out errors))
            {
                return ConfigLoad.Failed(errors);
            }
        }
        else
        {
            if (!TryReadFile(path, File.ReadAllText, out var text, out var failure))
            {
                return failure;
            }

            if (!YamlConfigReader.TryRead(text, out document, out errors))
            {
                return ConfigLoad.Failed(errors);
            }
        }

        // the files the edge names (TLS pair, CA bundle, audit directory) are read here, reported at their keys
        return Edge.EdgeFiles.Check(ConfigDecoder.Decode(document, name => env(name)));
    }

    /// <summary>Reads the file with <paramref name="read"/>; an I/O problem becomes <paramref name="failure"/>.</summary>
    private static bool TryReadFile<T>(
        string path,
        Func<string, T> read,
        [MaybeNullWhen(false)] out T content,
        [NotNullWhen(false)] out ConfigLoad? failure)
    {
        try
        {
            content = read(path);
            failure = null;
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or SecurityException
                                       or NotSupportedException or ArgumentException)
        {
            content = default;
            failure = Failed(path, $"cannot read the config file: {ex.Message}");
            return false;
        }
    }

    private static ConfigLoad Failed(string path, string message) =>
        ConfigLoad.Failed([ConfigIssue.Unplaced(path, message)]);
}
