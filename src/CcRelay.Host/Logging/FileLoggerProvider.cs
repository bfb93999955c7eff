using System.Buffers;
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
    private static StringWriter? _threadText;

    [ThreadStatic]
    private static ArrayBufferWriter<byte>? _threadBytes;

    private readonly LoggingSwitch _switch;
    private readonly ConsoleFormatter _text;
    private readonly Channel<Entry> _queue;
    private readonly Task _writer;
    private IExternalScopeProvider _scopes = new LoggerExternalScopeProvider();
    private TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _dropped;

    public FileLoggerProvider(LoggingSwitch loggingSwitch, IEnumerable<ConsoleFormatter> formatters)
    {
        _switch = loggingSwitch;
        _text = formatters.Single(f => f.Name == ConsoleFormatterNames.Simple);
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
        while (!_queue.Writer.TryWrite(new Entry(null, null, 0, flushed)))
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
        var settings = _switch.Current;
        var output = _threadBytes ??= new ArrayBufferWriter<byte>(4096);
        var entry = new LogEntry<TState>(level, category, eventId, state, exception, formatter);
        if (settings.Format.IsJson)
        {
            // straight to UTF-8: the file is written with these bytes
            if (!JsonLineFormatter.WriteUtf8(entry, output))
            {
                return;
            }
        }
        else
        {
            var text = _threadText ??= new StringWriter(System.Globalization.CultureInfo.InvariantCulture);
            _text.Write(entry, _scopes, text);
            var builder = text.GetStringBuilder();
            output.ResetWrittenCount();
            foreach (var chunk in builder.GetChunks())
            {
                var bytes = output.GetSpan(Encoding.UTF8.GetMaxByteCount(chunk.Length));
                output.Advance(Encoding.UTF8.GetBytes(chunk.Span, bytes));
            }

            builder.Clear();
            if (builder.Capacity > 64 * 1024)
            {
                builder.Capacity = 1024;
            }
        }

        var length = output.WrittenCount;
        if (length == 0)
        {
            return;
        }

        var line = ArrayPool<byte>.Shared.Rent(length);
        output.WrittenSpan.CopyTo(line);
        if (output.Capacity > 64 * 1024)
        {
            _threadBytes = null; // a huge line (a debug body) must not pin its buffer
        }

        if (!_queue.Writer.TryWrite(new Entry(settings.Output, line, length, null)))
        {
            ArrayPool<byte>.Shared.Return(line);
            Interlocked.Increment(ref _dropped);
        }
    }

    private async Task WriteAllAsync()
    {
        string? openPath = null;
        FileStream? file = null;
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

                    try
                    {
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
                            file.Write(Encoding.UTF8.GetBytes($"cc-relay: {dropped} log line(s) dropped: the log file could not keep up{Environment.NewLine}"));
                        }

                        file.Write(entry.Line!, 0, entry.Length);
                    }
                    catch (IOException e)
                    {
                        Report(openPath!, e.Message);
                        file?.Dispose();
                        file = null;
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(entry.Line!);
                    }
                }

                // one flush per batch
                Flush(ref file, ref openPath);
            }
        }
        finally
        {
            file?.Dispose();
        }
    }

    private static void Flush(ref FileStream? file, ref string? openPath)
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

    private static FileStream? Open(string path, ref string? failedPath)
    {
        try
        {
            var options = new FileStreamOptions
            {
                Mode = FileMode.Append,
                Access = FileAccess.Write,
                Share = FileShare.ReadWrite | FileShare.Delete,
                BufferSize = 64 * 1024,
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
            return new FileStream(path, options);
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

    /// <summary>A formatted UTF-8 line (a pooled buffer) for <c>Path</c>, or a flush request.</summary>
    private readonly record struct Entry(string? Path, byte[]? Line, int Length, TaskCompletionSource? Flushed);

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
