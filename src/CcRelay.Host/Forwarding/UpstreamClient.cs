using System.Net;
using CcRelay.Core;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Forwarding;

/// <summary>The one pooled HTTP client every upstream call goes through.</summary>
internal static class UpstreamClient
{
    /// <summary>
    /// NOTE: <see cref="HttpMessageInvoker"/>, not <see cref="HttpClient"/>: the latter's convenience
    /// overloads buffer whole responses, which would stall SSE (the YARP lesson). No automatic
    /// decompression, redirects, cookies or proxy-side tracing headers: the relay forwards exactly.
    /// Every upstream, plain http (HTTP/1.1) or https (HTTP/2 when the upstream offers it), proxied or not, goes
    /// through <see cref="SocketsHttpHandler"/> (docs/design.md, "The HTTP client").
    /// </summary>
    /// <remarks>
    /// A request that fails on a reused connection before any answer byte is sent again once, on a new connection
    /// (<see cref="ResendOnClosedConnection"/>, logged to <paramref name="logger"/>).
    /// </remarks>
    public static HttpMessageInvoker Create(SecurityConfig? security = null, ILogger? logger = null)
    {
        var pooled = System(security);
        pooled.PlaintextStreamFilter = ResendOnClosedConnection.Track;

        // the resend's connection is never pooled: it cannot be another stale one
        var fresh = System(security);
        fresh.PooledConnectionLifetime = TimeSpan.Zero;
        return new(new LineBreakGuard(new ResendOnClosedConnection(pooled, fresh, logger)), disposeHandler: true);
    }

    /// <summary>
    /// Refuses, before anything is sent, a request with a header value that has a line break or NUL
    /// (<see cref="Headers.isWireSafe"/>): SocketsHttpHandler writes a value added without validation as it is, so
    /// <c>a\r\nx-api-key: …</c> would reach the upstream as a second header.
    /// </summary>
    private sealed class LineBreakGuard(HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            (Unsafe(request.Headers) ?? (request.Content is { } content ? Unsafe(content.Headers) : null)) is { } name
                ? Task.FromException<HttpResponseMessage>(new HttpRequestException(HttpRequestError.Unknown, $"request header {name} has a line break or NUL: not sent"))
                : base.SendAsync(request, cancellationToken);

        private static string? Unsafe(System.Net.Http.Headers.HttpHeaders headers)
        {
            foreach (var header in headers.NonValidated)
            {
                foreach (var value in header.Value)
                {
                    if (!Headers.isWireSafe(value))
                    {
                        return header.Key;
                    }
                }
            }

            return null;
        }
    }

    /// <summary>
    /// NOTE: <c>AllowAutoRedirect = false</c>: an upstream's 3xx reaches <see cref="UpstreamForwarder"/>, which
    /// refuses it (<see cref="UpstreamRedirect.refusal"/>).
    /// </summary>
    private static SocketsHttpHandler System(SecurityConfig? security)
    {
        var handler = new SocketsHttpHandler
        {
            AutomaticDecompression = DecompressionMethods.None,
            AllowAutoRedirect = false,
            UseCookies = false,
            UseProxy = true,
            ActivityHeadersPropagator = null,
            ConnectTimeout = TimeSpan.FromSeconds(15),
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            // shorter than the idle timeouts of the load balancers in front of hosted providers (StaleConnection)
            PooledConnectionIdleTimeout = StaleConnection.idleTimeout,
            EnableMultipleHttp2Connections = true,
            MaxResponseHeadersLength = 256,
        };
        if (security is not null)
        {
            Edge.UpstreamTls.Apply(handler, security);
        }

        return handler;
    }
}
