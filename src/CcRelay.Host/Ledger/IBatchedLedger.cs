namespace CcRelay.Host.Ledger;

/// <summary>A ledger that writes in batches and reports each one (rows written, rows dropped) for the metrics.</summary>
public interface IBatchedLedger : IUsageLedger
{
    /// <summary>Called after every batch with the rows written and dropped.</summary>
    Action<long, long>? OnBatch { get; set; }
}
