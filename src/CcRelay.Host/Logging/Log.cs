using CcRelay.Host.Http;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Logging;

/// <summary>Every log line the relay writes (host and CLI), source-generated but for the request line. Event ids live here, in one table.</summary>
internal static partial class Log
{
    /// <summary>The request line's event (id 1): dashboards, tests and the JSON formatter find the line by it.</summary>
    public static readonly EventId RequestCompletedEvent = new(1, "RequestCompleted");

    /// <summary>
    /// The one line per request. Field names are a contract (dashboards and tests read them): see
    /// <c>docs/observability.md</c>. Tokens and cost are null when unknown, never zero.
    /// NOTE: the only line not written by a <c>[LoggerMessage]</c> method: its JSON line is stamped with the time its
    /// request ended, which a generated state could carry only as a 26th field. <see cref="RequestLine"/> is the same
    /// fields and template, readable by name like a generated state, plus that time.
    /// </summary>
    public static void RequestCompleted(ILogger logger, RequestRecord record)
    {
        if (logger.IsEnabled(LogLevel.Information))
        {
            logger.Log(LogLevel.Information, RequestCompletedEvent, new RequestLine(record), null, RequestLine.Format);
        }
    }

    [LoggerMessage(EventId = 2, EventName = "UpstreamFailed", Level = LogLevel.Warning,
        Message = "{request_id} upstream {provider} failed before the response started: {reason}")]
    public static partial void UpstreamFailed(ILogger logger, string request_id, string provider, string reason);

    [LoggerMessage(EventId = 3, EventName = "StreamBroken", Level = LogLevel.Warning,
        Message = "{request_id} stream from {provider} broke after the response started; sent an SSE error event: {reason}")]
    public static partial void StreamBroken(ILogger logger, string request_id, string provider, string reason);

    [LoggerMessage(EventId = 4, EventName = "ConfigLoaded", Level = LogLevel.Information,
        Message = "configuration: {source}; {providers} enabled provider(s): {names}")]
    public static partial void ConfigLoaded(ILogger logger, string source, int providers, string names);

    [LoggerMessage(EventId = 5, EventName = "ConfigWarning", Level = LogLevel.Warning,
        Message = "config warning: {issue}")]
    public static partial void ConfigWarning(ILogger logger, string issue);

    [LoggerMessage(EventId = 6, EventName = "Listening", Level = LogLevel.Information,
        Message = "cc-relay {version} listening on {address} (client auth: {auth})")]
    public static partial void Listening(ILogger logger, string version, string address, string auth);

    [LoggerMessage(EventId = 7, EventName = "ConfigReloaded", Level = LogLevel.Information,
        Message = "config reloaded ({trigger}) from {path}: {changes}")]
    public static partial void ConfigReloaded(ILogger logger, string trigger, string path, string changes);

    [LoggerMessage(EventId = 13, EventName = "KeyAdded", Level = LogLevel.Information,
        Message = "key {keyId} added to provider {provider} ({trigger}); the config file is unchanged, so a reload drops it")]
    public static partial void KeyAdded(ILogger logger, string trigger, string provider, string keyId);

    [LoggerMessage(EventId = 14, EventName = "KeyRemoved", Level = LogLevel.Information,
        Message = "key {keyId} removed from provider {provider} ({trigger}); the config file is unchanged, so a reload brings it back")]
    public static partial void KeyRemoved(ILogger logger, string trigger, string provider, string keyId);

    [LoggerMessage(EventId = 8, EventName = "ConfigReloadRejected", Level = LogLevel.Error,
        Message = "config reload ({trigger}) rejected: {path} has {count} error(s); the running config stays in force")]
    public static partial void ConfigReloadRejected(ILogger logger, string trigger, string path, int count);

    [LoggerMessage(EventId = 9, EventName = "ConfigReloadError", Level = LogLevel.Error,
        Message = "config error: {issue}")]
    public static partial void ConfigReloadError(ILogger logger, string issue);

    [LoggerMessage(EventId = 10, EventName = "ConfigRestartRequired", Level = LogLevel.Warning,
        Message = "{setting} changed in the config file but needs a restart; the running value stays in force")]
    public static partial void ConfigRestartRequired(ILogger logger, string setting);

    [LoggerMessage(EventId = 11, EventName = "ConfigUnchanged", Level = LogLevel.Debug,
        Message = "config reload ({trigger}): {path} is unchanged")]
    public static partial void ConfigUnchanged(ILogger logger, string trigger, string path);

    [LoggerMessage(EventId = 12, EventName = "ConfigReloadFailed", Level = LogLevel.Error,
        Message = "config reload ({trigger}) failed: {reason}")]
    public static partial void ConfigReloadFailed(ILogger logger, string trigger, string reason);

    // ---- routing: breakers, key pools, failover, health checks (20–29) ----

    [LoggerMessage(EventId = 20, EventName = "BreakerOpened", Level = LogLevel.Warning,
        Message = "circuit of {provider} opened for {open_ms} ms")]
    public static partial void BreakerOpened(ILogger logger, string provider, double open_ms);

