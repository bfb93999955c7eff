using System.Runtime.InteropServices;
using CcRelay.Core;
using CcRelay.Host.Configuration;
using CcRelay.Host.Logging;
using CcRelay.Host.Metrics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Reload;

/// <summary>
/// Reloads the config file into a new <see cref="RelaySnapshot"/>:
/// (1) when the file is written or replaced (<see cref="ConfigFileWatcher"/>: editors' save-by-rename is seen, other
///     files in its directory are not), debounced; (2) on SIGHUP when enabled; (3) when <see cref="Reload"/> is called (management API, CLI).
/// A valid file is swapped in atomically; requests in flight finish on the snapshot they started with.
/// An invalid file is rejected whole: the running config stays and every error is logged.
/// </summary>
public sealed class ConfigReloader : IHostedService, IDisposable
{
    private readonly Lock _gate = new();
    private readonly RelayState _state;
    private readonly CcRelayOptions _options;
    private readonly LoggingSwitch? _logging;
    private readonly Routing.RuntimeCell? _runtime;
    private readonly RelayMetrics? _metrics;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<ConfigReloader> _logger;
    private ConfigFileWatcher? _watcher;
    private ITimer? _debounce;
    private PosixSignalRegistration? _sighup;

    /// <summary>Creates the reloader; it does nothing until started, and nothing at all without a config path.</summary>
    public ConfigReloader(
        RelayState state,
        CcRelayOptions options,
        TimeProvider timeProvider,
        ILogger<ConfigReloader> logger,
        LoggingSwitch? logging = null,
        Routing.RuntimeCell? runtime = null,
        RelayMetrics? metrics = null)
    {
        _runtime = runtime;
        _state = state;
        _options = options;
        _timeProvider = timeProvider;
        _logger = logger;
        _logging = logging;
        _metrics = metrics;
    }

    /// <summary>How many times the file watcher woke up for another file than the config (tests).</summary>
    internal int WatcherWokenByOthers => _watcher?.WokenByOthers ?? 0;

    /// <summary>Raised after every reload attempt, whatever its outcome.</summary>
    public event Action<ReloadResult>? Reloaded;

    /// <summary>Reads the config file again and applies it if it is valid. Safe to call from any thread.</summary>
    public ReloadResult Reload(string trigger = "api")
    {
        var path = _options.ConfigPath ?? throw new InvalidOperationException("the relay was not started from a config file, so there is nothing to reload");
        ReloadResult result;
        LoggingConfig? nextLogging = null;
        IReadOnlyList<string> secrets;
        lock (_gate)
        {
            // errors and warnings are logged with the running config's secrets scrubbed (and quoted values of
            // credential keys hidden): a broken file may carry a key in the wrong place
            secrets = _state.Current.Secrets;
            // NOTE: an empty file is a valid config (the built-in Anthropic passthrough) at start-up, but on a
            // reload it is almost always an editor caught between truncating and writing. Applying it would
            // silently reroute every request, so a reload refuses it and keeps the running config.
            var load = IsBlank(path)
                ? ConfigLoad.Failed([ConfigIssue.Unplaced("(document)", "the file is empty (is it still being written?); an empty config is accepted only at start-up")])
                : ConfigFile.Load(path, _options.Environment);
            if (load is ConfigLoad.Invalid invalid)
            {
                result = new ReloadResult(ReloadOutcome.Rejected, trigger, [], [.. invalid.Errors], [.. invalid.Warnings]);
            }
            else
            {
                var loaded = (ConfigLoad.Loaded)load;
                var next = _options.Overrides.Apply(loaded.Config);
                var running = _state.Current.Config;
                var diff = ConfigDiff.between(running, next);
                var changes = diff.ToArray();
                var effect = ConfigDiff.effect(diff);
                if (effect.IsApply)
                {
                    var swapped = _state.Swap(ConfigDiff.applicable(running, next));

                    // breakers, buckets, cooldowns and learned limits survive by provider name and key id
                    _runtime?.Reconcile(swapped);
                    nextLogging = next.Logging;
                    secrets = [.. secrets.Concat(swapped.Secrets).Distinct(StringComparer.Ordinal)];
                    if (_metrics is not null)
                    {
                        _metrics.MaxModelLabels = swapped.Config.Metrics.MaxModelLabels;
                    }
                }

                var outcome = effect.IsApply ? ReloadOutcome.Applied : effect.IsRestartRequired ? ReloadOutcome.RestartRequired : ReloadOutcome.Unchanged;
                result = new ReloadResult(outcome, trigger, changes, [], [.. loaded.Warnings]);
            }
        }

        // logs and events after the swap, never inside it; the report is written under the logging settings
        // that were in force when the reload happened, then the new ones apply
        Report(path, result, secrets);
        _metrics?.RecordConfigReload(result.Outcome != ReloadOutcome.Rejected);
        if (nextLogging is not null)
        {
            _logging?.Apply(nextLogging);
        }

        Reloaded?.Invoke(result);
        return result;
    }

