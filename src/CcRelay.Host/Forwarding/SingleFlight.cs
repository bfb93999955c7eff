using System.Collections.Concurrent;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// Calls that ask for the same key while one computation of it runs share that computation: the first starts it,
/// the others await its task. Nothing is kept once it ends (a later call computes anew).
/// </summary>
internal sealed class SingleFlight<T>
{
    private readonly ConcurrentDictionary<string, Lazy<Task<T>>> _inFlight = new(StringComparer.Ordinal);

    /// <summary>Keys being computed now.</summary>
    public int Count => _inFlight.Count;

    /// <summary>The result of <paramref name="compute"/> for <paramref name="key"/>, shared with every concurrent caller of the same key.</summary>
    public async Task<T> RunAsync(string key, Func<Task<T>> compute)
    {
        ArgumentNullException.ThrowIfNull(compute);
        var flight = new Lazy<Task<T>>(compute, LazyThreadSafetyMode.ExecutionAndPublication);
        var shared = _inFlight.GetOrAdd(key, flight);
        try
        {
            return await shared.Value;
        }
        finally
        {
            // the caller whose computation it was takes it out; the others may still be awaiting it
            if (ReferenceEquals(shared, flight))
            {
                _inFlight.TryRemove(new KeyValuePair<string, Lazy<Task<T>>>(key, flight));
            }
        }
    }
}
