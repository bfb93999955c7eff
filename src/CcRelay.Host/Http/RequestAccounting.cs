using System.Collections.Concurrent;
using CcRelay.Host.Endpoints;
using CcRelay.Host.Logging;
using CcRelay.Host.Metrics;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Http;

/// <summary>
/// The accounting of finished requests, done off their threads: each request's counters, duration and usage
/// metrics and its request line. The request's thread only queues its record; a thread of this class's own
/// accounts for the queue in batches, and a scrape of <c>/metrics</c> or the relay's shutdown accounts for
/// whatever is still queued first.
/// <code>
///   request ends ──Add(record): queue (lock-free; no wake-up while requests flow)──► queue
///   [accounting thread, every Interval while requests flow] ──► RecordUsage, RecordRequest ──► request line (Log)
///   scrape (PrometheusExposition.OnScrape), Dispose ──Drain()──► the same, at once
/// </code>
/// NOTE: why not on the request's thread: the client that just got its answer is woken onto the processor the
/// relay's thread is still running on, and waits for whatever that thread does next. With the metrics and the
/// line on it, cold at a few hundred requests a second, that was ~4–5 % of the relay's added latency
/// (bench/RESULTS.md, "The accounting off the request's thread"). Queued, the request's thread does two
/// interlocked operations, and the accounting runs in batches, on warm caches. The request line keeps the time
/// its request ended (<see cref="RequestRecord.EndedAt"/>), whenever it is written.
/// NOTE: the thread sleeps once an interval passes with nothing queued; the request that finds it asleep wakes it. It
/// waits on a <see cref="ManualResetEventSlim"/> that never spins (spin count 0): <see cref="SemaphoreSlim"/>'s
/// <c>Wait</c> spins up to 140 rounds, most of them <c>sched_yield</c>, each time the thread goes back to waiting —
/// right after a request ended, while the client's next request was being relayed (perf: 8.5 context switches of the
/// accounting thread inside each request's time to first event; bench/RESULTS.md, "Time to first event"). A relay under steady traffic never sleeps it, so its requests never pay for a wake-up.
/// </summary>
internal sealed class RequestAccounting : IDisposable
{
    /// <summary>How long the accounting thread gathers finished requests before it accounts for them.</summary>
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromMilliseconds(20);

    /// <summary>The most records accounted under one hold of the drain lock (a scrape waits for at most this many).</summary>
    private const int ChunkSize = 256;

    private readonly ConcurrentQueue<RequestRecord> _queue = new();
    private readonly RelayMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TimeSpan _interval;
    private readonly ManualResetEventSlim _wake = new(initialState: false, spinCount: 0);
    private readonly Lock _drain = new();
    private readonly Thread? _thread;

    /// <summary>1 while the thread sleeps until a request wakes it (it waits on <see cref="_wake"/>).</summary>
    private int _asleep;
    private volatile bool _disposed;

    /// <summary>
    /// Starts the accounting thread. The line is logged by <paramref name="logger"/> (the relay's
    /// <see cref="MessagesEndpoint"/> category). With an <paramref name="interval"/> of
    /// <see cref="Timeout.InfiniteTimeSpan"/> no thread runs and only <see cref="Drain"/> accounts (tests).
    /// </summary>
    public RequestAccounting(RelayMetrics metrics, ILogger<MessagesEndpoint> logger, TimeSpan? interval = null)
    {
        _metrics = metrics;
        _logger = logger;
        _interval = interval ?? DefaultInterval;
        if (_interval != Timeout.InfiniteTimeSpan)
        {
            // a thread of its own: a thread-pool loop would wake a pool worker per batch
            _thread = new Thread(Run) { IsBackground = true, Name = "cc-relay accounting" };
            _thread.Start();
        }
    }

    /// <summary>The usage ledger each accounted request is appended to (<see cref="Ledger.NullLedger"/>: none).</summary>
    public Ledger.IUsageLedger Ledger { get; init; } = CcRelay.Host.Ledger.NullLedger.Instance;

    /// <summary>The client metrics, when clients are configured (null: none recorded).</summary>
    public Func<Clients.ClientMetrics?> ClientMetrics { get; init; } = static () => null;

