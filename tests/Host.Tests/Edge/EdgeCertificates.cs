using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using CcRelay.Core;
using Microsoft.FSharp.Core;

namespace CcRelay.Host.Tests.Edge;

/// <summary>Throwaway certificates for the edge's tests: a CA, leaves it signs for 127.0.0.1, PEM files in a temp directory.</summary>
public sealed class EdgeCertificates : IDisposable
{
    public EdgeCertificates()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("cc-relay-edge-").FullName;
    }

    public string Directory { get; }

    public string CertPath => Path.Combine(Directory, "tls.crt");

    public string KeyPath => Path.Combine(Directory, "tls.key");

    /// <summary>A self-signed CA (ECDSA P-256: fast to make).</summary>
    public static X509Certificate2 CreateCa(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        return request.CreateSelfSigned(TimeProvider.System.GetUtcNow().AddDays(-1), TimeProvider.System.GetUtcNow().AddDays(30));
    }

    /// <summary>
    /// A server certificate for 127.0.0.1 and localhost (else for upstream.example only); signed by
    /// <paramref name="issuer"/>, else self-signed.
    /// </summary>
    public static X509Certificate2 CreateLeaf(string name, X509Certificate2? issuer = null, bool loopback = true)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        if (loopback)
        {
            san.AddIpAddress(IPAddress.Loopback);
            san.AddDnsName("localhost");
        }
        else
        {
            san.AddDnsName("upstream.example");
        }
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        if (issuer is null)
        {
            return request.CreateSelfSigned(TimeProvider.System.GetUtcNow().AddDays(-1), TimeProvider.System.GetUtcNow().AddDays(30));
        }

        var serial = RandomNumberGenerator.GetBytes(12);
        using var signed = request.Create(issuer, TimeProvider.System.GetUtcNow().AddDays(-1), TimeProvider.System.GetUtcNow().AddDays(29), serial);
        return signed.CopyWithPrivateKey(key);
    }

    /// <summary>Writes a certificate and its key as PEM files (replacing what is there).</summary>
    public void WritePair(X509Certificate2 certificate)
    {
        File.WriteAllText(CertPath, certificate.ExportCertificatePem());
        File.WriteAllText(KeyPath, certificate.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
    }

    /// <summary>Writes a PEM file of certificates (a CA bundle); returns its path.</summary>
    public string WriteBundle(string name, params X509Certificate2[] certificates)
    {
        var path = Path.Combine(Directory, name);
        File.WriteAllText(path, string.Concat(certificates.Select(c => c.ExportCertificatePem() + "\n")));
        return path;
    }

    /// <summary>A file reference as the decoder would make it (no position).</summary>
    public static ConfigFileRef Ref(string path, string key) => new(path, key, FSharpOption<Position>.None);

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // best effort
        }
    }
}
