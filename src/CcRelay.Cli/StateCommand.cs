using System.CommandLine;
using CcRelay.Host.Shared;
using Npgsql;

namespace CcRelay.Cli;

/// <summary>
/// <c>cc-relay state revoke-client-key NAME|KEY_ID [--config path]</c>: revokes a client key in the shared store
/// (<c>state.postgres</c>, docs/scale-out.md); every relay on that database refuses it within a second, and a relay
/// that starts or reconnects later reads it.
/// </summary>
internal static class StateCommand
{
    public static Command Create(CliEnvironment environment)
    {
        var client = new Argument<string>("client") { Description = "The client's name (clients[].name) or its key id (8 hex digits)." };
        var config = new Option<string?>("--config") { Description = "The config file whose state.postgres to use. Default: the file serve would load." };
        var revoke = new Command("revoke-client-key", "Revoke a client key on every relay that shares state.postgres.") { client, config }
            .WithExamples(
                "cc-relay state revoke-client-key alice",
                "cc-relay state revoke-client-key 1a2b3c4d --config /etc/cc-relay/config.yaml");
        revoke.SetAction(async (parse, cancellationToken) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            var loaded = LoadConfig.Run(parse.GetValue(config), environment, error);
            if (loaded is null)
            {
                return ExitCodes.InvalidConfig;
            }

            var relay = loaded.Value.Config;
            if (relay.State.Postgres?.Value is not { } postgres)
            {
                error.WriteLine("cc-relay: state.postgres is not set: client keys are not shared; remove the client from clients[] and reload instead");
                return ExitCodes.InvalidConfig;
            }

            var name = parse.GetValue(client)!;
            var named = relay.Clients.FirstOrDefault(c => c.Name == name);
            var keyId = named?.KeyId ?? name.ToLowerInvariant();
            if (named is null && (keyId.Length != 8 || !keyId.All(Uri.IsHexDigit)))
            {
                var known = string.Join(", ", relay.Clients.Select(c => c.Name));
                error.WriteLine($"cc-relay: no client is named {name}, and it is not a key id (8 hex digits); clients: {(known.Length == 0 ? "none" : known)}");
                return ExitCodes.InvalidConfig;
            }

            try
            {
                var fresh = await SharedRevocation.RevokeClientKeyAsync(postgres, keyId, cancellationToken);
                output.WriteLine(fresh
                    ? $"revoked client key {keyId}{(named is null ? "" : $" ({named.Name})")} on every relay sharing this database"
                    : $"client key {keyId} was already revoked");
                return ExitCodes.Success;
            }
            catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or InvalidOperationException)
            {
                error.WriteLine($"cc-relay: the shared store cannot be reached: {(e is PostgresException pg ? pg.MessageText : e.Message)}");
                return ExitCodes.Failure;
            }
        });
        return new Command("state", "The state relays share through PostgreSQL (state.postgres).") { revoke };
    }
}
