using System.Runtime.CompilerServices;
using CcRelay.Core;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// Reads one response body off its connection, framed as the head said (length, chunked, until close). Bytes
/// already buffered come first; after that reads go straight into the caller's memory when the framing allows.
/// The connection goes back to its pool the moment the body's last byte is read; disposing the stream before
/// that closes it.
/// </summary>
internal sealed class Http1BodyStream : Stream
{
    private readonly BodyFraming _framing;
    private readonly bool _keepAlive;
    private Http1Connection? _connection;
    private long _remaining;
    private ChunkDecoder _chunks = Chunked.start;

    public Http1BodyStream(Http1Connection connection, BodyFraming framing, bool keepAlive)
    {
        _connection = connection;
        _framing = framing;
        _keepAlive = keepAlive;
        _remaining = framing.IsLength ? framing.length : 0;
        if (framing.IsEmpty)
        {
            Complete();
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_connection is not { } connection)
        {
            return 0;
        }

        try
        {
            if (buffer.IsEmpty)
            {
                await WaitForDataAsync(connection, cancellationToken);
                return 0;
            }

            var read = _framing.Tag switch
            {
                BodyFraming.Tags.Length => await ReadLengthAsync(connection, buffer, cancellationToken),
                BodyFraming.Tags.Chunked => await ReadChunkedAsync(connection, buffer, cancellationToken),
                _ => await ReadUntilCloseAsync(connection, buffer, cancellationToken),
            };
            return read;
        }
        catch
        {
            // the connection's state is unknown after a failed or cancelled read
            Abandon();
            throw;
        }
    }

    /// <summary>
    /// A zero-byte read: returns once body bytes can be read, without the caller or the connection holding a
    /// buffer meanwhile. Chunk framing already received (the CRLF after an event's chunk, the next size line) is
    /// consumed first, so a stream between events waits here, not in a real read.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WaitForDataAsync(Http1Connection connection, CancellationToken cancellationToken)
    {
        while (true)
        {
            if (_framing.IsChunked && !connection.Buffered.IsEmpty)
            {
                _ = StepChunks(connection, Span<byte>.Empty);
                if (_connection is null)
                {
                    return; // the body ended
                }
            }

            if (!connection.Buffered.IsEmpty)
            {
                return; // body bytes are waiting
            }

            await connection.WaitForDataAsync(cancellationToken);
            if (!_framing.IsChunked || _chunks.Phase == ChunkPhase.Data)
            {
                return;
            }

            // only framing may have arrived: read it, and wait on if no data came with it
            if (await connection.FillAsync(cancellationToken) == 0)
            {
                return; // the connection's end: the real read reports it
            }
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadLengthAsync(Http1Connection connection, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        int read;
        if (connection.Buffered.Length > 0)
        {
            read = connection.TakeBuffered(buffer.Span, _remaining);
        }
        else
        {
            read = await connection.ReceiveAsync(buffer[..(int)Math.Min(buffer.Length, _remaining)], cancellationToken);
            if (read == 0)
            {
                throw Ended($"{_remaining} bytes short of its Content-Length");
            }
        }

        _remaining -= read;
        if (_remaining == 0)
        {
            Complete();
        }

        return read;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadChunkedAsync(Http1Connection connection, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (true)
        {
            if (connection.Buffered.Length > 0)
            {
                var data = StepChunks(connection, buffer.Span);
                if (data > 0 || _connection is null)
                {
                    return data;
                }
            }
            else if (_chunks.Phase == ChunkPhase.Data)
            {
                // inside a chunk with nothing buffered: read its data straight into the caller's memory
                var read = await connection.ReceiveAsync(buffer[..(int)Math.Min(buffer.Length, _chunks.Remaining)], cancellationToken);
                if (read == 0)
                {
                    throw Ended("inside a chunk");
                }

                _chunks = Chunked.skipData(_chunks, read);
                return read;
            }
            else if (await connection.FillAsync(cancellationToken) == 0)
            {
                throw Ended("before its last chunk");
            }
        }
    }

    /// <summary>
    /// Decodes buffered chunk framing up to one run of data, copied into <paramref name="destination"/> (empty:
    /// framing only); completes the body at its end. Returns the data bytes copied.
    /// </summary>
    private int StepChunks(Http1Connection connection, Span<byte> destination)
    {
        var step = Chunked.step(_chunks, connection.Buffered, destination.Length);
        _chunks = step.Decoder;
        connection.Buffered.Slice(step.DataStart, step.DataLength).CopyTo(destination);
        connection.Consume(step.Consumed);
        if (_chunks.Phase == ChunkPhase.Invalid)
        {
            throw new HttpIOException(HttpRequestError.InvalidResponse, "the upstream sent invalid chunked framing");
        }

        if (_chunks.Phase == ChunkPhase.Done)
        {
            Complete();
        }

        return step.DataLength;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadUntilCloseAsync(Http1Connection connection, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (connection.Buffered.Length > 0)
        {
            return connection.TakeBuffered(buffer.Span, long.MaxValue);
        }

        var read = await connection.ReceiveAsync(buffer, cancellationToken);
        if (read == 0)
        {
            Complete();
        }

        return read;
    }

    private static HttpIOException Ended(string where) =>
        new(HttpRequestError.ResponseEnded, $"the upstream closed the connection {where}");

    /// <summary>The body was read to its end: the connection is free for the next request (or closed).</summary>
    private void Complete()
    {
        var connection = _connection;
        _connection = null;
        connection?.Release(_keepAlive);
    }

    /// <summary>The body was not read to its end: the connection cannot be reused.</summary>
    private void Abandon()
    {
        var connection = _connection;
        _connection = null;
        connection?.Dispose();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Abandon();
        }

        base.Dispose(disposing);
    }

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
