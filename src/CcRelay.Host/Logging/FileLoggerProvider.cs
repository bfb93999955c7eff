using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;

namespace CcRelay.Host.Logging;

/// <summary>
/// Writes log lines to the file <c>logging.output</c> names, formatted exactly as on the console (the same
/// <see cref="ConsoleFormatter"/>s: one JSON object per line with <c>format: json</c>
/// (<see cref="JsonLineFormatter"/>), one text line otherwise).
/// <code>
///   Log() ──format──► Channel (bounded, never blocks the caller) ──► [writer task] ──append──► file (0600)
/// </code>
/// NOTE: the writer takes lines in batches. It sleeps until a line arrives, then waits
/// <see cref="BatchInterval"/> for more before it writes and flushes them all: a busy relay costs the writer
/// a few wake-ups and writes per second, not one per line (a thread hop and a syscall per line cost more
/// than formatting the line). A line is on disk at most <see cref="BatchInterval"/> after it was logged.
/// The file is opened for append and created with mode 0600. Whether lines go here or to the console is the
/// <see cref="LoggingSwitch"/>'s call, per line, so a reload moves logging between files and streams at once.
/// A line the full queue cannot take is counted and reported in the file when there is room again.
/// </summary>
[ProviderAlias("CcRelayFile")]
internal sealed class FileLoggerProvider : ILoggerProvider, ISupportExternalScope
{
    private const int QueueCapacity = 10_000;

    /// <summary>How long the writer gathers lines before it writes them.</summary>
    private static readonly TimeSpan BatchInterval = TimeSpan.FromMilliseconds(50);

    [ThreadStatic]
    private static StringWriter? _threadWriter;

    private readonly LoggingSwitch _switch;
    private readonly ConsoleFormatter _json;
    private readonly ConsoleFormatter _text;
    private readonly Channel<Entry> _queue;
    private readonly Task _writer;
    private IExternalScopeProvider _scopes = new LoggerExternalScopeProvider();
    private TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _dropped;

    public FileLoggerProvider(LoggingSwitch loggingSwitch, IEnumerable<ConsoleFormatter> formatters)
    {
        _switch = loggingSwitch;
        var byName = formatters.ToDictionary(f => f.Name, StringComparer.Ordinal);
        _json = byName[JsonLineFormatter.FormatterName];
        _text = byName[ConsoleFormatterNames.Simple];
        _queue = Channel.CreateBounded<Entry>(new BoundedChannelOptions(QueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.DropWrite,
        });
        _writer = Task.Run(WriteAllAsync);
    }

    public ILogger CreateLogger(string categoryName) => new FileLogger(this, categoryName);

    public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

    /// <summary>Completes when every line logged before the call is written and flushed.</summary>
    public async Task FlushAsync()
    {
        var flushed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        while (!_queue.Writer.TryWrite(new Entry(null, null, flushed)))
        {
            await Task.Delay(1); // the queue is full (and drops what does not fit): wait for room
        }

        Wake();
        await flushed.Task;
    }

    public void Dispose()
    {
        _queue.Writer.TryComplete();
        Wake();
        _ = _writer.Wait(TimeSpan.FromSeconds(5));
    }

    /// <summary>Cuts the writer's current batch wait short.</summary>
    private void Wake() => Volatile.Read(ref _wake).TrySetResult();

    private void Write<TState>(string category, LogLevel level, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        var path = _switch.Current.Output;
        var writer = _threadWriter ??= new StringWriter(System.Globalization.CultureInfo.InvariantCulture);
        var formatterFor = _switch.Current.Format.IsJson ? _json : _text;
        formatterFor.Write(new LogEntry<TState>(level, category, eventId, state, exception, formatter), _scopes, writer);
        var builder = writer.GetStringBuilder();
        if (builder.Length == 0)
        {
            return;
        }

        var line = builder.ToString();
        builder.Clear();
        if (builder.Capacity > 64 * 1024)
        {
            builder.Capacity = 1024;
        }

        if (!_queue.Writer.TryWrite(new Entry(path, line, null)))
        {
            Interlocked.Increment(ref _dropped);
        }
    }

    private async Task WriteAllAsync()
    {
        string? openPath = null;
        StreamWriter? file = null;
        var failedPath = (string?)null;
        try
        {
            while (await _queue.Reader.WaitToReadAsync())
            {
                // gather a batch (a flush request or shutdown ends the wait early)
                var wake = Volatile.Read(ref _wake);
                if (!wake.Task.IsCompleted)
                {
                    await Task.WhenAny(Task.Delay(BatchInterval), wake.Task);
                }

                if (wake.Task.IsCompleted)
                {
                    Interlocked.CompareExchange(ref _wake, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), wake);
                }

                while (_queue.Reader.TryRead(out var entry))
                {
                    if (entry.Flushed is { } flushed)
                    {
                        Flush(ref file, ref openPath);
                        flushed.TrySetResult();
                        continue;
                    }

                    if (!string.Equals(entry.Path, openPath, StringComparison.Ordinal))
                    {
                        file?.Dispose();
                        file = null;
                        openPath = entry.Path!;
                        file = Open(openPath, ref failedPath);
                    }

                    if (file is null)
                    {
                        continue;
                    }

                    var dropped = Interlocked.Exchange(ref _dropped, 0);
                    if (dropped > 0)
                    {
                        file.Write($"cc-relay: {dropped} log line(s) dropped: the log file could not keep up{Environment.NewLine}");
                    }

                    file.Write(entry.Line);
                }

                // one flush per batch: lines are on disk as soon as the queue is empty
                Flush(ref file, ref openPath);
            }
        }
        finally
        {
            file?.Dispose();
        }
    }

    private static void Flush(ref StreamWriter? file, ref string? openPath)
    {
        try
        {
            file?.Flush();
        }
        catch (IOException e)
        {
            Report(openPath!, e.Message);
            file?.Dispose();
            file = null;
            openPath = null;
        }
    }

    private static StreamWriter? Open(string path, ref string? failedPath)
    {
        try
        {
            var options = new FileStreamOptions
            {
                Mode = FileMode.Append,
                Access = FileAccess.Write,
                Share = FileShare.ReadWrite | FileShare.Delete,
            };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            var directory = Path.GetDirectoryName(Path.GetFullPath(path));
            if (!string.IsNullOrEmpty(directory))
            {
                Directory.CreateDirectory(directory);
            }

            failedPath = null;
            return new StreamWriter(new FileStream(path, options), new UTF8Encoding(encoderShouldEmitUTF8Identifier: false)) { AutoFlush = false };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            // said once per path, on stderr: the log itself is what failed
            if (!string.Equals(failedPath, path, StringComparison.Ordinal))
            {
                Report(path, e.Message);
                failedPath = path;
            }

            return null;
        }
    }

    private static void Report(string path, string reason) =>
        Console.Error.WriteLine($"cc-relay: cannot write the log file {path}: {reason}; its lines are dropped until logging.output changes");

    /// <summary>A formatted line for <c>Path</c>, or a flush request.</summary>
    private readonly record struct Entry(string? Path, string? Line, TaskCompletionSource? Flushed);

    private sealed class FileLogger(FileLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => owner._scopes.Push(state);

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                owner.Write(category, logLevel, eventId, state, exception, formatter);
            }
        }
    }
}
