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

    /// <summary>What was read ahead (relay it first), and the first event's <c>error.type</c> when it is an <c>error</c> event.</summary>
    public static async Task<(byte[] Prefix, string? ErrorType, bool Ended)> FirstEventAsync(Stream stream, CancellationToken cancellationToken)
    {
        // pooled: every open stream peeks at about the same moment, and only the (small) prefix outlives this call
        var buffer = ArrayPool<byte>.Shared.Rent(1024);
        var length = 0;
        var scanned = 0;
        try
        {
            while (true)
            {
                // frames already complete: skip pings and unnamed frames
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
                        continue;
                    }

                    return (buffer[..length], kind.IsError ? ErrorType(frame) : null, false);
                }

                if (length >= Limit)
                {
                    return (buffer[..length], null, false);
                }

                if (length == buffer.Length)
                {
                    var bigger = ArrayPool<byte>.Shared.Rent(Math.Min(Limit, buffer.Length * 2));
                    buffer.AsSpan(0, length).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }

                var read = await stream.ReadAsync(buffer.AsMemory(length, Math.Min(buffer.Length, Limit) - length), cancellationToken);
                if (read == 0)
                {
                    return (buffer[..length], null, true);
                }

                length += read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
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

/// <summary>A read-only stream: <paramref name="prefix"/> first, then <paramref name="rest"/> (owned).</summary>
internal sealed class PrefixedStream(byte[] prefix, Stream rest) : Stream
{
    private byte[] _prefix = prefix;
    private int _position;

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
            return rest.ReadAsync(buffer, cancellationToken);
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
            rest.Dispose();
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await rest.DisposeAsync();
        await base.DisposeAsync();
    }
}
