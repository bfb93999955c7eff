using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using CcRelay.Core;
using CcRelay.Management.V1;

namespace CcRelay.Cli.Api;

/// <summary>
/// <c>cc-relay clients list|add|revoke|rotate</c>: the client keys of a running relay over the API (ListClients,
/// AddClient, RevokeClient, RotateClient). <c>add</c> and <c>rotate</c> generate the new key here (32 random bytes
/// from the operating system's CSPRNG, base64url, prefixed <c>ccr_</c>), send only its SHA-256, and print the key
/// once: the relay never sees it and nothing can show it again.
/// </summary>
internal static class ClientsCommand
{
    /// <summary>The prefix of a generated client key: recognisable in a leak scan, and as a relay key.</summary>
    public const string KeyPrefix = "ccr_";

    public static Command Create(CliEnvironment environment) =>
        new("clients", "List, add, revoke and rotate the client keys of a running relay (keys are shown by key id only, except a new one, once).")
        {
            List(environment),
            Add(environment),
            Revoke(environment),
            Rotate(environment),
        };

    /// <summary>A new client key: <c>ccr_</c> and 32 bytes of the CSPRNG in base64url (43 characters).</summary>
    public static string NewKey() =>
        KeyPrefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>The SHA-256 of a key as the API takes it (64 lower-case hex digits).</summary>
    public static string Sha256(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    private static Command List(CliEnvironment environment)
    {
        var options = new ApiOptions();
        var command = new Command("list", """
            List the client keys: each client's source (config or runtime), its key id, state (active, expired,
            revoked, shadowed, template_missing), expiry, and the replaced keys still in their grace period.

            Examples:
              cc-relay clients list
              cc-relay clients list --json
            """);
        return options.AddTo(command).WithAction(options, environment, async context =>
        {
            var answer = await context.Client.Api.ListClientsAsync(new ListClientsRequest(), context.Client.CallOptions(context.Cancel));
            if (context.Json)
            {
                await context.Output.WriteLineAsync(ApiCommand.Object(("clients", ApiCommand.Array(answer.Clients))));
                return ExitCodes.Success;
            }

            ApiCommand.Table(
                context.Output,
                ["NAME", "SOURCE", "KEY ID", "STATE", "EXPIRES", "GRACE KEYS", "LIKE"],
                answer.Clients.Select(c => new[]
                {
                    c.Name, c.Source, c.KeyId.Length > 0 ? c.KeyId : "-", c.State, Time(c.ExpiresUnixMs),
                    c.Grace.Count == 0 ? "-" : string.Join(", ", c.Grace.Select(g => $"{g.KeyId} until {Time(g.UntilUnixMs)}")),
                    c.Like.Length > 0 ? c.Like : "-",
                }));
            return ExitCodes.Success;
        });
    }

    private static Command Add(CliEnvironment environment)
    {
        var options = new ApiOptions();
        var name = new Argument<string>("name") { Description = "The new client's name (not one of the config file's clients)." };
        var like = new Option<string?>("--like") { Description = "A config client whose providers, models, stages, limits, budgets and metadata the new client follows. Without it: no restrictions." };
        var expires = new Option<string?>("--expires") { Description = "When the key expires: a span (30d, 12w), a date (midnight UTC) or a date-time. Default: never." };
        var command = new Command("add", """
            Add a client at run time with a new key, generated here and printed once (only its SHA-256 goes to the
            relay). The change is stored: it survives restarts and config reloads.

            Examples:
              cc-relay clients add carol --like alice --expires 90d
              cc-relay clients add ci-weekly --like ci-nightly --json
            """)
        {
            name, like, expires,
        };
        return options.AddTo(command).WithAction(options, environment, async context =>
        {
            long expiresMs = 0;
            if (context.Parse.GetValue(expires) is { } text)
            {
                var parsed = ClientKeyChanges.parseExpiry(TimeProvider.System.GetUtcNow(), text);
                if (parsed.IsError)
                {
                    await context.Error.WriteLineAsync($"cc-relay: {parsed.ErrorValue}");
                    return ExitCodes.InvalidConfig;
                }

                expiresMs = parsed.ResultValue.ToUnixTimeMilliseconds();
            }

            var key = NewKey();
            var answer = await context.Client.Api.AddClientAsync(
                new AddClientRequest
                {
                    Name = context.Parse.GetValue(name)!,
                    KeySha256 = Sha256(key),
                    ExpiresUnixMs = expiresMs,
                    Like = context.Parse.GetValue(like) ?? "",
                    Actor = "cli",
                },
                context.Client.CallOptions(context.Cancel));
            await PrintKeyAsync(context, answer.Client, key, $"Added client {answer.Client.Name} (key id {answer.Client.KeyId}).");
            return ExitCodes.Success;
        });
    }

    private static Command Revoke(CliEnvironment environment)
    {
        var options = new ApiOptions();
        var name = new Argument<string>("name") { Description = "The client's name (a config client too)." };
        var command = new Command("revoke", """
            Revoke every working key of a client, for good: new requests with it are refused at once (requests
            already admitted finish). A revoked key never works again, even if the config file names it; a config
            client comes back only with a new key in the file.

            Examples:
              cc-relay clients revoke carol
            """)
        {
            name,
        };
        return options.AddTo(command).WithAction(options, environment, async context =>
        {
            var answer = await context.Client.Api.RevokeClientAsync(
                new RevokeClientRequest { Name = context.Parse.GetValue(name)!, Actor = "cli" },
                context.Client.CallOptions(context.Cancel));
            await context.Output.WriteLineAsync(context.Json
                ? ApiCommand.Json(answer)
                : $"Revoked client {context.Parse.GetValue(name)}'s key{(answer.RevokedKeyIds.Count == 1 ? "" : "s")} {string.Join(", ", answer.RevokedKeyIds)}.");
            return ExitCodes.Success;
        });
    }

    private static Command Rotate(CliEnvironment environment)
    {
        var options = new ApiOptions();
        var name = new Argument<string>("name") { Description = "The client's name (a config client too)." };
        var grace = new Option<string>("--grace")
        {
            Description = "How long the old key works on: 0 (it stops at once) or a span such as 30m, 24h, 7d (at most 30 days).",
            DefaultValueFactory = _ => "0",
        };
        var command = new Command("rotate", """
            Give a client a new key, generated here and printed once (only its SHA-256 goes to the relay); the old
            key works on for --grace, then stops. Limits and budgets are the client's, whichever key is used.

            Examples:
              cc-relay clients rotate alice --grace 24h
              cc-relay clients rotate ci-nightly
            """)
        {
            name, grace,
        };
        return options.AddTo(command).WithAction(options, environment, async context =>
        {
            var span = ClientKeyChanges.parseGrace(context.Parse.GetValue(grace)!);
            if (span.IsError)
            {
                await context.Error.WriteLineAsync($"cc-relay: {span.ErrorValue}");
                return ExitCodes.InvalidConfig;
            }

            var key = NewKey();
            var answer = await context.Client.Api.RotateClientAsync(
                new RotateClientRequest
                {
                    Name = context.Parse.GetValue(name)!,
                    KeySha256 = Sha256(key),
                    GraceMs = (long)span.ResultValue.TotalMilliseconds,
                    Actor = "cli",
                },
                context.Client.CallOptions(context.Cancel));
            var old = answer.GraceUntilUnixMs > 0
                ? $"the old key {answer.PreviousKeyId} works until {Time(answer.GraceUntilUnixMs)}"
                : $"the old key {answer.PreviousKeyId} no longer works";
            await PrintKeyAsync(context, answer.Client, key, $"Rotated client {answer.Client.Name}'s key to key id {answer.Client.KeyId}; {old}.");
            return ExitCodes.Success;
        });
    }

    /// <summary>Prints a new key, the only time it is ever shown.</summary>
    private static async Task PrintKeyAsync(ApiContext context, ClientKeyInfo client, string key, string said)
    {
        if (context.Json)
        {
            await context.Output.WriteLineAsync(ApiCommand.Object(("client", ApiCommand.Json(client)), ("key", ApiCommand.String(key))));
            return;
        }

        await context.Output.WriteLineAsync(said);
        await context.Output.WriteLineAsync("The key, shown only this once (the relay keeps only its SHA-256):");
        await context.Output.WriteLineAsync(key);
    }

    private static string Time(long unixMs) =>
        unixMs <= 0 ? "-" : DateTimeOffset.FromUnixTimeMilliseconds(unixMs).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
}
