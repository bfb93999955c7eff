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
    private readonly Lock _waitLock = new();
    private Core.UpstreamWait _wait = Core.UpstreamWait.None;

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

    /// <summary>
    /// Time spent waiting on upstreams (Core <c>UpstreamWait</c>): while at least one attempt waited for its
    /// response headers, error body or first event. Hedged attempts that overlap count once.
    /// </summary>
    public TimeSpan UpstreamWait
    {
        get
        {
            lock (_waitLock)
            {
                return _wait.Total(Elapsed);
            }
        }
    }

    public TimeSpan Elapsed => _timeProvider.GetElapsedTime(StartedAt);

    /// <summary>An attempt is about to be sent: it waits on its upstream from now.</summary>
    public void UpstreamWaitStarts()
    {
        lock (_waitLock)
        {
            _wait = _wait.Start(Elapsed);
        }
    }

    /// <summary>The attempt's wait is over (pair with <see cref="UpstreamWaitStarts"/>, also on failure).</summary>
    public void UpstreamWaitEnds()
    {
        lock (_waitLock)
        {
            _wait = _wait.Stop(Elapsed);
        }
    }

    /// <summary>Fixes the overhead at the response start and renders it for the header.</summary>
    public string ResponseStarting()
    {
        // rounded once, here: the header and the request line show the same number
        OverheadMs = Math.Round(Math.Max(0, (Elapsed - UpstreamWait).TotalMilliseconds), 3);
        return OverheadMs.ToString("0.###", CultureInfo.InvariantCulture);
    }
}
