using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace CcRelay.Cli.Claude;

/// <summary>
/// A relay this command started: <c>cc-relay serve</c> as a child process on a free loopback port, in a session of
/// its own (through <c>setsid</c> when there is one) so that the terminal's Ctrl-C, which is meant for Claude Code,
/// does not stop it. Its output is kept (the last lines) to say why, should it fail to start.
/// </summary>
internal sealed class BackgroundRelay : IAsyncDisposable
{
    private const int KeptLines = 40;
    private readonly Process _process;
    private readonly Queue<string> _lines = new();

    private BackgroundRelay(Process process, Uri url)
    {
        _process = process;
        Url = url;
    }

    /// <summary>Where it listens: http://127.0.0.1:port.</summary>
    public Uri Url { get; }

    /// <summary>The relay's process id.</summary>
    public int Id => _process.Id;

    /// <summary>The last lines it wrote, oldest first.</summary>
    public string Output
    {
        get
        {
            lock (_lines)
            {
                return string.Join("\n", _lines);
            }
        }
    }

    /// <summary>
    /// Starts <c>cc-relay serve</c> (with <paramref name="configPath"/>, or the built-in default when null) on a free
    /// loopback port and waits until it answers, for at most <paramref name="timeout"/>. Throws
    /// <see cref="InvalidOperationException"/> with its output when it exits or does not answer in time.
    /// </summary>
    public static async Task<BackgroundRelay> StartAsync(string? configPath, CliEnvironment environment, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var port = FreePort();
        var url = new Uri($"http://127.0.0.1:{port}");
        var (fileName, prefix) = SelfCommand();
        var arguments = prefix.Concat(["serve", "--listen", $"127.0.0.1:{port}"]);
        if (configPath is not null)
        {
            arguments = arguments.Concat(["--config", configPath]);
        }

        var start = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = environment.WorkingDirectory,
        };
        if (Which("setsid", environment) is { } setsid)
        {
            // setsid execs the relay in place (same pid): a new session, no controlling terminal
            start.FileName = setsid;
            start.ArgumentList.Add(fileName);
        }
        else
        {
            start.FileName = fileName;
        }

        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("cc-relay serve did not start");
        var relay = new BackgroundRelay(process, url);
        process.OutputDataReceived += (_, e) => relay.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => relay.Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.StandardInput.Close();

        try
        {
            using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            bound.CancelAfter(timeout);
            var exited = process.WaitForExitAsync(bound.Token);

            // NOTE: the relay says nothing a parent could await that does not depend on its logging settings
            // (format, file), so readiness is its answer on / — asked every 100 ms, bounded by the timeout.
            while (!await RelayProbe.IsRelayAsync(url, TimeSpan.FromSeconds(1), bound.Token))
            {
                if (exited.IsCompleted)
                {
                    throw new InvalidOperationException($"cc-relay serve exited with code {process.ExitCode} before it answered:\n{relay.Output}");
                }

                await Task.WhenAny(exited, Task.Delay(TimeSpan.FromMilliseconds(100), TimeProvider.System, bound.Token));
            }

            return relay;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            await relay.DisposeAsync();
            throw new InvalidOperationException($"cc-relay serve did not answer on {url} within {timeout.TotalSeconds:0} s:\n{relay.Output}");
        }
        catch
        {
            await relay.DisposeAsync();
            throw;
        }
    }

    /// <summary>Stops it: SIGTERM (in-flight requests finish), then a kill after 10 s.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                if (OperatingSystem.IsWindows() || Signals.Send(_process.Id, Signals.Sigterm) != 0)
                {
                    _process.Kill(entireProcessTree: true);
                }

                using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                try
                {
                    await _process.WaitForExitAsync(bound.Token);
                }
                catch (OperationCanceledException)
                {
                    _process.Kill(entireProcessTree: true);
                    await _process.WaitForExitAsync(CancellationToken.None);
                }
            }
        }
        finally
        {
            _process.Dispose();
        }
    }

    /// <summary>An executable's full path, searched on <c>$PATH</c>; null when it is not there.</summary>
    public static string? Which(string name, CliEnvironment environment)
    {
        foreach (var directory in (environment.Variable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(environment.FullPath(directory), name);
            if (File.Exists(candidate) && (OperatingSystem.IsWindows() || (File.GetUnixFileMode(candidate) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>How to run this cc-relay again: the native executable, or <c>dotnet cc-relay.dll</c>.</summary>
    private static (string FileName, string[] Prefix) SelfCommand()
    {
        var self = typeof(BackgroundRelay).Assembly;
        var processPath = Environment.ProcessPath;
        var entry = System.Reflection.Assembly.GetEntryAssembly();
        if (entry == self && processPath is not null && !Path.GetFileNameWithoutExtension(processPath).Equals("dotnet", StringComparison.OrdinalIgnoreCase))
        {
            return (processPath, []); // the native executable (or the apphost)
        }

        // the .NET tool, or the command run inside another process (tests): dotnet and the assembly next to this one
        var dll = Path.Combine(AppContext.BaseDirectory, "cc-relay.dll");
        var dotnet = processPath is not null && Path.GetFileNameWithoutExtension(processPath).Equals("dotnet", StringComparison.OrdinalIgnoreCase) ? processPath : "dotnet";
        return (dotnet, [dll]);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_lines)
        {
            _lines.Enqueue(line);
            while (_lines.Count > KeptLines)
            {
                _lines.Dequeue();
            }
        }
    }
}
