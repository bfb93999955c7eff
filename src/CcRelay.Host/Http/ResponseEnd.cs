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
/// NOTE: it does not yield the processor to the client. The send that completes the answer wakes the client; Linux
/// often wakes it on the sender's processor, where it waits for the accounting that runs next on the relay's socket
/// thread. A <see cref="Thread.Yield"/> after the send let it run first: at 200 requests a second the relay's added
/// latency p50 fell 9 %, and relay-on's lead over relay-off shrank (bench/RESULTS.md).
/// But a yield gives the thread's time slice away: after every answer, throughput fell to a fifth under load; only
/// when no other request was in flight, still −4 % with another process busy on the machine.
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
