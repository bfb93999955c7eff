using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Http;

/// <summary>
/// Ends a relayed response as soon as its last byte is written, before the request's accounting (usage, key pool,
/// metrics, the request line, a debug body log) runs.
/// <code>
///   last write ──► CompleteAsync (chunked: the last chunk; HTTP/2: END_STREAM) ──► accounting
/// </code>
/// Without it, a chunked body (every SSE stream, a JSON answer without Content-Length) and every HTTP/2 response
/// end only when the request delegate returns: the client would wait for the accounting to see the end of its
/// answer (with <c>log_response_body</c> on, for the redaction of the whole captured body).
/// NOTE: it does not yield the processor to the client. A <see cref="Thread.Yield"/> here let a client on the same
/// machine read its answer before the accounting (the relay's added latency p50 −9 % at 200 requests a second),
/// but under load it gave the socket thread's time slice away once per request: throughput fell to a fifth.
/// </summary>
internal static class ResponseEnd
{
    /// <summary>Completes the response; a response Kestrel refuses to complete is left to it.</summary>
    public static async ValueTask CompleteAsync(HttpResponse response)
    {
        try
        {
            await response.CompleteAsync();
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            // the client is gone or the response cannot end cleanly: Kestrel aborts it when the request ends
        }
    }
}
