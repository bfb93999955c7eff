using System.Diagnostics.Metrics;
using CcRelay.Core;
using CcRelay.Host.Metrics;

namespace CcRelay.Host.Plugins;

/// <summary>
/// The relay's plugins: one <see cref="PluginProcessPool"/> per configured plugin (up to <c>processes</c> warm
/// processes each, started on demand). A reload that changes a plugin's settings gives it a new pool for the calls
/// and streams that come with them; the old pool finishes the calls and streams it was given, then stops its
/// processes (nothing in flight is dropped). An applied reload retires the pools of removed or changed plugins at
/// once (<see cref="Reconcile"/>), so their idle processes do not outlive their settings. Counts calls, failures and restarts on the <c>CcRelay</c> meter and
/// reports the pools' processes (<c>ccrelay_plugin_processes</c>).
/// </summary>
public sealed class PluginHost : IDisposable
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, PluginProcessPool> _pools = new(StringComparer.Ordinal);
    private readonly List<PluginProcessPool> _draining = [];
    private readonly TimeProvider _timeProvider;
    private readonly string? _prlimit;
    private readonly Counter<long>? _calls;
    private readonly Counter<long>? _restarts;
    private readonly Histogram<double>? _duration;

    /// <summary>A host whose plugins are sandboxed with <c>prlimit</c> when it is installed.</summary>
    public PluginHost(TimeProvider timeProvider, RelayMetrics? metrics = null)
        : this(timeProvider, metrics, FindPrlimit())
    {
    }

    internal PluginHost(TimeProvider timeProvider, RelayMetrics? metrics, string? prlimit)
    {
        _timeProvider = timeProvider;
        _prlimit = prlimit;
        if (metrics?.Meter is { } meter)
        {
            _calls = meter.CreateCounter<long>("ccrelay_plugin_calls", "{call}", "Plugin calls by plugin and outcome: changed, unchanged, failed.");
            _restarts = meter.CreateCounter<long>("ccrelay_plugin_restarts", "{restart}", "Plugin processes started again after one died or was cut off.");
            _duration = meter.CreateHistogram<double>("ccrelay_plugin_call_duration_seconds", "s", "Time of a plugin call, request line out to answer line in.");
            meter.CreateObservableGauge("ccrelay_plugin_processes", ObserveProcesses, "{process}", "Plugin processes by plugin and state: running, busy (answering a call), draining (of settings a reload replaced).");
            meter.CreateObservableGauge("ccrelay_plugin_waiting_calls", ObserveWaiting, "{call}", "Plugin calls waiting for a busy process, by plugin.");
        }
    }

    /// <summary>Whether the CPU and memory limits are enforced (<c>prlimit</c> was found).</summary>
    public bool Sandboxed => _prlimit is not null;

    /// <summary>Calls plugin <paramref name="config"/> with the request body; a plugin fault is a <c>Failed</c> outcome.</summary>
    public Task<StepOutcome> CallAsync(PluginConfig config, string provider, string model, byte[] body, CancellationToken cancellationToken) =>
        CallAsync(config, PluginCall.NewRequest(provider, model, body), cancellationToken);

    /// <summary>Calls plugin <paramref name="config"/> once (a request, an answer or a stream event) on an idle process; a plugin fault is a <c>Failed</c> outcome.</summary>
    public async Task<StepOutcome> CallAsync(PluginConfig config, PluginCall call, CancellationToken cancellationToken)
    {
        var started = _timeProvider.GetTimestamp();
        StepOutcome? outcome;
        do
        {
            // null: the pool found was stopped (it had drained after a reload) before the call was placed
            outcome = await PoolFor(config).CallAsync(call, null, cancellationToken);
        }
        while (outcome is null);

        Record(config, started, outcome);
        return outcome;
    }

    /// <summary>A stream's hold on plugin <paramref name="config"/>: its events go to one process, in order. Dispose it when the stream ends.</summary>
    internal PluginStreamCalls OpenStream(PluginConfig config)
    {
        while (true)
        {
            if (PoolFor(config).OpenStream() is { } stream)
            {
                return new PluginStreamCalls(this, config, stream);
            }
        }
    }

    private void Record(PluginConfig config, long started, StepOutcome outcome)
    {
        var name = new KeyValuePair<string, object?>("plugin", config.Name);
        _duration?.Record(_timeProvider.GetElapsedTime(started).TotalSeconds, name);
        _calls?.Add(1, name, new KeyValuePair<string, object?>("outcome", outcome.IsChanged ? "changed" : outcome.IsUnchanged ? "unchanged" : "failed"));
    }

    /// <summary>The configured plugins' states, in config order (never-called ones as <c>idle</c>).</summary>
    public IReadOnlyList<PluginStatus> Statuses(IEnumerable<PluginConfig> configured)
    {
        lock (_lock)
        {
            PruneLocked();
            return [.. configured.Select(c =>
            {
                var draining = _draining.Where(d => d.Config.Name == c.Name).Sum(d => d.Running);
                return _pools.TryGetValue(c.Name, out var pool) && pool.Config.Equals(c)
                    ? pool.Status(Sandboxed, draining)
                    : PluginStatuses.idle(c, Sandboxed, draining);
            })];
        }
    }

    private PluginProcessPool PoolFor(PluginConfig config)
    {
        lock (_lock)
        {
            if (_pools.TryGetValue(config.Name, out var current) && current.Config.Equals(config) && !current.Disposed)
            {
                return current;
            }

            // a call made with settings a reload has replaced since: the old pool, while it drains
            foreach (var old in _draining)
            {
                if (old.Config.Equals(config) && !old.Disposed)
                {
                    return old;
                }
            }

            // new settings (a reload): a new pool; the old one finishes what it was given, then stops
            var pool = new PluginProcessPool(config, _prlimit, _timeProvider, name => _restarts?.Add(1, new KeyValuePair<string, object?>("plugin", name)));
            _pools[config.Name] = pool;
            if (current is not null && !current.Disposed)
            {
                _draining.Add(current);
                current.Retire();
            }

            PruneLocked();
            return pool;
        }
    }

    /// <summary>
    /// A reload was applied: the pools of plugins it removed or whose settings it changed are retired at once
    /// (<see cref="PluginPool.replaced"/>) — they finish the calls and streams already given to them, then stop
    /// their processes; idle ones stop now instead of waiting for a call or for the relay to stop.
    /// </summary>
    public void Reconcile(IEnumerable<PluginConfig> configured)
    {
        lock (_lock)
        {
            var running = _pools.Values.Where(p => !p.Disposed).Select(p => p.Config).ToArray();
            foreach (var name in PluginPool.replaced([.. configured], running))
            {
                var pool = _pools[name];
                _pools.Remove(name);
                _draining.Add(pool);
                pool.Retire();
            }

            PruneLocked();
        }
    }

    private void PruneLocked() => _draining.RemoveAll(p => p.Disposed);

    private IEnumerable<Measurement<long>> ObserveProcesses()
    {
        List<Measurement<long>> measurements = [];
        lock (_lock)
        {
            PruneLocked();
            foreach (var pool in _pools.Values)
            {
                var status = pool.Status(Sandboxed, 0);
                var plugin = new KeyValuePair<string, object?>("plugin", pool.Config.Name);
                measurements.Add(new(status.Pool.Running, plugin, new("state", "running")));
                measurements.Add(new(status.Pool.Busy, plugin, new("state", "busy")));
                measurements.Add(new(_draining.Where(d => d.Config.Name == pool.Config.Name).Sum(d => d.Running), plugin, new("state", "draining")));
            }
        }

        return measurements;
    }

    private IEnumerable<Measurement<long>> ObserveWaiting()
    {
        List<Measurement<long>> measurements = [];
        lock (_lock)
        {
            foreach (var pool in _pools.Values)
            {
                measurements.Add(new(pool.Status(Sandboxed, 0).Pool.Waiting, new KeyValuePair<string, object?>("plugin", pool.Config.Name)));
            }
        }

        return measurements;
    }

    /// <summary>A stream's calls to one plugin (<see cref="OpenStream"/>): counted as one-shot calls are.</summary>
    internal sealed class PluginStreamCalls(PluginHost host, PluginConfig config, PluginStream stream) : IDisposable
    {
        /// <summary>Calls the plugin with the stream's next event; a plugin fault is a <c>Failed</c> outcome.</summary>
        public async Task<StepOutcome> CallAsync(PluginCall call, CancellationToken cancellationToken)
        {
            var started = host._timeProvider.GetTimestamp();
            var outcome = await stream.CallAsync(call, cancellationToken);
            host.Record(config, started, outcome);
            return outcome;
        }

        public void Dispose() => stream.Dispose();
    }

    /// <summary><c>prlimit</c> (util-linux), when installed.</summary>
    private static string? FindPrlimit()
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        foreach (var dir in new[] { "/usr/bin", "/bin", "/usr/local/bin" })
        {
            var path = Path.Combine(dir, "prlimit");
            if (File.Exists(path))
            {
                return path;
            }
        }

        return null;
    }

    /// <summary>Stops every plugin process.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var pool in _pools.Values.Concat(_draining))
            {
                pool.Dispose();
            }

            _pools.Clear();
            _draining.Clear();
        }
    }
}
