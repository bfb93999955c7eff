using System.Buffers;
using System.Runtime.CompilerServices;
using CcRelay.Core;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// Reads an answer in another framing as Anthropic SSE, through an <see cref="IAnswerDecoder"/>: a Bedrock
/// <c>application/vnd.amazon.eventstream</c> answer as the Anthropic SSE it carries (protocols.md §2.6: each
/// upstream message goes through <see cref="BedrockAnswer.ofMessage"/>, skipped frames produce nothing), or an
/// OpenAI Chat Completions stream translated by <see cref="ChatStream"/>. Frames may be split anywhere across upstream
/// reads. A read returns as soon as one whole event is ready, and packs further events only when they are
/// already buffered: it never waits on upstream while it has something to give, so each event can be flushed
/// to the client the moment it exists.
/// </summary>
/// <remarks>
/// After an exception or error frame the stream yields that SSE <c>error</c> event and then ends. A corrupt
/// frame, or upstream ending inside a frame, throws <see cref="IOException"/>: a truncated answer must look
/// truncated. Upstream ending between frames is the end of the stream. Disposing disposes the upstream stream.
/// </remarks>
internal sealed class EventStreamSseStream : Stream
{
    private const int InitialBufferSize = 8192;

    private readonly Stream _inner;
    private readonly IAnswerDecoder _decoder;
    private byte[]? _buffer;
    private int _start;
    private int _end;
    private byte[] _pending = [];
    private int _pendingOffset;
    private bool _upstreamEnded;
    private bool _done;
    private IOException? _fault;
    private bool _disposed;

    /// <summary>How long upstream may be silent before a keep-alive is sent (<c>server.stream_keepalive_ms</c>; Bedrock sends none; Claude Code gives up on a silent stream).</summary>
    internal static readonly TimeSpan DefaultPingInterval = TimeSpan.FromMilliseconds(Config.defaultServer.StreamKeepAliveMs);

    private readonly TimeSpan _pingInterval;
    private KeepAliveState _keepAlive;
    private Task<int>? _read;

    public EventStreamSseStream(Stream inner)
        : this(inner, DefaultPingInterval)
    {
    }

    internal EventStreamSseStream(Stream inner, TimeSpan pingInterval)
        : this(inner, new BedrockEventStreamDecoder(), pingInterval)
    {
    }

    /// <summary>A stream over <paramref name="inner"/>, decoded by <paramref name="decoder"/>.</summary>
    /// <param name="inner">The upstream body.</param>
    /// <param name="decoder">What turns it into Anthropic SSE.</param>
    /// <param name="pingInterval">How long upstream may be silent before a keep-alive.</param>
    /// <param name="keepAlive">What a silence gets (<see cref="KeepAlive"/>): events Claude Code's idle watchdog counts, or pings.</param>
    internal EventStreamSseStream(Stream inner, IAnswerDecoder decoder, TimeSpan pingInterval, KeepAliveMode? keepAlive = null)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(decoder);
        _inner = inner;
        _decoder = decoder;
        _pingInterval = pingInterval;
        _keepAlive = KeepAlive.start(keepAlive ?? KeepAliveMode.Events);
    }

    public override bool CanRead => !_disposed;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    /// <summary>
    /// Returns at least one byte of SSE as soon as an event is whole, 0 at the end. A zero-byte read returns
    /// once an event (or the end) is ready, without consuming it.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        while (!TryAdvance())
        {
            // one upstream read at a time; it may outlive a read of ours that answers with a ping
            _read ??= _inner.ReadAsync(PrepareFill(), cancellationToken).AsTask();
            int count;
            if (_read.IsCompleted)
            {
                count = await _read;
            }
            else
            {
                try
                {
                    // NOTE: WaitAsync's one timer, not a linked source + Task.Delay + WhenAny: this runs once per event
                    count = await _read.WaitAsync(_pingInterval, cancellationToken);
                }
                catch (TimeoutException)
                {
                    // upstream is silent: keep the client's stream alive (an event its idle watchdog counts, or a ping)
                    (_keepAlive, var keepAlive) = KeepAlive.silence(_keepAlive);
                    SetPending(keepAlive);
                    break;
                }
            }

            _read = null;
            Filled(count);
        }

        return Copy(buffer.Span);
    }


    public override int Read(Span<byte> buffer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        while (!TryAdvance())
        {
            var free = PrepareFill();
            Filled(_inner.Read(free.Span));
        }

        return Copy(buffer);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    /// <summary>
    /// Makes the next SSE bytes ready from what is buffered. True when a read can return without upstream:
    /// SSE bytes are pending or the stream is over; false when upstream must be read first.
    /// </summary>
    private bool TryAdvance()
    {
        if (_fault is not null)
        {
            throw _fault;
        }

        while (_pendingOffset == _pending.Length)
        {
            if (_done)
            {
                return true;
            }

            DecodeStep step;
            try
            {
                step = _decoder.Decode(_buffer.AsSpan(_start, _end - _start), _upstreamEnded);
            }
            catch (IOException e)
            {
                _fault = e;
                throw;
            }

            if (step.NeedMore)
            {
                return false;
            }

            _start += step.Consumed;
            if (step.Sse is { Length: > 0 } sse)
            {
                // the keep-alive follows what the client is sent (and closes a block of its own before the next one)
                (_keepAlive, var relayed) = KeepAlive.pass(_keepAlive, sse);
                SetPending(relayed);
            }

            if (step.Done)
            {
                _done = true; // after an error event, the last thing the client gets, or at the end
            }
        }

        return true;
    }

    private void SetPending(byte[] sse)
    {
        _pending = sse;
        _pendingOffset = 0;
    }

    /// <summary>
    /// Copies pending SSE, then whatever further events are already buffered, without reading upstream. A
    /// failure met after some bytes were copied is kept for the next read, so those bytes still go out.
    /// </summary>
    private int Copy(Span<byte> destination)
    {
        var written = 0;
        while (written < destination.Length && _pendingOffset < _pending.Length)
        {
            var count = Math.Min(destination.Length - written, _pending.Length - _pendingOffset);
            _pending.AsSpan(_pendingOffset, count).CopyTo(destination[written..]);
            written += count;
            _pendingOffset += count;
            if (_pendingOffset == _pending.Length)
            {
                try
                {
                    if (!TryAdvance())
                    {
                        break;
                    }
                }
                catch (IOException)
                {
                    break; // kept in _fault: thrown by the next read
                }
            }
        }

        return written;
    }

    /// <summary>Moves unread bytes to the front, grows the buffer when it is full, and returns its free part.</summary>
    private Memory<byte> PrepareFill()
    {
        if (_buffer is null)
        {
            _buffer = ArrayPool<byte>.Shared.Rent(InitialBufferSize);
        }
        else if (_start > 0)
        {
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }

        if (_end == _buffer.Length)
        {
            // a frame larger than the buffer (EventStream.tryRead bounds it at 16 MiB)
            var bigger = ArrayPool<byte>.Shared.Rent(_buffer.Length * 2);
            _buffer.AsSpan(0, _end).CopyTo(bigger);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = bigger;
        }

        return _buffer.AsMemory(_end);
    }

    private void Filled(int count)
    {
        if (count == 0)
        {
            _upstreamEnded = true;
        }
        else
        {
            _end += count;
        }
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            _disposed = true;
            ReturnBuffer();
            _inner.Dispose();
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        if (!_disposed)
        {
            _disposed = true;
            ReturnBuffer();
            await _inner.DisposeAsync();
        }

        await base.DisposeAsync();
    }

    private void ReturnBuffer()
    {
        if (_buffer is { } buffer)
        {
            _buffer = null;
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
