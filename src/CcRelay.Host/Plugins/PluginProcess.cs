using System.ComponentModel;
using System.Diagnostics;
using CcRelay.Core;

namespace CcRelay.Host.Plugins;

/// <summary>What one call on a <see cref="PluginProcess"/> came to.</summary>
/// <param name="Outcome">The step's outcome (a plugin fault is <c>Failed</c>).</param>
/// <param name="Answered">The process answered in step (its round trip is <paramref name="RoundTripMs"/>): it is sound.</param>
/// <param name="Lost">The process died, could not start or was cut off during the call (not for a client that left).</param>
/// <param name="RoundTripMs">Request line out to answer line in, when answered.</param>
internal readonly record struct PluginCallResult(StepOutcome Outcome, bool Answered, bool Lost, double RoundTripMs);

/// <summary>
/// One process of a plugin's pool (<see cref="PluginProcessPool"/>), kept warm between calls: started on the first
/// call placed on it, started again on the call after it died or was cut off. Its calls are serial (one line out,
/// one line back, the protocol of docs/plugins.md); the pool spreads calls over its processes.
/// <code>
///   call     Relay ──{"v":1|2,"id":N,"kind":"request"|"response"|"event",…}\n──► plugin stdin
///   answer   Relay ◄──{"v":…,"id":N,"body"|"data"|"unchanged"|"error"}\n── plugin stdout   (within the call's deadline, else killed)
/// </code>
/// Sandbox (Linux, with <c>prlimit</c> from util-linux): <c>prlimit --data=&lt;memory_mb&gt; --cpu=&lt;cpu_seconds&gt;
/// --core=0 -- command args…</c> sets RLIMIT_DATA, RLIMIT_CPU and RLIMIT_CORE on the plugin process itself (prlimit
/// execs it); the wall-clock deadline is the relay's own; the environment is cleared except <c>PATH</c>, <c>LANG</c>,
/// <c>HOME</c> and the configured <c>env</c>.
/// </summary>
internal sealed class PluginProcess : IDisposable
{
    /// <summary>The longest answer line read before the plugin is cut off as answering garbage, beyond the body's size.</summary>
    private const int LineSlack = 1 << 20;

    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly TimeProvider _timeProvider;
    private readonly string? _prlimit;
    private Process? _process;
    private Stream? _stdin;
    private Stream? _stdout;
    private byte[] _buffer = new byte[8192];
    private int _buffered;
    private long _nextId;
    private long _starts;
    private bool _disposed;

    public PluginProcess(PluginConfig config, string? prlimit, TimeProvider timeProvider)
    {
        Config = config;
        _prlimit = prlimit;
        _timeProvider = timeProvider;
    }

    /// <summary>The settings this process was started with (a reload with other settings replaces it).</summary>
    public PluginConfig Config { get; }

    /// <summary>Counts restarts (starts after the first): a plugin that keeps dying shows here.</summary>
    public event Action<string>? Restarted;

    /// <summary>Processes started in this slot so far.</summary>
    public long Starts => Interlocked.Read(ref _starts);

    /// <summary>Whether a process is running (started, and not known to have died or been cut off).</summary>
    public bool Running => Volatile.Read(ref _process) is { } process && !HasExited(process);

    /// <summary>Calls the plugin once (a request, an answer or a stream event); never throws for the plugin's faults: they are a <c>Failed</c> outcome.</summary>
    public async Task<PluginCallResult> CallAsync(PluginCall call, CancellationToken cancellationToken)
    {
        var timeoutMs = PluginProtocol.timeoutMs(Config, call, false);
        var timeout = TimeSpan.FromMilliseconds(timeoutMs);

        // one call at a time: a caller waits at most the deadline for the previous call
        if (!await _gate.WaitAsync(timeout, cancellationToken))
        {
            return Fail("busy: another call did not finish within the deadline");
        }

        try
        {
            if (_disposed)
            {
                // the relay is stopping
                return Fail("the plugin was stopped during the call");
            }

            if (_process is null || _process.HasExited)
            {
                if (Start() is { } startError)
                {
                    return Fail(startError, lost: true);
                }

                // the process starts with this call: its deadline covers the start-up (PluginProtocol.timeoutMs)
                timeoutMs = PluginProtocol.timeoutMs(Config, call, true);
                timeout = TimeSpan.FromMilliseconds(timeoutMs);
            }

            var id = ++_nextId;
            var line = PluginProtocol.line(id, call);
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var exchange = ExchangeAsync(_stdin!, _stdout!, line, call.Size + LineSlack, deadline.Token);
            byte[]? answer;
            var sent = _timeProvider.GetTimestamp();
            try
            {
                answer = await exchange.WaitAsync(timeout, _timeProvider, cancellationToken);
            }
            catch (TimeoutException)
            {
                // NOTE: pipe reads are not reliably cancellable; killing the process ends the read with EOF
                await deadline.CancelAsync();
                Kill();
                await exchange.ContinueWith(static _ => { }, TaskScheduler.Default);
                var setting = call.Kind.IsEvent ? "event_timeout_ms" : "timeout_ms";
                return Fail($"no answer within {timeoutMs} ms ({setting}); the plugin was stopped", lost: true);
            }
            catch (OperationCanceledException)
            {
                // the client left mid-call: the plugin's answer would come out of step, so it goes
                Kill();
                await exchange.ContinueWith(static _ => { }, TaskScheduler.Default);
                throw;
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or ObjectDisposedException)
            {
                Kill();
                return Fail("the plugin's pipe broke: " + e.Message, lost: true);
            }

            if (answer is null)
            {
                var exit = ExitDescription();
                Kill();
                return Fail("the plugin exited before answering" + exit, lost: true);
            }

            var roundTrip = _timeProvider.GetElapsedTime(sent).TotalMilliseconds;
            var outcome = PluginProtocol.answerTo(call, id, answer);
            if (outcome is StepOutcome.Failed failed && !PluginProtocol.keepsProcess(failed.Reason))
            {
                // a plugin's own error keeps the process; garbage or a call out of step does not
                Kill();
                return new PluginCallResult(outcome, false, true, 0);
            }

            return new PluginCallResult(outcome, true, false, roundTrip);
        }
        finally
        {
            _gate.Release();
        }
    }

