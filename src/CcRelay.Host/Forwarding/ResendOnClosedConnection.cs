using System.Buffers;
using System.Net.Sockets;
using CcRelay.Core;
using CcRelay.Host.Logging;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// Resends, once and on a new connection, a request that failed on a reused pooled connection before a byte of the
/// answer (<see cref="StaleConnection.resend"/> decides): the upstream closed that keep-alive connection as the request
/// left. The resend goes through <paramref name="fresh"/>, a handler whose connections are never pooled, so it cannot
/// meet another stale one. The caller sees one answer or one failure: the attempt is recorded once.
/// </summary>
/// <remarks>
/// <para>
/// Which connection a request used is not exposed by SocketsHttpHandler. <see cref="Track"/> (its
/// <c>PlaintextStreamFilter</c>) wraps each HTTP/1.x connection's stream in a <see cref="ConnectionStream"/>, which
/// keeps its own facts (has it carried a request; how many reads were issued since a request took it). A request
/// learns its connection without any per-read cost: <see cref="SendAsync"/> opens a per-thread window around the
/// synchronous part of the handler's <c>SendAsync</c>, in which SocketsHttpHandler takes an idle pooled connection and
/// touches its stream (the read-ahead it issues on reuse, or the first write of the request); the stream that is touched
/// there names itself. A request on a new connection meets it only later, off the window (the connect is asynchronous):
/// it has no claim, so it counts as not reused, which is also the truth. Only a failure reads the facts.
/// </para>
/// <para>
/// The same stream sends a request's head and body in one write: SocketsHttpHandler flushes its 4 KiB write buffer
/// (the head and the start of the body) and then writes the rest of the body, two sends; the stream holds the first
/// part (when the window told it the body's length) until the request is complete (<see cref="ConnectionStream"/>).
/// </para>
/// </remarks>
internal sealed class ResendOnClosedConnection(HttpMessageHandler pooled, HttpMessageHandler fresh, ILogger? logger) : DelegatingHandler(pooled)
{
    [ThreadStatic]
    private static Window? _window;

    /// <summary>Set on a request that was resent.</summary>
    public static readonly HttpRequestOptionsKey<bool> Resent = new("cc-relay.resent");

    private readonly HttpMessageInvoker _fresh = new(fresh, disposeHandler: true);

    /// <summary>The <c>PlaintextStreamFilter</c> of the pooled handler: each HTTP/1.x connection's stream, tracked.</summary>
    /// <remarks>HTTP/2 frames are written and read by the connection's own loops, off any request's flow: not tracked.</remarks>
    public static ValueTask<Stream> Track(SocketsHttpPlaintextStreamFilterContext context, CancellationToken cancellationToken) =>
        ValueTask.FromResult(context.NegotiatedHttpVersion.Major == 1 ? new ConnectionStream(context.PlaintextStream) : context.PlaintextStream);

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var window = _window ??= new Window();
        Task<HttpResponseMessage> sending;
        Claim claim;
        if (window.Open)
        {
            // a send within another's window (not expected): claims nothing, so it is never resent
            sending = base.SendAsync(request, cancellationToken);
            claim = default;
        }
        else
        {
            // the body's length lets the connection send head and body in one write (not with chunked framing)
            window.Begin(request.Headers.TransferEncodingChunked == true ? -1 : request.Content?.Headers.ContentLength ?? -1);
            try
            {
                sending = base.SendAsync(request, cancellationToken);
            }
            finally
            {
                claim = window.End();
            }
        }

