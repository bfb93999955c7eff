using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Logging;

/// <summary>Every log line the relay writes (host and CLI), source-generated. Event ids live here, in one table.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1, EventName = "RequestCompleted", Level = LogLevel.Information,
        Message = "{request_id} {method} {path} -> {status} provider={provider} model={model} upstream_model={upstream_model} stream={stream} result={result} duration_ms={duration_ms} ttfb_ms={ttfb_ms} bytes_in={bytes_in} bytes_out={bytes_out}")]
    public static partial void RequestCompleted(
        ILogger logger,
        string request_id,
        string method,
        string path,
        int status,
        string provider,
        string model,
        string upstream_model,
        bool stream,
        string result,
        double duration_ms,
        double ttfb_ms,
        long bytes_in,
        long bytes_out);

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
}