    private static bool HasExited(Process process)
    {
        try
        {
            return process.HasExited;
        }
        catch (InvalidOperationException)
        {
            return true;
        }
    }

    private static PluginCallResult Fail(string reason, bool lost = false) => new(StepOutcome.NewFailed(reason), false, lost, 0);

    /// <summary>Writes the request line and reads one answer line (null: the plugin's stdout ended first).</summary>
    private async Task<byte[]?> ExchangeAsync(Stream stdin, Stream stdout, byte[] line, int maxLine, CancellationToken cancellationToken)
    {
        await stdin.WriteAsync(line, cancellationToken);
        await stdin.FlushAsync(cancellationToken);
        while (true)
        {
            var newline = Array.IndexOf(_buffer, (byte)'\n', 0, _buffered);
            if (newline >= 0)
            {
                var answer = _buffer.AsSpan(0, newline).ToArray();
                _buffered -= newline + 1;
                Array.Copy(_buffer, newline + 1, _buffer, 0, _buffered);
                return answer;
            }

            if (_buffered >= maxLine)
            {
                throw new InvalidOperationException($"the plugin's answer line exceeds {maxLine} bytes");
            }

            if (_buffered == _buffer.Length)
            {
                Array.Resize(ref _buffer, Math.Min(maxLine + 1, _buffer.Length * 2));
            }

            var read = await stdout.ReadAsync(_buffer.AsMemory(_buffered), cancellationToken);
            if (read == 0)
            {
                return null;
            }

            _buffered += read;
        }
    }

    /// <summary>Starts the process (null), or says why it could not.</summary>
    private string? Start()
    {
        Kill();
        var info = new ProcessStartInfo
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            CreateNoWindow = true,
        };

        if (_prlimit is not null)
        {
            info.FileName = _prlimit;
            info.ArgumentList.Add("--data=" + ((long)Config.MemoryMb * 1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture));
            info.ArgumentList.Add("--cpu=" + Config.CpuSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture));
            info.ArgumentList.Add("--core=0");
            info.ArgumentList.Add("--");
            info.ArgumentList.Add(Config.Command);
        }
        else
        {
            info.FileName = Config.Command;
        }

        foreach (var arg in Config.Args)
        {
            info.ArgumentList.Add(arg);
        }

        // nothing of the relay's environment (its keys included) reaches the plugin but what is named here
        info.Environment.Clear();
        info.Environment["PATH"] = "/usr/local/bin:/usr/bin:/bin";
        info.Environment["LANG"] = "C.UTF-8";
        info.Environment["HOME"] = Path.GetTempPath();
        foreach (var (name, value) in Config.Env)
        {
            info.Environment[name] = value;
        }

        try
        {
            var process = Process.Start(info);
            if (process is null)
            {
                return "the plugin could not be started";
            }

            // stderr is the plugin's own log: drained so it never blocks, not kept (it may quote requests)
            process.ErrorDataReceived += static (_, _) => { };
            process.BeginErrorReadLine();
            Volatile.Write(ref _process, process);
            _stdin = process.StandardInput.BaseStream;
            _stdout = process.StandardOutput.BaseStream;
            _buffered = 0;
            if (Interlocked.Increment(ref _starts) > 1)
            {
                Restarted?.Invoke(Config.Name);
            }

            return null;
        }
        catch (Exception e) when (e is Win32Exception or InvalidOperationException or IOException)
        {
            return "the plugin could not be started: " + e.Message;
        }
    }

    private string ExitDescription()
    {
        try
        {
            return _process is { } p && p.WaitForExit(TimeSpan.FromMilliseconds(200))
                ? " (exit code " + p.ExitCode.ToString(System.Globalization.CultureInfo.InvariantCulture) + ")"
                : "";
        }
        catch (InvalidOperationException)
        {
            return "";
        }
    }

    /// <summary>Stops the process (the next call starts a new one).</summary>
    private void Kill()
    {
        var process = _process;
        Volatile.Write(ref _process, null);
        _stdin = null;
        _stdout = null;
        _buffered = 0;
        if (process is null)
        {
            return;
        }

        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
        catch (Exception e) when (e is InvalidOperationException or Win32Exception or NotSupportedException)
        {
            // it is gone already
        }

        process.Dispose();
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        // NOTE: the gate is not disposed: a call in flight (the relay is stopping) still releases it
        _disposed = true;
        Kill();
    }
}
