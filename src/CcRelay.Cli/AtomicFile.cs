using System.Text;

namespace CcRelay.Cli;

/// <summary>
/// Writes a whole file or nothing: the text goes to a temporary file in the same directory, created with its
/// final permissions, and is then renamed over the target. A reader sees the old file or the new one, never
/// a half-written one, and a secret-bearing file is never readable by others, not even for a moment.
/// </summary>
internal static class AtomicFile
{
    /// <summary>Owner read and write (0600): for files that hold or may come to hold secrets.</summary>
    public const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Owner read, write and search (0700): for directories created on the way.</summary>
    public const UnixFileMode OwnerOnlyDirectory = OwnerOnly | UnixFileMode.UserExecute;

    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    /// <summary>
    /// Writes <paramref name="text"/> (UTF-8, no BOM) to <paramref name="path"/> with <paramref name="mode"/>,
    /// creating missing directories (0700). A symbolic link is followed: the file it points to is replaced and
    /// the link stays. Without <paramref name="overwrite"/>, an existing file is never replaced, even one that
    /// appears while writing: that case throws <see cref="IOException"/> and leaves it as it was.
    /// </summary>
    public static void Write(string path, string text, UnixFileMode mode, bool overwrite)
    {
        var target = ResolveLinks(path);
        var directory = Path.GetDirectoryName(target) ?? throw new ArgumentException($"{target} has no directory", nameof(path));
        CreateDirectories(directory);

        var temporary = Path.Combine(directory, $".{Path.GetFileName(target)}.{Guid.NewGuid():N}.tmp");
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = mode;
        }

        try
        {
            using (var stream = new FileStream(temporary, options))
            {
                stream.Write(Utf8.GetBytes(text));
                stream.Flush(flushToDisk: true);
            }

            // NOTE: without overwrite, .NET moves with link(2) + unlink(2) on Unix, which fails if the target
            // exists, so a file created since the caller's check is still not replaced.
            File.Move(temporary, target, overwrite);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    /// <summary>Creates <paramref name="directory"/> and any missing parents, each 0700 (Directory.CreateDirectory's mode applies to the last one only).</summary>
    private static void CreateDirectories(string directory)
    {
        if (Directory.Exists(directory))
        {
            return;
        }

        if (Path.GetDirectoryName(directory) is { } parent)
        {
            CreateDirectories(parent);
        }

        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(directory);
        }
        else
        {
            Directory.CreateDirectory(directory, OwnerOnlyDirectory);
        }
    }

    /// <summary>The permissions of an existing file, to keep them when it is replaced; <paramref name="fallback"/> when unknown.</summary>
    public static UnixFileMode ModeOf(string path, UnixFileMode fallback) =>
        !OperatingSystem.IsWindows() && File.Exists(path) ? File.GetUnixFileMode(ResolveLinks(path)) : fallback;

    private static string ResolveLinks(string path)
    {
        var file = new FileInfo(path);
        return file.LinkTarget is null
            ? file.FullName
            : file.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? file.FullName;
    }
}
