using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Google.Apis.Auth.OAuth2;

namespace CcRelay.Host.Credentials;

/// <summary>
/// Google OAuth2 access tokens (scope cloud-platform) from Application Default Credentials or a credential file, one
/// credential per file, each keeping its own refresh. Only this class names Google.Apis.Auth's types:
/// <see cref="CloudCredentials"/> creates it when a Google token is first needed.
/// </summary>
internal sealed class GoogleTokens
{
    private readonly ConcurrentDictionary<string, GoogleCredential> _credentials = new(StringComparer.Ordinal);

    /// <summary>An access token from <paramref name="file"/> (null: Application Default Credentials).</summary>
    // NOTE: NoInlining keeps the library's types out of the caller: inlining this into CloudCredentials would make
    // the JIT load them (an async state machine's awaiter over a library type) for every cloud, used or not
    [MethodImpl(MethodImplOptions.NoInlining)]
    public Task<string> TokenAsync(string? file, CancellationToken cancellationToken) =>
        CredentialFor(file).UnderlyingCredential.GetAccessTokenForRequestAsync(cancellationToken: cancellationToken);

    /// <summary>Forgets the credential of <paramref name="file"/> (its token was refused): the next request builds a fresh one.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public void Invalidate(string? file) => _credentials.TryRemove(file ?? "", out _);

    private GoogleCredential CredentialFor(string? file) =>
        _credentials.GetOrAdd(file ?? "", static path =>
        {
            var credential = path.Length == 0
                ? GoogleCredential.GetApplicationDefault()
                : FromFile(path);
            return credential.CreateScoped("https://www.googleapis.com/auth/cloud-platform");
        });

    /// <summary>A credential file of the type it says it is (service account, authorized user, external account).</summary>
    private static GoogleCredential FromFile(string path)
    {
        using var document = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(path));
        var type = document.RootElement.TryGetProperty("type", out var t) ? t.GetString() : null;
        return CredentialFactory.FromFile(path, type ?? JsonCredentialParameters.ServiceAccountCredentialType);
    }
}