    /// <summary>
    /// Adds or removes a key of the running config (management API <c>AddKey</c>/<c>RemoveKey</c>, decided by
    /// <see cref="KeyEdit"/>) and applies it as a reload applies a file, under the same gate: the snapshot is
    /// swapped and the runtime reconciled, so every other key keeps its state (a revoked key stays revoked). The
    /// file is not written.
    /// </summary>
    public KeyEditResult EditKeys(string trigger, string provider, bool added, Func<RelayConfig, KeyEditResult> edit)
    {
        ArgumentNullException.ThrowIfNull(edit);
        KeyEditResult result;
        lock (_gate)
        {
            result = edit(_state.Current.Config);
            if (result is KeyEditResult.Changed changed)
            {
                var swapped = _state.Swap(changed.Config);
                _runtime?.ReconcileKeyEdit(swapped);
            }
        }

        if (result is KeyEditResult.Changed done)
        {
            if (added)
            {
                Log.KeyAdded(_logger, trigger, provider, done.KeyId);
            }
            else
            {
                Log.KeyRemoved(_logger, trigger, provider, done.KeyId);
            }
        }

        return result;
    }

    /// <inheritdoc/>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_options.ConfigPath is not { } path)
        {
            return Task.CompletedTask;
        }

        if (_options.WatchConfig)
        {
            _debounce = _timeProvider.CreateTimer(_ => ReloadQuietly("file change"), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            var debounce = _debounce;
            _watcher = new ConfigFileWatcher(Path.GetFullPath(path), () => debounce.Change(_options.ReloadDebounce, Timeout.InfiniteTimeSpan));
        }

        if (_options.ReloadOnSighup && !OperatingSystem.IsWindows())
        {
            _sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
            {
                context.Cancel = true;
                ReloadQuietly("SIGHUP");
            });
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task StopAsync(CancellationToken cancellationToken)
    {
        Dispose();
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _watcher?.Dispose();
        _debounce?.Dispose();
        _sighup?.Dispose();
        _watcher = null;
        _debounce = null;
        _sighup = null;
    }

    private static bool IsBlank(string path)
    {
        try
        {
            var info = new FileInfo(path);
            return info.Exists && (info.Length == 0 || (info.Length < 4096 && string.IsNullOrWhiteSpace(File.ReadAllText(path))));
        }
        catch (IOException)
        {
            return false; // ConfigFile.Load reports the read error itself
        }
    }

    private void ReloadQuietly(string trigger)
    {
        try
        {
            Reload(trigger);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _metrics?.RecordConfigReload(succeeded: false);
            Log.ConfigReloadFailed(_logger, trigger, Redact.scrub(_state.Current.Secrets, e.Message));
        }
    }

    private void Report(string path, ReloadResult result, IReadOnlyList<string> secrets)
    {
        switch (result.Outcome)
        {
            case ReloadOutcome.Rejected:
                Log.ConfigReloadRejected(_logger, result.Trigger, path, result.Errors.Count);
                foreach (var error in result.Errors)
                {
                    Log.ConfigReloadError(_logger, Redact.issue(secrets, error));
                }

                break;
            case ReloadOutcome.Applied or ReloadOutcome.RestartRequired:
                if (result.Outcome == ReloadOutcome.Applied)
                {
                    // (nothing was reloaded when every change needs a restart: only the warnings below say so)
                    Log.ConfigReloaded(_logger, result.Trigger, path, ConfigDiff.describe(result.Changes));
                }

                foreach (var change in result.Changes.OfType<ConfigChange.RestartRequired>())
                {
                    Log.ConfigRestartRequired(_logger, change.Path);
                }

                break;
            default:
                Log.ConfigUnchanged(_logger, result.Trigger, path);
                break;
        }

        foreach (var warning in result.Warnings)
        {
            Log.ConfigWarning(_logger, Redact.issue(secrets, warning));
        }
    }
}
