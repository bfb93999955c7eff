using CcRelay.Core;
using CcRelay.Host.Metrics;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Metrics;

/// <summary>
/// The exposition passes Prometheus' own checker, <c>promtool check metrics</c> (parse and lint). promtool
/// comes from Debian's <c>prometheus</c> package; <c>tests/run-all.sh</c> installs it. A machine without it
/// fails this test rather than skipping it: the check is the point.
/// </summary>
public sealed class PromtoolTests
{
    [Fact]
    public async Task PromtoolCheckMetrics_RealisticExposition_FindsNoProblem()
    {
        // Arrange: every relay and process metric, with label values that need escaping
        await using var host = await MetricsHost.StartAsync();
        Script(host.Metrics);

        // Act
        var text = await host.RenderAsync();
        var (exitCode, output) = await RunPromtoolAsync(text);

        // Assert
        Assert.True(exitCode == 0 && output.Trim().Length == 0, $"promtool check metrics exited {exitCode}:\n{output}\n--- exposition ---\n{text}");
    }

    [Theory]
    [InlineData("# HELP broken_counter x\n# TYPE broken_counter counter\nbroken_counter 1\n")]
    [InlineData("garbage{ 1\n")]
    public async Task PromtoolCheckMetrics_BrokenExposition_Fails(string exposition)
    {
        // the harness itself must be able to fail: a lint problem (counter without _total), a parse error
        var (exitCode, output) = await RunPromtoolAsync(exposition);

        Assert.NotEqual(0, exitCode);
        Assert.NotEmpty(output.Trim());
    }

    private static void Script(RelayMetrics metrics)
    {
        metrics.RequestStarted();
        metrics.RecordTimeToFirstByte("anthropic", "claude-sonnet-4-6", TimeSpan.FromMilliseconds(420));
        metrics.RecordAttempt("zai", AttemptOutcome.NewFailure("status 529"));
        metrics.RecordAttempt("anthropic", AttemptOutcome.Success);
        metrics.RecordUsage("anthropic", "claude-sonnet-4-6", new Usage(1200, 300, 50_000, 2000), Pricing.cost(Pricing.builtIn, "claude-sonnet-4-6", new Usage(1200, 300, 50_000, 2000))?.Value);
        metrics.RecordUsage("odd\"provider\\", "model\nwith\nbreaks", new Usage(1, 1, 0, 0), costUsd: null);
        metrics.RecordRequest("anthropic", "claude-sonnet-4-6", 200, stream: true, TimeSpan.FromSeconds(8.5));
        metrics.RecordRequest("zai", "GLM-5", 529, stream: false, TimeSpan.FromSeconds(0.3));
        metrics.RecordRequest("none", null, 400, stream: false, TimeSpan.FromMilliseconds(2));
        metrics.RecordConfigReload(succeeded: true);
        metrics.RecordConfigReload(succeeded: false);
        metrics.RecordDropped("deepseek", ["cache_control", "web_search", "unknown_block"]);
        metrics.ObserveProviders(() =>
        [
            new ProviderGauges("anthropic", true, "closed", [new KeyGauge("a1b2c3", 0.5)]),
            new ProviderGauges("zai", false, "open", []),
        ]);
    }

    internal static async Task<(int ExitCode, string Output)> RunPromtoolAsync(string exposition)
    {
        var (exitCode, output, error) = await ToolProcess.RunAsync("promtool", ["check", "metrics"], exposition, "install Debian's prometheus package (tests/run-all.sh does)", timeout: TimeSpan.FromSeconds(30));
        return (exitCode, output + error);
    }
}
