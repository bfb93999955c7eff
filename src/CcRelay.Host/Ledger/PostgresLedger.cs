using System.Collections.Concurrent;
using System.Threading.Channels;
using CcRelay.Host.Shared;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace CcRelay.Host.Ledger;

/// <summary>
/// The usage ledger in the shared PostgreSQL store (<c>state.postgres</c> with <c>ledger.enabled</c>,
/// docs/scale-out.md): every relay's rows in one table, <c>ccrelay_requests</c>, so that <c>cc-relay usage</c> and
/// <c>GetUsage</c> on any relay answer for all of them.
/// <code>
///   request ends ──Append(row): TryWrite, never blocks──► bounded channel (ledger.queue_capacity)
///   [writer task, every ledger.flush_interval_ms] ──► batches of ≤ 1,000 rows, one INSERT … unnest each
///   the store away ──► the batch in hand is kept and retried every interval; new rows wait in the channel
/// </code>
/// Unlike the SQLite file, a store that is briefly away loses no row: what is queued waits, up to
/// <c>ledger.queue_capacity</c> rows (10,000 by default) plus the one batch in hand (1,000); only beyond that are rows
/// dropped, counted (<c>ccrelay_ledger_rows{outcome="dropped"}</c>) and reported. A retried batch that had in fact
/// committed adds nothing (each row carries its own id). A crash loses what was queued: at most one flush interval of
/// traffic while the store is there, everything waiting while it is not.
/// NOTE: nothing here is awaited by a request; a lost store is reported (log once, <c>/health</c>'s ledger line,
/// <c>ccrelay_ledger_healthy</c> 0) and never fails one.
/// </summary>
public sealed class PostgresLedger : IBatchedLedger
{
    /// <summary>What the log names instead of a path (never the connection string).</summary>
    public const string Where = "PostgreSQL (state.postgres, table ccrelay_requests)";

    /// <summary>The most rows one statement writes.</summary>
    private const int BatchSize = 1_000;

    private readonly Channel<(Guid Id, LedgerRow Row)> _queue;
    private readonly ConcurrentQueue<TaskCompletionSource> _flushWaiters = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly List<(Guid Id, LedgerRow Row)> _inHand = new(BatchSize);
    private readonly NpgsqlDataSource _pool;
    private readonly TimeSpan _interval;
    private readonly int _capacity;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _writer;
    private bool _migrated;
    private long _written;
    private long _dropped;
    private volatile string? _problem;
    private int _queueFullReported;
    private int _inHandCount;

    /// <summary>A ledger writing to <paramref name="connectionString"/>'s database as relay <paramref name="relay"/>; starts its writer (nothing is awaited here).</summary>
    public PostgresLedger(string connectionString, string relay, TimeSpan flushInterval, int queueCapacity, TimeProvider timeProvider, ILogger logger)
    {
        Relay = relay;
        _interval = flushInterval;
        _capacity = queueCapacity;
        _timeProvider = timeProvider;
        _logger = logger;
        _pool = NpgsqlDataSource.Create(PostgresLedgerTable.Normalise(connectionString));
        _queue = Channel.CreateBounded<(Guid, LedgerRow)>(new BoundedChannelOptions(queueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait, // TryWrite then fails instead of waiting: Append counts the drop
        });
        LedgerLog.Opened(logger, Where, (int)flushInterval.TotalMilliseconds);
        _writer = Task.Run(RunAsync);
    }

    /// <summary>The relay id written with each row.</summary>
    public string Relay { get; }

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
                Where,
                Interlocked.Read(ref _written),
                Interlocked.Read(ref _dropped),
                problem is null ? null : $"{problem} ({Waiting} rows waiting, at most {_capacity + BatchSize} kept)");
        }
    }

    /// <inheritdoc/>
    public bool Append(LedgerRow row)
    {
        if (_queue.Writer.TryWrite((Guid.NewGuid(), row)))
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
        using var connection = _pool.OpenConnection();
        return PostgresLedgerTable.Query(connection, query);
    }

    /// <inheritdoc/>
    public IReadOnlyList<SpendBucket> SpendSince(DateTimeOffset since)
    {
        try
        {
            using var connection = _pool.OpenConnection();
            return PostgresLedgerTable.SpendSince(connection, since);
        }
        catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or InvalidOperationException)
        {
            Fail(e);
            return [];
        }
    }

    /// <summary>Writes what is queued (bounded in time) and closes the pool.</summary>
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

        await _pool.DisposeAsync();
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

            await WriteQueuedAsync(CancellationToken.None);
        }

        // on the way out: one last attempt, bounded by the connect and command timeouts
        await WriteQueuedAsync(CancellationToken.None);
    }

    /// <summary>Writes the batch in hand and every queued row while the store takes them, then releases the flushes that asked before.</summary>
    private async Task WriteQueuedAsync(CancellationToken cancellationToken)
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
            if (_inHand.Count == 0 || !await WriteAsync(cancellationToken))
            {
                break;
            }
        }

        Volatile.Write(ref _queueFullReported, 0);
        foreach (var waiter in waiters)
        {
            waiter.TrySetResult();
        }
    }

    /// <summary>Writes the batch in hand; false (the batch kept for the next attempt) when the store cannot take it.</summary>
    private async Task<bool> WriteAsync(CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await _pool.OpenConnectionAsync(cancellationToken);
            if (!_migrated)
            {
                // the shared state's migrations: the ledger may be written before the shared state has connected
                await SharedSchema.MigrateAsync(connection, cancellationToken);
                _migrated = true;
            }

            await PostgresLedgerTable.InsertAsync(connection, Relay, _inHand, cancellationToken);
            var count = _inHand.Count;
            _inHand.Clear();
            Volatile.Write(ref _inHandCount, 0);
            Interlocked.Add(ref _written, count);
            if (_problem is not null)
            {
                _problem = null;
                LedgerLog.Recovered(_logger, Where, 0);
            }

            OnBatch?.Invoke(count, 0);
            return true;
        }
        catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or InvalidOperationException or System.Net.Sockets.SocketException)
        {
            Fail(e);
            return false;
        }
    }

    private void Fail(Exception e)
    {
        // NOTE: Npgsql's messages never carry the password; the connection string is never quoted
        var problem = e switch
        {
            PostgresException pg => $"PostgreSQL {pg.SqlState}: {pg.MessageText}",
            NpgsqlException { InnerException: { } inner } => "PostgreSQL unreachable: " + inner.Message,
            _ => e.Message,
        };
        if (_problem is null)
        {
            LedgerLog.Failing(_logger, Where, problem);
        }

        _problem = problem;
    }
}
