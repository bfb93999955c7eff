using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace CcRelay.Host.Metrics;

/// <summary>
/// Process and runtime basics (meter <c>CcRelay.Process</c>), under the names Prometheus client libraries
/// use, so that stock dashboards work: <c>process_cpu_seconds_total</c>, <c>process_resident_memory_bytes</c>,
/// <c>process_start_time_seconds</c>, and <c>dotnet_*</c> GC, heap and thread-pool figures. All are observed at
/// scrape time; nothing runs between scrapes.
/// </summary>
public sealed class ProcessMetrics
{
    /// <summary>The meter name.</summary>
    public const string MeterName = "CcRelay.Process";

    private readonly double _startTimeSeconds;

    /// <summary>Creates the instruments on the <c>CcRelay.Process</c> meter of <paramref name="meterFactory"/>.</summary>
    public ProcessMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        var meter = meterFactory.Create(new MeterOptions(MeterName));
        Meter = meter;
        using (var process = Process.GetCurrentProcess())
        {
            _startTimeSeconds = new DateTimeOffset(process.StartTime.ToUniversalTime()).ToUnixTimeMilliseconds() / 1000d;
        }

        meter.CreateObservableCounter(
            "process_cpu_seconds", () => Environment.CpuUsage.TotalTime.TotalSeconds, "s", "Total user and system CPU time spent in seconds.");
        meter.CreateObservableGauge(
            "process_resident_memory_bytes", () => Environment.WorkingSet, "By", "Resident memory size in bytes.");
        meter.CreateObservableGauge(
            "process_start_time_seconds", () => _startTimeSeconds, "s", "Start time of the process since unix epoch in seconds.");
        meter.CreateObservableCounter(
            "dotnet_gc_collections", ObserveCollections, "{collection}", "Garbage collections since the process started, by generation.");
        meter.CreateObservableGauge(
            "dotnet_gc_heap_size_bytes", () => GC.GetGCMemoryInfo().HeapSizeBytes, "By", "GC heap size in bytes at the last collection.");
        meter.CreateObservableGauge(
            "dotnet_total_memory_bytes", () => GC.GetTotalMemory(forceFullCollection: false), "By", "Bytes currently thought to be allocated on the GC heap.");
        meter.CreateObservableCounter(
            "dotnet_gc_allocated_bytes", () => GC.GetTotalAllocatedBytes(), "By", "Bytes allocated on the GC heap since the process started.");
        meter.CreateObservableCounter(
            "dotnet_gc_pause_seconds", () => GC.GetTotalPauseDuration().TotalSeconds, "s", "Time the GC paused the process, in seconds.");
        meter.CreateObservableGauge(
            "dotnet_threadpool_threads", () => ThreadPool.ThreadCount, "{thread}", "Thread-pool threads.");
        meter.CreateObservableGauge(
            "dotnet_threadpool_queue_length", () => ThreadPool.PendingWorkItemCount, "{item}", "Work items queued to the thread pool.");
    }

    /// <summary>The meter the instruments live on.</summary>
    public Meter Meter { get; }

    private static IEnumerable<Measurement<long>> ObserveCollections()
    {
        for (var generation = 0; generation <= GC.MaxGeneration; generation++)
        {
            yield return new Measurement<long>(
                GC.CollectionCount(generation), new KeyValuePair<string, object?>("generation", "gen" + generation));
        }
    }
}
