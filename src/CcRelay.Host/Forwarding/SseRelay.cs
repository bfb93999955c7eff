using System.Buffers;
using System.IO.Pipelines;
using CcRelay.Core;
using CcRelay.Host.Http;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// Relays an upstream SSE body to the client event by event, in one loop.
/// <code>
///   upstream ──zero-byte read──► rent ──read──► frame ──complete events──► write+flush ──► client
///                                                  └── partial tail stays in the buffer ──┘
/// </code>
/// Idle: the loop waits with a zero-byte read, so an idle stream pins no buffer (YARP's lesson). Only then does
///     it rent a buffer, and it gives the buffer back as soon as no partial event is left in it.
/// Framing: it frames the bytes with <see cref="Sse.findEventEnd"/> and writes only complete events: all the
///     events one read completed are written and flushed together; no event ever waits for a later one. A
///     partial event stays in the buffer until its blank line arrives.
/// Backpressure: the write and its flush are awaited before the next read, so a slow client slows the upstream read
///     rather than growing memory.
/// End: at the end the loop says how its read stopped and how its writes went; Core's <see cref="SseEnd.classify"/>
///     decides from that and what was relayed how the stream ended, and which SSE <c>error</c> event (if any) to
///     append: a truncated stream must never look complete (Claude Code takes a clean EOF as an empty answer).
/// Completion: when the stream's last word reached the client, the response is ended there (<see cref="ResponseEnd"/>):
///     the client sees the end of its stream before the relay's accounting runs.
/// Plugins: with stream-event plugins (<see cref="StreamEventPlugins"/>), each complete event goes through them and
///     is written and flushed on its own, before the next one is given to them; a plugin step failing under
///     <c>on_error: fail</c> stops the loop (<see cref="StreamRead.PluginFailed"/>), and Core's verdict appends the
///     SSE <c>error</c> event: the stream never ends cleanly.
/// NOTE: one loop, not a reader task feeding a writer through a channel: at 1,000 open streams the channel,
/// the second task and its linked cancellation cost ~1.5 KB per stream, the reader's buffers were handed
/// to another thread (so the pool missed and allocated ~1 KB per event), and every event paid a thread hop.
/// </summary>
internal static class SseRelay
{
    // Anthropic events are 100–500 bytes; the buffer doubles for bigger ones. Small matters: every open stream
    // receives its event at about the same moment, so the per-read buffer is paid once per stream at the peak.
    private const int ReadBufferSize = 1024;

