using System.Buffers;
using System.Text.Json;
using CcRelay.Core;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// Reads a 200 stream's first meaningful event before anything is committed to the client, so an
/// <c>error</c> event the upstream sends before any content can still fail over. <c>message_start</c>, <c>ping</c>
/// events and unnamed frames before it are read too (<c>Sse.decidesStream</c>); everything read is kept and relayed first.
/// </summary>
internal static class StreamPeek
{
    /// <summary>At most this much is read ahead; a first event larger than that is not looked at.</summary>
    private const int Limit = 64 * 1024;

    /// <summary>
    /// How long a stream that has sent <c>message_start</c> may stay silent before the relay commits it anyway: an
    /// error right after <c>message_start</c> (Anthropic's overloaded errors) comes at once, and a healthy stream's
    /// first content block too; a slower one is relayed rather than held against the first-byte limit.
    /// </summary>
    internal static readonly TimeSpan MessageStartHold = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// What was read ahead (relay it first), the first decisive event's <c>error.type</c> when it is an <c>error</c>
    /// event, whether the stream ended, and — when the hold after <c>message_start</c> ran out — the read still under
    /// way (its bytes land in <c>PendingBuffer</c>).
    /// </summary>
    public static async Task<Peek> FirstEventAsync(Stream stream, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        // pooled: every open stream peeks at about the same moment, and only the (small) prefix outlives this call
        var buffer = ArrayPool<byte>.Shared.Rent(1024);
        var length = 0;
        var scanned = 0;
        long heldSince = 0;
        try
        {
            while (true)
            {
                // frames already complete: read past the ones that do not decide the stream (Sse.decidesStream)
                while (true)
                {
                    var end = Sse.findEventEnd(buffer.AsSpan(scanned, length - scanned));
                    if (end < 0)
                    {
                        break;
                    }

                    var frame = buffer.AsSpan(scanned, end);
                    var kind = Sse.frameKind(frame);
                    scanned += end;
                    if (!Sse.decidesStream(kind))
                    {
                        if (kind.IsMessageStart && heldSince == 0)
                        {
                            heldSince = timeProvider.GetTimestamp();
                        }

                        continue;
                    }

                    return new Peek(buffer[..length], kind.IsError ? ErrorType(frame) : null, false);
                }

                if (length >= Limit)
                {
                    return new Peek(buffer[..length], null, false);
                }

                if (length == buffer.Length)
                {
                    var bigger = ArrayPool<byte>.Shared.Rent(Math.Min(Limit, buffer.Length * 2));
                    buffer.AsSpan(0, length).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }

                int read;
                if (heldSince == 0)
                {
                    read = await stream.ReadAsync(buffer.AsMemory(length, Math.Min(buffer.Length, Limit) - length), cancellationToken);
                }
                else
                {
                    // message_start is held: wait for the next event only so long, then commit what is here
                    var left = MessageStartHold - timeProvider.GetElapsedTime(heldSince);
                    var pendingBuffer = new byte[4096];
                    var pending = left > TimeSpan.Zero ? stream.ReadAsync(pendingBuffer, cancellationToken).AsTask() : null;
                    if (pending is null || !await CompletesWithinAsync(pending, left, timeProvider, cancellationToken))
                    {
                        return new Peek(buffer[..length], null, false, pending ?? stream.ReadAsync(pendingBuffer, cancellationToken).AsTask(), pendingBuffer);
                    }

                    read = await pending;
                    if (read > 0)
                    {
                        if (length + read > buffer.Length)
                        {
                            var bigger = ArrayPool<byte>.Shared.Rent(length + read);
                            buffer.AsSpan(0, length).CopyTo(bigger);
                            ArrayPool<byte>.Shared.Return(buffer);
                            buffer = bigger;
                        }

                        pendingBuffer.AsSpan(0, read).CopyTo(buffer.AsSpan(length));
                    }
                }

                if (read == 0)
                {
                    return new Peek(buffer[..length], null, true);
                }

                length += read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Whether <paramref name="task"/> completes within <paramref name="limit"/> (false when the limit passes first).</summary>
    private static async Task<bool> CompletesWithinAsync(Task task, TimeSpan limit, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var delay = Task.Delay(limit, timeProvider, timer.Token);
        var first = await Task.WhenAny(task, delay);
        await timer.CancelAsync();
        return first == task || cancellationToken.IsCancellationRequested;
    }

    private static string ErrorType(ReadOnlySpan<byte> frame)
    {
        foreach (var sse in Sse.parse(frame))
        {
            try
            {
                using var json = JsonDocument.Parse(sse.Data);
                if (json.RootElement.TryGetProperty("error", out var error)
                    && error.TryGetProperty("type", out var type)
                    && type.ValueKind == JsonValueKind.String)
                {
                    return type.GetString() ?? "api_error";
                }
            }
            catch (JsonException)
            {
                // not JSON: an error all the same
            }
        }

        return "api_error";
    }
}

/// <summary>What <see cref="StreamPeek.FirstEventAsync"/> read.</summary>
internal readonly record struct Peek(byte[] Prefix, string? ErrorType, bool Ended, Task<int>? Pending = null, byte[]? PendingBuffer = null);

/// <summary>
/// A read-only stream: <paramref name="prefix"/> first, then the bytes of a read still <paramref name="pending"/>
/// (into <paramref name="pendingBuffer"/>), then <paramref name="rest"/> (owned).
/// </summary>
internal sealed class PrefixedStream(byte[] prefix, Stream rest, Task<int>? pending = null, byte[]? pendingBuffer = null) : Stream
{
    private byte[] _prefix = prefix;
    private int _position;
    private Task<int>? _pending = pending;

    /// <summary>Whether a whole event is waiting to be read (the peek's prefix holds at least one complete frame).</summary>
    public bool StartsWithEvent => _position == 0 && _prefix.Length > 0 && Sse.findEventEnd(_prefix) >= 0;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    // NOTE: not an async method: once the prefix is relayed every read goes straight to the upstream's
    // stream, and an async wrapper would allocate a state machine box per event (each read of an SSE stream
    // completes asynchronously), ~140 bytes per event per open stream.
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_position >= _prefix.Length)
        {
            return _pending is null ? rest.ReadAsync(buffer, cancellationToken) : PendingAsync(buffer);
        }

        if (buffer.Length == 0)
        {
            return ValueTask.FromResult(0);
        }

        var count = Math.Min(buffer.Length, _prefix.Length - _position);
        _prefix.AsMemory(_position, count).CopyTo(buffer);
        _position += count;
        if (_position == _prefix.Length)
        {
            // relayed: a long stream should not keep it
            _prefix = [];
            _position = 0;
        }

        return ValueTask.FromResult(count);
    }

    /// <summary>The read the peek left under way: its bytes become the prefix, the rest of the stream follows.</summary>
    private async ValueTask<int> PendingAsync(Memory<byte> buffer)
    {
        var read = await _pending!;
        _pending = null;
        _prefix = pendingBuffer![..read];
        _position = 0;
        return read == 0 ? 0 : await ReadAsync(buffer);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count, CancellationToken.None).GetAwaiter().GetResult();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            // a read left under way fails once its stream is gone: observe it
            _pending?.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            rest.Dispose();
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        _pending?.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        await rest.DisposeAsync();
        await base.DisposeAsync();
    }
}
