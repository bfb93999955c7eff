using System.Text;
using CcRelay.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Primitives;
using Serilog;
using Serilog.Configuration;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting;
using Serilog.Sinks.File;
using ILogger = Microsoft.Extensions.Logging.ILogger;
using MsLogLevel = Microsoft.Extensions.Logging.LogLevel;

namespace CcRelay.Host.Logging;

/// <summary>
/// Writes log lines to the file <c>logging.output</c> names, formatted exactly as on the console (the same
/// <see cref="ConsoleFormatter"/>s: <see cref="JsonLineFormatter"/> with <c>format: json</c>, the framework's simple
/// one otherwise), through Serilog's async and file sinks:
/// <code>
///   Log() ──entry──► Serilog.Sinks.Async queue (bounded: a full queue drops, never blocks) ──► [its thread] format ──► Serilog.Sinks.File (64 KiB buffer, flushed every second)
/// </code>
/// A line is formatted on the sink's thread, so the thread that logs it pays for a queued reference only.
/// The file is created with mode 0600 and appended to. Whether lines come here or go to the console is the
/// <see cref="LoggingSwitch"/>'s call, per line; when its settings name another file or format, the sink open
/// before is closed (every line queued to it written) before the next is opened, under the lock lines are
/// queued under: a line goes to the file in force when it was logged, none is lost or written twice.
/// </summary>
[ProviderAlias("CcRelayFile")]
internal sealed class LogFile : ILoggerProvider
{
    private static readonly TimeSpan FlushInterval = TimeSpan.FromSeconds(1);

    private readonly LoggingSwitch _switch;
    private readonly ConsoleFormatter _text;
    private readonly ConsoleFormatter _json;
    private readonly IDisposable _following;
    private readonly Lock _gate = new();

    // guarded by _gate
    private LoggingConfig? _openFor;
    private ILogEventSink? _sink;
    private bool _disposed;

    public LogFile(LoggingSwitch loggingSwitch, IEnumerable<ConsoleFormatter> formatters)
    {
        _switch = loggingSwitch;
        _text = formatters.Single(f => f.Name == ConsoleFormatterNames.Simple);
        _json = formatters.Single(f => f.Name == JsonLineFormatter.FormatterName);
        _following = ChangeToken.OnChange(loggingSwitch.GetChangeToken, () =>
        {
            lock (_gate)
            {
                Follow();
            }
        });
    }

    public ILogger CreateLogger(string categoryName) => new FileLogger(this, categoryName);

    /// <summary>Writes every line logged before the call to the file (by closing it and opening it again).</summary>
    public void Flush()
    {
        lock (_gate)
        {
            Close();
            Follow();
        }
    }

    public void Dispose()
    {
        _following.Dispose();
        lock (_gate)
        {
            _disposed = true;
            Close();
        }
    }

    private void Write(Line line)
    {
        lock (_gate)
        {
            Follow();
            _sink?.Emit(line);
        }
    }

    /// <summary>Opens the file the settings in force name, if it is not the one open (which is closed first).</summary>
    private void Follow()
    {
        var settings = _switch.Current;
        if (_disposed || ReferenceEquals(settings, _openFor))
        {
            return;
        }

        var same = _openFor is not null && settings.Output == _openFor.Output && settings.Format.Equals(_openFor.Format);
        if (!same)
        {
            Close();
            _sink = LoggingSwitch.IsFile(settings.Output) ? Open(settings.Output, settings.Format.IsJson ? _json : _text) : null;
        }

        _openFor = settings;
    }

    /// <summary>Closes the open file, after writing every line queued for it.</summary>
    private void Close()
    {
        (_sink as IDisposable)?.Dispose();
        _sink = null;
        _openFor = null;
    }

    private static ILogEventSink? Open(string path, ConsoleFormatter formatter)
    {
        try
        {
            // created private (the file sink would create it with the umask's mode), then appended to
            var options = new FileStreamOptions { Mode = FileMode.Append, Access = FileAccess.Write, Share = FileShare.ReadWrite };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            new FileStream(path, options).Dispose();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            Report(path, e.Message);
            return null;
        }

        return LoggerSinkConfiguration.CreateSink(to => to.Fallible(
            fallible => fallible.Async(queued => queued.File(
                new Formatter(formatter), path, fileSizeLimitBytes: null, buffered: true, flushToDiskInterval: FlushInterval, hooks: new Buffered())),
            new Failures(path)));
    }

    private static void Report(string path, string reason) =>
        Console.Error.WriteLine($"cc-relay: cannot write the log file {path}: {reason}; its lines are dropped until logging.output changes");

    /// <summary>A log entry on its way to the file: formatted by the sink's thread.</summary>
    private abstract class Line() : LogEvent(default, LogEventLevel.Information, null, MessageTemplate.Empty, [])
    {
        public abstract void Write(ConsoleFormatter formatter, TextWriter output);
    }

    private sealed class Line<TState>(LogEntry<TState> entry) : Line
    {
        public override void Write(ConsoleFormatter formatter, TextWriter output) => formatter.Write(entry, null, output);
    }

    private sealed class Formatter(ConsoleFormatter formatter) : ITextFormatter
    {
        public void Format(LogEvent logEvent, TextWriter output) => ((Line)logEvent).Write(formatter, output);
    }

    /// <summary>Writes to the file 64 KiB at a time (and at each flush), not every 4 KiB.</summary>
    private sealed class Buffered : FileLifecycleHooks
    {
        public override Stream OnFileOpened(Stream underlyingStream, Encoding encoding) => new BufferedStream(underlyingStream, 64 * 1024);
    }

    /// <summary>Lines the file could not take (a full disk, a full queue): said once per file, on stderr.</summary>
    private sealed class Failures(string path) : ILoggingFailureListener
    {
        private int _reported;

        public void OnLoggingFailed(object sender, LoggingFailureKind kind, string message, IReadOnlyCollection<LogEvent>? events, Exception? exception)
        {
            if (Interlocked.Exchange(ref _reported, 1) == 0)
            {
                Report(path, exception?.Message ?? message);
            }
        }
    }

    private sealed class FileLogger(LogFile owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(MsLogLevel logLevel) => logLevel != MsLogLevel.None;

        public void Log<TState>(MsLogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                owner.Write(new Line<TState>(new LogEntry<TState>(logLevel, category, eventId, state, exception, formatter)));
            }
        }
    }
}
