using System.Security.Cryptography;
using CcRelay.Core;

namespace CcRelay.Host.Edge;

/// <summary>
/// The files the edge's config names, read once when a config is loaded (Core decodes without I/O): the TLS pair
/// must load as a certificate with its key, the upstream CA bundle must hold a PEM certificate, the audit log's
/// directory must exist. A problem is an error at the file's key and line, like any other config error, so a
/// start fails and a reload keeps the running config.
/// </summary>
internal static class EdgeFiles
{
    /// <summary>The load with the files' problems added (a loaded config with problems becomes invalid).</summary>
    public static ConfigLoad Check(ConfigLoad load)
    {
        if (load is not ConfigLoad.Loaded loaded)
        {
            return load;
        }

        var errors = Problems(loaded.Config.Edge).ToList();
        return errors.Count == 0 ? load : ConfigLoad.Failed(errors, loaded.Warnings);
    }

    /// <summary>Every problem with the files of <paramref name="edge"/>.</summary>
    public static IEnumerable<ConfigIssue> Problems(EdgeConfig edge)
    {
        if (edge.Tls is { } tls)
        {
            var problem = Unreadable(tls.Value.CertFile) ?? Unreadable(tls.Value.KeyFile);
            if (problem is not null)
            {
                yield return problem;
            }
            else if (Try(() => CertificateHolder.Load(tls.Value).TargetCertificate.Dispose()) is { } failure)
            {
                yield return At(tls.Value.CertFile, $"the certificate and key do not load as a pair ({failure}); both must be PEM, the key unencrypted");
            }
        }

        if (edge.Security.UpstreamCaFile is { } ca)
        {
            if ((Unreadable(ca.Value) ?? (Try(() => UpstreamTls.LoadBundle(ca.Value.Path)) is { } failure ? At(ca.Value, $"is not a PEM CA bundle ({failure})") : null)) is { } problem)
            {
                yield return problem;
            }
        }

        if (edge.Security.Audit is { } audit)
        {
            var directory = Path.GetDirectoryName(Path.GetFullPath(audit.Value.Path));
            if (directory is not null && !Directory.Exists(directory))
            {
                yield return new ConfigIssue("security.audit_log", null, $"the directory {directory} does not exist");
            }
        }
    }

    private static ConfigIssue? Unreadable(ConfigFileRef file)
    {
        try
        {
            using var stream = File.OpenRead(file.Path);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return At(file, $"cannot read {file.Path}: {e.Message}");
        }
    }

    private static string? Try(Action load)
    {
        try
        {
            load();
            return null;
        }
        catch (Exception e) when (e is CryptographicException or IOException or ArgumentException or UnauthorizedAccessException)
        {
            return e.Message;
        }
    }

    private static ConfigIssue At(ConfigFileRef file, string message) => new(file.Key, file.At, message);
}
