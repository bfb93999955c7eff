using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Tests.Infrastructure;

/// <summary>An in-memory logger provider: every line the relay logs, with its structured fields.</summary>
public sealed class CapturedLogs : ILoggerProvider
{
    private readonly ConcurrentQueue<LogLine> _lines = new();
    private readonly object _gate = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public IReadOnlyList<LogLine> Lines => [.. _lines];

    /// <summary>
    /// Runs on the relay's own thread as each line is logged, before it is captured: lets a test act at an exact
    /// point of the relay's work (e.g. move its clock while it logs a request body).
    /// </summary>
    public Action<LogLine>? OnLogged { get; set; }

    /// <summary>
    /// Waits until at least <paramref name="count"/> lines match. The relay writes its per-request line after
    /// the response is complete, so a client can see the answer before the line exists.
    /// </summary>
    public async Task<IReadOnlyList<LogLine>> WaitForAsync(Func<LogLine, bool> match, int count = 1)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (true)
        {
            Task changed;
            lock (_gate)
            {
                changed = _changed.Task;
            }

            var lines = Lines.Where(match).ToList();
            if (lines.Count >= count)
            {
                return lines;
            }

            await changed.WaitAsync(timeout.Token);
        }
    }

    /// <summary>
    /// Makes the thread that logs the next line of <paramref name="eventId"/> wait there until
    /// <paramref name="released"/> completes (at most 5 s); the result says whether it did in time. A test releases
    /// it once its client has seen something, and so learns whether the client saw it before the relay logged the
    /// line. (The response body's debug line, 43, is logged on the request's thread after the body is relayed;
    /// the request line, 1, on the accounting thread.)
    /// </summary>
    public Task<bool> HoldLineUntil(int eventId, Task released)
    {
        var held = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        OnLogged = line =>
        {
            if (line.EventId == eventId)
            {
                held.TrySetResult(released.Wait(TimeSpan.FromSeconds(5)));
            }
        };
        return held.Task;
    }

    /// <summary>Waits for the per-request completion lines (event id 1).</summary>
    public Task<IReadOnlyList<LogLine>> RequestLinesAsync(int count = 1) => WaitForAsync(l => l.EventId == 1, count);

    private void Add(LogLine line)
    {
        OnLogged?.Invoke(line);
        _lines.Enqueue(line);
        TaskCompletionSource previous;
        lock (_gate)
        {
            previous = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        previous.SetResult();
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    public sealed record LogLine(string Category, LogLevel Level, int EventId, string Message, IReadOnlyDictionary<string, object?> Fields);

    private sealed class Logger(CapturedLogs owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var fields = state is IEnumerable<KeyValuePair<string, object?>> pairs
                ? pairs.ToDictionary(p => p.Key, p => p.Value)
                : new Dictionary<string, object?>();
            owner.Add(new LogLine(category, logLevel, eventId.Id, formatter(state, exception), fields));
        }
    }
}
