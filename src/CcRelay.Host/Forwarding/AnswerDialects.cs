using System.Net;
using System.Net.Http.Headers;
using CcRelay.Core;

namespace CcRelay.Host.Forwarding;

/// <summary>Puts a buffered answer into the Anthropic shape where its dialect says so (<c>Dialect.answer</c>).</summary>
internal static class AnswerDialects
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");

    public static async Task TranslateAsync(AnswerDialect dialect, HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken);
        var errorType = response.Headers.NonValidated.TryGetValues("x-amzn-ErrorType", out var values) ? values.ToString() : null;
        if (dialect.Answer((int)response.StatusCode, errorType, bytes) is not { } translated)
        {
            return;
        }

        // an error that says how long to wait in its body (Gemini's RetryInfo) cools the key as a retry-after would
        if (Dialect.retryAfterSeconds(dialect, (int)response.StatusCode, bytes) is { IsSome: true } wait && !response.Headers.Contains("retry-after"))
        {
            response.Headers.TryAddWithoutValidation("retry-after", wait.Value.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        var (status, body) = translated.Value;
        var original = response.Content;
        response.StatusCode = (HttpStatusCode)status;
        response.Content = new ByteArrayContent(body);
        response.Content.Headers.ContentType = Json;
        original.Dispose();
    }
}