    /// <summary>Records not yet accounted for.</summary>
    public int Pending => _queue.Count;

    /// <summary>Whether the thread sleeps until the next request ends (tests).</summary>
    internal bool Asleep => Volatile.Read(ref _asleep) == 1;

    /// <summary>
    /// Queues a finished request's record (its <see cref="RequestRecord.Elapsed"/> and
    /// <see cref="RequestRecord.EndedAt"/> set). The record must not change afterwards. A request that ends
    /// after <see cref="Dispose"/> (one the host's shutdown timeout gave up on) is accounted for at once.
    /// </summary>
    public void Add(RequestRecord record)
    {
        _queue.Enqueue(record); // a full fence: the reads below cannot move before it
        if (_disposed)
        {
            Drain();
        }
        else if (Volatile.Read(ref _asleep) == 1 && Interlocked.Exchange(ref _asleep, 0) == 1)
        {
            _wake.Set();
        }
    }

    /// <summary>Accounts, before it returns, for every record added before it was called.</summary>
    public void Drain() => AccountAll();

    /// <summary>Stops the thread and accounts for what is still queued.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _wake.Set();
        _ = _thread?.Join(TimeSpan.FromSeconds(5));
        Drain();
    }

    private void Run()
    {
        while (!_disposed)
        {
            // gather for an interval (a wake-up now is Dispose), then account for the batch
            if (_wake.Wait(_interval))
            {
                _wake.Reset();
                continue;
            }

            if (AccountAll() == 0)
            {
                // nothing came in a whole interval: sleep until a request ends. Announced before the queue is
                // looked at again, so a record added meanwhile either is seen here or wakes the thread.
                Interlocked.Exchange(ref _asleep, 1);
                if (!_queue.IsEmpty && Interlocked.Exchange(ref _asleep, 0) == 1)
                {
                    continue; // took the announcement back before any request saw it
                }

                // a request's wake-up (or, if one took the announcement back first, its release), or Dispose; only
                // the one request that took the announcement sets the event, so no wake-up is lost by the reset
                _ = _wake.Wait(Timeout.InfiniteTimeSpan);
                _wake.Reset();
            }
        }
    }

    /// <summary>Accounts for records until the queue is empty; returns how many.</summary>
    private int AccountAll()
    {
        var accounted = 0;
        while (!_queue.IsEmpty)
        {
            accounted += AccountChunk();
        }

        return accounted;
    }

    /// <summary>Takes up to <see cref="ChunkSize"/> records and accounts for them; returns how many.</summary>
    private int AccountChunk()
    {
        // the lock is held while the records are accounted: a Drain that finds the queue empty is not done
        // before the records another thread has taken are accounted for
        lock (_drain)
        {
            var count = 0;
            while (count < ChunkSize && _queue.TryDequeue(out var record))
            {
                count++;
                Account(record);
            }

            return count;
        }
    }

    private void Account(RequestRecord record)
    {
        try
        {
            if (record.Usage is { } usage)
            {
                // the model the answer named, else the one sent: the model its cost was computed for
                _metrics.RecordUsage(record.Provider, record.EffectiveModel, usage, record.CostUsd);
            }

            _metrics.RecordRequest(record.ProviderLabel, record.EffectiveModel, record.Status, record.Stream, record.Elapsed);
            if (record.Stage != "-")
            {
                _metrics.RecordStage(record.Stage, record.StageReason, record.ProviderLabel);
            }

            if (record.Local is { } local)
            {
                _metrics.RecordLocalAnswer(record.ProviderLabel, local);
            }

            ClientMetrics()?.Finished(record.Client, record.Result, record.Usage, record.CostUsd);

            // a queue write that never blocks: a full or failing ledger drops the row and says so, the request is done
            Ledger.Append(CcRelay.Host.Ledger.LedgerRows.Of(record));
            Log.RequestCompleted(_logger, record);
        }
        catch (Exception e)
        {
            // a logger provider that throws (an embedding application's) must not stop the accounting of the rest
            try
            {
                Log.AccountingFailed(_logger, record.RequestId, e);
            }
            catch (Exception)
            {
                // the same provider again: nothing left to report to
            }
        }
    }
}
