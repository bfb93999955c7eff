using System.Buffers.Text;
using System.Diagnostics;
using System.Net.Sockets;

namespace CcRelay.Bench.FakeUpstream;

/// <summary>One keep-alive HTTP/1.1 connection: parse request, answer, repeat until the peer closes.</summary>
/// <remarks>
/// Paths: <c>/v1/messages</c> (Anthropic), <c>/model/{id}/invoke</c> and <c>/model/{id}/invoke-with-response-stream</c>
/// (Bedrock: SigV4 checked, the stream as an AWS event stream), <c>…/publishers/anthropic/models/{m}:rawPredict</c> and
/// <c>:streamRawPredict</c> (Vertex: bearer token checked, the stream as Anthropic SSE).
/// Every answer waits first for the request's head delay, if its knobs ask for one (<see cref="HeadDelays"/>).
/// </remarks>
internal sealed class UpstreamConnection(Socket socket, CannedResponses responses, CloudChecks checks, HeadDelays delays, CancellationToken stop)
{
    private byte[] _buffer = new byte[64 * 1024];
    private int _start;
    private int _end;

    // "bench-head-wait-us: N\r\n" after a head delay (N: the time actually waited), else null
    private byte[]? _waitHeader;

    public async Task RunAsync()
    {
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var head = await ReadHeadAsync();
                if (head < 0)
                {
                    return;
                }

                var request = _buffer.AsMemory(_start, head);
                var (target, contentLength, chunked, close) = ParseHead(request.Span);
                var bedrock = target.StartsWith("/model/", StringComparison.Ordinal);
                var vertex = !bedrock && target.Contains("/publishers/anthropic/models/", StringComparison.Ordinal);
                var headText = bedrock || vertex ? System.Text.Encoding.ASCII.GetString(request.Span) : "";
                _start += head;

                byte[] body;
                int bodyLength;
                if (chunked)
                {
                    (body, bodyLength) = await ReadChunkedBodyAsync();
                }
                else
                {
                    await EnsureAsync(contentLength);
                    body = _buffer;
                    bodyLength = contentLength;
                }

                var bodyStart = chunked ? 0 : _start;
                var knobs = RequestKnobs.Parse(body.AsSpan(bodyStart, bodyLength));
                string? refused = null;
                if (bedrock)
                {
                    refused = checks.Bedrock(headText[..headText.IndexOf(' ', StringComparison.Ordinal)], target, headText, body.AsSpan(bodyStart, bodyLength));
                }
                else if (vertex)
                {
                    refused = checks.Vertex(headText, body.AsSpan(bodyStart, bodyLength));
                }
                if (!chunked)
                {
                    _start += contentLength;
                }

                if (_start == _end)
                {
                    _start = _end = 0;
                }

                // the realistic upstream: the answer's head leaves after head_min_us..head_max_us (knobs), seeded per lane
                var headDelay = delays.Next(HeadDelays.Lane(target), knobs);
                _waitHeader = null;
                if (headDelay > TimeSpan.Zero)
                {
                    var waitStart = Stopwatch.GetTimestamp();
                    await Task.Delay(headDelay, stop);
                    var waited = (long)Stopwatch.GetElapsedTime(waitStart).TotalMicroseconds;
                    _waitHeader = System.Text.Encoding.ASCII.GetBytes($"bench-head-wait-us: {waited}\r\n");
                }

                if (refused is not null)
                {
                    await socket.SendAsync(bedrock ? responses.InvalidSignature : responses.Unauthenticated, SocketFlags.None, stop);
                }
                else if (bedrock)
                {
                    if (target.EndsWith("/invoke-with-response-stream", StringComparison.Ordinal))
                    {
                        await StreamAsync(knobs, eventStream: true);
                    }
                    else if (target.EndsWith("/count-tokens", StringComparison.Ordinal))
                    {
                        await socket.SendAsync(responses.BedrockCountTokens, SocketFlags.None, stop);
                    }
                    else
                    {
                        await socket.SendAsync(target.EndsWith("/invoke", StringComparison.Ordinal) ? responses.Message : responses.NotFound, SocketFlags.None, stop);
                    }
                }
                else if (vertex)
                {
                    if (target.EndsWith(":streamRawPredict", StringComparison.Ordinal) && knobs.Stream)
                    {
                        await StreamAsync(knobs, eventStream: false);
                    }
                    else if (target.Contains("count-tokens", StringComparison.Ordinal))
                    {
                        await socket.SendAsync(responses.CountTokens, SocketFlags.None, stop);
                    }
                    else
                    {
                        await socket.SendAsync(target.EndsWith(":rawPredict", StringComparison.Ordinal) ? responses.Message : responses.NotFound, SocketFlags.None, stop);
                    }
                }
                else if (target.StartsWith("/v1/messages/count_tokens", StringComparison.Ordinal))
                {
                    await socket.SendAsync(responses.CountTokens, SocketFlags.None, stop);
                }
                else if (!target.StartsWith("/v1/messages", StringComparison.Ordinal))
                {
                    await socket.SendAsync(responses.NotFound, SocketFlags.None, stop);
                }
                else if (knobs.Stream)
                {
                    await StreamAsync(knobs, eventStream: false);
                }
                else
                {
                    await socket.SendAsync(WithWaitHeader(responses.Message), SocketFlags.None, stop);
                }

                if (close)
                {
                    return;
                }
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException or IOException)
        {
            // Peer went away or we are stopping.
        }
        finally
        {
            socket.Dispose();
        }
    }

    /// <summary>
    /// The scripted stream, as SSE or (Bedrock) as event-stream frames. Event k leaves at t0 + k·interval; with
    /// <c>first_us</c> set, content_block_start leaves first_us after message_start (0: in the same write) and every
    /// later event interval after the one before.
    /// </summary>
    private async Task StreamAsync(RequestKnobs knobs, bool eventStream)
    {
        await socket.SendAsync(WithWaitHeader(eventStream ? responses.EventStreamHead : responses.SseHead), SocketFlags.None, stop);
        var chunk = new byte[4096];
        var events = SseScript.EventCount(knobs.Deltas);
        var t0 = Stopwatch.GetTimestamp();
        var intervalTicks = knobs.IntervalMicros * Stopwatch.Frequency / 1_000_000;
        var firstTicks = knobs.FirstMicros * Stopwatch.Frequency / 1_000_000;
        var lastSent = long.MinValue / 2;
        for (var seq = 0; seq < events; seq++)
        {
            // On schedule when possible, but never closer than half a gap to the previous event: if this
            // process was descheduled, catching up with back-to-back sends would let any proxy legitimately
            // deliver two events in one read, which the client would then count as coalesced.
            long scheduled, gap;
            if (knobs.FirstMicros < 0 || seq == 0)
            {
                (scheduled, gap) = (t0 + (seq * intervalTicks), intervalTicks);
            }
            else
            {
                (scheduled, gap) = seq == 1 ? (t0 + firstTicks, firstTicks) : (t0 + firstTicks + ((seq - 1) * intervalTicks), intervalTicks);
            }

            var due = Math.Max(scheduled, lastSent + (gap / 2));
            var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due);
            if (wait > TimeSpan.Zero)
            {
                // whole milliseconds, rounded up: Task.Delay truncates, and a wait under 1 ms would not wait at all
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Ceiling(wait.TotalMilliseconds)), stop);
            }

            lastSent = Stopwatch.GetTimestamp();
            var length = Write(chunk, seq, knobs.Deltas, lastSent, eventStream);
            if (seq == 0 && knobs.FirstMicros == 0 && events > 1)
            {
                // message_start and content_block_start together, in one write
                length += Write(chunk.AsSpan(length), ++seq, knobs.Deltas, lastSent, eventStream);
            }

            await socket.SendAsync(chunk.AsMemory(0, length), SocketFlags.None, stop);
        }

        await socket.SendAsync(CannedResponses.LastChunk.ToArray(), SocketFlags.None, stop);
    }

    /// <summary>
    /// The Anthropic answer's head (and body) with, after a head delay, <c>bench-head-wait-us</c>: the time the upstream
    /// waited before it, so a client can take the upstream's own wait out of the latency it measures (both proxies
    /// forward the header).
    /// </summary>
    private byte[] WithWaitHeader(byte[] response)
    {
        if (_waitHeader is null)
        {
            return response;
        }

        var statusLine = response.AsSpan().IndexOf("\r\n"u8) + 2;
        return [.. response.AsSpan(0, statusLine), .. _waitHeader, .. response.AsSpan(statusLine)];
    }

    private static int Write(Span<byte> buffer, int seq, int deltas, long timestamp, bool eventStream) =>
        eventStream ? SseScript.WriteBedrockChunk(buffer, seq, deltas, timestamp) : SseScript.WriteChunk(buffer, seq, deltas, timestamp);

    /// <summary>Reads until the buffer holds a complete request head; returns its length (incl. CRLFCRLF) or -1 on EOF.</summary>
    private async Task<int> ReadHeadAsync()
    {
        while (true)
        {
            var at = _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n\r\n"u8);
            if (at >= 0)
            {
                return at + 4;
            }

            if (!await FillAsync())
            {
                return -1;
            }
        }
    }

    private async Task EnsureAsync(int count)
    {
        while (_end - _start < count)
        {
            if (!await FillAsync())
            {
                throw new IOException("EOF inside body");
            }
        }
    }

    private async Task<bool> FillAsync()
    {
        if (_start > 0 && _end == _buffer.Length)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }

        if (_end == _buffer.Length)
        {
            Array.Resize(ref _buffer, _buffer.Length * 2);
        }

        var n = await socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, stop);
        _end += n;
        return n > 0;
    }

    private async Task<(byte[] Body, int Length)> ReadChunkedBodyAsync()
    {
        var body = new MemoryStream();
        while (true)
        {
            int line;
            while ((line = _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n"u8)) < 0)
            {
                if (!await FillAsync())
                {
                    throw new IOException("EOF inside chunk size");
                }
            }

            Utf8Parser.TryParse(_buffer.AsSpan(_start, line), out int size, out _, 'x');
            _start += line + 2;
            if (size == 0)
            {
                await ReadHeadAsyncTrailer();
                return (body.GetBuffer(), (int)body.Length);
            }

            await EnsureAsync(size + 2);
            body.Write(_buffer, _start, size);
            _start += size + 2;
        }
    }

    private async Task ReadHeadAsyncTrailer()
    {
        // After the last chunk: optional trailers, then an empty line.
        while (true)
        {
            int line;
            while ((line = _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n"u8)) < 0)
            {
                if (!await FillAsync())
                {
                    throw new IOException("EOF inside trailer");
                }
            }

            _start += line + 2;
            if (line == 0)
            {
                return;
            }
        }
    }

    private static (string Target, int ContentLength, bool Chunked, bool Close) ParseHead(ReadOnlySpan<byte> head)
    {
        var lineEnd = head.IndexOf("\r\n"u8);
        var requestLine = head[..lineEnd];
        var sp1 = requestLine.IndexOf((byte)' ');
        var sp2 = requestLine[(sp1 + 1)..].IndexOf((byte)' ');
        var target = System.Text.Encoding.ASCII.GetString(requestLine.Slice(sp1 + 1, sp2));

        var contentLength = 0;
        var chunked = false;
        var close = false;
        var rest = head[(lineEnd + 2)..];
        while (rest.Length > 2)
        {
            var end = rest.IndexOf("\r\n"u8);
            var header = rest[..end];
            rest = rest[(end + 2)..];
            var colon = header.IndexOf((byte)':');
            if (colon <= 0)
            {
                continue;
            }

            var name = header[..colon];
            var value = header[(colon + 1)..].Trim(" \t"u8);
            if (name.Length == 14 && System.Text.Ascii.EqualsIgnoreCase(name, "content-length"u8))
            {
                Utf8Parser.TryParse(value, out contentLength, out _);
            }
            else if (System.Text.Ascii.EqualsIgnoreCase(name, "transfer-encoding"u8))
            {
                chunked = value.IndexOf("chunked"u8) >= 0;
            }
            else if (System.Text.Ascii.EqualsIgnoreCase(name, "connection"u8))
            {
                close = System.Text.Ascii.EqualsIgnoreCase(value, "close"u8);
            }
        }

        return (target, contentLength, chunked, close);
    }
}
