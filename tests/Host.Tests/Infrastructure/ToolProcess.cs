using System.ComponentModel;
using System.Diagnostics;

namespace CcRelay.Host.Tests.Infrastructure;

/// <summary>Runs an external tool (promtool, node) on some standard input; a missing tool fails the test, never skips it.</summary>
public static class ToolProcess
{
    /// <summary>
    /// Runs <paramref name="fileName"/> with <paramref name="arguments"/> in <paramref name="workingDirectory"/>,
    /// writes <paramref name="input"/> to its standard input and returns its exit code, standard output and error
    /// (bounded by <paramref name="timeout"/>, 60 s by default). <paramref name="missing"/> says how to install it.
    /// </summary>
    public static async Task<(int ExitCode, string Output, string Error)> RunAsync(
        string fileName,
        IEnumerable<string> arguments,
        string input,
        string missing,
        string? workingDirectory = null,
        TimeSpan? timeout = null)
    {
        var start = new ProcessStartInfo(fileName, arguments)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (workingDirectory is not null)
        {
            start.WorkingDirectory = workingDirectory;
        }

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException(fileName + " did not start");
        }
        catch (Win32Exception e)
        {
            Assert.Fail($"{fileName} is not installed ({e.Message}); {missing}");
            throw;
        }

        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            await process.StandardInput.WriteAsync(input);
            process.StandardInput.Close();
            using var bound = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(60));
            await process.WaitForExitAsync(bound.Token);
            return (process.ExitCode, await stdout, await stderr);
        }
    }
}
