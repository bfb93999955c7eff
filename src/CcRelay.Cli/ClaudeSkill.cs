namespace CcRelay.Cli;

/// <summary>
/// The cc-relay skill for Claude Code: <c>skills/cc-relay/SKILL.md</c> under Claude Code's user directory, embedded
/// from Templates/SKILL.md. Written atomically (0644: it holds no secret); removed only when it is ours (its
/// frontmatter names it <c>cc-relay</c>), with its directory when that is left empty.
/// </summary>
internal static class ClaudeSkill
{
    public const string RelativePath = "skills/cc-relay/SKILL.md";

    private const string Marker = "---\nname: cc-relay\n";

    private const UnixFileMode Readable = AtomicFile.OwnerOnly | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    /// <summary>The skill's text.</summary>
    public static string Text
    {
        get
        {
            const string Name = "CcRelay.Cli.Templates.SKILL.md";
            using var stream = typeof(ClaudeSkill).Assembly.GetManifestResourceStream(Name)
                ?? throw new InvalidOperationException($"the embedded template {Name} is missing");
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd().ReplaceLineEndings("\n");
        }
    }

    /// <summary>Writes the skill under <paramref name="claudeDirectory"/>; says whether it was created, updated or already current.</summary>
    public static int Install(string claudeDirectory, TextWriter output, TextWriter error)
    {
        var path = Path.Combine(claudeDirectory, RelativePath);
        var text = Text;
        try
        {
            var exists = File.Exists(path);
            if (exists && File.ReadAllText(path) == text)
            {
                output.WriteLine($"{path}: the cc-relay skill is installed and current.");
                return ExitCodes.Success;
            }

            AtomicFile.Write(path, text, AtomicFile.ModeOf(path, Readable), overwrite: true);
            output.WriteLine($"{(exists ? "Updated" : "Installed")} the cc-relay skill: {path}");
            output.WriteLine("Claude Code can now list the relay's models and providers (start a new session; /skills lists it).");
            return ExitCodes.Success;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"cc-relay: cannot write {path}: {e.Message}");
            return ExitCodes.Failure;
        }
    }

    /// <summary>Removes the skill if it is there and ours; a SKILL.md someone else wrote there is left alone.</summary>
    public static int Remove(string claudeDirectory, TextWriter output, TextWriter error)
    {
        var path = Path.Combine(claudeDirectory, RelativePath);
        try
        {
            if (!File.Exists(path))
            {
                return ExitCodes.Success;
            }

            if (!File.ReadAllText(path).ReplaceLineEndings("\n").StartsWith(Marker, StringComparison.Ordinal))
            {
                output.WriteLine($"{path} is not the cc-relay skill (its frontmatter does not name it cc-relay); left as it is.");
                return ExitCodes.Success;
            }

            File.Delete(path);
            var directory = Path.GetDirectoryName(path)!;
            if (!Directory.EnumerateFileSystemEntries(directory).Any())
            {
                Directory.Delete(directory);
            }

            output.WriteLine($"Removed the cc-relay skill: {path}");
            return ExitCodes.Success;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"cc-relay: cannot remove {path}: {e.Message}");
            return ExitCodes.Failure;
        }
    }
}
