using CcRelay.Core;

namespace CcRelay.Cli.Tui;

/// <summary>
/// Which relay the dashboard watches and with which token. Each comes from the first of: the flag
/// (<c>--relay</c>, <c>--token</c>), the environment (<c>CC_RELAY_GRPC_ADDRESS</c>, <c>CC_RELAY_GRPC_TOKEN</c>), the config's
/// <c>grpc</c> section (<c>grpc.listen</c>, <c>grpc.auth_token</c>), the default <c>127.0.0.1:8788</c> without a token.
/// </summary>
/// <param name="Address">An <c>http://host:port</c> URI (the API is HTTP/2 without TLS unless <c>https://</c> is named).</param>
/// <param name="Token">The management token, or null.</param>
/// <param name="Display">The address as the title shows it.</param>
internal sealed record TuiTarget(Uri Address, string? Token, string Display)
{
    public const string AddressVariable = "CC_RELAY_GRPC_ADDRESS";
    public const string TokenVariable = "CC_RELAY_GRPC_TOKEN";

    /// <summary>The target, or an error message for an address that cannot be read.</summary>
    public static (TuiTarget? Target, string? Error) Resolve(string? relayFlag, string? tokenFlag, Func<string, string?> variable, GrpcConfig? config)
    {
        static string? NonEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();
        var text = NonEmpty(relayFlag) ?? NonEmpty(variable(AddressVariable)) ?? (config is null ? null : Dialable(config.Listen));
        var token = NonEmpty(tokenFlag) ?? NonEmpty(variable(TokenVariable)) ?? (config?.AuthToken is { } configured ? NonEmpty(configured.Value) : null);
        var address = ParseAddress(text ?? "127.0.0.1:8788");
        return address is null
            ? (null, $"cannot read the relay's management address '{text}' (host:port or http://host:port)")
            : (new TuiTarget(address, token, address.Scheme == Uri.UriSchemeHttp ? address.Authority : address.GetLeftPart(UriPartial.Authority)), null);
    }

    /// <summary><c>host:port</c>, <c>[::1]:port</c> or a full <c>http(s)://</c> URI; null when it is neither.</summary>
    public static Uri? ParseAddress(string text)
    {
        var withScheme = text.Contains("://", StringComparison.Ordinal) ? text : "http://" + text;
        return Uri.TryCreate(withScheme, UriKind.Absolute, out var uri)
            && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
            && uri.Host.Length > 0
            && (uri.AbsolutePath == "/" || uri.AbsolutePath.Length == 0)
            ? new Uri(uri.GetLeftPart(UriPartial.Authority))
            : null;
    }

    /// <summary>A listen address as a client dials it: a wildcard host (all interfaces) is reached on loopback.</summary>
    public static string Dialable(ListenAddress listen)
    {
        var host = listen.Host is "" or "0.0.0.0" ? "127.0.0.1" : listen.Host is "::" or "[::]" ? "[::1]" : listen.Host;
        if (host.Contains(':', StringComparison.Ordinal) && !host.StartsWith('['))
        {
            host = $"[{host}]";
        }

        return $"{host}:{listen.Port}";
    }
}

/// <summary>How long to wait before the next reconnection: 0.5 s doubling to at most 5 s, back to the start once connected.</summary>
internal static class Backoff
{
    public static readonly TimeSpan First = TimeSpan.FromMilliseconds(500);
    public static readonly TimeSpan Max = TimeSpan.FromSeconds(5);

    /// <summary>The wait before try <paramref name="attempt"/> (1 = the first retry).</summary>
    public static TimeSpan Delay(int attempt) =>
        attempt <= 1 ? First : TimeSpan.FromMilliseconds(Math.Min(Max.TotalMilliseconds, First.TotalMilliseconds * Math.Pow(2, Math.Min(attempt - 1, 16))));
}
