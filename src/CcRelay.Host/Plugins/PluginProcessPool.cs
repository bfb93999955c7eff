using CcRelay.Core;

namespace CcRelay.Host.Plugins;

/// <summary>
/// One plugin's processes (<c>plugins.&lt;name&gt;.processes</c>, docs/plugins.md "Processes"): up to that many
/// <see cref="PluginProcess"/>es, each sandboxed alike, each answering one call at a time. Core decides which
/// process takes a call or a stream's event (<see cref="PluginPool.choose"/>: place a call, bind a stream's first
/// event, follow its binding), when a lost process may be started again
/// (<see cref="PluginPool.heldBackFor"/>) and when a pool a reload replaced has drained
/// (<see cref="PluginPool.drained"/>); this class keeps the counts, places calls and acts.
/// </summary>
internal sealed class PluginProcessPool : IDisposable
{
    private readonly Lock _lock = new();
    private readonly PluginProcess[] _processes;
    private readonly int[] _outstanding;
    private readonly int[] _streams;
    private readonly TimeProvider _timeProvider;
    private readonly double[] _latencies = PluginLatency.create();
    private int _openStreams;
    private int _losses;
    private long _lastLossMs;
    private long _calls;
    private long _failures;
    private long _answered;
    private string _lastError = "";
    private bool _retired;
    private bool _disposed;

    public PluginProcessPool(PluginConfig config, string? prlimit, TimeProvider timeProvider, Action<string> restarted)
    {
        Config = config;
        _timeProvider = timeProvider;
        _processes = new PluginProcess[Math.Max(1, config.Processes)];
        for (var i = 0; i < _processes.Length; i++)
        {
            _processes[i] = new PluginProcess(config, prlimit, timeProvider);
            _processes[i].Restarted += restarted;
        }

        _outstanding = new int[_processes.Length];
        _streams = new int[_processes.Length];
    }

    /// <summary>The settings its processes run with (a reload with other settings replaces the pool).</summary>
    public PluginConfig Config { get; }

    /// <summary>Whether it has stopped its processes (it takes no more calls: find the plugin's pool again).</summary>
    public bool Disposed
    {
        get
        {
            lock (_lock)
            {
                return _disposed;
            }
        }
    }

    /// <summary>Processes running now (for a replaced pool: those still draining).</summary>
    public int Running => _processes.Count(p => p.Running);

    /// <summary>
    /// Calls the plugin once on the process Core picks: a one-shot call (<paramref name="stream"/> null) or the next
    /// event of a stream. Null when the pool was stopped before the call was placed (the caller finds the plugin's
    /// pool again); a plugin fault is a <c>Failed</c> outcome.
    /// </summary>
    public async Task<StepOutcome?> CallAsync(PluginCall call, PluginStream? stream, CancellationToken cancellationToken)
    {
        int slot;
        lock (_lock)
        {
            if (_disposed)
            {
                return null;
            }

            _calls++;
            var slots = SlotsLocked();
            var heldBack = PluginPool.heldBackFor(_losses, _lastLossMs, NowMs());
            var choice = PluginPool.choose(slots, stream is null ? PoolCall.Call : PoolCall.NewEvent(stream.Slot), heldBack);
            if (choice is not PoolChoice.Slot placed)
            {
                var retry = ((PoolChoice.HeldBack)choice).RetryInMs;
                return FailLocked($"not started: its processes were lost {_losses} times in a row without answering; the next start in {retry} ms");
            }

            slot = placed.Index;
            if (stream is not null && stream.Slot != slot)
            {
                if (stream.Slot >= 0)
                {
                    _streams[stream.Slot]--;
                }

                _streams[slot]++;
                stream.Slot = slot;
            }

            _outstanding[slot]++;
        }

        var result = default(PluginCallResult);
        try
        {
            result = await _processes[slot].CallAsync(call, cancellationToken);
        }
        finally
        {
            lock (_lock)
            {
                _outstanding[slot]--;
                if (result.Lost)
                {
                    _losses++;
                    _lastLossMs = NowMs();
                }
                else if (result.Answered)
                {
                    _losses = 0;
                    PluginLatency.record(_latencies, _answered++, result.RoundTripMs);
                }

                if (result.Outcome is StepOutcome.Failed failed)
                {
                    FailLocked(failed.Reason);
                }
            }

            DisposeIfDrained();
        }

        return result.Outcome;
    }

