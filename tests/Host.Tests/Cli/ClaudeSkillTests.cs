namespace CcRelay.Host.Tests.Cli;

/// <summary><c>cc-relay config cc skill</c> installs the cc-relay skill for Claude Code; <c>config cc remove</c> removes it.</summary>
public sealed class ClaudeSkillTests
{
    [Fact]
    public async Task Skill_InstallsSkillMd_UnderClaudesDirectory_ThenSaysItIsCurrent_AndRemoveTakesItAway()
    {
        using var sandbox = new CliSandbox();
        var path = Path.Combine(sandbox.Home, ".claude", "skills", "cc-relay", "SKILL.md");

        var (code, output, _) = await sandbox.RunAsync("config", "cc", "skill");
        var text = await File.ReadAllTextAsync(path);
        var (again, againOut, _) = await sandbox.RunAsync("config", "cc", "skill");
        var (removed, removedOut, _) = await sandbox.RunAsync("config", "cc", "remove");

        Assert.Equal(0, code);
        Assert.StartsWith($"Installed the cc-relay skill: {path}\n", output, StringComparison.Ordinal);
        Assert.StartsWith("---\nname: cc-relay\ndescription: ", text, StringComparison.Ordinal);
        Assert.Contains("cc-relay models --json", text, StringComparison.Ordinal);
        Assert.Equal(0, again);
        Assert.Equal($"{path}: the cc-relay skill is installed and current.\n", againOut);
        Assert.Equal(0, removed);
        Assert.Contains($"Removed the cc-relay skill: {path}", removedOut, StringComparison.Ordinal);
        Assert.False(File.Exists(path));
        Assert.False(Directory.Exists(Path.GetDirectoryName(path)));
        Assert.True(Directory.Exists(Path.Combine(sandbox.Home, ".claude", "skills")));
    }

    [Fact]
    public async Task Skill_GoesUnderClaudeConfigDir_WhenSet_AndAnUpdatedSkillReplacesAnOldOne()
    {
        using var sandbox = new CliSandbox();
        sandbox.Variables["CLAUDE_CONFIG_DIR"] = "claude-config";
        var path = sandbox.Write("claude-config/skills/cc-relay/SKILL.md", "---\nname: cc-relay\ndescription: an older version\n---\n");

        var (code, output, _) = await sandbox.RunAsync("config", "cc", "skill");

        Assert.Equal(0, code);
        Assert.StartsWith($"Updated the cc-relay skill: {path}", output, StringComparison.Ordinal);
        Assert.Contains("cc-relay status --json", await File.ReadAllTextAsync(path), StringComparison.Ordinal);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead, File.GetUnixFileMode(path) & (UnixFileMode)0x1FF);
        }
    }

    [Fact]
    public async Task Remove_LeavesASkillMdThatIsNotOurs()
    {
        using var sandbox = new CliSandbox();
        sandbox.Variables["CLAUDE_CONFIG_DIR"] = "claude-config";
        var path = sandbox.Write("claude-config/skills/cc-relay/SKILL.md", "---\nname: someone-else\n---\n");

        var (code, output, _) = await sandbox.RunAsync("config", "cc", "remove");

        Assert.Equal(0, code);
        Assert.Contains("is not the cc-relay skill", output, StringComparison.Ordinal);
        Assert.True(File.Exists(path));
    }
}
