using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using CcRelay.Core;
using CcRelay.Host.Metrics;

namespace CcRelay.Host.Plugins;

/// <summary>
/// The relay's plugins: one warm <see cref="PluginProcess"/> per configured plugin, started on demand, replaced
/// when a reload changes its settings. Counts calls, failures and restarts on the <c>CcRelay</c> meter.
/// </summary>
public sealed class PluginHost : IDisposable
{
    private readonly ConcurrentDictionary<string, PluginProcess> _plugins = new(StringComparer.Ordinal);
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
        }
    }

    /// <summary>Whether the CPU and memory limits are enforced (<c>prlimit</c> was found).</summary>
    public bool Sandboxed => _prlimit is not null;

    /// <summary>Calls plugin <paramref name="config"/> with the request body; a plugin fault is a <c>Failed</c> outcome.</summary>
    public Task<StepOutcome> CallAsync(PluginConfig config, string provider, string model, byte[] body, CancellationToken cancellationToken) =>
        CallAsync(config, PluginCall.NewRequest(provider, model, body), cancellationToken);

    /// <summary>Calls plugin <paramref name="config"/> once (a request, an answer or a stream event); a plugin fault is a <c>Failed</c> outcome.</summary>
    public async Task<StepOutcome> CallAsync(PluginConfig config, PluginCall call, CancellationToken cancellationToken)
    {
        var process = ProcessFor(config);
        var started = _timeProvider.GetTimestamp();
        var outcome = await process.CallAsync(call, cancellationToken);
        var name = new KeyValuePair<string, object?>("plugin", config.Name);
        _duration?.Record(_timeProvider.GetElapsedTime(started).TotalSeconds, name);
        _calls?.Add(1, name, new KeyValuePair<string, object?>("outcome", outcome.IsChanged ? "changed" : outcome.IsUnchanged ? "unchanged" : "failed"));
        return outcome;
    }

    /// <summary>The configured plugins' states, in config order (never-called ones as <c>idle</c>).</summary>
    public IReadOnlyList<PluginStatus> Statuses(IEnumerable<PluginConfig> configured) =>
        [.. configured.Select(c => _plugins.TryGetValue(c.Name, out var p) && p.Config.Equals(c)
            ? p.Status(Sandboxed)
            : new PluginStatus(c.Name, "idle", 0, 0, 0, "", Sandboxed, 0))];

    private PluginProcess ProcessFor(PluginConfig config)
    {
        while (true)
        {
            var current = _plugins.GetOrAdd(config.Name, static (_, s) => s.Host.Create(s.Config), (Host: this, Config: config));
            if (current.Config.Equals(config))
            {
                return current;
            }

            // a reload changed the plugin's settings: the old process goes, a new one starts with the new ones
            if (_plugins.TryUpdate(config.Name, Create(config), current))
            {
                current.Dispose();
            }
        }
    }

    private PluginProcess Create(PluginConfig config)
    {
        var process = new PluginProcess(config, _prlimit, _timeProvider);
        process.Restarted += name => _restarts?.Add(1, new KeyValuePair<string, object?>("plugin", name));
        return process;
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
        foreach (var process in _plugins.Values)
        {
            process.Dispose();
        }

        _plugins.Clear();
    }
}
