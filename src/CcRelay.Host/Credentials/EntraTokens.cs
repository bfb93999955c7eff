using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Identity;
using CcRelay.Core;

namespace CcRelay.Host.Credentials;

/// <summary>
/// Microsoft Entra ID tokens from Azure.Identity's credentials, cached per configured source and authority host
/// until <see cref="RefreshAhead"/> before they expire. Only this class names Azure.Core's and Azure.Identity's
/// types: <see cref="CloudCredentials"/> creates it when an Entra token is first needed.
/// </summary>
internal sealed class EntraTokens
{
    /// <summary>Refresh tokens this long before they expire (a request may take minutes to be sent).</summary>
    private static readonly TimeSpan RefreshAhead = TimeSpan.FromMinutes(5);

    private readonly TimeProvider _timeProvider;
    private readonly ConcurrentDictionary<(EntraCredential Source, string? Authority), CachedToken> _tokens = new();

    public EntraTokens(TimeProvider timeProvider)
    {
        _timeProvider = timeProvider;
        Factory = Create;
    }

    /// <summary>Tests: the Entra ID credential for a configured source and authority host (default: Azure.Identity's).</summary>
    internal Func<EntraCredential, string?, TokenCredential> Factory { get; set; }

    /// <summary>Tests: the transport Azure.Identity's credentials use (default: its own HttpClient).</summary>
    internal HttpPipelineTransport? Transport { get; set; }

    /// <summary>A token for <paramref name="scope"/> from <paramref name="source"/> at <paramref name="authority"/> (null: the default).</summary>
    // NOTE: NoInlining keeps the library's types out of the caller: inlining this into CloudCredentials would make
    // the JIT load them (an async state machine's awaiter over a library type) for every cloud, used or not
    [MethodImpl(MethodImplOptions.NoInlining)]
    public async Task<string> TokenAsync(string scope, EntraCredential source, string? authority, CancellationToken cancellationToken)
    {
        var key = (source, authority);
        var now = _timeProvider.GetUtcNow();
        if (_tokens.TryGetValue(key, out var cached) && cached.Scope == scope && cached.Token.ExpiresOn - RefreshAhead > now)
        {
            return cached.Token.Token;
        }

        var credential = cached?.Credential ?? Factory(source, authority);
        var token = await credential.GetTokenAsync(new TokenRequestContext([scope]), cancellationToken);
        _tokens[key] = new CachedToken(credential, scope, token);
        return token.Token;
    }

    /// <summary>Forgets the cached token of a source (the upstream refused it): the next request gets a fresh one.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public void Invalidate(EntraCredential source, string? authority) => _tokens.TryRemove((source, authority), out _);

    private TokenCredential Create(EntraCredential source, string? authority)
    {
        T With<T>(T options)
            where T : TokenCredentialOptions
        {
            if (authority is not null)
            {
                options.AuthorityHost = new Uri(authority);
            }

            if (Transport is { } transport)
            {
                options.Transport = transport;
            }

            return options;
        }

        // an authority Azure.Identity does not know (Azure Stack, a private cloud) cannot be checked against Microsoft's
        // instance discovery, which would refuse it
        var unknown = authority is not null && !KnownAuthorities.Contains(new Uri(authority).Host);
        return source switch
        {
            EntraCredential.ClientSecret s => new ClientSecretCredential(s.TenantId, s.ClientId, s.Secret, With(new ClientSecretCredentialOptions { DisableInstanceDiscovery = unknown })),
            EntraCredential.ClientCertificate c => new ClientCertificateCredential(c.TenantId, c.ClientId, c.Path, With(new ClientCertificateCredentialOptions { DisableInstanceDiscovery = unknown })),
            _ => new DefaultAzureCredential(With(new DefaultAzureCredentialOptions { DisableInstanceDiscovery = unknown })),
        };
    }

    /// <summary>The authority hosts Azure.Identity knows (public, US Government and China clouds).</summary>
    private static readonly HashSet<string> KnownAuthorities = new(
        [AzureAuthorityHosts.AzurePublicCloud.Host, AzureAuthorityHosts.AzureGovernment.Host, AzureAuthorityHosts.AzureChina.Host],
        StringComparer.OrdinalIgnoreCase);

    private sealed record CachedToken(TokenCredential Credential, string Scope, AccessToken Token);
}
