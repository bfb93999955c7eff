using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using CcRelay.Core;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// One HTTP/1.1 connection to an upstream: writes a request (head and body in one send), reads the response
/// head, and lends its read buffer to the body stream (<see cref="Http1BodyStream"/>) until the body ends.
/// Used by one request at a time; it goes back to its pool only once a body was read to its end.
/// </summary>
internal sealed class Http1Connection : IResponseHeaderSink, IDisposable
{
    private const int InitialBufferSize = 4096;

    /// <summary>Bodies up to this size are copied behind the head and sent in one write; larger ones are gathered.</summary>
    private const int CopyBodyLimit = 64 * 1024;

    private static readonly byte[] Http11 = " HTTP/1.1\r\n"u8.ToArray();
    private static readonly byte[] ContentLengthPrefix = "Content-Length: "u8.ToArray();

    private readonly Socket _socket;
    private readonly Http1Pool _pool;
    private readonly long _createdAt = Environment.TickCount64;
    // rented while received bytes wait to be read, returned as soon as none do: an open stream waiting for its
    // next event holds no buffer here (see WaitForDataAsync)
    private byte[]? _buffer;
    private int _start;
    private int _end;
    private HttpResponseMessage? _target;
    private int _disposed;

    public Http1Connection(Socket socket, Http1Pool pool)
    {
        _socket = socket;
        _pool = pool;
    }

    /// <summary>True once the connection served a request before (it may have been closed while idle).</summary>
    public bool Reused { get; private set; }

    /// <summary>True while the current request got no byte of response (a failure then may be retried).</summary>
    public bool NothingReceived { get; private set; }

    /// <summary>When the connection last went idle (<see cref="Environment.TickCount64"/>).</summary>
    public long IdleSince { get; set; }

    /// <summary>The unread bytes received after the response head.</summary>
    public ReadOnlySpan<byte> Buffered => _buffer is null ? default : _buffer.AsSpan(_start, _end - _start);

    public bool IsWithinLifetime(long now) => TimeSpan.FromMilliseconds(now - _createdAt) < Http1Handler.Lifetime;

