using CcRelay.Host.Http;

namespace CcRelay.Host.Ledger;

/// <summary>The ledger row of a finished request's record.</summary>
internal static class LedgerRows
{
    public static LedgerRow Of(RequestRecord record)
    {
        var usage = record.Usage;
        return new LedgerRow
        {
            EndedAt = new DateTimeOffset(DateTime.SpecifyKind(record.EndedAt, DateTimeKind.Utc)),
            RequestId = record.RequestId,
            Client = record.Client,
            ClientKeyId = record.ClientKeyId,
            Provider = record.Provider,
            KeyId = record.KeyId,
            Model = record.Model,
            ResponseModel = record.ResponseModel,
            Stage = record.Stage == "-" ? null : record.Stage,
            Status = record.Status,
            Result = record.Result,
            InputTokens = usage?.InputTokens,
            OutputTokens = usage?.OutputTokens,
            CacheReadTokens = usage?.CacheReadTokens,
            CacheWriteTokens = usage?.CacheWriteTokens,
            CostUsd = record.CostUsd,
            LatencyMs = Math.Round(record.Elapsed.TotalMilliseconds, 2),
        };
    }
}
