using System.Text;
using CcRelay.Core;
using CcRelay.Host.Configuration;
using CcRelay.Host.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Tests.Observability;

/// <summary>
/// Known secrets fed through every path the relay logs — request headers, body fields, query strings, upstream
/// response headers and bodies (JSON and SSE), upstream errors, a broken connection, a rejected config reload —
/// with debug logging and every debug option on, and through the edge (a wrong status token, a wrong relay key): none
/// appears in any log output (the JSON log file, every captured line's message and fields) nor in the audit log.
/// </summary>
public sealed class SecretRedactionTests : IAsyncLifetime
{
    private const string RelayKey = "sk-relay-SECRET0001";
    private const string ProviderKey = "sk-provider-SECRET0002";

    private static readonly string[] Secrets =
    [
        RelayKey, ProviderKey, "SECRET0003", "SECRET0004", "SECRET0005", "SECRET0006", "SECRET0007", "SECRET0008",
        "SECRET0009", "SECRET0010", "SECRET0011", "SECRET0012", "SECRET0013", "SECRET0014", "SECRET0015",
        "SECRET0016", "SECRET0017", "SECRET0018", "SECRET0019",
    ];

    private readonly string _dir = Directory.CreateTempSubdirectory("cc-relay-secrets-").FullName;
    private FakeUpstream _upstream = null!;

    private string ConfigPath => Path.Combine(_dir, "cc-relay.yaml");

    private string LogPath => Path.Combine(_dir, "relay.log");

