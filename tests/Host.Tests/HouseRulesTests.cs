using System.Text.RegularExpressions;

namespace CcRelay.Host.Tests;

/// <summary>
/// Rules of the host's source that no compiler checks (docs/design.md, "The C# face of Core"): one public type
/// per file, and no F# type name where the host's request path reads Core.
/// </summary>
public sealed partial class HouseRulesTests
{
    [Fact]
    public void EveryHostFile_DeclaresAtMostOnePublicTopLevelType()
    {
        var crowded = SourceFiles("src/CcRelay.Host")
            .Select(file => (file, count: PublicTopLevelType().Matches(File.ReadAllText(file)).Count))
            .Where(f => f.count > 1)
            .Select(f => $"{Relative(f.file)}: {f.count} public types")
            .ToList();

        Assert.Empty(crowded);
    }

    [Fact]
    public void Forwarding_NamesNoFSharpType()
    {
        var uses = SourceFiles("src/CcRelay.Host/Forwarding")
            .SelectMany(file => File.ReadLines(file).Select((line, i) => (file, line, number: i + 1)))
            .Where(l => FSharpName().IsMatch(l.line))
            .Select(l => $"{Relative(l.file)}:{l.number}: {l.line.Trim()}")
            .ToList();

        Assert.Empty(uses);
    }

    [GeneratedRegex(@"^public\s+((sealed|static|abstract|readonly|partial|record)\s+)*(class|record|struct|interface|enum|delegate)\b", RegexOptions.Multiline)]
    private static partial Regex PublicTopLevelType();

    [GeneratedRegex(@"FSharp(List|Option|Map|Set|Func|ValueOption)|Module\.|using Microsoft\.FSharp")]
    private static partial Regex FSharpName();

    private static IEnumerable<string> SourceFiles(string folder) =>
        Directory.EnumerateFiles(Path.Combine(RepoRoot(), folder), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal));

    private static string Relative(string file) => Path.GetRelativePath(RepoRoot(), file);

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "CcRelay.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException("CcRelay.sln not found above " + AppContext.BaseDirectory);
    }
}
