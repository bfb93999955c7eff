using System.Text;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// Response header names Anthropic-shaped upstreams send on every answer, as shared strings: a response head
/// then allocates only its values.
/// </summary>
internal static class KnownHeaderNames
{
    private static readonly (byte[] Bytes, string Name)[] Names =
    [
        .. new[]
        {
            "Content-Type", "Content-Length", "Date", "Server", "Connection", "Transfer-Encoding", "Keep-Alive",
            "Cache-Control", "Vary", "Via", "request-id", "x-request-id", "retry-after", "x-should-retry",
            "anthropic-organization-id", "cf-ray", "cf-cache-status", "strict-transport-security",
            "x-envoy-upstream-service-time", "anthropic-ratelimit-requests-limit", "anthropic-ratelimit-requests-remaining",
            "anthropic-ratelimit-requests-reset", "anthropic-ratelimit-tokens-limit", "anthropic-ratelimit-tokens-remaining",
            "anthropic-ratelimit-tokens-reset", "anthropic-ratelimit-input-tokens-limit",
            "anthropic-ratelimit-input-tokens-remaining", "anthropic-ratelimit-input-tokens-reset",
            "anthropic-ratelimit-output-tokens-limit", "anthropic-ratelimit-output-tokens-remaining",
            "anthropic-ratelimit-output-tokens-reset",
        }.Select(static name => (Encoding.ASCII.GetBytes(name), name)),
    ];

    /// <summary>The shared string for a known name (any letter case on the wire), or null.</summary>
    public static string? Find(ReadOnlySpan<byte> name)
    {
        foreach (var (bytes, text) in Names)
        {
            if (bytes.Length == name.Length && System.Text.Ascii.EqualsIgnoreCase(name, bytes))
            {
                return text;
            }
        }

        return null;
    }
}