    /// <summary>
    /// Whether an idle connection may carry another request (<c>Http1Client.reuse</c>); when it has been idle long
    /// enough to check, a readable idle socket is at its end (the upstream closed it).
    /// </summary>
    public bool IsReusable(long now)
    {
        var reuse = Http1Client.reuse(
            Http1Handler.Lifetime,
            Http1Handler.IdleTimeout,
            TimeSpan.FromMilliseconds(now - _createdAt),
            TimeSpan.FromMilliseconds(now - IdleSince));
        try
        {
            return reuse.IsReuse || (reuse.IsReuseIfOpen && !_socket.Poll(0, SelectMode.SelectRead));
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }

    /// <summary>
    /// Sends the request and reads the response head. The response's content reads the body from this
    /// connection, and returns it to the pool (or closes it) when the body ends or is disposed.
    /// </summary>
    public async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, ReadOnlyMemory<byte> body, CancellationToken cancellationToken)
    {
        NothingReceived = true;
        await WriteRequestAsync(request, body, cancellationToken);
        if (request.Content is UpstreamBodyContent sent)
        {
            sent.MarkSent();
        }

        var forHead = request.Method == HttpMethod.Head;
        var response = new HttpResponseMessage { RequestMessage = request };
        var content = new Http1Content();
        response.Content = content;
        try
        {
            while (true)
            {
                var headLength = await ReadHeadAsync(cancellationToken);
                _target = response;
                var parsed = Http1.parseResponseHead(_buffer.AsSpan(_start, headLength), forHead, this);
                _target = null;
                Consume(headLength);
                if (parsed.IsError)
                {
                    throw Invalid(parsed.ErrorValue);
                }

                var answer = parsed.ResultValue;
                if (answer.Interim)
                {
                    continue; // 100 Continue, 103 Early Hints: the answer follows
                }

                response.StatusCode = (HttpStatusCode)answer.Status;
                response.Version = answer.Minor == 0 ? HttpVersion.Version10 : HttpVersion.Version11;
                content.Start(new Http1BodyStream(this, answer.Framing, answer.KeepAlive));
                return response;
            }
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    /// <summary>Takes a response header field (during <see cref="Http1.parseResponseHead"/>).</summary>
    void IResponseHeaderSink.Header(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        var response = _target!;
        var key = KnownHeaderNames.Find(name) ?? Encoding.ASCII.GetString(name);
        var text = Encoding.Latin1.GetString(value);
        if (!response.Headers.TryAddWithoutValidation(key, text))
        {
            response.Content.Headers.TryAddWithoutValidation(key, text);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteRequestAsync(HttpRequestMessage request, ReadOnlyMemory<byte> body, CancellationToken cancellationToken)
    {
        var target = request.RequestUri!.PathAndQuery;
        var method = request.Method.Method;
        var hasBody = !body.IsEmpty || request.Content is not null || request.Method == HttpMethod.Post || request.Method == HttpMethod.Put;
        var hostLine = _pool.HostLine;
        if (request.Headers.NonValidated.TryGetValues("Host", out var host))
        {
            // a Host the caller set explicitly wins over the endpoint's
            CheckField(host.ToString());
            hostLine = Encoding.ASCII.GetBytes($"Host: {host}\r\n");
        }

        // the head's exact size, so it is written into one buffer (with the body behind it when small)
        var headSize = method.Length + 1 + target.Length + Http11.Length + hostLine.Length + 2;
        headSize += FieldsSize(request.Headers);
        if (request.Content is not null)
        {
            headSize += FieldsSize(request.Content.Headers);
        }

        if (hasBody)
        {
            headSize += ContentLengthPrefix.Length + 20 + 2;
        }

        var copyBody = body.Length <= CopyBodyLimit;
        var buffer = ArrayPool<byte>.Shared.Rent(headSize + (copyBody ? body.Length : 0));
        try
        {
            var at = Ascii(method, buffer, 0);
            buffer[at++] = (byte)' ';
            at = Ascii(target, buffer, at);
            at = Bytes(Http11, buffer, at);
            at = Bytes(hostLine, buffer, at);
            at = Fields(request.Headers, buffer, at);
            if (request.Content is not null)
            {
                at = Fields(request.Content.Headers, buffer, at);
            }

            if (hasBody)
            {
                at = Bytes(ContentLengthPrefix, buffer, at);
                body.Length.TryFormat(buffer.AsSpan(at), out var digits, provider: System.Globalization.CultureInfo.InvariantCulture);
                at += digits;
                buffer[at++] = (byte)'\r';
                buffer[at++] = (byte)'\n';
            }

            buffer[at++] = (byte)'\r';
            buffer[at++] = (byte)'\n';

            if (copyBody)
            {
                body.Span.CopyTo(buffer.AsSpan(at));
                await _socket.SendAsync(buffer.AsMemory(0, at + body.Length), SocketFlags.None, cancellationToken);
            }
            else if (MemoryMarshal.TryGetArray(body, out var segment))
            {
                await _socket.SendAsync([new ArraySegment<byte>(buffer, 0, at), segment], SocketFlags.None);
            }
            else
            {
                await _socket.SendAsync(buffer.AsMemory(0, at), SocketFlags.None, cancellationToken);
                await _socket.SendAsync(body, SocketFlags.None, cancellationToken);
            }
        }
        catch (SocketException e)
        {
            throw new HttpRequestException(HttpRequestError.ConnectionError, $"sending the request failed: {e.SocketErrorCode}", e);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Bytes the fields take on the wire (<c>Name: v1, v2\r\n</c>), excluding those the connection writes itself.</summary>
    private static int FieldsSize(System.Net.Http.Headers.HttpHeaders headers)
    {
        var size = 0;
        foreach (var (name, values) in headers.NonValidated)
        {
            if (Http1Client.writesItself(name))
            {
                continue;
            }

            size += name.Length + 4;
            var first = true;
            foreach (var value in values)
            {
                size += value.Length + (first ? 0 : 2);
                first = false;
            }
        }

        return size;
    }

    private static int Fields(System.Net.Http.Headers.HttpHeaders headers, byte[] buffer, int at)
    {
        foreach (var (name, values) in headers.NonValidated)
        {
            if (Http1Client.writesItself(name))
            {
                continue;
            }

            CheckField(name);
            at = Ascii(name, buffer, at);
            buffer[at++] = (byte)':';
            buffer[at++] = (byte)' ';
            var first = true;
            foreach (var value in values)
            {
                CheckField(value);
                if (!first)
                {
                    buffer[at++] = (byte)',';
                    buffer[at++] = (byte)' ';
                }

                at += Encoding.Latin1.GetBytes(value, buffer.AsSpan(at));
                first = false;
            }

            buffer[at++] = (byte)'\r';
            buffer[at++] = (byte)'\n';
        }

        return at;
    }

    /// <summary>A CR, LF or NUL in a field would end the head early (header injection): refused.</summary>
    private static void CheckField(string text)
    {
        if (text.AsSpan().IndexOfAny('\r', '\n', '\0') >= 0)
        {
            throw new HttpRequestException(HttpRequestError.Unknown, "a request header contains a line break or NUL");
        }
    }

    private static int Ascii(string text, byte[] buffer, int at) => at + Encoding.ASCII.GetBytes(text, buffer.AsSpan(at));

    private static int Bytes(byte[] bytes, byte[] buffer, int at)
    {
        bytes.CopyTo(buffer, at);
        return at + bytes.Length;
    }

    /// <summary>Reads until a whole response head is buffered; returns its length (from the buffer's start).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadHeadAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var end = Http1.headEnd(Buffered);
            if (end >= 0)
            {
                return end;
            }

            if (_end - _start >= Http1Handler.MaxResponseHeadBytes)
            {
                throw Invalid($"a response head over {Http1Handler.MaxResponseHeadBytes / 1024} KB");
            }

            var read = await FillAsync(cancellationToken, Http1Handler.MaxResponseHeadBytes);
            if (read == 0)
            {
                throw new HttpRequestException(
                    HttpRequestError.ResponseEnded,
                    NothingReceived ? "the upstream closed the connection before answering" : "the upstream closed the connection inside the response head");
            }

            NothingReceived = false;
        }
    }

    /// <summary>
    /// Receives more bytes behind the buffered ones (renting a buffer when none is held, moving the bytes to the
    /// front, or growing the buffer up to <paramref name="limit"/> when full). Returns 0 at the connection's end.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<int> FillAsync(CancellationToken cancellationToken, int limit = InitialBufferSize)
    {
        if (_buffer is null)
        {
            _buffer = ArrayPool<byte>.Shared.Rent(InitialBufferSize);
            _start = _end = 0;
        }
        else if (_end == _buffer.Length)
        {
            var length = _end - _start;
            if (_start == 0)
            {
                var grown = ArrayPool<byte>.Shared.Rent(Math.Min(Math.Max(_buffer.Length * 2, length + 1), Math.Max(limit, length + 1)));
                _buffer.AsSpan(0, length).CopyTo(grown);
                ArrayPool<byte>.Shared.Return(_buffer);
                _buffer = grown;
            }
            else
            {
                _buffer.AsSpan(_start, length).CopyTo(_buffer);
            }

            _start = 0;
            _end = length;
        }

        var read = await ReceiveAsync(_buffer.AsMemory(_end), cancellationToken);
        _end += read;
        if (_start == _end)
        {
            ReturnBuffer();
        }

        return read;
    }

    /// <summary>
    /// Waits until the upstream sent something (or closed) without holding a buffer: a zero-byte receive. An
    /// open stream spends its life here between events.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WaitForDataAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, cancellationToken);
        }
        catch (SocketException)
        {
            // the next real read says what happened
        }
    }

    /// <summary>Receives straight into the caller's memory (nothing may be buffered). 0 at the connection's end.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<int> ReceiveAsync(Memory<byte> destination, CancellationToken cancellationToken)
    {
        try
        {
            return await _socket.ReceiveAsync(destination, SocketFlags.None, cancellationToken);
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted or SocketError.Shutdown)
        {
            // a reset counts as the connection's end: the caller says what was cut short
            return 0;
        }
        catch (SocketException e)
        {
            throw new HttpRequestException(HttpRequestError.ConnectionError, $"receiving from the upstream failed: {e.SocketErrorCode}", e);
        }
    }

    /// <summary>Copies up to <paramref name="max"/> buffered bytes into <paramref name="destination"/> and marks them read.</summary>
    public int TakeBuffered(Span<byte> destination, long max)
    {
        var count = (int)Math.Min(Math.Min(destination.Length, max), _end - _start);
        Buffered[..count].CopyTo(destination);
        Consume(count);
        return count;
    }

    /// <summary>Marks buffered bytes as read; the buffer goes back to the pool once none are left.</summary>
    public void Consume(int count)
    {
        _start += count;
        if (_start == _end)
        {
            ReturnBuffer();
        }
    }

    private void ReturnBuffer()
    {
        if (_buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = null;
        }

        _start = _end = 0;
    }

    /// <summary>Called by the body stream when the response ended: back to the pool, or closed.</summary>
    public void Release(bool keepAlive)
    {
        if (keepAlive && _start == _end)
        {
            // NOTE: bytes after a response nobody asked for mean the upstream is confused: the connection is closed below
            Reused = true;
            ReturnBuffer();
            _pool.Return(this);
        }
        else
        {
            Dispose();
        }
    }

    private static HttpRequestException Invalid(string what) =>
        new(HttpRequestError.InvalidResponse, $"the upstream sent an invalid HTTP/1.1 response: {what}");

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            // NOTE: a held buffer is left to the GC, not returned: a receive on another thread may still be writing into it
            _socket.Dispose();
        }
    }
}
