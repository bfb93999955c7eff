using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Ledger;

/// <summary>
/// The usage ledger in an embedded SQLite file, written off the request path.
/// <code>
///   request ends ──Append(row): TryWrite, never blocks──► bounded channel (ledger.queue_capacity)
///   [writer task, every ledger.flush_interval_ms] ──► one transaction per batch ──► ledger.db (WAL)
///   FlushAsync / DisposeAsync ──► the same, at once
/// </code>
/// Crash-loss bound: a killed relay loses the rows of the requests that ended since the last flush, at most one
/// flush interval of traffic (1 s by default); committed rows survive a process crash (WAL, <c>synchronous=NORMAL</c>;
/// a power loss may also lose the last commits before the next checkpoint).
/// NOTE: a write that fails (a full disk, a deleted or unwritable file) never fails a request: the batch is dropped
/// and counted, the failure is logged once and shown by <see cref="Status"/> (metrics, <c>/health</c>), and the
/// next flush opens the file again — a deleted file is created anew.
/// </summary>
public sealed class SqliteLedger : IBatchedLedger
{
    /// <summary>The most rows one transaction writes.</summary>
    private const int BatchSize = 1_000;

    private readonly Channel<LedgerRow> _queue;
    private readonly ConcurrentQueue<TaskCompletionSource> _flushWaiters = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly Lock _connectionLock = new();
    private readonly TimeSpan _interval;
    private readonly int _capacity;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _writer;
    private SqliteConnection? _connection;
    private long _written;
    private long _dropped;
    private long _droppedWhileFailing;
    private volatile string? _problem;
    private int _queueFullReported;

    /// <summary>Opens (or creates) the ledger at <paramref name="path"/> and starts its writer.</summary>
    public SqliteLedger(string path, TimeSpan flushInterval, int queueCapacity, TimeProvider timeProvider, ILogger logger)
    {
        Path = path;
        _interval = flushInterval;
        _capacity = queueCapacity;
        _timeProvider = timeProvider;
        _logger = logger;
        _queue = Channel.CreateBounded<LedgerRow>(new BoundedChannelOptions(queueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait, // TryWrite then fails instead of waiting: Append counts the drop
        });

        // opened now, so that a ledger that cannot be opened is reported at start (the relay still starts)
        lock (_connectionLock)
        {
            EnsureOpen();
        }

        LedgerLog.Opened(logger, path, (int)flushInterval.TotalMilliseconds);
        _writer = Task.Run(RunAsync);
    }

    /// <summary>The ledger file.</summary>
    public string Path { get; }

    /// <summary>Called after every batch with the rows written and dropped (metrics).</summary>
    public Action<long, long>? OnBatch { get; set; }

    /// <inheritdoc/>
    public LedgerStatus Status => new(true, _problem is null, Path, Interlocked.Read(ref _written), Interlocked.Read(ref _dropped), _problem);

    /// <inheritdoc/>
    public bool Append(LedgerRow row)
    {
        if (_queue.Writer.TryWrite(row))
        {
            return true;
        }

        Interlocked.Increment(ref _dropped);
        if (Interlocked.Exchange(ref _queueFullReported, 1) == 0)
        {
            LedgerLog.QueueFull(_logger, _capacity);
        }

        OnBatch?.Invoke(0, 1);
        return false;
    }

    /// <inheritdoc/>
    public Task FlushAsync(CancellationToken cancellationToken = default)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _flushWaiters.Enqueue(done);
        _wake.Release();
        return done.Task.WaitAsync(cancellationToken);
    }

    /// <inheritdoc/>
    public IReadOnlyList<UsageGroup> Query(UsageQuery query)
    {
        using var connection = LedgerFile.OpenForReading(Path);
        return LedgerFile.Query(connection, query);
    }

    /// <inheritdoc/>
    public IReadOnlyList<SpendBucket> SpendSince(DateTimeOffset since)
    {
        try
        {
            using var connection = LedgerFile.OpenForReading(Path);
            return LedgerFile.SpendSince(connection, since);
        }
        catch (Exception e) when (e is SqliteException or IOException or UnauthorizedAccessException)
        {
            Fail(e);
            return [];
        }
    }

    /// <summary>Writes what is queued and closes the file.</summary>
    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _stop.CancelAsync();
        try
        {
            await _writer.WaitAsync(TimeSpan.FromSeconds(10), _timeProvider);
        }
        catch (TimeoutException)
        {
            // the disk hangs: what is still queued is lost, as a crash would lose it
        }

        lock (_connectionLock)
        {
            _connection?.Dispose();
            _connection = null;
        }

        _stop.Dispose();
        _wake.Dispose();
    }

    private async Task RunAsync()
    {
        var stopping = _stop.Token;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                // a flush request ends the wait early; otherwise a batch every interval
                await _wake.WaitAsync(_interval, stopping);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            WriteQueued();
        }

        WriteQueued();
    }

    /// <summary>Writes every queued row, then releases the flushes that asked before.</summary>
    private void WriteQueued()
    {
        var waiters = new List<TaskCompletionSource>();
        while (_flushWaiters.TryDequeue(out var waiter))
        {
            waiters.Add(waiter);
        }

        var batch = new List<LedgerRow>(Math.Min(BatchSize, _queue.Reader.Count + 1));
        while (true)
        {
            batch.Clear();
            while (batch.Count < BatchSize && _queue.Reader.TryRead(out var row))
            {
                batch.Add(row);
            }

            if (batch.Count == 0)
            {
                break;
            }

            Write(batch);
        }

        Volatile.Write(ref _queueFullReported, 0);
        foreach (var waiter in waiters)
        {
            waiter.TrySetResult();
        }
    }

    private void Write(List<LedgerRow> batch)
    {
        lock (_connectionLock)
        {
            try
            {
                // a file deleted under the relay would swallow rows into an unlinked inode: open it anew
                if (_connection is not null && !File.Exists(Path))
                {
                    _connection.Dispose();
                    _connection = null;
                }

                EnsureOpen();
                if (_connection is null)
                {
                    Dropped(batch.Count);
                    return;
                }

                LedgerFile.Insert(_connection, batch);
                Interlocked.Add(ref _written, batch.Count);
                if (_problem is not null)
                {
                    _problem = null;
                    LedgerLog.Recovered(_logger, Path, Interlocked.Exchange(ref _droppedWhileFailing, 0));
                }

                OnBatch?.Invoke(batch.Count, 0);
            }
            catch (Exception e) when (e is SqliteException or IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                Fail(e);
                _connection?.Dispose();
                _connection = null;
                Dropped(batch.Count);
            }
        }
    }

    private void Dropped(int count)
    {
        Interlocked.Add(ref _dropped, count);
        Interlocked.Add(ref _droppedWhileFailing, count);
        OnBatch?.Invoke(0, count);
    }

    /// <summary>Opens the file when it is not open; a failure is recorded, not thrown. Holds <see cref="_connectionLock"/>.</summary>
    private void EnsureOpen()
    {
        if (_connection is not null)
        {
            return;
        }

        try
        {
            _connection = LedgerFile.OpenForWriting(Path);
        }
        catch (Exception e) when (e is SqliteException or IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            Fail(e);
        }
    }

    private void Fail(Exception e)
    {
        var problem = e is SqliteException sqlite ? $"SQLite error {sqlite.SqliteErrorCode}: {sqlite.Message}" : e.Message;
        if (_problem is null)
        {
            LedgerLog.Failing(_logger, Path, problem);
        }

        _problem = problem;
    }
}
