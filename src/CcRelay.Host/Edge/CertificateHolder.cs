using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using CcRelay.Core;
using CcRelay.Host.Logging;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Edge;

/// <summary>
/// The TLS listener's certificate (<c>server.tls</c>): a PEM chain and key, re-read when either file changes on
/// disk, so a renewed certificate is served to the next connection without a restart.
/// </summary>
/// <remarks>
/// NOTE: the files are checked (two <c>stat</c> calls) at each handshake rather than watched: a handshake costs far
/// more than the check, and the next connection after a change is certain to see it, where a watcher's event
/// would arrive some time later. A pair that does not load (a key written after its certificate, a half-written
/// file) keeps the certificate in use and is tried again at the next handshake.
/// </remarks>
internal sealed class CertificateHolder(TlsConfig tls, ILogger logger)
{
    /// <summary>Where reloads are reported (set once the application's logging exists).</summary>
    public ILogger Logger { get; set; } = logger;

    private readonly Lock _gate = new();
    private Loaded? _current;

    /// <summary>The certificate context for a handshake (loaded, or re-loaded after a change).</summary>
    public SslStreamCertificateContext Current
    {
        get
        {
            var stamp = Stamp.Of(tls);
            var current = Volatile.Read(ref _current);
            if (current is not null && current.Stamp == stamp)
            {
                return current.Context;
            }

            lock (_gate)
            {
                current = _current;
                if (current is not null && current.Stamp == stamp)
                {
                    return current.Context;
                }

                try
                {
                    var context = Load(tls);
                    Volatile.Write(ref _current, new Loaded(stamp, context));
                    if (current is not null)
                    {
                        Log.CertificateReloaded(Logger, tls.CertFile.Path, context.TargetCertificate.Subject, context.TargetCertificate.NotAfter.ToUniversalTime());
                    }

                    return context;
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
                {
                    if (current is null)
                    {
                        throw;
                    }

                    Log.CertificateReloadFailed(Logger, tls.CertFile.Path, e.Message);

                    // keep serving the old pair; remember the stamp so a broken pair is not re-read at every
                    // handshake (the next change of either file tries again)
                    Volatile.Write(ref _current, current with { Stamp = stamp });
                    return current.Context;
                }
            }
        }
    }

    /// <summary>Loads and checks a certificate pair; the message of the exception says what is wrong.</summary>
    public static SslStreamCertificateContext Load(TlsConfig tls)
    {
        var chain = new X509Certificate2Collection();
        chain.ImportFromPemFile(tls.CertFile.Path);
        if (chain.Count == 0)
        {
            throw new CryptographicException($"{tls.CertFile.Path} holds no PEM certificate");
        }

        var leaf = X509Certificate2.CreateFromPemFile(tls.CertFile.Path, tls.KeyFile.Path);
        var intermediates = new X509Certificate2Collection();
        for (var i = 1; i < chain.Count; i++)
        {
            intermediates.Add(chain[i]);
        }

        // NOTE: an ephemeral key (from PEM) serves TLS on Linux and macOS; Windows' SChannel needs it in a
        // persisted form, which the round trip through PKCS#12 gives
        if (OperatingSystem.IsWindows())
        {
            var persisted = X509CertificateLoader.LoadPkcs12(leaf.Export(X509ContentType.Pkcs12), null);
            leaf.Dispose();
            leaf = persisted;
        }

        return SslStreamCertificateContext.Create(leaf, intermediates, offline: true);
    }

    private sealed record Loaded(Stamp Stamp, SslStreamCertificateContext Context);

    private readonly record struct Stamp(DateTime CertWritten, long CertLength, DateTime KeyWritten, long KeyLength)
    {
        public static Stamp Of(TlsConfig tls)
        {
            var cert = new FileInfo(tls.CertFile.Path);
            var key = new FileInfo(tls.KeyFile.Path);
            return new Stamp(
                cert.Exists ? cert.LastWriteTimeUtc : default,
                cert.Exists ? cert.Length : -1,
                key.Exists ? key.LastWriteTimeUtc : default,
                key.Exists ? key.Length : -1);
        }
    }
}
