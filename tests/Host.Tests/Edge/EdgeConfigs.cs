using CcRelay.Core;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;

namespace CcRelay.Host.Tests.Edge;

/// <summary>Builds the edge's config records from C# for tests.</summary>
public static class EdgeConfigs
{
    public static EdgeConfig Edge(TlsConfig? tls = null, QueueConfig? queue = null, ConnectionLimits? limits = null, SecurityConfig? security = null)
    {
        var d = Config.defaultEdge;
        return new EdgeConfig(tls is null ? FSharpOption<TlsConfig>.None : FSharpOption<TlsConfig>.Some(tls), queue ?? d.Queue, limits ?? d.Limits, security ?? d.Security);
    }

    public static TlsConfig Tls(EdgeCertificates files, TlsVersion? minimum = null, ListenAddress? listen = null) =>
        new(
            EdgeCertificates.Ref(files.CertPath, "server.tls.cert_file"),
            EdgeCertificates.Ref(files.KeyPath, "server.tls.key_file"),
            minimum ?? TlsVersion.Tls12,
            listen is null ? FSharpOption<ListenAddress>.None : FSharpOption<ListenAddress>.Some(listen));

    public static QueueConfig Queue(int? size, int timeoutMs) =>
        new(size is null ? FSharpOption<int>.None : FSharpOption<int>.Some(size.Value), timeoutMs);

    public static ConnectionLimits Limits(int headersMs = 10_000, int keepAliveMs = 130_000, int minBodyRate = 240, int minResponseRate = 240, int graceMs = 5_000, long maxConnections = 0) =>
        new(headersMs, keepAliveMs, minBodyRate, minResponseRate, graceMs, maxConnections);

    public static SecurityConfig Security(
        IEnumerable<string>? hosts = null,
        string? caFile = null,
        TlsVersion? minTls = null,
        string? statusToken = null,
        string? auditPath = null,
        int authFailuresPerMinute = 10) =>
        new(
            ListModule.OfSeq((hosts ?? []).Select(h => HostPatternModule.parse(h).ResultValue)),
            caFile is null ? FSharpOption<ConfigFileRef>.None : FSharpOption<ConfigFileRef>.Some(EdgeCertificates.Ref(caFile, "security.upstream_ca_file")),
            minTls ?? TlsVersion.Tls12,
            statusToken is null ? FSharpOption<string>.None : FSharpOption<string>.Some(statusToken),
            auditPath is null ? FSharpOption<AuditConfig>.None : FSharpOption<AuditConfig>.Some(new AuditConfig(auditPath, authFailuresPerMinute)));

    /// <summary>The config with <c>server.max_concurrent</c> set.</summary>
    public static RelayConfig WithMaxConcurrent(this RelayConfig config, int maxConcurrent)
    {
        var s = config.Server;
        var server = new ServerConfig(s.Listen, s.Auth, s.TimeoutMs, maxConcurrent, s.MaxBodyBytes, s.EnableHttp2, s.FirstByteTimeoutMs, s.ShutdownTimeoutMs, s.StreamKeepAlive, s.StreamKeepAliveMs);
        return new RelayConfig(server, config.Providers, config.Logging, config.Metrics, config.Otel, config.Routing, config.Health, config.Grpc, config.Edge, config.Clients, config.Ledger, config.Pipelines, config.State);
    }
}
