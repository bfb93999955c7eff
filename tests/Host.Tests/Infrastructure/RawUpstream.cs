using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace CcRelay.Host.Tests.Infrastructure;

/// <summary>One request as a <see cref="RawUpstream"/> read it off the wire: the head's exact text and the body's bytes.</summary>
public sealed record RawRequest(string Head, byte[] Body)
{
    public string RequestLine => Head[..Head.IndexOf("\r\n", StringComparison.Ordinal)];

    public IReadOnlyList<string> FieldLines => Head.Split("\r\n").Skip(1).Where(line => line.Length > 0).ToList();
}

/// <summary>
/// A TCP server on 127.0.0.1:0 that answers with exactly the bytes a test scripts, for what a real HTTP server
/// would never send: odd framing, interim answers, a connection closed at a chosen moment, garbage.
/// </summary>
public sealed class RawUpstream : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Func<RawConnection, Task> _script;
    private readonly ConcurrentBag<Task> _running = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private int _connections;

    private RawUpstream(Func<RawConnection, Task> script)
    {
        _script = script;
        _listener.Start();
        _accepting = AcceptAsync();
    }

    /// <summary>Starts a server that runs <paramref name="script"/> for every accepted connection.</summary>
    public static RawUpstream Start(Func<RawConnection, Task> script) => new(script);

    public Uri BaseUrl => new($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");

    /// <summary>Connections accepted so far.</summary>
    public int Connections => Volatile.Read(ref _connections);

    /// <summary>Every request read on any connection, in order.</summary>
    public ConcurrentQueue<RawRequest> Requests { get; } = new();

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            var index = Interlocked.Increment(ref _connections);
            _running.Add(RunAsync(new RawConnection(socket, index, this)));
        }
    }

    private async Task RunAsync(RawConnection connection)
    {
        using (connection)
        {
            try
            {
                await _script(connection);
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
            {
                // the client went away: the script ends with its connection
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        await _accepting;
        await Task.WhenAll(_running);
        _stop.Dispose();
    }
}

/// <summary>One accepted connection of a <see cref="RawUpstream"/>.</summary>
public sealed class RawConnection(Socket socket, int index, RawUpstream server) : IDisposable
{
    private readonly NetworkStream _stream = new(socket, ownsSocket: true);
    private readonly List<byte> _pending = [];

    /// <summary>1 for the server's first connection, 2 for the second, …</summary>
    public int Index { get; } = index;

    /// <summary>Reads one request (head, then a Content-Length body); null when the client closed the connection first.</summary>
    public async Task<RawRequest?> ReadRequestAsync()
    {
        int headEnd;
        while ((headEnd = IndexOf(_pending, "\r\n\r\n"u8)) < 0)
        {
            if (!await FillAsync())
            {
                return null;
            }
        }

        var head = Encoding.Latin1.GetString([.. _pending.Take(headEnd)]);
        _pending.RemoveRange(0, headEnd + 4);
        var lengthLine = head.Split("\r\n").FirstOrDefault(line => line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
        var length = lengthLine is null ? 0 : int.Parse(lengthLine["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
        while (_pending.Count < length)
        {
            if (!await FillAsync())
            {
                return null;
            }
        }

        var request = new RawRequest(head, [.. _pending.Take(length)]);
        _pending.RemoveRange(0, length);
        server.Requests.Enqueue(request);
        return request;
    }

    /// <summary>Waits until the client closes its side (or resets the connection).</summary>
    public async Task WaitForCloseAsync()
    {
        while (await FillAsync())
        {
        }
    }

    /// <summary>Sends the bytes as one write, flushed.</summary>
    public async Task SendAsync(string latin1)
    {
        await _stream.WriteAsync(Encoding.Latin1.GetBytes(latin1));
        await _stream.FlushAsync();
    }

    /// <summary>Closes the connection (a FIN, no reset).</summary>
    public void Close() => socket.Shutdown(SocketShutdown.Both);

    private async Task<bool> FillAsync()
    {
        var buffer = new byte[4096];
        int read;
        try
        {
            read = await _stream.ReadAsync(buffer);
        }
        catch (IOException)
        {
            return false;
        }

        _pending.AddRange(buffer.AsSpan(0, read));
        return read > 0;
    }

    private static int IndexOf(List<byte> bytes, ReadOnlySpan<byte> value) =>
        System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes).IndexOf(value);

    public void Dispose() => _stream.Dispose();
}
