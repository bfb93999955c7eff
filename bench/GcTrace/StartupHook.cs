using System.Diagnostics;
using System.Diagnostics.Tracing;
using System.Globalization;

/// <summary>
/// Loaded into a relay by <c>DOTNET_STARTUP_HOOKS=.../gctrace.dll</c> with <c>CCRELAY_GC_TRACE=FILE</c>: writes one
/// line per GC pause and per thread-pool worker adjustment, <c>&lt;start ns&gt; &lt;end ns&gt; &lt;what&gt;</c>, on
/// the CLOCK_MONOTONIC clock the benchmark's Node client reads (<c>process.hrtime.bigint()</c>), so a coalesced
/// event's window can be matched against what the relay's runtime did at that moment. The relay is not modified.
/// </summary>
public static class StartupHook
{
    private static GcListener? _listener;

    /// <summary>Called by the runtime before Main.</summary>
    public static void Initialize()
    {
        var path = Environment.GetEnvironmentVariable("CCRELAY_GC_TRACE");
        if (!string.IsNullOrEmpty(path))
        {
            _listener = new GcListener(path);
        }
    }

    private sealed class GcListener : EventListener
    {
        private const EventKeywords Gc = (EventKeywords)0x1;
        private const EventKeywords Threading = (EventKeywords)0x10000;
        private readonly StreamWriter _writer;
        private readonly object _gate = new();

        // event times are DateTime (UTC); one paired reading converts them to the monotonic clock
        private readonly long _monoAtPair;
        private readonly long _utcTicksAtPair;
        private long _suspendNs = -1;
        private string _gcWhat = "gc";

        public GcListener(string path)
        {
            _writer = new StreamWriter(path, append: false) { AutoFlush = true };
            _utcTicksAtPair = DateTime.UtcNow.Ticks;
            _monoAtPair = MonoNs(Stopwatch.GetTimestamp());
            _writer.WriteLine(string.Create(CultureInfo.InvariantCulture, $"# pid {Environment.ProcessId} server {System.Runtime.GCSettings.IsServerGC} latency {System.Runtime.GCSettings.LatencyMode}"));
        }

        private static long MonoNs(long stopwatchTicks) => (long)(stopwatchTicks * (1e9 / Stopwatch.Frequency));

        private long ToMono(DateTime utc) => _monoAtPair + ((utc.Ticks - _utcTicksAtPair) * 100);

        protected override void OnEventSourceCreated(EventSource eventSource)
        {
            if (eventSource.Name == "Microsoft-Windows-DotNETRuntime")
            {
                EnableEvents(eventSource, EventLevel.Informational, Gc | Threading);
            }
        }

        protected override void OnEventWritten(EventWrittenEventArgs e)
        {
            var at = ToMono(e.TimeStamp);
            lock (_gate)
            {
                switch (e.EventName)
                {
                    case "GCStart_V2":
                        _gcWhat = string.Create(CultureInfo.InvariantCulture, $"gc#{Payload(e, "Count")} gen{Payload(e, "Depth")} reason={Payload(e, "Reason")} type={Payload(e, "Type")}");
                        break;
                    case "GCSuspendEEBegin_V1":
                        _suspendNs = at;
                        break;
                    case "GCRestartEEEnd_V1" when _suspendNs >= 0:
                        _writer.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{_suspendNs} {at} pause {_gcWhat} {(at - _suspendNs) / 1e6:F3}ms"));
                        _suspendNs = -1;
                        _gcWhat = "suspend";
                        break;
                    case "ThreadPoolWorkerThreadAdjustmentAdjustment":
                        _writer.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{at} {at} threadpool-adjust count={Payload(e, "NewWorkerThreadCount")} reason={Payload(e, "Reason")}"));
                        break;
                    case "ThreadPoolWorkerThreadStart":
                        _writer.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{at} {at} threadpool-start active={Payload(e, "ActiveWorkerThreadCount")}"));
                        break;
                    default:
                        break;
                }
            }
        }

        private static string Payload(EventWrittenEventArgs e, string name)
        {
            var i = e.PayloadNames?.IndexOf(name) ?? -1;
            return i >= 0 && e.Payload is { } p ? Convert.ToString(p[i], CultureInfo.InvariantCulture) ?? "" : "?";
        }
    }
}
