using System.CommandLine;
using CcRelay.Core;

namespace CcRelay.Cli.Api;

/// <summary>
/// Which relay a command or the dashboard talks to and with which token: each from its flag, else its environment
/// variable, else the config (the file <c>serve</c> would load, or <c>--config</c>), else the default (<see cref="From"/>).
/// </summary>
/// <param name="Address">The API's http:// address.</param>
/// <param name="Token">The management token, or null.</param>
/// <param name="Config">The config it was read from (null when none could be loaded).</param>
/// <param name="Explicit">Whether the address was named (flag or variable) rather than found or defaulted.</param>
internal sealed record RelayTarget(Uri Address, string? Token, RelayConfig? Config, bool Explicit)
{
    public const string AddressVariable = "CC_RELAY_GRPC_ADDRESS";
    public const string TokenVariable = "CC_RELAY_GRPC_TOKEN";

    /// <summary>The target, or null after printing why it cannot be told (a bad --relay, a named config that is missing or invalid).</summary>
    public static RelayTarget? Resolve(ParseResult parse, ApiOptions options, CliEnvironment environment, TextWriter error)
    {
        var configPath = parse.GetValue(options.Config);
        var problems = new StringWriter();
        var loaded = LoadConfig.Run(configPath, environment, problems);
        if (loaded is null)
        {
            if (configPath is not null || environment.NonEmpty("CC_RELAY_CONFIG") is not null)
            {
                error.Write(problems.ToString());
                return null;
            }

            // a config found by discovery that does not load: say so in one line and go on with the defaults
            error.WriteLine("cc-relay: warning: the config file does not load (run cc-relay config validate), so the relay's address and token come from flags, environment or defaults");
        }

        var config = loaded?.Config;
        var (target, problem) = From(parse.GetValue(options.Relay), parse.GetValue(options.Token), environment.Variable, config?.Grpc, config);
        if (target is null)
        {
            error.WriteLine($"cc-relay: {problem}");
        }

        return target;
    }

    /// <summary>
    /// The one rule of every command and the dashboard: the address from the flag, else
    /// <c>$CC_RELAY_GRPC_ADDRESS</c>, else the config's <c>grpc.listen</c> (a wildcard host dialled on loopback),
    /// else <c>127.0.0.1:8788</c>; the token from the flag, else <c>$CC_RELAY_GRPC_TOKEN</c>, else
    /// <c>grpc.auth_token</c>. An error message (without a token) when the address cannot be read.
    /// </summary>
    public static (RelayTarget? Target, string? Error) From(string? relayFlag, string? tokenFlag, Func<string, string?> variable, GrpcConfig? grpc, RelayConfig? config = null)
    {
        ArgumentNullException.ThrowIfNull(variable);
        static string? NonEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();
        var named = NonEmpty(relayFlag) ?? NonEmpty(variable(AddressVariable));
        var token = NonEmpty(tokenFlag) ?? NonEmpty(variable(TokenVariable)) ?? (grpc?.AuthToken is { } configured ? NonEmpty(configured.Value) : null);
        if (named is null)
        {
            var url = ClaudeSettings.clientUrl(grpc?.Listen ?? Core.Config.defaultGrpc.Listen);
            return (new RelayTarget(new Uri(url.IsOk ? url.ResultValue : "http://127.0.0.1:8788"), token, config, false), null);
        }

        return ParseAddress(named) is { } address
            ? (new RelayTarget(address, token, config, true), null)
            : (null, $"cannot read the relay's management address '{named}' (--relay: expected host:port or http://host:port)");
    }

    /// <summary>The address as the dashboard's title shows it (<c>host:port</c>, or the scheme too when it is https).</summary>
    public string Display => Address.Scheme == Uri.UriSchemeHttp ? Address.Authority : Address.GetLeftPart(UriPartial.Authority);

    /// <summary><c>host:port</c> (a wildcard host becomes loopback) or an absolute http(s) URL; null when neither.</summary>
    public static Uri? ParseAddress(string text)
    {
        if (text.Contains("://", StringComparison.Ordinal))
        {
            return Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps) && uri.Port > 0
                && uri.Host.Length > 0 && uri.AbsolutePath is "/" or ""
                ? new Uri(uri.GetLeftPart(UriPartial.Authority))
                : null;
        }

        var listen = ListenAddress.TryParse(text);
        if (listen.IsError)
        {
            return null;
        }

        var url = ClaudeSettings.clientUrl(listen.ResultValue);
        return url.IsOk ? new Uri(url.ResultValue) : null;
    }

    /// <summary>A client of this target's API.</summary>
    public RelayClient Connect(TimeProvider? timeProvider = null) => new(Address, Token, timeProvider: timeProvider);
}
