using System.Net.Security;
using System.Security.Authentication;
using CcRelay.Core;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace CcRelay.Host.Edge;

/// <summary>
/// Kestrel's side of the hardened edge (docs/security.md): connection limits chosen for a relay
/// (<c>server.limits</c>) and the TLS listener (<c>server.tls</c>). Both are bound at start; a reload that changes
/// them reports "restart required" (the certificate files themselves are re-read when they change).
/// </summary>
internal static class EdgeKestrel
{
    /// <summary>Applies <c>server.limits</c>.</summary>
    /// <remarks>
    /// NOTE: these limits hold the connection, not the request: a relayed answer that streams for minutes is
    /// never cut by them. The header timeout bounds a client that trickles its headers (slowloris); the minimum
    /// body rate bounds one that trickles its body; the minimum response rate applies only while a write waits on
    /// a client that does not read, so an SSE stream that is quiet between events is left alone.
    /// </remarks>
    public static void ApplyLimits(KestrelServerLimits kestrel, ConnectionLimits limits)
    {
        var grace = TimeSpan.FromMilliseconds(limits.MinRateGraceMs);
        kestrel.RequestHeadersTimeout = TimeSpan.FromMilliseconds(limits.RequestHeadersTimeoutMs);
        kestrel.KeepAliveTimeout = TimeSpan.FromMilliseconds(limits.KeepAliveTimeoutMs);
        kestrel.MinRequestBodyDataRate = limits.MinRequestBodyBytesPerSecond > 0 ? new MinDataRate(limits.MinRequestBodyBytesPerSecond, grace) : null;
        kestrel.MinResponseDataRate = limits.MinResponseBytesPerSecond > 0 ? new MinDataRate(limits.MinResponseBytesPerSecond, grace) : null;
        kestrel.MaxConcurrentConnections = limits.MaxConnections > 0 ? limits.MaxConnections : null;
    }

    /// <summary>The TLS protocols a minimum version allows.</summary>
    public static SslProtocols ProtocolsFrom(TlsVersion minimum) =>
        minimum.IsTls13 ? SslProtocols.Tls13 : SslProtocols.Tls12 | SslProtocols.Tls13;

    /// <summary>
    /// Makes <paramref name="listen"/> speak TLS with the holder's certificate (read per handshake); a handshake must
    /// end within <paramref name="handshakeTimeout"/> (the header timeout: a slow handshake is a slow header).
    /// </summary>
    public static void UseTls(ListenOptions listen, CertificateHolder certificate, TlsVersion minimum, HttpProtocols protocols, TimeSpan handshakeTimeout)
    {
        var allowed = ProtocolsFrom(minimum);
        List<SslApplicationProtocol> alpn = protocols == HttpProtocols.Http1
            ? [SslApplicationProtocol.Http11]
            : [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11];
        listen.UseHttps(new TlsHandshakeCallbackOptions
        {
            OnConnection = _ => ValueTask.FromResult(new SslServerAuthenticationOptions
            {
                ServerCertificateContext = certificate.Current,
                EnabledSslProtocols = allowed,
                ApplicationProtocols = alpn,
                ClientCertificateRequired = false,
            }),
            HandshakeTimeout = handshakeTimeout,
        });
    }
}
