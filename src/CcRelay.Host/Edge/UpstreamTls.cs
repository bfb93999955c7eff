using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using CcRelay.Core;

namespace CcRelay.Host.Edge;

/// <summary>
/// TLS towards https upstreams (<c>security.upstream_min_tls</c>, <c>security.upstream_ca_file</c>), applied to the
/// <see cref="SocketsHttpHandler"/> every https upstream goes through (the relay's own HTTP/1.1 client serves plain
/// http only). The CA bundle adds trust: a certificate that chains to the system's roots still passes, and one
/// that chains only to a bundled CA passes too — with its host name checked either way.
/// </summary>
internal static class UpstreamTls
{
    /// <summary>Sets the minimum version and, with a bundle, the extra trust.</summary>
    public static void Apply(SocketsHttpHandler handler, SecurityConfig security)
    {
        handler.SslOptions.EnabledSslProtocols = EdgeKestrel.ProtocolsFrom(security.UpstreamMinTls);
        if (security.UpstreamCaFile is { } caFile)
        {
            var bundle = LoadBundle(caFile.Value.Path);
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, presented, errors) => Validate(bundle, certificate, presented, errors);
        }
    }

    /// <summary>The certificates of a PEM bundle; the exception's message says what is wrong.</summary>
    public static X509Certificate2Collection LoadBundle(string path)
    {
        var bundle = new X509Certificate2Collection();
        bundle.ImportFromPemFile(path);
        if (bundle.Count == 0)
        {
            throw new System.Security.Cryptography.CryptographicException($"{path} holds no PEM certificate");
        }

        return bundle;
    }

    /// <summary>
    /// Accepts what the system accepts; else, when the only fault is the chain, builds it again with the bundle's
    /// CAs as the roots. A name mismatch or a missing certificate is never forgiven.
    /// </summary>
    private static bool Validate(X509Certificate2Collection bundle, X509Certificate? certificate, X509Chain? presented, SslPolicyErrors errors)
    {
        if (errors == SslPolicyErrors.None)
        {
            return true;
        }

        if (errors != SslPolicyErrors.RemoteCertificateChainErrors || certificate is null)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(bundle);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (presented is not null)
        {
            foreach (var element in presented.ChainElements)
            {
                chain.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        return chain.Build(leaf);
    }
}
