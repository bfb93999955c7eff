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
/// Which connection a request used is not exposed by SocketsHttpHandler; <see cref="Track"/> (its
/// <c>PlaintextStreamFilter</c>) wraps each connection's HTTP stream, which notes into the request's
/// <see cref="ConnectionUse"/> (an async-local the request's flow carries into HTTP/1.1's writes and reads) whether it
/// had carried a request before and how many answer bytes it read for this one.
/// </remarks>
internal sealed class ResendOnClosedConnection(HttpMessageHandler pooled, HttpMessageHandler fresh, ILogger? logger) : DelegatingHandler(pooled)
{
    private static readonly AsyncLocal<ConnectionUse?> Current = new();

    /// <summary>Set on a request that was resent.</summary>
    public static readonly HttpRequestOptionsKey<bool> Resent = new("cc-relay.resent");

    private readonly HttpMessageInvoker _fresh = new(fresh, disposeHandler: true);

    /// <summary>The <c>PlaintextStreamFilter</c> of the pooled handler: each connection's HTTP stream, tracked.</summary>
    public static ValueTask<Stream> Track(SocketsHttpPlaintextStreamFilterContext context, CancellationToken cancellationToken) =>
        ValueTask.FromResult<Stream>(new TrackedStream(context.PlaintextStream));

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var use = new ConnectionUse();
        Current.Value = use;
        try
        {
            return await base.SendAsync(request, cancellationToken);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested
            && StaleConnection.resend(new SendFacts(FailureOf(e), use.Reused, use.AnswerBytes, false)))
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

    /// <summary>What one request's flow saw of the connection it was written to.</summary>
    private sealed class ConnectionUse
    {
        public TrackedStream? Stream;
        public bool Wrote;
        public bool Reused;
        public long AnswerBytes;
    }

    /// <summary>A connection's HTTP stream, noting each request that writes to it (and the answer bytes it reads).</summary>
    private sealed class TrackedStream(Stream inner) : Stream
    {
        private int _requests;

        /// <summary>
        /// The request's <see cref="ConnectionUse"/> when this stream is (or now becomes) its connection; null otherwise.
        /// A read may come first (the pool's check of an idle connection): it claims the connection provisionally, and
        /// the request's first write settles which connection carried it.
        /// </summary>
        private ConnectionUse? Claim(bool write)
        {
            if (Current.Value is not { } use)
            {
                return null;
            }

            if (ReferenceEquals(use.Stream, this))
            {
                use.Wrote |= write;
                return use;
            }

            if (use.Stream is null || (write && !use.Wrote))
            {
                use.Stream = this;
                use.Wrote = write;
                use.Reused = Interlocked.Increment(ref _requests) > 1;
                use.AnswerBytes = 0;
                return use;
            }

            return null;
        }

        private static async ValueTask<int> Counted(ValueTask<int> read, ConnectionUse use)
        {
            var n = await read;
            use.AnswerBytes += n;
            return n;
        }

        public override bool CanRead => inner.CanRead;

        public override bool CanSeek => false;

        public override bool CanWrite => inner.CanWrite;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush() => inner.Flush();

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var use = Claim(write: false);
            var n = inner.Read(buffer);
            if (use is not null)
            {
                use.AnswerBytes += n;
            }

            return n;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        // the answer's body is read on the caller's flow, where no ConnectionUse is current: a plain pass-through
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Claim(write: false) is { } use ? Counted(inner.ReadAsync(buffer, cancellationToken), use) : inner.ReadAsync(buffer, cancellationToken);

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            Claim(write: true);
            inner.Write(buffer);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Claim(write: true);
            return inner.WriteAsync(buffer, cancellationToken);
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

        public override ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
