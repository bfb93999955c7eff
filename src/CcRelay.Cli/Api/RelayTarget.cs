using System.CommandLine;
using CcRelay.Core;

namespace CcRelay.Cli.Api;

/// <summary>
/// Which relay a command talks to and with which token: each from its flag, else its environment variable, else
/// the config (the file <c>serve</c> would load, or <c>--config</c>), else the default.
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
        var named = parse.GetValue(options.Relay) ?? environment.NonEmpty(AddressVariable);
        Uri address;
        if (named is not null)
        {
            if (ParseAddress(named) is not { } parsed)
            {
                error.WriteLine($"cc-relay: --relay: expected host:port or http://host:port, got \"{named}\"");
                return null;
            }

            address = parsed;
        }
        else
        {
            var listen = config?.Grpc.Listen ?? Core.Config.defaultGrpc.Listen;
            var url = ClaudeSettings.clientUrl(listen);
            address = new Uri(url.IsOk ? url.ResultValue : "http://127.0.0.1:8788");
        }

        var token = parse.GetValue(options.Token) ?? environment.NonEmpty(TokenVariable) ?? config?.Grpc.AuthToken?.Value;
        return new RelayTarget(address, token, config, named is not null);
    }

    /// <summary><c>host:port</c> (a wildcard host becomes loopback) or an absolute http(s) URL; null when neither.</summary>
    public static Uri? ParseAddress(string text)
    {
        if (text.Contains("://", StringComparison.Ordinal))
        {
            return Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps) && uri.Port > 0
                ? uri
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
    public RelayClient Connect() => new(Address, Token);
}
