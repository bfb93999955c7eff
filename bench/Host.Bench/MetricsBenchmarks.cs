using System.Diagnostics.Metrics;
using BenchmarkDotNet.Attributes;
using CcRelay.Core;
using CcRelay.Host.Metrics;

namespace CcRelay.Host.Bench;

/// <summary>
/// What one relayed request records (<c>docs/observability.md</c>, "What one request records"): its counters
/// (added to the relay's per-processor cells, read by observable instruments at a scrape) and its two histogram
/// measurements, with the Prometheus exposition listening, on one thread and on two at once (the relay's threads
/// on a 2-core machine): with a cell per processor, two threads cost what one does.
/// </summary>
[MemoryDiagnoser]
public class MetricsBenchmarks
{
    private const string Model = "claude-sonnet-4-5-20250929";

    private static readonly Usage Tokens = new(2417, 112, 18880, 0);
    private static readonly TimeSpan Ttfb = TimeSpan.FromMilliseconds(734);
    private static readonly TimeSpan Took = TimeSpan.FromMilliseconds(4_210);

    private Meter _meter = null!;
    private RelayMetrics _metrics = null!;
    private PrometheusExposition _exposition = null!;

    [Params(1, 2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _meter = new Meter(RelayMetrics.MeterName);
        _metrics = new RelayMetrics(_meter);
        _exposition = new PrometheusExposition(_meter);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _exposition.Dispose();
        _meter.Dispose();
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
