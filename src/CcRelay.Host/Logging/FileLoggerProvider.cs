using System.Buffers;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;

namespace CcRelay.Host.Logging;

/// <summary>
/// Writes log lines to the file <c>logging.output</c> names, formatted exactly as on the console (the same
/// <see cref="ConsoleFormatter"/>s: one JSON object per line with <c>format: json</c>
/// (<see cref="JsonLineFormatter"/>), one text line otherwise).
/// <code>
///   Log() ──format──────────────► batch (bytes, bounded, never blocks the caller) ──► [writer thread] ──append──► file (0600)
///   request line ──copy facts──►   └ request lines' facts (RequestLineBuffer)        ── format here ─┘
/// </code>
/// The request line, logged for every request, is not formatted on the request's thread: its facts are copied
/// into the batch (<see cref="RequestLineBuffer"/>) and the writer formats them, each in its place among the
/// other lines, when it writes the batch. The bytes are those the JSON formatter writes (one code path), the
/// timestamp the time it was logged.
/// NOTE: the writer takes lines in batches. It sleeps until a line arrives, then waits
/// <see cref="BatchInterval"/> for more before it swaps the batch for an empty one and writes it in one go: a
/// busy relay costs the writer a few wake-ups and writes per second, not one per line (a thread hop and a
/// syscall per line cost more than formatting the line). Lines are copied into the batch's one growing buffer,
/// not into a buffer each: at 20,000 lines a second, a pooled buffer per line outruns the array pool (a 50 ms
/// batch holds ~1,000 of them) and every line allocated. A line is on disk at most <see cref="BatchInterval"/>
/// after it was logged. The writer is a thread of its own, asleep on the batch lock between batches: a
/// thread-pool loop woke a pool worker twice per batch, and the idle workers' spinning on each wake-up cost
/// the relay's request threads more than the writing.
/// The file is opened for append and created with mode 0600. Whether lines go here or to the console is the
/// <see cref="LoggingSwitch"/>'s call, per line, so a reload moves logging between files and streams at once.
/// A line the full queue cannot take is counted and reported in the file when there is room again.
/// </summary>
[ProviderAlias("CcRelayFile")]
internal sealed class FileLoggerProvider : ILoggerProvider, ISupportExternalScope
{
    /// <summary>The most a batch holds; lines beyond it are dropped (and counted) until the writer catches up.</summary>
    private const int MaxBatchBytes = 16 * 1024 * 1024;

    /// <summary>A batch buffer grown past this is not kept for the next batch (a steady 20,000 lines a second fill ~0.7 MB per batch).</summary>
    private const int KeepBatchBytes = 4 * 1024 * 1024;

    /// <summary>How long the writer gathers lines before it writes them.</summary>
    private static readonly TimeSpan BatchInterval = TimeSpan.FromMilliseconds(50);

    [ThreadStatic]
    private static StringWriter? _threadText;

    [ThreadStatic]
    private static ArrayBufferWriter<byte>? _threadBytes;

    private readonly LoggingSwitch _switch;
    private readonly ConsoleFormatter _text;
    /// <summary>Guards the batches; the writer sleeps on it (<see cref="Monitor.Wait(object)"/>), so it is a monitor, not a <see cref="Lock"/>.</summary>
    private readonly object _gate = new();
    private readonly Thread _writer;
    private IExternalScopeProvider _scopes = new LoggerExternalScopeProvider();

    // guarded by _gate
    private Batch _pending = new();
    private Batch _spare = new();
    private bool _writeNow;
    private bool _disposed;

    public FileLoggerProvider(LoggingSwitch loggingSwitch, IEnumerable<ConsoleFormatter> formatters)
    {
        _switch = loggingSwitch;
        _text = formatters.Single(f => f.Name == ConsoleFormatterNames.Simple);
        // a thread of its own, not the thread pool: waking a pool worker twice per batch costs the relay's busy
        // threads more (the idle workers spin on each wake-up) than this thread sleeping on the gate
        _writer = new Thread(WriteAll) { IsBackground = true, Name = "cc-relay log file" };
        _writer.Start();
    }