    /// <summary>
    /// Starts the response (buffering off, <c>X-Accel-Buffering: no</c>, headers flushed at once) and relays the
    /// stream; returns how it ended and what its usage tap read (usage, model, stop reason,
    /// <c>message_stop</c>, errors). Written bytes are added to <paramref name="record"/>. With
    /// <paramref name="capture"/> (debug logging only), the first events are also copied there, up to its limit.
    /// </summary>
    public static async Task<(StreamEnd End, string Reason, UsageTap Tap)> RelayAsync(
        Stream upstream,
        HttpContext context,
        RequestRecord record,
        CancellationToken cancellationToken,
        BodyCapture? capture = null,
        StreamEventPlugins? plugins = null)
    {
        var response = context.Response;
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        response.Headers["X-Accel-Buffering"] = "no";

        var tap = UsageTap.Empty;
        var read = StreamRead.Eof;
        var write = StreamWrite.Delivered;
        byte[]? buffer = null;
        var length = 0;
        try
        {
            // NOTE: StartAsync only buffers the status line and headers (no token: a cancelled one would leave the
            // response unstarted, and the client an empty 200). When the first events are in hand already (the peek
            // read them: the usual case), the headers go out with them in the loop's first write, one send and one
            // client read for both; otherwise they are flushed now, so the client has them as soon as the
            // upstream's arrived (x-cc-relay-overhead-ms included), not with the first event. A flush cancelled by
            // the token makes Kestrel abort the connection, so a cut stream never ends cleanly.
            await response.StartAsync(CancellationToken.None);
            if (upstream is not PrefixedStream { StartsWithEvent: true })
            {
                write = Written(await response.BodyWriter.FlushAsync(cancellationToken));
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            write = StreamWrite.Cancelled; // the client's abort or the relay's time limit
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException)
        {
            write = StreamWrite.Failed; // the client is gone (Kestrel's ConnectionAbortedException is an OperationCanceledException)
        }

        try
        {
            while (write.IsDelivered)
            {
                int count;
                try
                {
                    if (buffer is null)
                    {
                        // idle: wait for data before pinning a buffer
                        _ = await upstream.ReadAsync(Memory<byte>.Empty, cancellationToken);
                        buffer = ArrayPool<byte>.Shared.Rent(ReadBufferSize);
                    }
                    else if (length == buffer.Length)
                    {
                        // an event larger than the buffer: grow it
                        var bigger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                        buffer.AsSpan(0, length).CopyTo(bigger);
                        ArrayPool<byte>.Shared.Return(buffer);
                        buffer = bigger;
                    }

                    count = await upstream.ReadAsync(buffer.AsMemory(length), cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    read = StreamRead.Cancelled;
                    break;
                }
                catch (Exception e) when (e is IOException or HttpRequestException or ObjectDisposedException)
                {
                    read = StreamRead.NewFailed(e.Message);
                    break;
                }

                if (count == 0)
                {
                    break;
                }

                length += count;

                // framing: find the end of the last complete event in the buffer
                var complete = 0;
                if (plugins is not null)
                {
                    // :: Step 8 with plugins: each event through them, then written and flushed on its own
                    var pluginFailed = false;
                    while (write.IsDelivered)
                    {
                        var eventEnd = Sse.findEventEnd(buffer.AsSpan(complete, length - complete));
                        if (eventEnd < 0)
                        {
                            break;
                        }

                        EventApplied applied;
                        try
                        {
                            applied = await plugins.ApplyAsync(buffer.AsSpan(complete, eventEnd).ToArray(), cancellationToken);
                        }
                        catch (OperationCanceledException)
                        {
                            read = StreamRead.Cancelled;
                            pluginFailed = true;
                            break;
                        }

                        if (applied.FailedStep is { } step)
                        {
                            // the event that failed is not sent; nothing after it is read
                            read = StreamRead.NewPluginFailed(step, applied.Reason ?? "");
                            pluginFailed = true;
                            break;
                        }

                        complete += eventEnd;
                        tap = tap.Feed(applied.Frame);
                        capture?.Append(applied.Frame);
                        try
                        {
                            write = Written(await response.BodyWriter.WriteAsync(applied.Frame, cancellationToken));
                            record.BytesOut += applied.Frame.Length;
                        }
                        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                        {
                            write = StreamWrite.Cancelled;
                        }
                        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException)
                        {
                            write = StreamWrite.Failed;
                        }
                    }

                    if (pluginFailed || !write.IsDelivered)
                    {
                        length -= complete; // what is left was not relayed
                        break;
                    }
                }
                else
                {
                    while (true)
                    {
                        var eventEnd = Sse.findEventEnd(buffer.AsSpan(complete, length - complete));
                        if (eventEnd < 0)
                        {
                            break;
                        }

                        // the usage tap reads the frame in place (Sse.frameKind first; JSON only for the few
                        // events that carry usage); it neither copies nor delays the client's bytes
                        tap = tap.Feed(buffer.AsSpan(complete, eventEnd));
                        capture?.Append(buffer.AsSpan(complete, eventEnd));
                        complete += eventEnd;
                    }

                    if (complete == 0)
                    {
                        continue;
                    }

                    // :: Step 8: relay — write and flush the complete events  Client ◄── Relay
                    try
                    {
                        write = Written(await response.BodyWriter.WriteAsync(buffer.AsMemory(0, complete), cancellationToken));
                        record.BytesOut += complete;
                        if (!write.IsDelivered)
                        {
                            break;
                        }
                    }
                    catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                    {
                        write = StreamWrite.Cancelled; // the client's abort or the relay's time limit
                        break;
                    }
                    catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException)
                    {
                        write = StreamWrite.Failed; // the client is gone, whether or not RequestAborted says so yet
                        break;
                    }
                }

                // keep the partial tail at the start of the buffer; with none left, give the buffer back
                length -= complete;
                if (length == 0)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = null;
                }
                else
                {
                    buffer.AsSpan(complete, length).CopyTo(buffer);
                }
            }
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        // end: Core decides how it ended, and what to append
        var partial = length > 0;
        var verdict = SseEnd.classify(Facts(write));
        var last = write;
        if (verdict.ErrorEvent is { } errorEvent)
        {
            try
            {
                last = Written(await response.BodyWriter.WriteAsync(errorEvent.Value, CancellationToken.None));
                record.BytesOut += errorEvent.Value.Length;
                if (!last.IsDelivered)
                {
                    verdict = SseEnd.classify(Facts(last)); // the client left before the error event reached it
                }
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException)
            {
                // the client left before the error event reached it
                last = StreamWrite.Failed;
                verdict = SseEnd.classify(Facts(last));
            }
        }

        // completion: the stream's last word (its end, or the appended error event) reached the client: end the response
        // now, so the client sees the end of the stream before the accounting runs. A cancelled or failed write
        // leaves the connection to Kestrel, which aborts it: a cut stream never ends cleanly.
        if (last.IsDelivered && !context.RequestAborted.IsCancellationRequested)
        {
            await ResponseEnd.CompleteAsync(response);
        }

        return (verdict.End, verdict.Reason, tap);

        StreamFacts Facts(StreamWrite written) =>
            new(tap.SawMessageStop, tap.ErrorType is not null, partial, read, context.RequestAborted.IsCancellationRequested, written);
    }

    /// <summary>What a flush says of the client: a completed or cancelled flush means its side of the connection is done.</summary>
    private static StreamWrite Written(FlushResult flushed) =>
        flushed.IsCompleted || flushed.IsCanceled ? StreamWrite.Failed : StreamWrite.Delivered;
}
