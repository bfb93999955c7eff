namespace CcRelay.Cli;

/// <summary>
/// What the commands read from their surroundings: environment variables, the working directory and the home
/// directory. Commands never read the process environment themselves, so tests (which run in parallel) pass
/// their own instead of changing the process's.
/// </summary>
/// <param name="Variable">Returns a variable's value, or null when it is unset.</param>
/// <param name="WorkingDirectory">Relative paths are resolved against it.</param>
/// <param name="Home">The user's home directory, or null when unknown.</param>
internal sealed record CliEnvironment(Func<string, string?> Variable, string WorkingDirectory, string? Home)
{
    /// <summary>The process's environment: <c>$HOME</c> (else the user profile folder) and the current directory.</summary>
    public static CliEnvironment FromProcess()
    {
        var home = Environment.GetEnvironmentVariable("HOME");
        if (string.IsNullOrWhiteSpace(home))
        {
            home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        }

        return new CliEnvironment(
            Environment.GetEnvironmentVariable,
            Directory.GetCurrentDirectory(),
            string.IsNullOrWhiteSpace(home) ? null : home);
    }

    /// <summary>Standard input (the console's unless a test gives its own).</summary>
    public Func<TextReader> Input { get; init; } = () => Console.In;

    /// <summary>A variable's value, or null when it is unset or only white space.</summary>
    public string? NonEmpty(string name) => Variable(name) is { } value && !string.IsNullOrWhiteSpace(value) ? value : null;

    /// <summary>A path as the user wrote it, made absolute against <see cref="WorkingDirectory"/>.</summary>
    public string FullPath(string path) => Path.GetFullPath(path, WorkingDirectory);
}
