using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Amazon.Runtime;
using Amazon.Runtime.CredentialManagement;
using Amazon.Runtime.Credentials;
using CcRelay.Core;

namespace CcRelay.Host.Credentials;

/// <summary>
/// AWS credentials from AWSSDK.Core's standard chain or a named profile, one resolver per source, each keeping its
/// own refresh. Only this class names AWSSDK.Core's types: <see cref="CloudCredentials"/> creates it when a SigV4
/// signature first needs it, so a relay with no such provider never loads the SDK.
/// </summary>
internal sealed class AwsCredentialCache
{
    private readonly ConcurrentDictionary<AwsCredentialSource, AWSCredentials> _sources = new();

    /// <summary>The current credentials of <paramref name="source"/> (a profile or the chain), as Core's signing takes them.</summary>
    // NOTE: NoInlining keeps the library's types out of the caller: inlining this into CloudCredentials would make
    // the JIT load them (an async state machine's awaiter over a library type) for every cloud, used or not
    [MethodImpl(MethodImplOptions.NoInlining)]
    public async Task<AwsCredentials> GetAsync(AwsCredentialSource source)
    {
        var immutable = await _sources.GetOrAdd(source, Resolve).GetCredentialsAsync();
        return AwsCredentials.Create(immutable.AccessKey, immutable.SecretKey, immutable.UseToken ? immutable.Token : null);
    }

    private static AWSCredentials Resolve(AwsCredentialSource source) =>
        source switch
        {
            AwsCredentialSource.Profile p => new CredentialProfileStoreChain().TryGetAWSCredentials(p.Name, out var fromProfile)
                ? fromProfile
                : throw new InvalidOperationException("AWS profile not found"),
            _ => DefaultAWSCredentialsIdentityResolver.GetCredentials(),
        };
}
