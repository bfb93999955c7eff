using CcRelay.Core;

namespace CcRelay.Host.Configuration;

/// <summary>
/// Parses a TOML config file's bytes into the Core <see cref="ConfigNode"/> tree with the Core TOML 1.0.0
/// parser (<see cref="Toml"/>). TOML values are typed (strings, integers, booleans, …), so the decoder sees
/// them as written. The bytes must be UTF-8; an invalid sequence or a syntax error is one error with its
/// line and column.
/// </summary>
public static class TomlConfigReader
{
    /// <summary>Parses <paramref name="bytes"/>; on failure <paramref name="errors"/> holds the one error found.</summary>
    /// <returns>True when the bytes are a valid TOML document (an empty file is an empty mapping).</returns>
    public static bool TryRead(byte[] bytes, out ConfigNode document, out IReadOnlyList<ConfigIssue> errors)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        var parsed = Toml.parseUtf8(bytes);
        if (parsed.IsOk)
        {
            document = parsed.ResultValue;
            errors = [];
            return true;
        }

        var error = parsed.ErrorValue;
        document = ConfigNode.Empty;
        errors = [ConfigIssue.At("(document)", error.Position.Line, error.Position.Column, "TOML syntax error: " + error.Message)];
        return false;
    }
}
