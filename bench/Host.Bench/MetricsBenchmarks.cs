using BenchmarkDotNet.Attributes;
using CcRelay.Core;
using CcRelay.Host.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace CcRelay.Host.Bench;

/// <summary>
/// What one relayed request records (<c>docs/observability.md</c>, "What one request records"), with OpenTelemetry's
/// Prometheus exporter listening as the relay registers it, on one thread and on two at once (the relay's threads
/// on a 2-core machine).
/// </summary>
[MemoryDiagnoser]
public class MetricsBenchmarks
{
    private const string Model = "claude-sonnet-4-5-20250929";

    private static readonly Usage Tokens = new(2417, 112, 18880, 0);
    private static readonly TimeSpan Ttfb = TimeSpan.FromMilliseconds(734);
    private static readonly TimeSpan Took = TimeSpan.FromMilliseconds(4_210);

    private IHost _host = null!;
    private RelayMetrics _metrics = null!;

    [Params(1, 2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddCcRelayMetrics();
        _host = builder.Build();
        _host.Start();
        _metrics = _host.Services.GetRequiredService<RelayMetrics>();
        _ = _host.Services.GetRequiredService<PrometheusExposition>();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _host.StopAsync().GetAwaiter().GetResult();
        _host.Dispose();
    }

    /// <summary>1,000 requests per thread; the time is per request.</summary>
    [Benchmark(OperationsPerInvoke = 1_000)]
    public void OneRequest()
    {
        if (Threads == 1)
        {
            Requests();
            return;
        }

        Parallel.For(0, Threads, new ParallelOptions { MaxDegreeOfParallelism = Threads }, _ => Requests());
    }

    private void Requests()
    {
        for (var i = 0; i < 1_000; i++)
        {
            _metrics.RequestStarted();
            _metrics.RecordTimeToFirstByte("anthropic", Model, Ttfb);
            _metrics.RecordAttempt("anthropic", AttemptOutcome.Success);
            _metrics.RecordUsage("anthropic", Model, Tokens, 0.014595m);
            _metrics.RecordRequest("anthropic", Model, 200, stream: true, Took);
            _metrics.RequestFinished();
        }
    }
}
