using System.Buffers;
using System.Threading.Channels;
using CcRelay.Core;
using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// Relays an upstream SSE body to the client event by event.
/// <code>
///   upstream ──read──► [reader task] ──complete events──► Channel (bounded) ──► [writer] ──write+flush──► client
/// </code>
/// (1) The reader waits with a zero-byte read, so an idle stream pins no buffer (YARP's lesson).
/// (2) It frames the bytes with <see cref="Sse.findEventEnd"/> and hands over only complete events: all the
///     events one read completed travel as one segment and are flushed together; no event ever waits
///     for a later one. A partial event stays with the reader until its blank line arrives.
/// (3) The writer writes and flushes each segment at once. The channel is bounded, so a slow client
///     slows the upstream read rather than growing memory.
/// (4) At the end the reader says how its read stopped; Core's <see cref="SseEnd.classify"/> decides from
///     that and what was relayed how the stream ended, and which SSE <c>error</c> event (if any) the writer
///     appends: a truncated stream must never look complete (Claude Code takes a clean EOF as an empty answer).
/// </summary>
internal static class SseRelay
{
    // Anthropic events are 100–500 bytes; the buffer doubles for bigger ones. Small matters: every open stream
    // receives its event at about the same moment, so the per-read buffer is paid once per stream at the peak.
    private const int ReadBufferSize = 1024;
    private const int ChannelCapacity = 8;

    private readonly record struct Segment(byte[] Buffer, int Offset, int Count);

    private sealed class ReadState(BodyCapture? capture)
    {
        /// <summary>The usage tap, fed every framed event: usage, model, stop reason, <c>message_stop</c>, errors.</summary>
        public UsageTap Tap = UsageModule.emptyTap;

        /// <summary>Bytes of an unfinished event were left when the read stopped.</summary>
        public bool PartialEvent;

        public readonly BodyCapture? Capture = capture;
    }

    /// <summary>
    /// Relays the stream; returns how it ended and what its usage tap read. With <paramref name="capture"/>
    /// (debug logging only), the first events are also copied there, up to its limit.
    /// </summary>
    public static async Task<(StreamEnd End, string Reason, UsageTap Tap)> RelayAsync(
        Stream upstream,
        HttpResponse response,
        Func<bool> clientAborted,
        Action<long> onBytesWritten,
        CancellationToken cancellationToken,
        BodyCapture? capture = null)
    {
        var channel = Channel.CreateBounded<Segment>(new BoundedChannelOptions(ChannelCapacity)
        {
            SingleReader = true,
            SingleWriter = true,
            FullMode = BoundedChannelFullMode.Wait,
        });

        using var readerCancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var state = new ReadState(capture);
        // no Task.Run: the reader runs until its first await (the zero-byte read) and continues from there
        var reader = ReadAsync(upstream, channel.Writer, state, readerCancellation.Token);

        var writeFailed = false;
        try
        {
            // :: Step 8: write and flush each complete event  Client ◄── Relay
            await foreach (var segment in channel.Reader.ReadAllAsync(CancellationToken.None))
            {
                try
                {
                    if (!writeFailed)
                    {
                        await response.BodyWriter.WriteAsync(segment.Buffer.AsMemory(segment.Offset, segment.Count), cancellationToken);
                        onBytesWritten(segment.Count);
                    }
                }
                catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException)
                {
                    // the client is gone (or our time is up): stop the reader, keep draining to return buffers
                    writeFailed = true;
                    await readerCancellation.CancelAsync();
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(segment.Buffer);
                }
            }
        }
        finally
        {
            await ((Task)reader).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        // (4) Core decides how it ended, and what to append
        var read = reader.IsCompletedSuccessfully ? reader.Result : StreamRead.NewFailed(reader.Exception?.InnerException?.Message ?? "");
        var tap = state.Tap;
        var verdict = SseEnd.classify(Facts(clientAborted()));
        if (verdict.ErrorEvent is { } errorEvent)
        {
            try
            {
                await response.BodyWriter.WriteAsync(errorEvent.Value, CancellationToken.None);
                onBytesWritten(errorEvent.Value.Length);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException)
            {
                // the client left before the error event reached it
                verdict = SseEnd.classify(Facts(aborted: true));
            }
        }

        return (verdict.End, verdict.Reason, tap);

        StreamFacts Facts(bool aborted) =>
            new(tap.SawMessageStop, tap.ErrorType is not null, state.PartialEvent, read, aborted, writeFailed);
    }

    private static async Task<StreamRead> ReadAsync(
        Stream upstream,
        ChannelWriter<Segment> output,
        ReadState state,
        CancellationToken cancellationToken)
    {
        byte[]? buffer = null;
        var length = 0;
        try
        {
            while (true)
            {
                if (buffer is null)
                {
                    // (1) wait for data before pinning a buffer
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

                var read = await upstream.ReadAsync(buffer.AsMemory(length), cancellationToken);
                if (read == 0)
                {
                    return StreamRead.Eof;
                }

                length += read;

                // (2) frame: find the end of the last complete event in the buffer
                var complete = 0;
                while (true)
                {
                    var end = Sse.findEventEnd(buffer.AsSpan(complete, length - complete));
                    if (end < 0)
                    {
                        break;
                    }

                    // the usage tap reads the frame in place (Sse.frameKind first; JSON only for the few
                    // events that carry usage); it neither copies nor delays the client's bytes
                    state.Tap = UsageModule.feed(state.Tap, buffer.AsSpan(complete, end));
                    state.Capture?.Append(buffer.AsSpan(complete, end));

                    complete += end;
                }

                if (complete == 0)
                {
                    continue;
                }

                // hand the complete events over with the buffer; keep the partial tail in a fresh one
                var full = buffer;
                var tail = length - complete;
                buffer = null;
                length = 0;
                if (tail > 0)
                {
                    buffer = ArrayPool<byte>.Shared.Rent(Math.Max(ReadBufferSize, tail * 2));
                    full.AsSpan(complete, tail).CopyTo(buffer);
                    length = tail;
                }

                await output.WriteAsync(new Segment(full, 0, complete), CancellationToken.None);
            }
        }
        catch (OperationCanceledException)
        {
            return StreamRead.Cancelled;
        }
        catch (Exception e) when (e is IOException or HttpRequestException or ObjectDisposedException)
        {
            return StreamRead.NewFailed(e.Message);
        }
        finally
        {
            state.PartialEvent = length > 0;
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }

            output.TryComplete();
        }
    }
}