    [LoggerMessage(EventId = 21, EventName = "BreakerHalfOpened", Level = LogLevel.Information,
        Message = "circuit of {provider} half-open: probing")]
    public static partial void BreakerHalfOpened(ILogger logger, string provider);

    [LoggerMessage(EventId = 22, EventName = "BreakerClosed", Level = LogLevel.Information,
        Message = "circuit of {provider} closed")]
    public static partial void BreakerClosed(ILogger logger, string provider);

    [LoggerMessage(EventId = 23, EventName = "BreakerDisabled", Level = LogLevel.Warning,
        Message = "provider {provider} disabled by the operator")]
    public static partial void BreakerDisabled(ILogger logger, string provider);

    [LoggerMessage(EventId = 24, EventName = "BreakerEnabled", Level = LogLevel.Information,
        Message = "provider {provider} enabled by the operator")]
    public static partial void BreakerEnabled(ILogger logger, string provider);

    [LoggerMessage(EventId = 25, EventName = "KeyCooledDown", Level = LogLevel.Warning,
        Message = "key {key_id} of {provider} rate-limited; cooling down for {cooldown_ms} ms")]
    public static partial void KeyCooledDown(ILogger logger, string provider, string key_id, double cooldown_ms);

    [LoggerMessage(EventId = 26, EventName = "KeyRevoked", Level = LogLevel.Error,
        Message = "key {key_id} of {provider} was refused (401/403); set aside until the next config reload")]
    public static partial void KeyRevoked(ILogger logger, string provider, string key_id);

    [LoggerMessage(EventId = 27, EventName = "KeyLimitsLearned", Level = LogLevel.Debug,
        Message = "key {key_id} of {provider}: rate limits learned from upstream headers")]
    public static partial void KeyLimitsLearned(ILogger logger, string provider, string key_id);

    [LoggerMessage(EventId = 28, EventName = "AttemptFailed", Level = LogLevel.Information,
        Message = "{request_id} {attempt} failed: {reason}; trying again")]
    public static partial void AttemptFailed(ILogger logger, string request_id, string attempt, string reason);

    [LoggerMessage(EventId = 29, EventName = "HealthProbed", Level = LogLevel.Debug,
        Message = "health check of {provider} ({url}): succeeded={succeeded}")]
    public static partial void HealthProbed(ILogger logger, string provider, string url, bool succeeded);

    [LoggerMessage(EventId = 30, EventName = "AccountingFailed", Level = LogLevel.Error,
        Message = "{request_id} could not be accounted for (metrics, request line)")]
    public static partial void AccountingFailed(ILogger logger, string request_id, Exception exception);

    // ---- debug_options (level debug; every value already redacted by Core.Redact) ----

    [LoggerMessage(EventId = 31, EventName = "PipelineApplied", Level = LogLevel.Information,
        Message = "{request_id} {provider} transformers={transformers} skipped={skipped}")]
    public static partial void PipelineApplied(ILogger logger, string request_id, string provider, string transformers, string skipped);

    [LoggerMessage(EventId = 32, EventName = "UpstreamResent", Level = LogLevel.Information,
        Message = "upstream {authority} {how} a reused connection before answering: the request was sent again, once, on a new connection")]
    public static partial void UpstreamResent(ILogger logger, string authority, string how);

    [LoggerMessage(EventId = 40, EventName = "DebugRequestBody", Level = LogLevel.Debug,
        Message = "{request_id} request body ({bytes} bytes): {body}")]
    public static partial void DebugRequestBody(ILogger logger, string request_id, long bytes, string body);

    [LoggerMessage(EventId = 41, EventName = "DebugUpstreamRequest", Level = LogLevel.Debug,
        Message = "{request_id} upstream request to {provider}: POST {url} headers: {headers}")]
    public static partial void DebugUpstreamRequest(ILogger logger, string request_id, string provider, string url, string headers);

    [LoggerMessage(EventId = 42, EventName = "DebugResponseHeaders", Level = LogLevel.Debug,
        Message = "{request_id} upstream {provider} answered {status}; headers: {headers}")]
    public static partial void DebugResponseHeaders(ILogger logger, string request_id, string provider, int status, string headers);

    [LoggerMessage(EventId = 43, EventName = "DebugResponseBody", Level = LogLevel.Debug,
        Message = "{request_id} response body from {provider} ({bytes} bytes): {body}")]
    public static partial void DebugResponseBody(ILogger logger, string request_id, string provider, long bytes, string body);

    // ---- the edge: TLS, admission, audit (60–69) ----

    [LoggerMessage(EventId = 60, EventName = "CertificateReloaded", Level = LogLevel.Information,
        Message = "TLS certificate re-read from {path}: {subject}, valid until {not_after:o}")]
    public static partial void CertificateReloaded(ILogger logger, string path, string subject, DateTime not_after);

    [LoggerMessage(EventId = 61, EventName = "CertificateReloadFailed", Level = LogLevel.Error,
        Message = "TLS certificate at {path} changed but does not load ({reason}); the previous one stays in use")]
    public static partial void CertificateReloadFailed(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 62, EventName = "AuditWriteFailed", Level = LogLevel.Error,
        Message = "audit log write failed: {reason}")]
    public static partial void AuditWriteFailed(ILogger logger, string reason);
}
