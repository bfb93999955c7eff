namespace CcRelay.Host.Forwarding;

/// <summary>How a relayed SSE stream ended, and whose fault it was (YARP's blame-by-side lesson).</summary>
internal enum StreamEnd
{
    /// <summary>The upstream finished with <c>message_stop</c>.</summary>
    Completed,

    /// <summary>The upstream ended the stream with its own SSE <c>error</c> event (passed through as it was).</summary>
    UpstreamErrorEvent,

    /// <summary>The upstream closed cleanly but early: mid-event or before <c>message_stop</c>.</summary>
    UpstreamTruncated,

    /// <summary>Reading from the upstream failed (reset, protocol error).</summary>
    UpstreamFailed,

    /// <summary>The relay's own request time limit ran out.</summary>
    TimedOut,

    /// <summary>The client went away; the upstream was cancelled.</summary>
    ClientAborted,
}
