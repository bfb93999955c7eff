using System.Globalization;
using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Http;

/// <summary>
/// When a request arrived, how long it waited on upstreams, and so how long the relay itself took before
/// the response started (<c>x-cc-relay-overhead-ms</c>). One per request, as an HTTP feature.
/// </summary>
internal sealed class RequestTiming
{
    private readonly TimeProvider _timeProvider;
    private long _upstreamWaitTicks;

    public RequestTiming(TimeProvider timeProvider, string requestId, HttpResponse response)
    {
        _timeProvider = timeProvider;
        Response = response;
        StartedAt = timeProvider.GetTimestamp();
        RequestId = requestId;
    }

    /// <summary>The request's start (a <see cref="TimeProvider"/> timestamp).</summary>
    public long StartedAt { get; }

    public string RequestId { get; }

    public HttpResponse Response { get; }

    /// <summary>The relay's own time up to the response start, in ms; -1 until the response started.</summary>
    public double OverheadMs { get; private set; } = -1;

    /// <summary>Time spent waiting for upstream response headers (all attempts).</summary>
    public TimeSpan UpstreamWait => TimeSpan.FromTicks(Interlocked.Read(ref _upstreamWaitTicks));

    public TimeSpan Elapsed => _timeProvider.GetElapsedTime(StartedAt);

    /// <summary>Adds the wait from <paramref name="sentAt"/> (a timestamp) until now.</summary>
    public void AddUpstreamWait(long sentAt) =>
        Interlocked.Add(ref _upstreamWaitTicks, _timeProvider.GetElapsedTime(sentAt).Ticks);

    /// <summary>Fixes the overhead at the response start and renders it for the header.</summary>
    public string ResponseStarting()
    {
        // rounded once, here: the header and the request line show the same number
        OverheadMs = Math.Round(Math.Max(0, (Elapsed - UpstreamWait).TotalMilliseconds), 3);
        return OverheadMs.ToString("0.###", CultureInfo.InvariantCulture);
    }
}
