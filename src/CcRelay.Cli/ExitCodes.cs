namespace CcRelay.Cli;

/// <summary>The exit codes every command documents.</summary>
internal static class ExitCodes
{
    public const int Success = 0;
    public const int Failure = 1;
    /// <summary>An invalid config, a refused edit, or a usage error.</summary>
    public const int InvalidConfig = 2;
}
