using System.Threading.Channels;
using CcRelay.Host.Endpoints;
using CcRelay.Host.Logging;
using CcRelay.Host.Metrics;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Observability;

/// <summary>
/// The accounting of finished requests, done off their threads: each request's counters, duration and usage
/// metrics and its request line. The request's thread only queues its record on a channel; a loop of this class
/// accounts for the queue in batches, and a scrape of <c>/metrics</c> or the relay's shutdown accounts for
/// whatever is still queued first.
/// <code>
///   request ends ──Add(record): Channel.TryWrite (wakes the loop only when it waits for a first record)──► channel
///   [loop: a record came ─► gather for Interval ─► account for the batch] ──► RecordUsage, RecordRequest ──► request line (Log)
///   scrape (PrometheusExposition.OnScrape), Dispose ──Drain()──► the same, at once
/// </code>
/// NOTE: why not on the request's thread: the client that just got its answer is woken onto the processor the
/// relay's thread is still running on, and waits for whatever that thread does next. With the metrics and the
/// line on it, cold at a few hundred requests a second, that was ~4–5 % of the relay's added latency
/// (bench/RESULTS.md, "The accounting off the request's thread"). Queued, the request's thread does one channel
/// write, and the accounting runs in batches, on warm caches; under steady traffic the loop finds records waiting
/// after each batch and no request pays for a wake-up. The request line keeps the time its request ended
/// (<see cref="RequestRecord.EndedAt"/>), whenever it is written.
/// </summary>
internal sealed class RequestAccounting : IDisposable
{
    /// <summary>How long the loop gathers finished requests before it accounts for them.</summary>
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromMilliseconds(20);

    /// <summary>The most records accounted under one hold of the drain lock (a scrape waits for at most this many).</summary>
    private const int ChunkSize = 256;

    private readonly Channel<RequestRecord> _queue = Channel.CreateUnbounded<RequestRecord>();
    private readonly RelayMetrics _metrics;
    private readonly ILogger _logger;
    private readonly Lock _drain = new();
    private readonly CancellationTokenSource _stopping = new();
    private volatile bool _asleep;

    /// <summary>
    /// Starts the accounting loop. The line is logged by <paramref name="logger"/> (the relay's
    /// <see cref="MessagesEndpoint"/> category). With an <paramref name="interval"/> of
    /// <see cref="Timeout.InfiniteTimeSpan"/> no loop runs and only <see cref="Drain"/> accounts (tests).
    /// </summary>
    public RequestAccounting(RelayMetrics metrics, ILogger<MessagesEndpoint> logger, TimeSpan? interval = null, TimeProvider? timeProvider = null)
    {
        _metrics = metrics;
        _logger = logger;
        var gather = interval ?? DefaultInterval;
        if (gather != Timeout.InfiniteTimeSpan)
        {
            _ = RunAsync(gather, timeProvider ?? TimeProvider.System);
        }
    }

    /// <summary>The usage ledger each accounted request is appended to (<see cref="Ledger.NullLedger"/>: none).</summary>
    public Ledger.IUsageLedger Ledger { get; init; } = CcRelay.Host.Ledger.NullLedger.Instance;

    /// <summary>The client metrics, when clients are configured (null: none recorded).</summary>
    public Func<Clients.ClientMetrics?> ClientMetrics { get; init; } = static () => null;

    /// <summary>Records not yet accounted for.</summary>
    public int Pending => _queue.Reader.Count;

    /// <summary>Whether the loop waits for the next request to end (tests).</summary>
    internal bool Asleep => _asleep;

    /// <summary>
    /// Queues a finished request's record (its <see cref="RequestRecord.Elapsed"/> and
    /// <see cref="RequestRecord.EndedAt"/> set). The record must not change afterwards. A request that ends
    /// after <see cref="Dispose"/> (one the host's shutdown timeout gave up on) is accounted for at once.
    /// </summary>
    public void Add(RequestRecord record)
    {
        if (!_queue.Writer.TryWrite(record))
        {
            lock (_drain)
            {
                Account(record);
            }
        }
    }

    /// <summary>Accounts, before it returns, for every record added before it was called.</summary>
    public void Drain()
    {
        // the lock is held while a chunk is accounted: a Drain that finds the channel empty is not done before
        // the records another thread has taken are accounted for
        var more = true;
        while (more)
        {
            lock (_drain)
            {
                var count = 0;
                while (count < ChunkSize && _queue.Reader.TryRead(out var record))
                {
                    count++;
                    Account(record);
                }

                more = count == ChunkSize;
            }
        }
    }

    /// <summary>Stops the loop and accounts for what is still queued.</summary>
    public void Dispose()
    {
        if (_queue.Writer.TryComplete())
        {
            _stopping.Cancel();
            Drain();
        }
    }

    private async Task RunAsync(TimeSpan interval, TimeProvider timeProvider)
    {
        try
        {
            // a thread-pool loop: it waits for a first record, gathers for an interval, accounts for the batch
            _asleep = true;
            while (await _queue.Reader.WaitToReadAsync().ConfigureAwait(false))
            {
                _asleep = false;
                await Task.Delay(interval, timeProvider, _stopping.Token).ConfigureAwait(false);
                Drain();
                _asleep = _queue.Reader.Count == 0;
            }
        }
        catch (OperationCanceledException)
        {
            // Dispose: it drains what is left
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
