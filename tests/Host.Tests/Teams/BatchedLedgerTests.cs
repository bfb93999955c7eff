using CcRelay.Host.Ledger;
using Microsoft.Extensions.Logging.Abstractions;

namespace CcRelay.Host.Tests.Teams;

/// <summary>
/// The ledger's batched writer, shared by the SQLite and PostgreSQL stores, over a store whose writes the test
/// decides: the queue-full drop, a refused batch dropped or kept and retried, and the status that says so.
/// </summary>
public sealed class BatchedLedgerTests
{
    /// <summary>Long enough that only a flush writes (no timed batch during a test).</summary>
    private static readonly TimeSpan NoTimedFlush = TimeSpan.FromHours(1);

    private static LedgerRow Row(int i) => new() { EndedAt = DateTimeOffset.UnixEpoch, RequestId = "req_" + i };

    [Fact]
    public async Task AFullQueue_DropsTheRow_CountsAndReportsIt_WithoutBlocking()
    {
        await using var ledger = new FakeStore(retryFailedBatch: false, capacity: 2);
        var batches = new List<(long Written, long Dropped)>();
        ledger.OnBatch = (w, d) => batches.Add((w, d));

        Assert.True(ledger.Append(Row(1)));
        Assert.True(ledger.Append(Row(2)));
        Assert.False(ledger.Append(Row(3)));

        Assert.Equal(1, ledger.Status.Dropped);
        Assert.Equal([(0L, 1L)], batches);
        await ledger.FlushAsync();
        Assert.Equal(["req_1", "req_2"], ledger.Stored);
        Assert.Equal(2, ledger.Status.Written);
    }

    [Fact]
    public async Task ARefusedBatch_WithoutRetry_IsDroppedAndCounted_AndTheStoreRecovers()
    {
        await using var ledger = new FakeStore(retryFailedBatch: false, capacity: 10);
        ledger.Refuse = true;
        ledger.Append(Row(1));
        ledger.Append(Row(2));

        await ledger.FlushAsync();

        Assert.False(ledger.Status.Healthy);
        Assert.Equal("disk full", ledger.Status.Problem);
        Assert.Equal(2, ledger.Status.Dropped);
        Assert.Equal(0, ledger.Waiting);

        ledger.Refuse = false;
        ledger.Append(Row(3));
        await ledger.FlushAsync();
        Assert.True(ledger.Status.Healthy);
        Assert.Equal(["req_3"], ledger.Stored);
    }

    [Fact]
    public async Task ARefusedBatch_WithRetry_IsKept_SaysWhatWaits_AndIsWrittenOnceTheStoreIsBack()
    {
        await using var ledger = new FakeStore(retryFailedBatch: true, capacity: 10);
        ledger.Refuse = true;
        ledger.Append(Row(1));
        ledger.Append(Row(2));

        await ledger.FlushAsync();

        Assert.False(ledger.Status.Healthy);
        Assert.Equal("disk full (2 rows waiting, at most 1010 kept)", ledger.Status.Problem);
        Assert.Equal(0, ledger.Status.Dropped);
        Assert.Equal(2, ledger.Waiting);

        ledger.Refuse = false;
        ledger.Append(Row(3));
        await ledger.FlushAsync();
        Assert.True(ledger.Status.Healthy);
        Assert.Equal(["req_1", "req_2", "req_3"], ledger.Stored);
        Assert.Equal(3, ledger.Status.Written);
        Assert.Equal(0, ledger.Waiting);
    }

    private sealed class FakeStore : BatchedLedger<LedgerRow>
    {
        public FakeStore(bool retryFailedBatch, int capacity)
            : base("fake", NoTimedFlush, capacity, retryFailedBatch, TimeProvider.System, NullLogger.Instance) => Start();

        public volatile bool Refuse;

        public List<string> Stored { get; } = [];

        public override IReadOnlyList<UsageGroup> Query(UsageQuery query) => [];

        protected override LedgerRow Queued(LedgerRow row) => row;

        protected override ValueTask WriteAsync(IReadOnlyList<LedgerRow> batch)
        {
            if (Refuse)
            {
                throw new IOException("disk full");
            }

            Stored.AddRange(batch.Select(r => r.RequestId));
            return ValueTask.CompletedTask;
        }

        protected override IReadOnlyList<SpendBucket> ReadSpendSince(DateTimeOffset since) => [];

        protected override string? Describe(Exception e) => e is IOException ? e.Message : null;

        protected override ValueTask CloseAsync() => ValueTask.CompletedTask;
    }
}
