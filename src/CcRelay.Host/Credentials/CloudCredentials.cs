using System.Runtime.CompilerServices;
using CcRelay.Core;

namespace CcRelay.Host.Credentials;

/// <summary>
/// The credential step of the upstream pipeline: applies a plan's <see cref="Signing"/> to the final request.
/// The credential sources are well-kept libraries (AWSSDK.Core's credential chain and profiles, Google.Apis.Auth's
/// Application Default Credentials, Azure.Identity); each is built once per configured source and keeps its own
/// refresh. Signing itself is Core's (<c>SigV4.sign</c>), over the exact bytes sent. No credential is ever logged:
/// a failure says which source failed, never what it held.
/// </summary>
/// <remarks>
/// Each library is named only by its own class (<see cref="AwsCredentialCache"/>, <see cref="GoogleTokens"/>,
/// <see cref="EntraTokens"/>), created here the first time a request needs it: a relay without a cloud provider
/// never loads AWSSDK.Core, Google.Apis.Auth, Azure.Core, Azure.Identity or System.ClientModel (2.9 MiB of idle RSS
/// in the JIT build, docs/install.md#startup-and-memory), and a provider added by a reload gets its library then.
/// </remarks>
internal sealed class CloudCredentials
{
    private readonly TimeProvider _timeProvider;
    private readonly Func<string, string?> _environment;
    private AwsCredentialCache? _aws;
    private GoogleTokens? _google;
    private EntraTokens? _entra;

    public CloudCredentials(TimeProvider timeProvider, Func<string, string?> environment)
    {
        _timeProvider = timeProvider;
        _environment = environment;
    }

    /// <summary>The Entra ID tokens (created on first use; tests reach its factory and transport through it).</summary>
    internal EntraTokens Entra => LazyInitializer.EnsureInitialized(ref _entra, () => new EntraTokens(_timeProvider));

    private AwsCredentialCache Aws => LazyInitializer.EnsureInitialized(ref _aws, static () => new AwsCredentialCache());

    private GoogleTokens Google => LazyInitializer.EnsureInitialized(ref _google, static () => new GoogleTokens());

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
                    var token = await GoogleTokenAsync(google, cancellationToken);
                    request.Headers.TryAddWithoutValidation("authorization", "Bearer " + token);
                    return null;
                case Signing.EntraToken entra:
                    var entraToken = await EntraTokenAsync(entra, cancellationToken);
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
            case Signing.GoogleToken google when _google is not null:
                InvalidateGoogle(google);
                break;
            case Signing.EntraToken entra when _entra is not null:
                InvalidateEntra(entra);
                break;
        }
    }

    // NOTE: each library's class is named only inside a method of its own, kept out of its callers (NoInlining): the
    // JIT loads the types a method names when it compiles it, and loading EntraTokens loads Azure.Core, so naming it in
    // ApplyAsync loaded Azure.Core for every signed request (a Bedrock relay's too)
    [MethodImpl(MethodImplOptions.NoInlining)]
    private Task<string> GoogleTokenAsync(Signing.GoogleToken google, CancellationToken cancellationToken) =>
        Google.TokenAsync(google.CredentialsFile?.Value, cancellationToken);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private Task<string> EntraTokenAsync(Signing.EntraToken entra, CancellationToken cancellationToken) =>
        Entra.TokenAsync(entra.Scope, entra.Credential, entra.AuthorityHost?.Value, cancellationToken);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private Task<AwsCredentials> AwsCredentialsAsync(AwsCredentialSource source) => Aws.GetAsync(source);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void InvalidateGoogle(Signing.GoogleToken google) => Google.Invalidate(google.CredentialsFile?.Value);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void InvalidateEntra(Signing.EntraToken entra) => Entra.Invalidate(entra.Credential, entra.AuthorityHost?.Value);

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
            credentials = await AwsCredentialsAsync(plan.Source);
        }

        // NOTE: the raw value, not the typed ContentType: that would parse it into header objects and format it back
        string? contentType = null;
        if (request.Content is { } content && content.Headers.NonValidated.TryGetValues("Content-Type", out var values))
        {
            contentType = values.ToString();
        }

        // x-amz-* headers are signed too (the plans set none: the list is made only when one is there)
        List<(string, string)>? amz = null;
        foreach (var header in request.Headers.NonValidated)
        {
            if (header.Key.StartsWith("x-amz-", StringComparison.OrdinalIgnoreCase))
            {
                (amz ??= new List<(string, string)>(2)).Add((header.Key, header.Value.ToString()));
            }
        }

        var signed = SigV4.signRequest(
            credentials,
            plan.Region,
            plan.Service,
            _timeProvider.GetUtcNow(),
            request.Method.Method,
            request.RequestUri!,
            contentType,
            amz,
            body.Span);
        var headers = request.Headers;
        headers.TryAddWithoutValidation("x-amz-date", signed.AmzDate);
        if (signed.SecurityToken is { } token)
        {
            headers.TryAddWithoutValidation("x-amz-security-token", token);
        }

        headers.TryAddWithoutValidation("x-amz-content-sha256", signed.ContentSha256);
        headers.TryAddWithoutValidation("authorization", signed.Authorization);
        return null;
    }
}
