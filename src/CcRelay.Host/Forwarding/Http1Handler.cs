using System.Collections.Concurrent;
using CcRelay.Core;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// The relay's own HTTP/1.1 client for plain <c>http://</c> upstreams (a local Ollama, a sidecar, the benchmark's
/// fake): one write per request (head and body together), response heads parsed by Core's <c>Http1</c> without
/// header validation objects, bodies read straight into the caller's buffer. Everything else (<c>https://</c>,
/// which negotiates HTTP/2, and any upstream the environment routes through a proxy) goes to the inner
/// <see cref="SocketsHttpHandler"/>.
/// <code>
///   request ─► PoolFor(uri) ─┬─ null (https, proxy) ─► SocketsHttpHandler
///                            └─ Http1Pool ─► idle connection (or a new one) ─► Http1Connection.SendAsync
/// </code>
/// NOTE: a pooled connection the upstream closed while idle fails on first use with nothing received; the
/// request is then sent once more on a new connection, as SocketsHttpHandler does.
/// </summary>
internal sealed class Http1Handler : DelegatingHandler
{
    /// <summary>How long an idle connection is kept for reuse.</summary>
    internal static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(90);

    /// <summary>How long a connection is reused at all (so DNS changes are picked up).</summary>
    internal static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(5);

    /// <summary>How long a TCP connect may take.</summary>
    internal static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(15);

    /// <summary>The largest response head accepted (status line and header fields).</summary>
    internal const int MaxResponseHeadBytes = 256 * 1024;

    // null: the endpoint's requests go to the inner handler
    private readonly ConcurrentDictionary<(string Host, int Port), Http1Pool?> _pools = new();
    private readonly Timer _scavenger;
    private bool _disposed;

    public Http1Handler(HttpMessageHandler fallback)
        : base(fallback)
    {
        _scavenger = new Timer(static state => ((Http1Handler)state!).Scavenge(), this, IdleTimeout / 3, IdleTimeout / 3);
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var uri = request.RequestUri;
        if (uri is null || PoolFor(uri) is not { } pool)
        {
            return await base.SendAsync(request, cancellationToken);
        }

        var body = await RequestBodyAsync(request.Content, cancellationToken);
        for (var attempt = 0; ; attempt++)
        {
            // a retry goes to a new connection: another idle one may have been closed the same way
            var connection = (attempt == 0 ? pool.TryTake() : null) ?? await pool.ConnectAsync(cancellationToken);
            try
            {
                return await connection.SendAsync(request, body, cancellationToken);
            }
            catch (HttpRequestException) when (Http1Client.sendAgain(attempt, connection.Reused, connection.NothingReceived, cancellationToken.IsCancellationRequested))
            {
                // the upstream closed the idle connection: nothing of this request was answered, send it again
                connection.Dispose();
            }
            catch
            {
                connection.Dispose();
                throw;
            }
        }
    }

    protected override HttpResponseMessage Send(HttpRequestMessage request, CancellationToken cancellationToken) =>
        SendAsync(request, cancellationToken).GetAwaiter().GetResult();

    /// <summary>The pool for an upstream's endpoint; null when the request goes to the inner handler.</summary>
    private Http1Pool? PoolFor(Uri uri)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _pools.GetOrAdd((uri.IdnHost, uri.Port), static (_, uri) => IsEligible(uri) ? new Http1Pool(uri) : null, uri);
    }

    private static bool IsEligible(Uri uri)
    {
        if (uri.Scheme != Uri.UriSchemeHttp)
        {
            return false;
        }

        // the environment's proxy (HTTP_PROXY, NO_PROXY) applies as it would for SocketsHttpHandler
        var proxy = HttpClient.DefaultProxy;
        return proxy.IsBypassed(uri) || proxy.GetProxy(uri) is null;
    }

    /// <summary>The bytes of a request body: the relay's own body as is, any other content read once.</summary>
    private static async ValueTask<ReadOnlyMemory<byte>> RequestBodyAsync(HttpContent? content, CancellationToken cancellationToken) =>
        content switch
        {
            null => ReadOnlyMemory<byte>.Empty,
            UpstreamBodyContent upstream => upstream.Body,
            _ => await content.ReadAsByteArrayAsync(cancellationToken),
        };

    private void Scavenge()
    {
        foreach (var pool in _pools.Values)
        {
            pool?.Scavenge();
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _scavenger.Dispose();
            _disposed = true;
            foreach (var pool in _pools.Values)
            {
                pool?.Dispose();
            }
        }

        base.Dispose(disposing);
    }
}
