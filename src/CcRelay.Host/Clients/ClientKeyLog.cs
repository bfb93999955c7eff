using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Clients;

/// <summary>The log events of the runtime client keys (310–319).</summary>
internal static partial class ClientKeyLog
{
    [LoggerMessage(EventId = 310, Level = LogLevel.Information, Message = "client key {change}: client {client}, key id {key_id}, by {actor}")]
    public static partial void Changed(ILogger logger, string change, string client, string key_id, string actor);

    [LoggerMessage(EventId = 311, Level = LogLevel.Error, Message = "the client key store cannot be read ({problem}); the runtime client-key changes stay as they were")]
    public static partial void RefreshFailed(ILogger logger, string problem);

    [LoggerMessage(EventId = 312, Level = LogLevel.Information, Message = "{count} runtime client-key changes applied over the config's clients")]
    public static partial void Loaded(ILogger logger, int count);
}
