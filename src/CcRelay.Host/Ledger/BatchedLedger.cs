using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Ledger;

/// <summary>
/// The usage ledger's writer, whatever the store: a bounded queue the request's accounting appends to without ever
/// blocking, and a writer task that hands the store batches. A store (<see cref="SqliteLedger"/>,
/// <see cref="PostgresLedger"/>) keeps only its SQL: <see cref="WriteAsync"/> writes one batch or throws.
/// <code>
///   request ends ──Append(row): TryWrite, never blocks──► bounded channel (ledger.queue_capacity)
///   [writer task, every ledger.flush_interval_ms] ──► batches of ≤ 1,000 rows ──► WriteAsync (the store's SQL)
///   FlushAsync / DisposeAsync ──► the same, at once
///   a batch the store refuses ──► dropped and counted, or (retryFailedBatch) kept and tried again every interval
/// </code>
/// A failure is logged once, when the store goes from writing to failing, and shown by <see cref="Status"/> (metrics,
/// <c>/health</c>) until a batch is written again. Nothing here is awaited by a request and nothing here fails one.
/// </summary>
/// <typeparam name="TRow">What the queue holds for a row: the row itself, or the row with what the store adds to it
/// once (<see cref="Queued"/>: the PostgreSQL store's row id, kept across retries).</typeparam>
public abstract class BatchedLedger<TRow> : IBatchedLedger
{
    /// <summary>The most rows one batch holds.</summary>
    private const int BatchSize = 1_000;

    private readonly Channel<TRow> _queue;
    private readonly ConcurrentQueue<TaskCompletionSource> _flushWaiters = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly List<TRow> _inHand = new(BatchSize);
    private readonly string _where;
    private readonly TimeSpan _interval;
    private readonly int _capacity;
    private readonly bool _retryFailedBatch;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private Task _writer = Task.CompletedTask;
    private long _written;
    private long _dropped;
    private long _droppedWhileFailing;
    private volatile string? _problem;
    private int _queueFullReported;
    private int _inHandCount;

    /// <summary>
    /// A writer for the store at <paramref name="where"/> (a path, or a name that holds no secret). With
    /// <paramref name="retryFailedBatch"/> a batch the store refuses is kept and the rest wait in the queue; without, it
    /// is dropped. The derived store calls <see cref="Start"/> once it is ready.
    /// </summary>
    protected BatchedLedger(string where, TimeSpan flushInterval, int queueCapacity, bool retryFailedBatch, TimeProvider timeProvider, ILogger logger)
    {
        _where = where;
        _interval = flushInterval;
        _capacity = queueCapacity;
        _retryFailedBatch = retryFailedBatch;
        _timeProvider = timeProvider;
        _logger = logger;
        _queue = Channel.CreateBounded<TRow>(new BoundedChannelOptions(queueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait, // TryWrite then fails instead of waiting: Append counts the drop
        });
    }

    /// <inheritdoc/>
    public Action<long, long>? OnBatch { get; set; }

    /// <summary>Rows waiting to be written (queued and in hand).</summary>
    public int Waiting => _queue.Reader.Count + Volatile.Read(ref _inHandCount);

    /// <inheritdoc/>
    public LedgerStatus Status
    {
        get
        {
            var problem = _problem;
            return new(
                true,
                problem is null,
                _where,
                Interlocked.Read(ref _written),
                Interlocked.Read(ref _dropped),
                problem is null || !_retryFailedBatch ? problem : $"{problem} ({Waiting} rows waiting, at most {_capacity + BatchSize} kept)");
        }
    }

    /// <inheritdoc/>
    public bool Append(LedgerRow row)
    {
        if (_queue.Writer.TryWrite(Queued(row)))
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
    public abstract IReadOnlyList<UsageGroup> Query(UsageQuery query);

    /// <inheritdoc/>
    public IReadOnlyList<SpendBucket> SpendSince(DateTimeOffset since)
    {
        try
        {
            return ReadSpendSince(since);
        }
        catch (Exception e) when (Describe(e) is not null)
        {
            Fail(e);
            return [];
        }
    }

    /// <summary>Writes what is queued (bounded in time), then closes the store.</summary>
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
            // the store hangs: what is still queued is lost, as a crash would lose it
        }

        await CloseAsync();
        _stop.Dispose();
        _wake.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>What the queue holds for <paramref name="row"/> (called once per row, on the appending thread).</summary>
    protected abstract TRow Queued(LedgerRow row);

    /// <summary>Writes one batch, all of it or nothing; throws when the store cannot take it.</summary>
    protected abstract ValueTask WriteAsync(IReadOnlyList<TRow> batch);

    /// <summary>The spend <see cref="SpendSince"/> answers; may throw what <see cref="Describe"/> describes.</summary>
    protected abstract IReadOnlyList<SpendBucket> ReadSpendSince(DateTimeOffset since);

    /// <summary>What a store failure says (no secret in it); null when <paramref name="e"/> is no store failure.</summary>
    protected abstract string? Describe(Exception e);

    /// <summary>Closes the store, after the last write.</summary>
    protected abstract ValueTask CloseAsync();

    /// <summary>Starts the writer (the derived store's constructor calls it last).</summary>
    protected void Start()
    {
        LedgerLog.Opened(_logger, _where, (int)_interval.TotalMilliseconds);
        _writer = Task.Run(RunAsync);
    }

    /// <summary>Records a store failure: logged when the store was writing until now, shown by <see cref="Status"/>.</summary>
    protected void Fail(Exception e)
    {
        var problem = Describe(e) ?? e.Message;
        if (_problem is null)
        {
            LedgerLog.Failing(_logger, _where, problem);
        }

        _problem = problem;
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

            await WriteQueuedAsync();
        }

        // on the way out: one last attempt
        await WriteQueuedAsync();
    }

    /// <summary>Writes the batch in hand and every queued row while the store takes them, then releases the flushes that asked before.</summary>
    private async Task WriteQueuedAsync()
    {
        var waiters = new List<TaskCompletionSource>();
        while (_flushWaiters.TryDequeue(out var waiter))
        {
            waiters.Add(waiter);
        }

        while (true)
        {
            while (_inHand.Count < BatchSize && _queue.Reader.TryRead(out var row))
            {
                _inHand.Add(row);
            }

            Volatile.Write(ref _inHandCount, _inHand.Count);
            if (_inHand.Count == 0 || (!await TryWriteAsync() && _retryFailedBatch))
            {
                break;
            }

            _inHand.Clear();
        }

        Volatile.Write(ref _queueFullReported, 0);
        foreach (var waiter in waiters)
        {
            waiter.TrySetResult();
        }
    }

    /// <summary>Writes the batch in hand; false when the store refused it (then dropped and counted unless retried).</summary>
    private async Task<bool> TryWriteAsync()
    {
        var count = _inHand.Count;
        try
        {
            await WriteAsync(_inHand);
        }
        catch (Exception e) when (Describe(e) is not null)
        {
            Fail(e);
            if (!_retryFailedBatch)
            {
                Interlocked.Add(ref _dropped, count);
                Interlocked.Add(ref _droppedWhileFailing, count);
                OnBatch?.Invoke(0, count);
            }

            return false;
        }

        Interlocked.Add(ref _written, count);
        if (_problem is not null)
        {
            _problem = null;
            LedgerLog.Recovered(_logger, _where, Interlocked.Exchange(ref _droppedWhileFailing, 0));
        }

        OnBatch?.Invoke(count, 0);
        return true;
    }
}
