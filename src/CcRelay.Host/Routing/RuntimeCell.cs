using CcRelay.Core;
using CcRelay.Host.Logging;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Routing;

/// <summary>
/// The one atomic cell holding the Core <see cref="RelayRuntime"/> (breakers, key pools, cursors, pins).
/// Every change is a pure Core transition applied with a compare-and-swap loop (retrying the pure call is
/// safe); the transition's effects are logged after the swap. <see cref="Now"/> is the monotonic clock the
/// Core decides on: the <see cref="TimeProvider"/>'s elapsed time since the cell was created.
/// </summary>
public sealed class RuntimeCell
{
    private readonly TimeProvider _timeProvider;
    private readonly long _start;
    private readonly ILogger _logger;
    private RelayRuntime _runtime;

    /// <summary>
    /// Creates the runtime for the startup snapshot's configuration (<c>Relay.createWith</c>), sharing its
    /// compiled price tables.
    /// </summary>
    public RuntimeCell(RelaySnapshot snapshot, TimeProvider timeProvider, ILogger<RuntimeCell> logger)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        _timeProvider = timeProvider;
        _logger = logger;
        _start = timeProvider.GetTimestamp();
        _runtime = Relay.createWith(TimeSpan.Zero, snapshot.Prices, snapshot.Config);
    }

    /// <summary>
    /// Called with every effect after its swap (the shared store publishes those that spread, docs/scale-out.md); must
    /// not block. Changes applied through <see cref="Update(Func{RelayRuntime, RelayRuntime})"/> have no effects.
    /// </summary>
    public Action<RelayEffect>? OnEffect { get; set; }

    /// <summary>The monotonic now: elapsed since the cell was created.</summary>
    public TimeSpan Now => _timeProvider.GetElapsedTime(_start);

    /// <summary>The current runtime (read-only use: status, headers).</summary>
    public RelayRuntime Current => Volatile.Read(ref _runtime);

    /// <summary>Applies a pure transition atomically; returns its value and logs its effects after the swap.</summary>
    public T Transition<T>(Func<RelayRuntime, Transition<T>> transition)
    {
        ArgumentNullException.ThrowIfNull(transition);
        while (true)
        {
            var before = Volatile.Read(ref _runtime);
            var next = transition(before);
            if (ReferenceEquals(Interlocked.CompareExchange(ref _runtime, next.Runtime, before), before))
            {
                // NOTE: not foreach: an F# list's enumerator is an allocation, and the list is nearly always empty
                for (var effects = next.Effects; !effects.IsEmpty; effects = effects.Tail)
                {
                    LogEffect(effects.Head);
                }

                return next.Value;
            }
        }
    }

    /// <summary>
    /// <see cref="Transition{T}(Func{RelayRuntime, Transition{T}})"/> for the request path: the transition gets the
    /// runtime, the monotonic now and <paramref name="arg"/>, so a static lambda needs no closure (no allocation).
    /// </summary>
    public T Transition<TArg, T>(TArg arg, Func<RelayRuntime, TimeSpan, TArg, Transition<T>> transition)
    {
        ArgumentNullException.ThrowIfNull(transition);
        while (true)
        {
            var before = Volatile.Read(ref _runtime);
            var next = transition(before, Now, arg);
            if (ReferenceEquals(Interlocked.CompareExchange(ref _runtime, next.Runtime, before), before))
            {
                for (var effects = next.Effects; !effects.IsEmpty; effects = effects.Tail)
                {
                    LogEffect(effects.Head);
                }

                return next.Value;
            }
        }
    }

    /// <summary><see cref="Update(Func{RelayRuntime, RelayRuntime})"/> with an argument, for static lambdas (no closure).</summary>
    public void Update<TArg>(TArg arg, Func<RelayRuntime, TimeSpan, TArg, RelayRuntime> update)
    {
        ArgumentNullException.ThrowIfNull(update);
        while (true)
        {
            var before = Volatile.Read(ref _runtime);
            var next = update(before, Now, arg);
            if (ReferenceEquals(Interlocked.CompareExchange(ref _runtime, next, before), before))
            {
                return;
            }
        }
    }

    /// <summary>Applies a pure runtime update atomically (no value, no effects).</summary>
    public void Update(Func<RelayRuntime, RelayRuntime> update)
    {
        ArgumentNullException.ThrowIfNull(update);
        while (true)
        {
            var before = Volatile.Read(ref _runtime);
            var next = update(before);
            if (ReferenceEquals(Interlocked.CompareExchange(ref _runtime, next, before), before))
            {
                return;
            }
        }
    }

    /// <summary>
    /// Reconciles with a reloaded snapshot (<c>Relay.reconcileWith</c>, sharing its compiled price tables):
    /// surviving providers and keys keep their state.
    /// </summary>
    public void Reconcile(RelaySnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        var now = Now;
        Update(runtime => Relay.reconcileWith(now, snapshot.Prices, snapshot.Config, runtime));
    }

    /// <summary>
    /// Reconciles with a snapshot whose config a key edit changed (<c>KeyEdit.reconcile</c>): as <see cref="Reconcile"/>,
    /// but a revoked key stays revoked.
    /// </summary>
    public void ReconcileKeyEdit(RelaySnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        var now = Now;
        Update(runtime => KeyEdit.reconcile(now, snapshot.Prices, snapshot.Config, runtime));
    }

    private void LogEffect(RelayEffect effect)
    {
        OnEffect?.Invoke(effect);
        switch (effect)
        {
            case RelayEffect.BreakerOpened opened:
                Log.BreakerOpened(_logger, opened.Provider, Math.Round(Math.Max(0, (opened.Until - Now).TotalMilliseconds)));
                break;
            case RelayEffect.BreakerHalfOpened half:
                Log.BreakerHalfOpened(_logger, half.Provider);
                break;
            case RelayEffect.BreakerClosed closed:
                Log.BreakerClosed(_logger, closed.Provider);
                break;
            case RelayEffect.BreakerDisabled disabled:
                Log.BreakerDisabled(_logger, disabled.Provider);
                break;
            case RelayEffect.BreakerEnabled enabled:
                Log.BreakerEnabled(_logger, enabled.Provider);
                break;
            case RelayEffect.KeyCooledDown cooled:
                Log.KeyCooledDown(_logger, cooled.Provider, cooled.KeyId, Math.Round(Math.Max(0, (cooled.Until - Now).TotalMilliseconds)));
                break;
            case RelayEffect.KeyRevoked revoked:
                Log.KeyRevoked(_logger, revoked.Provider, revoked.KeyId);
                break;
            case RelayEffect.KeyLimitsLearned learned:
                Log.KeyLimitsLearned(_logger, learned.Provider, learned.KeyId);
                break;
        }
    }
}
