using System.Net.Http.Headers;
using CcRelay.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Logging;

/// <summary>
/// What <c>logging.debug_options</c> adds, and the inputs <see cref="Redact"/> needs. Every method is called
/// only after <see cref="IsOn"/>: nothing here runs (or allocates) unless the level is debug and the option is set.
/// </summary>
internal static class DebugLog
{
    /// <summary>Whether a debug option's output is written now.</summary>
    public static bool IsOn(ILogger logger, bool option) => option && logger.IsEnabled(Microsoft.Extensions.Logging.LogLevel.Debug);

    /// <summary>The secrets to scrub for one request: the config's, plus the caller's own credentials.</summary>
    public static IReadOnlyList<string> Secrets(HttpContext context, RelaySnapshot snapshot)
    {
        var secrets = new List<string>(snapshot.Secrets.Count + 2);
        if (Headers.tryBearer(context.Request.Headers.Authorization.ToString())?.Value is { } token)
        {
            secrets.Add(token);
        }

        var apiKey = context.Request.Headers["x-api-key"].ToString();
        if (apiKey.Length > 0)
        {
            secrets.Add(apiKey);
        }

        secrets.AddRange(snapshot.Secrets);
        return secrets;
    }

    /// <summary>The headers of an outgoing request (content headers included), in order.</summary>
    public static IEnumerable<Tuple<string, string>> Pairs(HttpRequestMessage request) =>
        Pairs(request.Headers).Concat(request.Content is null ? [] : Pairs(request.Content.Headers));

    /// <summary>The headers of an upstream response (content headers included), in order.</summary>
    public static IEnumerable<Tuple<string, string>> Pairs(HttpResponseMessage response) =>
        Pairs(response.Headers).Concat(Pairs(response.Content.Headers));

    private static IEnumerable<Tuple<string, string>> Pairs(HttpHeaders headers) =>
        headers.NonValidated.Select(h => Tuple.Create(h.Key, h.Value.ToString()));
}
