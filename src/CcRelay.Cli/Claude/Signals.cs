using System.Runtime.InteropServices;

namespace CcRelay.Cli.Claude;

/// <summary>Sending a POSIX signal to a process (.NET sends only SIGKILL, through <c>Process.Kill</c>).</summary>
internal static class Signals
{
    public const int Sighup = 1;
    public const int Sigterm = 15;

    /// <summary>kill(2): 0 when sent.</summary>
    public static int Send(int pid, int signal) => OperatingSystem.IsWindows() ? -1 : Kill(pid, signal);

    // NOTE: DllImport, not LibraryImport: the generated stub would need unsafe code for two ints, which marshal as they are
    [DllImport("libc", EntryPoint = "kill")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int Kill(int pid, int signal);
}
