using System.Net;
using System.Net.Sockets;
using System.Text;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// The idle connections to one upstream endpoint (host and port), most recently used first, so a burst's extra
/// connections go idle and are closed while the busy ones stay warm.
/// </summary>
internal sealed class Http1Pool(Uri uri) : IDisposable
{
    private readonly List<Http1Connection> _idle = []; // the end is the top of the stack
    private readonly string _host = uri.IdnHost;
    private readonly int _port = uri.Port;
    private bool _disposed;

    /// <summary>The request head's <c>Host</c> line for this endpoint, encoded once.</summary>
    public byte[] HostLine { get; } = Encoding.ASCII.GetBytes($"Host: {uri.Authority}\r\n");

    /// <summary>The most recently returned idle connection still fit for reuse, or null.</summary>
    public Http1Connection? TryTake()
    {
        var now = Environment.TickCount64;
        while (true)
        {
            Http1Connection connection;
            lock (_idle)
            {
                if (_idle.Count == 0)
                {
                    return null;
                }

                connection = _idle[^1];
                _idle.RemoveAt(_idle.Count - 1);
            }

            if (connection.IsReusable(now))
            {
                return connection;
            }

            connection.Dispose();
        }
    }

    /// <summary>Takes back a connection whose response was read to its end.</summary>
    public void Return(Http1Connection connection)
    {
        var now = Environment.TickCount64;
        if (!connection.IsWithinLifetime(now))
        {
            connection.Dispose();
            return;
        }

        connection.IdleSince = now;
        lock (_idle)
        {
            if (!_disposed)
            {
                _idle.Add(connection);
                return;
            }
        }

        connection.Dispose();
    }

    /// <summary>Opens a new connection (TCP, Nagle off) within <see cref="Http1Handler.ConnectTimeout"/>.</summary>
    public async ValueTask<Http1Connection> ConnectAsync(CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Http1Handler.ConnectTimeout);
        try
        {
            EndPoint endPoint = IPAddress.TryParse(_host, out var address) ? new IPEndPoint(address, _port) : new DnsEndPoint(_host, _port);
            await socket.ConnectAsync(endPoint, timeout.Token);
            return new Http1Connection(socket, this);
        }
        catch (Exception e)
        {
            socket.Dispose();
            cancellationToken.ThrowIfCancellationRequested();
            throw e switch
            {
                OperationCanceledException => new HttpRequestException(
                    HttpRequestError.ConnectionError,
                    $"connecting to {_host}:{_port} took longer than {Http1Handler.ConnectTimeout.TotalSeconds:0} s",
                    e),
                SocketException { SocketErrorCode: SocketError.HostNotFound or SocketError.TryAgain or SocketError.NoData } => new HttpRequestException(
                    HttpRequestError.NameResolutionError,
                    $"{_host} could not be resolved",
                    e),
                SocketException socketError => new HttpRequestException(
                    HttpRequestError.ConnectionError,
                    $"connecting to {_host}:{_port} failed: {socketError.SocketErrorCode}",
                    e),
                _ => e,
            };
        }
    }

    /// <summary>Closes connections idle for longer than <see cref="Http1Handler.IdleTimeout"/>.</summary>
    public void Scavenge()
    {
        var now = Environment.TickCount64;
        List<Http1Connection>? stale = null;
        lock (_idle)
        {
            // oldest first: stop at the first one still fresh
            var count = 0;
            while (count < _idle.Count && !_idle[count].IsReusable(now))
            {
                count++;
            }

            if (count > 0)
            {
                stale = _idle.GetRange(0, count);
                _idle.RemoveRange(0, count);
            }
        }

        stale?.ForEach(static connection => connection.Dispose());
    }

    public void Dispose()
    {
        Http1Connection[] idle;
        lock (_idle)
        {
            _disposed = true;
            idle = [.. _idle];
            _idle.Clear();
        }

        foreach (var connection in idle)
        {
            connection.Dispose();
        }
    }
}