        try
        {
            return await sending;
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested
            && StaleConnection.resend(new SendFacts(FailureOf(e), claim.Reused, claim.AnswerStarted, false)))
        {
            request.Options.Set(Resent, true);
            if (logger is not null)
            {
                Log.UpstreamResent(logger, request.RequestUri?.Authority ?? "", FailureOf(e).IsResponseEnded ? "closed" : "reset");
            }

            return await _fresh.SendAsync(request, cancellationToken);
        }
    }

    /// <summary>What a failure before any answer was, from the exception SocketsHttpHandler threw.</summary>
    internal static SendFailure FailureOf(Exception e)
    {
        if (e is HttpRequestException { HttpRequestError: HttpRequestError.ResponseEnded })
        {
            return SendFailure.ResponseEnded;
        }

        for (Exception? inner = e; inner is not null; inner = inner.InnerException)
        {
            if (inner is SocketException { SocketErrorCode: SocketError.ConnectionReset or SocketError.ConnectionAborted or SocketError.Shutdown })
            {
                return SendFailure.ConnectionReset;
            }
        }

        return SendFailure.Other;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _fresh.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <summary>The connection a request took, as its stream saw it at the claim (default: none claimed, or ambiguous).</summary>
    private readonly struct Claim(ConnectionStream? stream, int epoch, bool reused)
    {
        /// <summary>The connection had carried a request before this one.</summary>
        public bool Reused => stream is not null && reused && stream.Epoch == epoch;

        /// <summary>
        /// Some of the answer may have been read: the HTTP client issued a read on the connection after its first one
        /// for this request (it reads again only after a read that returned bytes: the end of the stream or a reset
        /// fails the request at once). Unknown counts as started.
        /// </summary>
        public bool AnswerStarted => stream is null || stream.Epoch != epoch || stream.ReadsSinceClaim > 1;
    }

    /// <summary>
    /// One thread's window around the synchronous part of a request's send: the connection stream touched there is the
    /// request's. Reused by every send on the thread (no allocation per request).
    /// </summary>
    private sealed class Window
    {
        public bool Open;
        public long BodyLength;
        public ConnectionStream? Stream;
        public int Epoch;
        public bool Reused;
        public bool Ambiguous;

        public void Begin(long bodyLength)
        {
            Open = true;
            BodyLength = bodyLength;
            Stream = null;
            Ambiguous = false;
        }

        public Claim End()
        {
            var claim = Stream is { } stream && !Ambiguous ? new Claim(stream, Epoch, Reused) : default;
            Open = false;
            Stream = null;
            return claim;
        }
    }

    /// <summary>
    /// An HTTP/1.x connection's stream: notes whether it has carried a request and how many reads were issued since a
    /// request claimed it, and sends a claimed request's head and body in one write.
    /// </summary>
    /// <remarks>
    /// The hold: a request with a known body length writes its head (up to the blank line) and body, in that order and
    /// before it reads anything, as SocketsHttpHandler writes an HTTP/1.1 request without <c>Expect: 100-continue</c>.
    /// The first write is copied and held while the bytes written are fewer than head + body; the write that completes
    /// them sends everything at once. Anything else — a read, a flush, more bytes than announced — first sends what is
    /// held, so no byte is ever kept back from the upstream while the client waits for it. A request that fails while
    /// bytes are held fails on a connection the handler then disposes (it cannot be reused with half a request).
    /// </remarks>
    private sealed class ConnectionStream(Stream inner) : Stream
    {
        /// <summary>Larger requests are sent as SocketsHttpHandler writes them (copying them would cost more than a send).</summary>
        private const int MaxHeld = 256 * 1024;

        private bool _written;
        private int _epoch;
        private int _reads;
        private long _bodyLength = -1;
        private byte[]? _held;
        private int _heldLength;
        private int _heldTotal;
        private bool _disposed;

        public int Epoch => Volatile.Read(ref _epoch);

        public bool Disposed => Volatile.Read(ref _disposed);

        public int ReadsSinceClaim => Volatile.Read(ref _reads);

        private void Touch()
        {
            if (_window is { Open: true } window)
            {
                if (window.Stream is null)
                {
                    window.Stream = this;
                    window.Reused = _written;
                    window.Epoch = Interlocked.Increment(ref _epoch);
                    _reads = 0;
                    _bodyLength = window.BodyLength;
                }
                else if (!ReferenceEquals(window.Stream, this))
                {
                    // the pool disposes an idle connection it finds closed and takes the next: that one is the request's
                    if (window.Stream.Disposed)
                    {
                        window.Stream = null;
                        Touch();
                    }
                    else
                    {
                        window.Ambiguous = true;
                    }
                }
            }
        }

        public override bool CanRead => inner.CanRead;

        public override bool CanSeek => false;

        public override bool CanWrite => inner.CanWrite;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
            SendHeld();
            inner.Flush();
        }

        public override Task FlushAsync(CancellationToken cancellationToken) =>
            _held is null ? inner.FlushAsync(cancellationToken) : SendHeldThenFlushAsync(cancellationToken);

        private async Task SendHeldThenFlushAsync(CancellationToken cancellationToken)
        {
            await SendHeldAsync(cancellationToken);
            await inner.FlushAsync(cancellationToken);
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            Touch();
            Counted(buffer.Length);
            SendHeld();
            return inner.Read(buffer);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Touch();
            Counted(buffer.Length);
            return _held is null ? inner.ReadAsync(buffer, cancellationToken) : SendHeldThenReadAsync(buffer, cancellationToken);
        }

        private void Counted(int length)
        {
            if (length > 0)
            {
                Interlocked.Increment(ref _reads);
            }
        }

        private async ValueTask<int> SendHeldThenReadAsync(Memory<byte> buffer, CancellationToken cancellationToken)
        {
            await SendHeldAsync(cancellationToken);
            return await inner.ReadAsync(buffer, cancellationToken);
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            Touch();
            _written = true;
            _bodyLength = -1;
            SendHeld();
            inner.Write(buffer);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Touch();
            _written = true;
            if (_held is not null)
            {
                return Append(buffer, cancellationToken);
            }

            if (_bodyLength >= 0)
            {
                // the claimed request's first write: its head, and as much of its body as the client's buffer held
                var bodyLength = _bodyLength;
                _bodyLength = -1;
                var blank = buffer.Span.IndexOf("\r\n\r\n"u8);
                var total = blank < 0 ? long.MaxValue : blank + 4 + bodyLength;
                if (total > buffer.Length && total <= MaxHeld)
                {
                    _held = ArrayPool<byte>.Shared.Rent((int)total);
                    _heldTotal = (int)total;
                    buffer.Span.CopyTo(_held);
                    _heldLength = buffer.Length;
                    return ValueTask.CompletedTask;
                }
            }

            return inner.WriteAsync(buffer, cancellationToken);
        }

        /// <summary>A later write of the held request: held too, until the request is complete; then all of it is sent.</summary>
        private ValueTask Append(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
        {
            var held = _held!;
            if (_heldLength + buffer.Length > _heldTotal)
            {
                // more than the head and body announced (not expected): what is held, then this, as written
                return SendHeldThenWriteAsync(buffer, cancellationToken);
            }

            buffer.Span.CopyTo(held.AsSpan(_heldLength));
            _heldLength += buffer.Length;
            if (_heldLength < _heldTotal)
            {
                return ValueTask.CompletedTask;
            }

            return SendHeldAsync(cancellationToken);
        }

        private async ValueTask SendHeldThenWriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
        {
            await SendHeldAsync(cancellationToken);
            await inner.WriteAsync(buffer, cancellationToken);
        }

        private ValueTask SendHeldAsync(CancellationToken cancellationToken)
        {
            if (_held is not { } held)
            {
                return ValueTask.CompletedTask;
            }

            var length = _heldLength;
            _held = null;
            var sending = inner.WriteAsync(held.AsMemory(0, length), cancellationToken);
            if (sending.IsCompletedSuccessfully)
            {
                ArrayPool<byte>.Shared.Return(held);
                return ValueTask.CompletedTask;
            }

            return ReturnAfter(sending, held);
        }

        private static async ValueTask ReturnAfter(ValueTask sending, byte[] held)
        {
            try
            {
                await sending;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(held);
            }
        }

        private void SendHeld()
        {
            if (_held is { } held)
            {
                _held = null;
                try
                {
                    inner.Write(held, 0, _heldLength);
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(held);
                }
            }
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                DropHeld();
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

        public override ValueTask DisposeAsync()
        {
            DropHeld();
            return inner.DisposeAsync();
        }

        private void DropHeld()
        {
            Volatile.Write(ref _disposed, true);
            if (Interlocked.Exchange(ref _held, null) is { } held)
            {
                ArrayPool<byte>.Shared.Return(held);
            }
        }
    }
}