    private string AuditPath => Path.Combine(_dir, "audit.jsonl");
    private string LedgerPath => Path.Combine(_dir, "ledger.db");

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _upstream.Handler = AnswerAsync;
    }

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private static async Task AnswerAsync(HttpContext context)
    {
        var body = Encoding.UTF8.GetString(FakeUpstream.Current(context).Body);
        context.Response.Headers["set-cookie"] = "session=SECRET0010";
        context.Response.Headers["x-upstream-secret"] = "SECRET0011";
        if (body.Contains("\"stream\":true", StringComparison.Ordinal))
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(
                context,
                Fake.MessageStart() + Fake.Event("custom", """{"type":"custom","secret":"SECRET0013"}""") + Fake.TextBlock(0, "hi") + Fake.MessageEnd());
        }
        else if (body.Contains("kind=error", StringComparison.Ordinal))
        {
            await Fake.WriteJsonAsync(context, 401, """{"type":"error","error":{"type":"authentication_error","message":"bad key"},"api_key":"SECRET0014"}""");
        }
        else if (body.Contains("kind=drop", StringComparison.Ordinal))
        {
            context.Abort();
        }
        else
        {
            await Fake.WriteJsonAsync(context, 200, """{"id":"m","type":"message","model":"claude-test","content":[],"access_token":"SECRET0012","usage":{"input_tokens":1,"output_tokens":1}}""");
        }
    }

    private string Config(string extra = "") => $"""
        server:
          listen: "127.0.0.1:0"
          auth:
            api_key: "{RelayKey}"
        providers:
          - name: fake
            type: anthropic_compatible
            base_url: "{_upstream.BaseUrl}"
            keys:
              - key: "{ProviderKey}"
        logging:
          level: debug
          format: json
          output: "{LogPath}"
          debug_options:
            log_request_body: true
            log_request_headers: true
            log_response_headers: true
            log_response_body: true
            max_body_log_size: 100000
        routing:
          max_attempts: 1
        security:
          status_token: "SECRET0017"
          audit_log: "{AuditPath}"
        ledger:
          path: "{LedgerPath}"
        {extra}
        """;

    private static HttpRequestMessage Request(string kind, bool stream = false)
    {
        var body = "{\"model\":\"claude-sonnet-4-6\",\"max_tokens\":8" + (stream ? ",\"stream\":true" : "")
            + ",\"api_key\":\"SECRET0006\",\"metadata\":{\"user_id\":\"u\",\"password\":\"SECRET0007\"}"
            + ",\"messages\":[{\"role\":\"user\",\"content\":\"kind=" + kind + "; my key is " + RelayKey + "\"}]}";
        var request = Requests.Messages(body, path: "/v1/messages?beta=true&api_key=SECRET0008&token=SECRET0009", apiKey: RelayKey);
        request.Headers.TryAddWithoutValidation("authorization", "Bearer SECRET0003");
        request.Headers.TryAddWithoutValidation("cookie", "session=SECRET0004");
        request.Headers.TryAddWithoutValidation("x-custom-token", "SECRET0005");
        return request;
    }

    [Fact]
    public async Task KnownSecrets_ThroughEveryPath_AppearInNoLogOutput()
    {
        // Arrange: a relay logging at debug level, every debug option on, JSON lines to a file
        await File.WriteAllTextAsync(ConfigPath, Config());
        var load = (ConfigLoad.Loaded)ConfigFile.Load(ConfigPath, Environment.GetEnvironmentVariable);
        var relay = await RelayHost.StartAsync(load.Config, ConfigPath);
        IReadOnlyList<CapturedLogs.LogLine> lines;
        try
        {
            // Act: JSON, SSE, a dropped connection, an upstream error… (the drop before the 401: a 401 sets
            // the provider's only key aside until the next reload)
            foreach (var (kind, stream) in new[] { ("ok", false), ("ok", true), ("drop", false), ("error", false) })
            {
                using var response = await relay.Client.SendAsync(Request(kind, stream));
                _ = await response.Content.ReadAsByteArrayAsync();
            }

            await relay.Logs.RequestLinesAsync(4);

            // the edge: a wrong status token, the right one, a wrong relay key (each reaches the audit log or is refused)
            foreach (var token in new[] { "SECRET0018", "SECRET0017" })
            {
                using var scrape = new HttpRequestMessage(HttpMethod.Get, "/metrics");
                scrape.Headers.TryAddWithoutValidation("authorization", "Bearer " + token);
                using var answer = await relay.Client.SendAsync(scrape);
            }

            using (var denied = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody, apiKey: "SECRET0019")))
            {
                Assert.Equal(System.Net.HttpStatusCode.Unauthorized, denied.StatusCode);
            }

            // … and a reload of a broken file with secrets in the wrong places
            await File.WriteAllTextAsync(ConfigPath, Config($"""
                  extra_section:
                    api_key: "SECRET0015"
                """).Replace($"api_key: \"{RelayKey}\"", $"api_key: [\"{RelayKey}\"]\n    allow_bearer: \"{ProviderKey}\"\n    bearer_secret: {{ nested: \"SECRET0016\" }}", StringComparison.Ordinal));
            var result = relay.Reloader.Reload("test");
            Assert.Equal(CcRelay.Host.Reload.ReloadOutcome.Rejected, result.Outcome);
            lines = await relay.Logs.WaitForAsync(l => l.EventId == 9, 2);
        }
        finally
        {
            // stopping the relay flushes the log file
            await relay.DisposeAsync();
        }

        lines = relay.Logs.Lines;
        var file = await File.ReadAllTextAsync(LogPath);
        var audit = await File.ReadAllTextAsync(AuditPath);
        Assert.Contains("\"event\":\"auth.failed\"", audit, StringComparison.Ordinal);
        Assert.Contains("\"event\":\"status.denied\"", audit, StringComparison.Ordinal);
        Assert.Contains("\"outcome\":\"rejected\"", audit, StringComparison.Ordinal);

        // the usage ledger (written at the relay's stop) holds the four relayed requests and the one refused for its wrong key, and no secret either
        using (var ledger = CcRelay.Host.Ledger.LedgerFile.OpenForReading(LedgerPath))
        using (var count = ledger.CreateCommand())
        {
            count.CommandText = "SELECT COUNT(*) FROM requests";
            Assert.Equal(5L, (long)count.ExecuteScalar()!);
        }

        var ledgerBytes = string.Concat(Directory.GetFiles(_dir, "ledger.db*").Select(f => Encoding.Latin1.GetString(File.ReadAllBytes(f))));

        // Assert: the paths were really logged…
        // (request body 40, upstream request 41, response headers 42, response body 43, upstream failure 2,
        // config error 9, config warning 5, completion 1)
        foreach (var eventId in new[] { 40, 41, 42, 43, 2, 9, 5, 1 })
        {
            Assert.Contains($"\"EventId\":{eventId},", file, StringComparison.Ordinal);
        }

        Assert.Contains("[REDACTED]", file, StringComparison.Ordinal);
        Assert.Contains("\"Message\":\"config error: ", file, StringComparison.Ordinal);
        Assert.Contains("kind=ok", file, StringComparison.Ordinal);

        // … and no secret is anywhere
        var captured = string.Join("\n", lines.Select(l => l.Message + " " + string.Join(" ", l.Fields.Values.Select(v => v?.ToString()))));
        foreach (var secret in Secrets)
        {
            Assert.DoesNotContain(secret, file, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, captured, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, audit, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, ledgerBytes, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task KnownSecrets_AppearInNoManagementApiAnswer_StreamOrLog_KeysAddedThroughItIncluded_ClientKeysInTheAuditAndLedgerToo()
    {
        // Arrange: the same relay with the management API on, its token a secret too
        const string Token = "SECRET0017";
        const string AddedKey = "sk-added-SECRET0018";
        const string ClientKey = "ccr_client-SECRET0020-00000000000000000000";
        const string RotatedClientKey = "ccr_client-SECRET0021-00000000000000000000";
        static string Sha256(string key) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(key)));
        await File.WriteAllTextAsync(ConfigPath, Config($"""
            grpc:
              listen: "127.0.0.1:0"
              auth_token: "{Token}"
            """));
        var load = (ConfigLoad.Loaded)ConfigFile.Load(ConfigPath, Environment.GetEnvironmentVariable);
        var relay = await RelayHost.StartAsync(load.Config, ConfigPath, watchConfig: false);
        var answers = new List<string>();
        try
        {
            using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(relay.Addresses[^1]);
            var client = new CcRelay.Management.V1.RelayManagement.RelayManagementClient(channel);
            var auth = new Grpc.Core.Metadata { { "authorization", "Bearer " + Token } };
            string Json(Google.Protobuf.IMessage message) => Google.Protobuf.JsonFormatter.Default.Format(message);
            using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            using var requests = client.WatchRequests(new(), auth, cancellationToken: cancel.Token);
            await requests.ResponseHeadersAsync;

            // Act: a key added through the API takes traffic; every method answers; a broken reload is refused
            var added = await client.AddKeyAsync(new() { Provider = "fake", Key = AddedKey, Priority = 5 }, auth);
            answers.Add(Json(added));
            using (var response = await relay.Client.SendAsync(Request("ok")))
            {
                _ = await response.Content.ReadAsByteArrayAsync();
            }

            Assert.True(await requests.ResponseStream.MoveNext(cancel.Token));
            answers.Add(Json(requests.ResponseStream.Current));
            Assert.Equal(added.KeyId, requests.ResponseStream.Current.KeyId);
            answers.Add(Json(await client.GetStatusAsync(new(), auth)));
            answers.Add(Json(await client.ListProvidersAsync(new(), auth)));
            answers.Add(Json(await client.ListKeysAsync(new(), auth)));
            answers.Add(Json(await client.GetConfigAsync(new(), auth)));
            answers.Add(Json(await client.ListModelsAsync(new(), auth)));
            answers.Add(Json(await client.SetProviderEnabledAsync(new() { Name = "fake", Enabled = true }, auth)));
            using (var stats = client.WatchStats(new() { IntervalMs = 100 }, auth, cancellationToken: cancel.Token))
            {
                Assert.True(await stats.ResponseStream.MoveNext(cancel.Token));
                answers.Add(Json(stats.ResponseStream.Current));
            }

            var again = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => client.AddKeyAsync(new() { Provider = "fake", Key = AddedKey + " x" }, auth).ResponseAsync);
            answers.Add(again.Status.Detail);
            answers.Add(Json(await client.RemoveKeyAsync(new() { Provider = "fake", KeyId = added.KeyId }, auth)));

            // client keys changed at run time: the keys (made here, as the CLI makes them) travel only as digests
            answers.Add(Json(await client.AddClientAsync(new() { Name = "carol", KeySha256 = Sha256(ClientKey), Actor = "cli" }, auth)));
            using (var response = await relay.Client.SendAsync(Requests.Messages("{\"model\":\"claude-sonnet-4-6\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"kind=ok\"}]}", apiKey: ClientKey)))
            {
                Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
            }

            answers.Add(Json(await client.RotateClientAsync(new() { Name = "carol", KeySha256 = Sha256(RotatedClientKey), GraceMs = 60_000, Actor = "cli" }, auth)));
            answers.Add(Json(await client.ListClientsAsync(new(), auth)));
            answers.Add(Json(await client.RevokeClientAsync(new() { Name = "carol", Actor = "cli" }, auth)));
            var refusedAdd = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => client.AddClientAsync(new() { Name = "dave", KeySha256 = ClientKey }, auth).ResponseAsync);
            answers.Add(refusedAdd.Status.Detail);
            await File.WriteAllTextAsync(ConfigPath, Config($"""
                  extra_section:
                    api_key: "SECRET0015"
                """).Replace($"api_key: \"{RelayKey}\"", $"api_key: [\"{RelayKey}\"]\n    allow_bearer: \"{ProviderKey}\"", StringComparison.Ordinal));
            var rejected = await client.ReloadConfigAsync(new(), auth);
            Assert.Equal("rejected", rejected.Outcome);
            answers.Add(Json(rejected));
        }
        finally
        {
            await relay.DisposeAsync();
        }

        // Assert: the key really was shown (by id), and no secret is in any answer, stream message or log line
        Assert.Contains(KeyId.ofSecret(AddedKey), string.Join("\n", answers), StringComparison.Ordinal);
        var logged = string.Join("\n", relay.Logs.Lines.Select(l => l.Message + " " + string.Join(" ", l.Fields.Values.Select(v => v?.ToString()))));
        Assert.Contains(KeyId.ofSecret(AddedKey), logged, StringComparison.Ordinal);
        var file = await File.ReadAllTextAsync(LogPath);
        var audit = await File.ReadAllTextAsync(AuditPath);
        Assert.Contains("\"client_key.changed\"", audit, StringComparison.Ordinal);
        var ledger = Encoding.Latin1.GetString(await File.ReadAllBytesAsync(LedgerPath));
        foreach (var secret in Secrets.Append(Token).Append(AddedKey).Append(ClientKey).Append(RotatedClientKey))
        {
            Assert.All(answers, answer => Assert.DoesNotContain(secret, answer, StringComparison.Ordinal));
            Assert.DoesNotContain(secret, logged, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, file, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, audit, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, ledger, StringComparison.Ordinal);
        }
    }
}
