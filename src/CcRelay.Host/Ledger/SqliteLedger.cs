using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Ledger;

/// <summary>
/// The usage ledger in an embedded SQLite file (<see cref="LedgerFile"/>), written off the request path by
/// <see cref="BatchedLedger{TRow}"/>: one transaction per batch into <c>ledger.db</c> (WAL).
/// Crash-loss bound: a killed relay loses the rows of the requests that ended since the last flush, at most one
/// flush interval of traffic (1 s by default); committed rows survive a process crash (WAL, <c>synchronous=NORMAL</c>;
/// a power loss may also lose the last commits before the next checkpoint).
/// NOTE: a write that fails (a full disk, a deleted or unwritable file) never fails a request: the batch is dropped
/// and counted, the failure is logged once and shown by <c>Status</c> (metrics, <c>/health</c>), and the
/// next flush opens the file again — a deleted file is created anew.
/// </summary>
public sealed class SqliteLedger : BatchedLedger<LedgerRow>
{
    private readonly Lock _writerLock = new();
    private LedgerWriter? _writer;

    /// <summary>Opens (or creates) the ledger at <paramref name="path"/> and starts its writer.</summary>
    public SqliteLedger(string path, TimeSpan flushInterval, int queueCapacity, TimeProvider timeProvider, ILogger logger)
        : base(path, flushInterval, queueCapacity, retryFailedBatch: false, timeProvider, logger)
    {
        Path = path;

        // opened now, so that a ledger that cannot be opened is reported at start (the relay still starts)
        lock (_writerLock)
        {
            try
            {
                _writer = new LedgerWriter(path);
            }
            catch (Exception e) when (Describe(e) is not null)
            {
                Fail(e);
            }
        }

        Start();
    }

    /// <summary>The ledger file.</summary>
    public string Path { get; }

    /// <inheritdoc/>
    public override IReadOnlyList<UsageGroup> Query(UsageQuery query)
    {
        using var connection = LedgerFile.OpenForReading(Path);
        return LedgerFile.Query(connection, query);
    }

    /// <inheritdoc/>
    protected override LedgerRow Queued(LedgerRow row) => row;

    /// <inheritdoc/>
    protected override ValueTask WriteAsync(IReadOnlyList<LedgerRow> batch)
    {
        lock (_writerLock)
        {
            try
            {
                // a file deleted under the relay would swallow rows into an unlinked inode: open it anew
                if (_writer is not null && !File.Exists(Path))
                {
                    _writer.Dispose();
                    _writer = null;
                }

                _writer ??= new LedgerWriter(Path);
                _writer.Insert(batch);
                return ValueTask.CompletedTask;
            }
            catch (Exception e) when (Describe(e) is not null)
            {
                _writer?.Dispose();
                _writer = null;
                throw;
            }
        }
    }

    /// <inheritdoc/>
    protected override IReadOnlyList<SpendBucket> ReadSpendSince(DateTimeOffset since)
    {
        using var connection = LedgerFile.OpenForReading(Path);
        return LedgerFile.SpendSince(connection, since);
    }

    /// <inheritdoc/>
    protected override string? Describe(Exception e) => e switch
    {
        SqliteException sqlite => $"SQLite error {sqlite.SqliteErrorCode}: {sqlite.Message}",
        IOException or UnauthorizedAccessException or InvalidOperationException => e.Message,
        _ => null,
    };

    /// <inheritdoc/>
    protected override ValueTask CloseAsync()
    {
        lock (_writerLock)
        {
            _writer?.Dispose();
            _writer = null;
        }

        return ValueTask.CompletedTask;
    }
}
