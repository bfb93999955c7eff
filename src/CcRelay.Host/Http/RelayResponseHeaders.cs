using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Http;

/// <summary>
/// The headers the relay puts on every response it produces or relays: <c>x-request-id</c> and
/// <c>x-cc-relay-request-id</c> (the request id), and <c>x-cc-relay-overhead-ms</c> (the relay's own time
/// up to the response start, upstream waits excluded; set as the response starts, so before a stream's
/// first byte).
/// </summary>
internal static class RelayResponseHeaders
{
    public const string RequestIdHeader = "x-cc-relay-request-id";
    public const string OverheadHeader = "x-cc-relay-overhead-ms";

    /// <summary>Starts the request's timing and stamps its headers; a second call returns the first timing.</summary>
    public static RequestTiming Stamp(HttpContext context, TimeProvider timeProvider)
    {
        if (context.Features.Get<RequestTiming>() is { } existing)
        {
            return existing;
        }

        var timing = new RequestTiming(timeProvider, RequestId.Assign(context), context.Response);
        context.Features.Set(timing);
        context.Response.OnStarting(
            static state =>
            {
                // set again here: a relayed answer's headers must not replace the relay's own
                var timing = (RequestTiming)state;
                timing.Response.Headers[RequestIdHeader] = timing.RequestId;
                timing.Response.Headers[OverheadHeader] = timing.ResponseStarting();
                return Task.CompletedTask;
            },
            timing);
        return timing;
    }

    /// <summary>Wraps a handler so that its responses carry the relay's headers.</summary>
    public static RequestDelegate Stamped(RequestDelegate handler, TimeProvider timeProvider) =>
        context =>
        {
            Stamp(context, timeProvider);
            return handler(context);
        };
}
