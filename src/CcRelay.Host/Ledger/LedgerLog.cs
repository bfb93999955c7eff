using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Ledger;

/// <summary>The ledger's log events (one per change of state: a failing disk is reported once, not per batch).</summary>
internal static partial class LedgerLog
{
    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "usage ledger at {path} (flushed every {flush_ms} ms)")]
    public static partial void Opened(ILogger logger, string path, int flush_ms);

    [LoggerMessage(EventId = 301, Level = LogLevel.Error, Message = "usage ledger at {path} cannot be written: {problem}; requests go on, their rows are dropped until it can")]
    public static partial void Failing(ILogger logger, string path, string problem);

    [LoggerMessage(EventId = 302, Level = LogLevel.Information, Message = "usage ledger at {path} is written again ({dropped} rows dropped meanwhile)")]
    public static partial void Recovered(ILogger logger, string path, long dropped);

    [LoggerMessage(EventId = 303, Level = LogLevel.Warning, Message = "usage ledger queue is full ({capacity} rows): rows are dropped until the writer catches up")]
    public static partial void QueueFull(ILogger logger, int capacity);
}
