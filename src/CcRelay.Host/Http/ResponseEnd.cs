using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Http;

/// <summary>
/// Ends a relayed response as soon as its last byte is written, before the rest of the request's work on its thread
/// (the usage, the key pool's settlement, a debug body log, queuing the record for <see cref="RequestAccounting"/>).
/// <code>
///   last write ──► CompleteAsync (chunked: the last chunk; HTTP/2: END_STREAM) ──► usage, key pool, queue the record
/// </code>
/// Without it, a chunked body (every SSE stream, a JSON answer without Content-Length) and every HTTP/2 response
/// end only when the request delegate returns: the client would wait for that work to see the end of its answer
/// (with <c>log_response_body</c> on, for the redaction of the whole captured body).
/// NOTE: it does not yield the processor to the client. The send that completes the answer wakes the client; Linux
/// often wakes it on the sender's processor, where it waits for what runs next on the relay's socket thread (which
/// is why the metrics and the request line are not done there: RequestAccounting). A <see cref="Thread.Yield"/>
/// after the send let the client run first, but it gives the thread's time slice away: after every answer,
/// throughput fell to a fifth under load; only when no other request was in flight, still −4 % with another process
/// busy on the machine (bench/history/2026-11.md, "Where relay-on's added latency comes from").
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
