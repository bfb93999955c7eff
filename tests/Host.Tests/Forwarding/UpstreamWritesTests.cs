using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text;
using CcRelay.Host.Forwarding;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Forwarding;

/// <summary>
/// How a request leaves on a pooled HTTP/1.1 connection (<see cref="ResendOnClosedConnection"/>'s connection stream):
/// head and body in one write, so the upstream gets them in one segment, where SocketsHttpHandler alone flushes its
/// 4 KiB write buffer and then writes the rest of the body (two sends). The socket's writes are recorded under the
/// tracked stream (a ConnectCallback stream that counts them).
/// </summary>
public sealed class UpstreamWritesTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    private static string Answer(string text) =>
        $"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {Encoding.UTF8.GetByteCount(text)}\r\n\r\n{text}";

    private static RawUpstream Answering() =>
        RawUpstream.Start(async connection =>
        {
            while (await connection.ReadRequestAsync() is { } request)
            {
                await connection.SendAsync(Answer($"got {request.Body.Length}"));
            }
        });

    /// <summary>An invoker as <see cref="UpstreamClient"/> builds it, whose sockets record each write's length.</summary>
    private static HttpMessageInvoker Recording(ConcurrentQueue<int> writes)
    {
        var pooled = new SocketsHttpHandler
        {
            ConnectCallback = async (context, cancellationToken) =>
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new RecordingStream(new NetworkStream(socket, ownsSocket: true), writes);
            },
            PlaintextStreamFilter = ResendOnClosedConnection.Track,
        };
        return new HttpMessageInvoker(new ResendOnClosedConnection(pooled, new SocketsHttpHandler(), logger: null));
    }

    private static byte[] BodyOf(int length) => Encoding.ASCII.GetBytes(new string('x', length));

    private static async Task<string> PostAsync(HttpMessageInvoker invoker, Uri baseUrl, HttpContent content, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(baseUrl, "/v1/messages")) { Content = content };
        using var response = await invoker.SendAsync(request, cancellationToken);
        return await response.Content.ReadAsStringAsync(cancellationToken);
    }

    [Theory]
    [InlineData(6_000)]
    [InlineData(90_000)]
    public async Task Client_RequestOnReusedConnection_LeavesInOneWrite(int bodyLength)
    {
        await using var upstream = Answering();
        var writes = new ConcurrentQueue<int>();
        using var invoker = Recording(writes);
        using var timeout = new CancellationTokenSource(Bound);
        var body = BodyOf(bodyLength);
        Assert.Equal($"got {bodyLength}", await PostAsync(invoker, upstream.BaseUrl, new UpstreamBodyContent(body), timeout.Token));
        writes.Clear();

        Assert.Equal($"got {bodyLength}", await PostAsync(invoker, upstream.BaseUrl, new UpstreamBodyContent(body), timeout.Token));

        var write = Assert.Single(writes);
        var sent = upstream.Requests.Last();
        Assert.Equal(body, sent.Body);
        Assert.Equal(Encoding.Latin1.GetByteCount(sent.Head) + 4 + bodyLength, write); // the head, its blank line, the body
        Assert.Equal(1, upstream.Connections);
    }

    private sealed class RecordingStream(Stream inner, ConcurrentQueue<int> writes) : Stream
    {
        public override bool CanRead => inner.CanRead;

        public override bool CanSeek => false;

        public override bool CanWrite => inner.CanWrite;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            inner.ReadAsync(buffer, cancellationToken);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            inner.ReadAsync(buffer, offset, count, cancellationToken);

        public override void Write(byte[] buffer, int offset, int count)
        {
            writes.Enqueue(count);
            inner.Write(buffer, offset, count);
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            writes.Enqueue(buffer.Length);
            return inner.WriteAsync(buffer, cancellationToken);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

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
    }
}
