using System.Collections.Concurrent;
using Amazon.Runtime;
using Amazon.Runtime.CredentialManagement;
using Amazon.Runtime.Credentials;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Identity;
using CcRelay.Core;
using Google.Apis.Auth.OAuth2;

namespace CcRelay.Host.Credentials;

/// <summary>
/// The credential step of the upstream pipeline: applies a plan's <see cref="Signing"/> to the final request.
/// The credential sources are well-kept libraries (AWSSDK.Core's credential chain and profiles, Google.Apis.Auth's
/// Application Default Credentials, Azure.Identity); each is built once per configured source and keeps its own
/// refresh. Signing itself is Core's (<c>SigV4.sign</c>), over the exact bytes sent. No credential is ever logged:
/// a failure says which source failed, never what it held.
/// </summary>
internal sealed class CloudCredentials
{
    private readonly TimeProvider _timeProvider;
    private readonly Func<string, string?> _environment;

    public CloudCredentials(TimeProvider timeProvider, Func<string, string?> environment)
    {
        _timeProvider = timeProvider;
        _environment = environment;
        EntraFactory = CreateEntra;
    }

    /// <summary>Refresh tokens this long before they expire (a request may take minutes to be sent).</summary>
    private static readonly TimeSpan RefreshAhead = TimeSpan.FromMinutes(5);

    private readonly ConcurrentDictionary<AwsCredentialSource, AWSCredentials> _aws = new();
    private readonly ConcurrentDictionary<string, GoogleCredential> _google = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(EntraCredential Source, string? Authority), CachedToken> _entra = new();

    /// <summary>Tests: the Entra ID credential for a configured source and authority host (default: Azure.Identity's).</summary>
    internal Func<EntraCredential, string?, TokenCredential> EntraFactory { get; set; }

    /// <summary>Tests: the transport Azure.Identity's credentials use (default: its own HttpClient).</summary>
    internal HttpPipelineTransport? EntraTransport { get; set; }

    /// <summary>
    /// Adds what <paramref name="plan"/>'s signing needs to <paramref name="request"/> (whose URL, headers and
    /// <paramref name="body"/> are final). Returns null when done, else why no credential could be had.
    /// </summary>
    public async ValueTask<string?> ApplyAsync(HttpRequestMessage request, UpstreamPlan plan, ReadOnlyMemory<byte> body, CancellationToken cancellationToken)
    {
        try
        {
            switch (plan.Signing)
            {
                case Signing.SigV4 sigV4:
                    return await SignAsync(request, sigV4, body);
                case Signing.GoogleToken google:
                    var token = await GoogleFor(google.CredentialsFile?.Value).UnderlyingCredential.GetAccessTokenForRequestAsync(cancellationToken: cancellationToken);
                    request.Headers.TryAddWithoutValidation("authorization", "Bearer " + token);
                    return null;
                case Signing.EntraToken entra:
                    var entraToken = await EntraTokenAsync(entra.Scope, (entra.Credential, entra.AuthorityHost?.Value), cancellationToken);
                    request.Headers.TryAddWithoutValidation("authorization", "Bearer " + entraToken);
                    return null;
                default:
                    return null;
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // NOTE: the exception's type, not its message: a library's message may quote what it read
            return $"no {Describe(plan.Signing)} credential could be obtained ({e.GetType().Name})";
        }
    }

    /// <summary>Forgets a cached token (the upstream refused it): the next request gets a fresh one.</summary>
    public void Invalidate(UpstreamPlan plan)
    {
        switch (plan.Signing)
        {
            case Signing.GoogleToken google:
                _google.TryRemove(google.CredentialsFile is { } file ? file.Value : "", out _);
                break;
            case Signing.EntraToken entra:
                _entra.TryRemove((entra.Credential, entra.AuthorityHost?.Value), out _);
                break;
        }
    }

    private static string Describe(Signing signing) =>
        signing switch
        {
            Signing.SigV4 => "AWS",
            Signing.GoogleToken => "Google",
            Signing.EntraToken => "Microsoft Entra ID",
            _ => "static",
        };

    private async Task<string?> SignAsync(HttpRequestMessage request, Signing.SigV4 plan, ReadOnlyMemory<byte> body)
    {
        // a Bedrock API key in the environment takes precedence over AWS credentials, as in the AWS SDKs and Claude Code
        if (plan.Source.IsChain && _environment("AWS_BEARER_TOKEN_BEDROCK") is { Length: > 0 } bearer)
        {
            request.Headers.TryAddWithoutValidation("authorization", "Bearer " + bearer);
            return null;
        }

        AwsCredentials credentials;
        if (plan.Source is AwsCredentialSource.Static configured)
        {
            // the configured keys themselves: no SDK call (its GetCredentialsAsync may hop to the thread pool)
            credentials = new AwsCredentials(configured.AccessKeyId, configured.SecretAccessKey, configured.SessionToken);
        }
        else
        {
            var immutable = await AwsFor(plan.Source).GetCredentialsAsync();
            credentials = AwsCredentials.Create(
                immutable.AccessKey,
                immutable.SecretKey,
                immutable.UseToken ? immutable.Token : null);
        }

        var signed = new List<Tuple<string, string>>(4);

        // NOTE: the raw value, not the typed ContentType: that would parse it into header objects and format it back
        if (request.Content is { } content && content.Headers.NonValidated.TryGetValues("Content-Type", out var contentType))
        {
            signed.Add(Tuple.Create("content-type", contentType.ToString()));
        }

        foreach (var header in request.Headers.NonValidated)
        {
            if (header.Key.StartsWith("x-amz-", StringComparison.OrdinalIgnoreCase))
            {
                signed.Add(Tuple.Create(header.Key.ToLowerInvariant(), header.Value.ToString()));
            }
        }

        var headers = SigV4.sign(
            credentials,
            plan.Region,
            plan.Service,
            _timeProvider.GetUtcNow(),
            request.Method.Method,
            request.RequestUri!,
            signed,
            SigV4.sha256Hex(body.Span));
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return null;
    }

    private AWSCredentials AwsFor(AwsCredentialSource source) =>
        _aws.GetOrAdd(source, static source => source switch
        {
            AwsCredentialSource.Profile p => new CredentialProfileStoreChain().TryGetAWSCredentials(p.Name, out var fromProfile)
                ? fromProfile
                : throw new InvalidOperationException("AWS profile not found"),
            _ => DefaultAWSCredentialsIdentityResolver.GetCredentials(),
        });

    private GoogleCredential GoogleFor(string? file) =>
        _google.GetOrAdd(file ?? "", static path =>
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

    private async Task<string> EntraTokenAsync(string scope, (EntraCredential Source, string? Authority) key, CancellationToken cancellationToken)
    {
        var now = _timeProvider.GetUtcNow();
        if (_entra.TryGetValue(key, out var cached) && cached.Scope == scope && cached.Token.ExpiresOn - RefreshAhead > now)
        {
            return cached.Token.Token;
        }

        var credential = cached?.Credential ?? EntraFactory(key.Source, key.Authority);
        var token = await credential.GetTokenAsync(new TokenRequestContext([scope]), cancellationToken);
        _entra[key] = new CachedToken(credential, scope, token);
        return token.Token;
    }


    private TokenCredential CreateEntra(EntraCredential source, string? authority)
    {
        T With<T>(T options)
            where T : TokenCredentialOptions
        {
            if (authority is not null)
            {
                options.AuthorityHost = new Uri(authority);
            }

            if (EntraTransport is { } transport)
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
