using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Configuration;
using CcRelay.Host.Reload;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Reload;

/// <summary><c>routing.stages</c> reloads live; an invalid stage keeps the running stages.</summary>
public sealed class StageReloadTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cc-relay-stage-reload-").FullName;
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

    private string Config(string defaultStage) => $"""
        server:
          listen: "127.0.0.1:0"
        providers:
          - name: fake
            type: anthropic_compatible
            base_url: "{_upstream.BaseUrl}"
            keys:
              - key: "k"
        routing:
          stages:
            {defaultStage}
        """;

    private string LastModel()
    {
        using var body = JsonDocument.Parse(_upstream.Requests[^1].Body);
        return body.RootElement.GetProperty("model").GetString()!;
    }

    [Fact]
    public async Task Reload_ChangesTheStageTarget_AndAnInvalidStageKeepsTheRunningOne()
    {
        // Arrange
        await File.WriteAllTextAsync(ConfigPath, Config("default: fake,model-1"));
        var load = (ConfigLoad.Loaded)ConfigFile.Load(ConfigPath, Environment.GetEnvironmentVariable);
        await using var relay = await RelayHost.StartAsync(load.Config, ConfigPath);
        using (await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody)))
        {
        }

        // Act: a new target, then a typo in a stage name
        await File.WriteAllTextAsync(ConfigPath, Config("default: fake,model-2"));
        var applied = relay.Reloader.Reload();
        using (await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody)))
        {
        }

        var afterApplied = LastModel();
        await File.WriteAllTextAsync(ConfigPath, Config("defualt: fake,model-3"));
        var rejected = relay.Reloader.Reload();
        using (await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody)))
        {
        }

        // Assert
        Assert.Equal("model-1", JsonDocument.Parse(_upstream.Requests[0].Body).RootElement.GetProperty("model").GetString());
        Assert.Equal(ReloadOutcome.Applied, applied.Outcome);
        Assert.Equal("model-2", afterApplied);
        Assert.Equal(ReloadOutcome.Rejected, rejected.Outcome);
        Assert.Contains(rejected.Errors, e => e.Path == "routing.stages.defualt");
        Assert.Equal("model-2", LastModel());
    }
}