    public ILogger CreateLogger(string categoryName) => new FileLogger(this, categoryName);

    public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

    /// <summary>Completes when every line logged before the call is written and flushed.</summary>
    public Task FlushAsync()
    {
        var flushed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            if (_disposed)
            {
                return Task.CompletedTask;
            }

            _pending.Flushes.Add(flushed);
            _writeNow = true;
            Monitor.PulseAll(_gate);
        }

        return flushed.Task;
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            Monitor.PulseAll(_gate);
        }

        _ = _writer.Join(TimeSpan.FromSeconds(5));
    }

    private void Write<TState>(string category, LogLevel level, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        var settings = _switch.Current;
        if (settings.Format.IsJson && state is RequestLine line)
        {
            // the request line: its facts are copied into the batch, the writer thread formats them
            if (settings.Output is { } to)
            {
                lock (_gate)
                {
                    var first = _pending.IsEmpty;
                    if (!_disposed && _pending.TryAppend(to, line, line.Timestamp, category, level, eventId.Id) && first)
                    {
                        Monitor.Pulse(_gate);
                    }
                }
            }

            return;
        }

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

        if (output.WrittenCount > 0 && settings.Output is { } path)
        {
            lock (_gate)
            {
                // the batch's first line wakes the writer (it sleeps while there is nothing to write)
                var first = _pending.IsEmpty;
                if (!_disposed && _pending.TryAppend(path, output.WrittenSpan) && first)
                {
                    Monitor.Pulse(_gate);
                }
            }
        }

        if (output.Capacity > 64 * 1024)
        {
            _threadBytes = null; // a huge line (a debug body) must not pin its buffer
        }
    }

    private void WriteAll()
    {
        string? openPath = null;
        FileStream? file = null;
        var failedPath = (string?)null;
        var scratch = new ArrayBufferWriter<byte>(64 * 1024);
        try
        {
            while (true)
            {
                Batch batch;
                bool disposed;
                lock (_gate)
                {
                    // sleep until a line (or a flush request) arrives, then gather more for a while; a flush
                    // request or disposal ends the gathering early (lines never pulse a non-empty batch)
                    while (_pending.IsEmpty && !_disposed)
                    {
                        Monitor.Wait(_gate);
                    }

                    if (!_writeNow && !_disposed)
                    {
                        Monitor.Wait(_gate, BatchInterval);
                    }

                    _writeNow = false;
                    batch = _pending;
                    _pending = _spare;
                    disposed = _disposed;
                }

                WriteBatch(batch, scratch, ref file, ref openPath, ref failedPath);
                lock (_gate)
                {
                    _spare = batch;
                }

                if (disposed)
                {
                    return; // Write and FlushAsync add nothing once disposed: that batch was the last
                }
            }
        }
        finally
        {
            file?.Dispose();
        }
    }

    /// <summary>Writes a batch's lines to their files in order, flushes, completes its flush requests and empties it.</summary>
    private static void WriteBatch(Batch batch, ArrayBufferWriter<byte> scratch, ref FileStream? file, ref string? openPath, ref string? failedPath)
    {
        for (var i = 0; i < batch.Runs.Count; i++)
        {
            var (path, start, firstLine) = batch.Runs[i];
            var last = i + 1 == batch.Runs.Count;
            var end = last ? batch.Length : batch.Runs[i + 1].Start;
            var endLine = last ? batch.Lines.Count : batch.Runs[i + 1].FirstLine;
            try
            {
                if (!string.Equals(path, openPath, StringComparison.Ordinal))
                {
                    file?.Dispose();
                    file = null;
                    openPath = path;
                    file = Open(openPath, ref failedPath);
                }

                if (file is null)
                {
                    continue;
                }

                if (batch.Dropped > 0 && i == 0)
                {
                    file.Write(Encoding.UTF8.GetBytes($"cc-relay: {batch.Dropped} log line(s) dropped: the log file could not keep up{Environment.NewLine}"));
                }

                // the run's formatted lines, with its request lines formatted here, each where it was logged
                var from = start;
                for (var line = firstLine; line < endLine; line++)
                {
                    var at = batch.Lines.Position(line);
                    if (at > from || scratch.WrittenCount >= 64 * 1024)
                    {
                        file.Write(scratch.WrittenSpan);
                        scratch.ResetWrittenCount();
                        file.Write(batch.Bytes, from, at - from);
                        from = at;
                    }

                    batch.Lines.WriteJson(line, scratch);
                }

                file.Write(scratch.WrittenSpan);
                scratch.ResetWrittenCount();
                file.Write(batch.Bytes, from, end - from);
            }
            catch (IOException e)
            {
                scratch.ResetWrittenCount();
                Report(openPath!, e.Message);
                file?.Dispose();
                file = null;
            }
        }

        Flush(ref file, ref openPath);
        foreach (var flushed in batch.Flushes)
        {
            flushed.TrySetResult();
        }

        batch.Clear();
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

    /// <summary>
    /// Lines in the order they were logged, each run of them with the file it goes to: formatted UTF-8 lines in
    /// <see cref="Bytes"/>, request lines as their facts in <see cref="Lines"/>, each with its place among the bytes.
    /// </summary>
    private sealed class Batch
    {
        /// <summary>The most request lines a batch holds (their facts take ~250 bytes each, their strings more).</summary>
        private const int MaxLines = MaxBatchBytes / 256;

        public byte[] Bytes { get; private set; } = new byte[64 * 1024];

        public int Length { get; private set; }

        /// <summary>The request lines, each with the offset in <see cref="Bytes"/> it goes before.</summary>
        public RequestLineBuffer Lines { get; } = new();

        /// <summary>Where each run of lines for one path starts: in <see cref="Bytes"/>, and in <see cref="Lines"/>.</summary>
        public List<(string Path, int Start, int FirstLine)> Runs { get; } = [];

        /// <summary>Flush requests made before the batch was taken: completed once it is written.</summary>
        public List<TaskCompletionSource> Flushes { get; } = [];

        /// <summary>Lines that did not fit.</summary>
        public long Dropped { get; private set; }

        public bool IsEmpty => Length == 0 && Lines.Count == 0 && Flushes.Count == 0;

        /// <summary>Appends a formatted line; false (and counted) when the batch is full.</summary>
        public bool TryAppend(string path, ReadOnlySpan<byte> line)
        {
            if (Length + line.Length > MaxBatchBytes)
            {
                Dropped++;
                return false;
            }

            if (Length + line.Length > Bytes.Length)
            {
                var grown = new byte[Math.Min(MaxBatchBytes, Math.Max(Bytes.Length * 2, Length + line.Length))];
                Bytes.AsSpan(0, Length).CopyTo(grown);
                Bytes = grown;
            }

            StartRun(path);
            line.CopyTo(Bytes.AsSpan(Length));
            Length += line.Length;
            return true;
        }

        /// <summary>Appends a request line's facts; false (and counted) when the batch is full.</summary>
        public bool TryAppend(string path, RequestLine line, DateTime timestamp, string category, LogLevel level, int eventId)
        {
            if (Lines.Count >= MaxLines || Lines.CharCount > MaxBatchBytes / 2)
            {
                Dropped++;
                return false;
            }

            StartRun(path);
            Lines.Add(line, timestamp, category, level, eventId, position: Length);
            return true;
        }

        public void Clear()
        {
            Length = 0;
            Dropped = 0;
            Lines.Clear();
            Runs.Clear();
            Flushes.Clear();
            if (Bytes.Length > KeepBatchBytes)
            {
                Bytes = new byte[64 * 1024];
            }
        }

        private void StartRun(string path)
        {
            if (Runs.Count == 0 || !string.Equals(Runs[^1].Path, path, StringComparison.Ordinal))
            {
                Runs.Add((path, Length, Lines.Count));
            }
        }
    }

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
