using System.Net;
using CcRelay.Core;
using CcRelay.Host.Configuration;
using CcRelay.Host.Reload;
using CcRelay.Host.Tests.Infrastructure;
using CcRelay.Host.Tests.Translation;

namespace CcRelay.Host.Tests.Pipelines;

/// <summary>Pipelines in a YAML config file: a reload applies a changed pipeline; an invalid one keeps the old.</summary>
public sealed class PipelineReloadTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cc-relay-pipelines-").FullName;
    private FakeUpstream _upstream = null!;

    private string ConfigPath => Path.Combine(_dir, "cc-relay.yaml");

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson());
    }

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private string Yaml(string step) => $"""
        server:
          listen: "127.0.0.1:0"
        providers:
          - name: fake
            type: anthropic_compatible
            base_url: "{_upstream.BaseUrl}"
            keys:
              - key: "sk-reload-test-key"
        pipelines:
          caps:
            on_error: fail
            providers: [fake]
            request:
              - {step}
        """;

    private async Task<int> SentMaxTokensAsync(RelayHost relay)
    {
        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return FakeOpenAi.Body(_upstream.Requests[^1]).GetProperty("max_tokens").GetInt32();
    }

    [Fact]
    public async Task Reload_AChangedPipelineAppliesToTheNextRequest_AnInvalidOneIsRejectedWithItsPath()
    {
        // Arrange
        await File.WriteAllTextAsync(ConfigPath, Yaml("{use: max_tokens, cap: 7}"));
        var load = (ConfigLoad.Loaded)ConfigFile.Load(ConfigPath, Environment.GetEnvironmentVariable);
        await using var relay = await RelayHost.StartAsync(load.Config, ConfigPath, watchConfig: false);
        Assert.Equal(7, await SentMaxTokensAsync(relay));

        // Act 1: a valid change
        await File.WriteAllTextAsync(ConfigPath, Yaml("{use: max_tokens, set: 5}"));
        var applied = relay.Reloader.Reload();

        // Assert 1
        Assert.Equal(ReloadOutcome.Applied, applied.Outcome);
        Assert.Contains(ConfigChange.NewSettingChanged("pipelines"), applied.Changes);
        Assert.Equal(5, await SentMaxTokensAsync(relay));

        // Act 2: an unknown transformer
        await File.WriteAllTextAsync(ConfigPath, Yaml("{use: max_tokenz, cap: 1}"));
        var rejected = relay.Reloader.Reload();

        // Assert 2: rejected with the located error; the running pipeline stays
        Assert.Equal(ReloadOutcome.Rejected, rejected.Outcome);
        var error = Assert.Single(relay.Logs.Lines, l => l.EventId == 9).Message;
        Assert.Contains("pipelines.caps.request[0]", error, StringComparison.Ordinal);
        Assert.True(error.Contains("did you mean max_tokens", StringComparison.Ordinal), error);
        Assert.Equal(5, await SentMaxTokensAsync(relay));
    }
}