    /// <summary>A stream's binding to this pool (null when the pool was stopped: find the plugin's pool again).</summary>
    public PluginStream? OpenStream()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return null;
            }

            _openStreams++;
            return new PluginStream(this);
        }
    }

    /// <summary>The stream ended: its slot is free for others to bind to.</summary>
    internal void Close(PluginStream stream)
    {
        lock (_lock)
        {
            if (stream.Slot >= 0)
            {
                _streams[stream.Slot]--;
                stream.Slot = -1;
            }

            _openStreams--;
        }

        DisposeIfDrained();
    }

    /// <summary>A reload replaced its settings: it takes the calls and streams already given to it, then stops its processes.</summary>
    public void Retire()
    {
        lock (_lock)
        {
            _retired = true;
        }

        DisposeIfDrained();
    }

    /// <summary>The pool's state for <c>/health</c> and the management API (<paramref name="draining"/>: processes of replaced pools).</summary>
    public PluginStatus Status(bool sandboxed, int draining)
    {
        lock (_lock)
        {
            var slots = SlotsLocked();
            var starts = _processes.Sum(p => p.Starts);
            var started = _processes.Count(p => p.Starts > 0);
            var counts = PluginPool.counts(slots);
            var state = starts == 0 ? "idle" : counts.Running > 0 ? "running" : "stopped";
            var p50 = PluginLatency.p50((double[])_latencies.Clone(), _answered);
            return new PluginStatus(Config.Name, state, _calls, _failures, starts - started, _lastError, sandboxed, p50, Config.Processes, counts, draining);
        }
    }

    private PluginSlot[] SlotsLocked()
    {
        var slots = new PluginSlot[_processes.Length];
        for (var i = 0; i < slots.Length; i++)
        {
            slots[i] = new PluginSlot(_processes[i].Running, _outstanding[i], _streams[i]);
        }

        return slots;
    }

    private StepOutcome FailLocked(string reason)
    {
        _failures++;
        _lastError = reason;
        return StepOutcome.NewFailed(reason);
    }

    private long NowMs() => _timeProvider.GetUtcNow().ToUnixTimeMilliseconds();

    private void DisposeIfDrained()
    {
        lock (_lock)
        {
            if (!_retired || _disposed || _openStreams > 0 || !PluginPool.drained(SlotsLocked()))
            {
                return;
            }

            _disposed = true;
        }

        StopProcesses();
    }

    private void StopProcesses()
    {
        foreach (var process in _processes)
        {
            process.Dispose();
        }
    }

    /// <summary>Stops every process now (the relay is stopping).</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
        }

        StopProcesses();
    }
}

/// <summary>
/// A stream's hold on a plugin's pool: its first event binds it to one process, and its events go there in order
/// (a plugin may keep per-stream state); a pool a reload replaced keeps running until its streams end.
/// Dispose when the stream ends.
/// </summary>
internal sealed class PluginStream : IDisposable
{
    private readonly PluginProcessPool _pool;
    private int _closed;

    internal PluginStream(PluginProcessPool pool) => _pool = pool;

    /// <summary>The slot the stream is bound to (-1 before its first event).</summary>
    internal int Slot { get; set; } = -1;

    /// <summary>Calls the plugin with the stream's next event; a plugin fault is a <c>Failed</c> outcome.</summary>
    public async Task<StepOutcome> CallAsync(PluginCall call, CancellationToken cancellationToken) =>
        await _pool.CallAsync(call, this, cancellationToken)
        ?? StepOutcome.NewFailed("the plugin was stopped during the stream");

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _closed, 1) == 0)
        {
            _pool.Close(this);
        }
    }
}
