using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Credentials;

/// <summary>
/// The cloud credential libraries are loaded only when a provider needs them (issue 22, start-up and memory): a
/// <c>cc-relay serve</c> process with a plain Anthropic-compatible provider relays a request without loading
/// AWSSDK.Core, Google.Apis.Auth, Azure.Core, Azure.Identity or System.ClientModel; one with a Bedrock provider
/// signing with the AWS chain loads AWSSDK.Core.
/// </summary>
/// <remarks>
/// A process of its own, because this test process has loaded every library already (other tests use them). The
/// assemblies a .NET process has loaded are the ones the runtime has mapped from their files: /proc/PID/maps lists
/// them (what <c>AppDomain.GetAssemblies()</c> would show from inside, for assemblies loaded from files).
/// </remarks>
public sealed partial class CloudLibraryLoadingTests : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);
    private static readonly string[] CloudLibraries =
        ["AWSSDK.Core.dll", "Google.Apis.Auth.dll", "Google.Apis.Core.dll", "Azure.Core.dll", "Azure.Identity.dll", "System.ClientModel.dll", "Microsoft.Identity.Client.dll"];

    private readonly string _dir = Directory.CreateTempSubdirectory("cc-relay-libraries-").FullName;
    private FakeUpstream _upstream = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("hello"));
    }

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task APlainAnthropicRelay_ServesARequest_WithoutLoadingAnyCloudCredentialLibrary()
    {
        // Arrange
        var config = $"""
            providers:
              - name: plain
                type: anthropic_compatible
                base_url: "{_upstream.BaseUrl}"
                keys:
                  - key: "upstream-key"
            """;

        // Act
        var loaded = await LoadedAfterOneRequestAsync(config, new Dictionary<string, string>());

        // Assert: the relay is a .NET process whose libraries are visible (CcRelay.Host), and no cloud library is among them
        Assert.Contains("CcRelay.Host.dll", loaded);
        Assert.Empty(loaded.Intersect(CloudLibraries));
    }

    [Fact]
    public async Task ABedrockRelayOnTheAwsChain_LoadsAWSSDKCore_AndNoOtherCloudLibrary()
    {
        // Arrange: no keys, so requests are signed with the standard chain (here: the environment's credentials)
        var config = $"""
            providers:
              - name: bedrock
                type: bedrock
                base_url: "{_upstream.BaseUrl}"
                aws_region: us-east-1
            """;
        var environment = new Dictionary<string, string>
        {
            ["AWS_ACCESS_KEY_ID"] = "AKIDLIBRARYTEST",
            ["AWS_SECRET_ACCESS_KEY"] = "library-test-secret",
        };

        // Act
        var loaded = await LoadedAfterOneRequestAsync(config, environment);

        // Assert: the request was signed by the chain's credentials, which AWSSDK.Core resolved
        Assert.StartsWith("AWS4-HMAC-SHA256 Credential=AKIDLIBRARYTEST/", _upstream.Requests[^1].Header("authorization"));
        Assert.Contains("AWSSDK.Core.dll", loaded);
        Assert.Equal(["AWSSDK.Core.dll"], loaded.Intersect(CloudLibraries));
    }

    [GeneratedRegex(@"listening on (http://127\.0\.0\.1:\d+)")]
    private static partial Regex ListeningLine();

    /// <summary>Starts <c>cc-relay serve</c> with <paramref name="yaml"/>, relays one request (answered 200) and returns the file names of the .dll files the process has mapped.</summary>
    private async Task<HashSet<string>> LoadedAfterOneRequestAsync(string yaml, Dictionary<string, string> environment)
    {
        var config = Path.Combine(_dir, "cc-relay.yaml");
        await File.WriteAllTextAsync(config, "server:\n  listen: \"127.0.0.1:0\"\n" + yaml);
        var listening = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "cc-relay.dll"), "serve", "--config", config])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = _dir,
        };

        // the usage ledger goes into the test's directory; no AWS profile or credential of the machine is read
        start.Environment["XDG_STATE_HOME"] = _dir;
        start.Environment["HOME"] = _dir;
        foreach (var name in new[] { "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK", "GOOGLE_APPLICATION_CREDENTIALS" })
        {
            start.Environment.Remove(name);
        }

        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null && ListeningLine().Match(e.Data) is { Success: true } m)
            {
                listening.TrySetResult(m.Groups[1].Value);
            }
        };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            var baseUrl = await listening.Task.WaitAsync(Bound);
            using var client = new HttpClient { BaseAddress = new Uri(baseUrl), Timeout = Bound };
            using var response = await client.SendAsync(Requests.Messages(Requests.PlainBody));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var maps = await File.ReadAllLinesAsync($"/proc/{process.Id}/maps");
            return [.. maps.Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Where(fields => fields.Length >= 6 && fields[5].EndsWith(".dll", StringComparison.Ordinal))
                .Select(fields => Path.GetFileName(fields[5]))];
        }
        finally
        {
            process.Kill();
            await process.WaitForExitAsync(new CancellationTokenSource(Bound).Token);
        }
    }
}
