using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Tests.Cli;
using CcRelay.Host.Tests.Infrastructure;
using CcRelay.Host.Tests.Translation;
using CcRelay.Management.V1;
using Grpc.Net.Client;

namespace CcRelay.Host.Tests.Pipelines;

/// <summary>
/// Plugins end to end: the example plugins (Python, JavaScript) and plugins that crash, hang, exhaust their memory
/// limit or answer garbage. In every case the relay keeps serving, within the plugin's deadline.
/// </summary>
public sealed class PluginTests : TwoUpstreamTests, IDisposable
{
    private const string RelayKey = "relay-secret";

    private const string Body =
        """{"model":"claude-sonnet-4-6","max_tokens":32000,"messages":[{"role":"user","content":"write to bob@example.com"}]}""";

    private readonly string _dir = Directory.CreateTempSubdirectory("ccrelay-plugins-").FullName;

    /// <summary>The repository's examples/plugins directory.</summary>
    private static string Examples
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !Directory.Exists(Path.Combine(dir.FullName, "examples", "plugins")))
            {
                dir = dir.Parent;
            }

            Assert.NotNull(dir);
            return Path.Combine(dir.FullName, "examples", "plugins");
        }
    }

    /// <summary>An interpreter outside any version manager's shims (a plugin's environment is cleared).</summary>
    private static string Tool(string name)
    {
        foreach (var dir in new[] { "/usr/bin", "/usr/local/bin", "/bin" })
        {
            if (File.Exists(Path.Combine(dir, name)))
            {
                return Path.Combine(dir, name);
            }
        }

        Assert.Fail($"{name} is not installed in /usr/bin or /usr/local/bin (tests/run-all.sh installs it)");
        return name;
    }

    private string Script(string name, string python)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, python);
        return path;
    }

    private async Task<RelayHost> RelayAsync(string plugin, string onError = "skip", int timeoutMs = 2000, string extra = "", bool api = false)
    {
        var pipelines = PipelineTests.Pipelines(A.BaseUrl, $$"""
            [plugins.p]
            {{plugin}}
            timeout_ms = {{timeoutMs}}
            on_error = "{{onError}}"
            {{extra}}

            [pipelines.main]
            providers = ["a"]
            request = [ { plugin = "p" } ]
            """);
        A.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("ok"));
        var config = TestConfig.Relay(
            [TestConfig.Provider("a", A.BaseUrl, keys: ["sk-a"])],
            apiKey: RelayKey,
            routing: TestConfig.Routing(),
            pipelines: pipelines);
        return await RelayHost.StartAsync(api
            ? config.With(grpc: GrpcConfig.Create(true, new ListenAddress("127.0.0.1", 0), null))
            : config);
    }

    private static Task<HttpResponseMessage> SendAsync(RelayHost relay, string body = Body) =>
        relay.Client.SendAsync(Requests.Messages(body, apiKey: RelayKey));

    private static string Quoted(string path) => JsonSerializer.Serialize(path);

    [Fact]
    public async Task PythonExample_RedactsTheAddress_TheReportSaysItReserialised()
    {
        // Arrange
        await using var relay = await RelayAsync($"command = {Quoted(Tool("python3"))}\nargs = [{Quoted(Path.Combine(Examples, "python", "redact_emails.py"))}]");

        // Act
        using var response = await SendAsync(relay);

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("plugin:p(reserialised)", response.Headers.GetValues("x-cc-relay-transformers").Single());
        var sent = FakeOpenAi.Body(A.Requests.Single());
        Assert.Equal("write to [email]", sent.GetProperty("messages")[0].GetProperty("content").GetString());
    }

    [Fact]
    public async Task JavaScriptExample_CapsMaxTokensFromItsConfiguredEnvironment_AndStaysWarm()
    {
        // Arrange
        await using var relay = await RelayAsync(
            $"command = {Quoted(Tool("node"))}\nargs = [{Quoted(Path.Combine(Examples, "javascript", "token_budget.mjs"))}]",
            extra: "memory_mb = 2048\nenv = { BUDGET_DEFAULT = \"100\" }");

        // Act: two requests, one process
        using var first = await SendAsync(relay);
        using var second = await SendAsync(relay);

        // Assert
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.All(A.Requests, r => Assert.Equal(100, FakeOpenAi.Body(r).GetProperty("max_tokens").GetInt32()));
        var health = JsonDocument.Parse(await relay.Client.GetStringAsync("/health")).RootElement;
        var plugin = health.GetProperty("plugins")[0];
        Assert.Equal("running", plugin.GetProperty("state").GetString());
        Assert.Equal(2, plugin.GetProperty("calls").GetInt32());
        Assert.Equal(0, plugin.GetProperty("restarts").GetInt32());
    }

    [Fact]
    public async Task ManagementApi_ListsEachPluginsState_CallsAndP50_AndTheCliPrintsIt()
    {
        // Arrange: a plugin that answers, and one configured but never called
        await using var relay = await RelayAsync(
            $"command = {Quoted(Tool("python3"))}\nargs = [{Quoted(Path.Combine(Examples, "python", "redact_emails.py"))}]",
            extra: "\n[plugins.unused]\ncommand = \"/nonexistent/plugin\"",
            api: true);
        using var first = await SendAsync(relay);
        using var second = await SendAsync(relay);
        using var channel = GrpcChannel.ForAddress(relay.Addresses[^1]);
        var client = new RelayManagement.RelayManagementClient(channel);

        // Act
        var answer = await client.ListPluginsAsync(new ListPluginsRequest());
        using var sandbox = new CliSandbox();
        var (code, output, _) = await sandbox.RunAsync("plugins", "--relay", relay.Addresses[^1].Authority);

        // Assert: in config order, the called one running with its calls and a measured round trip
        Assert.Equal(["p", "unused"], answer.Plugins.Select(p => p.Name));
        var plugin = answer.Plugins[0];
        Assert.Equal(("running", 2L, 0L, 0L, ""), (plugin.State, plugin.Calls, plugin.Failures, plugin.Restarts, plugin.LastError));
        Assert.True(plugin.P50Ms > 0, $"p50 {plugin.P50Ms}");
        Assert.Equal(("idle", 0L, 0.0), (answer.Plugins[1].State, answer.Plugins[1].Calls, answer.Plugins[1].P50Ms));

        // its pool: one process of the default four ran both calls (one after the other), none busy now
        Assert.Equal((4, 1, 0, 0, 0, 0), (plugin.Processes, plugin.Running, plugin.Busy, plugin.Waiting, plugin.Streams, plugin.Draining));
        Assert.Equal(0, code);
        Assert.Contains("PLUGIN", output, StringComparison.Ordinal);
        Assert.Matches(@"\np +running +1/4 +0 +0 +2 +0 +0 +[0-9.]+ ms ", output);
    }

    [Fact]
    public async Task Environment_TheRelaysVariablesNeverReachThePlugin_OnlyTheConfiguredOnes()
    {
        // Arrange: a plugin that reports the names of its environment variables
        Environment.SetEnvironmentVariable("CC_RELAY_TEST_SECRET", "sk-do-not-leak");
        var script = Script("env.py", """
            import json, os, sys
            for line in sys.stdin:
                r = json.loads(line)
                b = r["body"]
                b["metadata"] = {"user_id": ",".join(sorted(os.environ))}
                print(json.dumps({"v": 1, "id": r["id"], "body": b}), flush=True)
            """);
        await using var relay = await RelayAsync($"command = {Quoted(Tool("python3"))}\nargs = [{Quoted(script)}]", extra: "env = { MODE = \"strict\" }");

        // Act
        using var response = await SendAsync(relay);

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var names = FakeOpenAi.Body(A.Requests.Single()).GetProperty("metadata").GetProperty("user_id").GetString()!.Split(',');
        Assert.Contains("MODE", names);
        Assert.DoesNotContain("CC_RELAY_TEST_SECRET", names);
        Assert.All(names, n => Assert.Contains(n, new[] { "HOME", "LANG", "MODE", "PATH", "LC_CTYPE", "PWD" }));
    }

    /// <summary>Plugins that misbehave: each one's step is skipped (or fails the request), within its deadline.</summary>
    public static TheoryData<string, string> Misbehaving => new()
    {
        // crashes on its first line
        { "crash", "import sys\nsys.stdin.readline()\nsys.exit(3)\n" },
        // never answers
        { "hang", "import sys, time\nsys.stdin.readline()\ntime.sleep(120)\n" },
        // needs more memory than its limit (memory_mb = 64): MemoryError, then it dies
        { "memory", "import sys, json\nfor line in sys.stdin:\n    r = json.loads(line)\n    hog = bytearray(512 * 1024 * 1024)\n    print(json.dumps({'v': 1, 'id': r['id'], 'unchanged': True}), flush=True)\n" },
        // answers something that is not the protocol
        { "garbage", "import sys\nfor line in sys.stdin:\n    print('hello, I am not JSON', flush=True)\n" },
    };

    [Theory]
    [MemberData(nameof(Misbehaving))]
    public async Task MisbehavingPlugin_OnErrorSkip_TheRequestGoesOnUntransformed_TheRelayKeepsServing(string kind, string python)
    {
        // Arrange
        var script = Script(kind + ".py", python);
        await using var relay = await RelayAsync($"command = {Quoted(Tool("python3"))}\nargs = [{Quoted(script)}]", timeoutMs: 1000, extra: "memory_mb = 64");
        var clock = Stopwatch.StartNew();

        // Act: twice: the plugin is cut off, then started again for the next request
        using var first = await SendAsync(relay);
        using var second = await SendAsync(relay);
        clock.Stop();

        // Assert: both served with the client's own bytes, within two deadlines (and slack for a loaded machine)
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal("plugin:p(skipped)", first.Headers.GetValues("x-cc-relay-transformers").Single());
        Assert.All(A.Requests, r => Assert.Equal(Body, Encoding.UTF8.GetString(r.Body)));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(12), $"took {clock.Elapsed}");
        var plugin = JsonDocument.Parse(await relay.Client.GetStringAsync("/health")).RootElement.GetProperty("plugins")[0];
        Assert.Equal(2, plugin.GetProperty("failures").GetInt32());
        Assert.True(plugin.GetProperty("sandboxed").GetBoolean());
        Assert.NotEqual("", plugin.GetProperty("last_error").GetString());
    }

    [Fact]
    public async Task MisbehavingPlugin_OnErrorFail_TheClientGetsA500ApiError_NothingIsSent()
    {
        // Arrange
        var script = Script("crash.py", "import sys\nsys.stdin.readline()\nsys.exit(3)\n");
        await using var relay = await RelayAsync($"command = {Quoted(Tool("python3"))}\nargs = [{Quoted(script)}]", onError: "fail");

        // Act
        using var response = await SendAsync(relay);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

        // Assert
        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.Equal("api_error", error.GetProperty("type").GetString());
        Assert.Contains("plugin:p", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Empty(A.Requests);
    }

    [Fact]
    public async Task MissingExecutable_IsAFailedStep_NotACrash()
    {
        // Arrange
        await using var relay = await RelayAsync("command = \"/nonexistent/plugin\"");

        // Act
        using var response = await SendAsync(relay);

        // Assert
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("plugin:p(skipped)", response.Headers.GetValues("x-cc-relay-transformers").Single());
    }

    public void Dispose()
    {
        Environment.SetEnvironmentVariable("CC_RELAY_TEST_SECRET", null);
        Directory.Delete(_dir, recursive: true);
    }
}
