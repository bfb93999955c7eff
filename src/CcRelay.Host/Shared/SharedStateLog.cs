using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Shared;

/// <summary>The shared store's log events: one per change of the link (a lost database is reported once, not per retry).</summary>
internal static partial class SharedStateLog
{
    [LoggerMessage(EventId = 700, Level = LogLevel.Information, Message = "shared state on PostgreSQL: connected as relay {relay} (schema version {version}, was {found}; flushed every {flush_ms} ms)")]
    public static partial void Connected(ILogger logger, string relay, int version, int found, int flush_ms);

    [LoggerMessage(EventId = 701, Level = LogLevel.Error, Message = "shared state: PostgreSQL unreachable ({problem}); this relay runs on its local state and reconnects by itself")]
    public static partial void Lost(ILogger logger, string problem);

    [LoggerMessage(EventId = 702, Level = LogLevel.Information, Message = "shared state: PostgreSQL reachable again after {seconds} s; pending spend and events published, state re-read")]
    public static partial void Recovered(ILogger logger, long seconds);

    [LoggerMessage(EventId = 703, Level = LogLevel.Information, Message = "shared state: {event} from relay {relay}")]
    public static partial void Applied(ILogger logger, string @event, string relay);

    [LoggerMessage(EventId = 704, Level = LogLevel.Warning, Message = "shared state: ignored a message: {problem}")]
    public static partial void Ignored(ILogger logger, string problem);

    [LoggerMessage(EventId = 705, Level = LogLevel.Warning, Message = "shared state: the event queue is full ({capacity}); events are dropped until PostgreSQL is reachable (the tables are re-read then)")]
    public static partial void QueueFull(ILogger logger, int capacity);

    [LoggerMessage(EventId = 707, Level = LogLevel.Error, Message = "shared state: unexpected failure; reconnecting")]
    public static partial void Unexpected(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 708, Level = LogLevel.Warning, Message = "shared state: this relay's providers, clients or ledger.time_zone differ from relays {relays} (fingerprint {fingerprint}; {which}): keys, limits and budgets are not the same everywhere")]
    public static partial void ConfigDiffers(ILogger logger, string fingerprint, string relays, string which);

    [LoggerMessage(EventId = 709, Level = LogLevel.Information, Message = "shared state: every live relay has this relay's providers, clients and ledger.time_zone again (fingerprint {fingerprint})")]
    public static partial void ConfigAgrees(ILogger logger, string fingerprint);

    [LoggerMessage(EventId = 710, Level = LogLevel.Warning, Message = "shared state: PostgreSQL's clock is {skew_ms} ms off this relay's (more than {max_ms} ms): shared deadlines (circuits, key cooldowns, pins) are shifted by as much")]
    public static partial void ClockSkewed(ILogger logger, long skew_ms, long max_ms);

    [LoggerMessage(EventId = 706, Level = LogLevel.Information, Message = "shared state: relay {relay} stopped publishing; its reservations are released here")]
    public static partial void RelayGone(ILogger logger, string relay);

    [LoggerMessage(EventId = 711, Level = LogLevel.Information, Message = "shared state: ccrelay_spend compacted through seq {through}: {read} rows folded into {kept} ({ms} ms)")]
    public static partial void Compacted(ILogger logger, long through, int read, int kept, long ms);

    [LoggerMessage(EventId = 712, Level = LogLevel.Warning, Message = "shared state: a compaction run of ccrelay_spend failed ({problem}); nothing was changed, it is tried again every minute")]
    public static partial void CompactionFailed(ILogger logger, string problem);

    [LoggerMessage(EventId = 713, Level = LogLevel.Information, Message = "shared state: compaction of ccrelay_spend runs again")]
    public static partial void CompactionRecovered(ILogger logger);

    [LoggerMessage(EventId = 714, Level = LogLevel.Warning, Message = "shared state: this relay had read ccrelay_spend to seq {last_seq}, and a compaction run has folded rows to seq {through} while it was away: its view of the other relays' spend may be off; restart it to rebuild the view")]
    public static partial void RejoinedBehind(ILogger logger, long last_seq, long through);
}
