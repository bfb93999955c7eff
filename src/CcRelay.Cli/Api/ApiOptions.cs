using System.CommandLine;

namespace CcRelay.Cli.Api;

/// <summary>
/// The options every command that talks to a running relay takes, with the same names and meanings everywhere:
/// <c>--config</c> (where the relay's address and token come from), <c>--relay</c>, <c>--token</c> and
/// <c>--json</c>. Each command gets its own instances (an option belongs to one command).
/// </summary>
internal sealed class ApiOptions
{
    public Option<string?> Config { get; } = new("--config", "-c")
    {
        Description = "Config file to read the relay's grpc.listen and grpc.auth_token from. Default: the file serve would load.",
    };

    public Option<string?> Relay { get; } = new("--relay")
    {
        Description = "The management API's address, host:port or http://host:port. Default: $CC_RELAY_GRPC_ADDRESS, else the config's grpc.listen, else 127.0.0.1:8788.",
    };

    public Option<string?> Token { get; } = new("--token")
    {
        Description = "The management token. Default: $CC_RELAY_GRPC_TOKEN, else the config's grpc.auth_token.",
    };

    public Option<bool> Json { get; } = new("--json")
    {
        Description = "Print JSON (for scripts) instead of text.",
    };

    /// <summary>Adds the options to <paramref name="command"/> and returns it.</summary>
    public Command AddTo(Command command, bool json = true)
    {
        command.Add(Config);
        command.Add(Relay);
        command.Add(Token);
        if (json)
        {
            command.Add(Json);
        }

        return command;
    }
}
