namespace CcRelay.Core

/// How reading an upstream's SSE body stopped.
[<RequireQualifiedAccess>]
type StreamRead =
    /// The upstream closed the body.
    | Eof
    /// Reading failed (a reset, a protocol error); the reason is the exception's message.
    | Failed of Reason: string
    /// The read was cancelled: the client went away, a write to it failed, or the relay's time limit ran out.
    | Cancelled

/// What the host knows when a relayed stream stops.
type StreamFacts = {
    /// A `message_stop` event was relayed.
    SawMessageStop: bool
    /// An SSE `error` event from the upstream was relayed.
    SawErrorEvent: bool
    /// Bytes of an event whose blank line never came were left unsent.
    PartialEvent: bool
    Read: StreamRead
    /// The client's request was aborted: it went away.
    ClientAborted: bool
    /// A write to the client failed or was cancelled: nothing more can reach it. (While the client's request is
    /// not aborted, that is the relay's time limit cutting the write.)
    WriteFailed: bool
}

/// How a relayed SSE stream ended, and whose fault it was (YARP's blame-by-side lesson).
[<RequireQualifiedAccess>]
type StreamEnd =
    /// The whole answer was relayed: `message_stop`, nothing partial after it.
    | Completed
    /// The upstream ended the answer with its own SSE `error` event (passed through as it was).
    | UpstreamErrorEvent
    /// The upstream closed cleanly but early: mid-event or before `message_stop`.
    | UpstreamTruncated
    /// Reading from the upstream failed before the answer was whole.
    | UpstreamFailed
    /// The relay's own request time limit ran out.
    | TimedOut
    /// The client went away; the upstream was cancelled.
    | ClientAborted

/// The decision: how the stream ended, why (for the log), and the SSE `error` event to append, if any.
type StreamVerdict = {
    End: StreamEnd
    /// Empty for a complete stream.
    Reason: string
    /// `event: error` in the Anthropic envelope, whose message is `Reason`; None when nothing is appended.
    ErrorEvent: byte array option
}

/// How a relayed SSE stream ended, and whether the relay must append an `error` event: a truncated stream
/// must never look complete (Claude Code takes a clean end of stream as an empty answer).
///
/// The rules, first match wins:
///
/// | Facts                                         | End                | Appended         |
/// |-----------------------------------------------|--------------------|------------------|
/// | the client aborted                            | ClientAborted      | nothing          |
/// | a write failed (client still there)           | TimedOut           | nothing (cannot) |
/// | the upstream's `error` event, nothing partial | UpstreamErrorEvent | nothing          |
/// | `message_stop`, nothing partial               | Completed          | nothing          |
/// | EOF mid-event, or before `message_stop`       | UpstreamTruncated  | `api_error`      |
/// | the read failed                               | UpstreamFailed     | `api_error`      |
/// | the read was cancelled (the time limit)       | TimedOut           | `timeout_error`  |
///
/// Once `message_stop` (or the upstream's own `error` event) is relayed the answer is whole: a reset or the
/// time limit while waiting for the upstream to close loses nothing and adds nothing.
[<RequireQualifiedAccess>]
module SseEnd =

    let private ended (streamEnd: StreamEnd) (reason: string) : StreamVerdict = {
        End = streamEnd
        Reason = reason
        ErrorEvent = None
    }

    let private broken (streamEnd: StreamEnd) (errorType: ErrorType) (reason: string) : StreamVerdict = {
        End = streamEnd
        Reason = reason
        ErrorEvent = Some(ErrorEnvelope.toSseEvent errorType reason)
    }

    /// The relay's time limit, as the log and the appended event say it.
    [<Literal>]
    let TimeLimitReason = "the relay's request time limit ran out"

    /// Classifies the end of a relayed stream (see the table above).
    let classify (facts: StreamFacts) : StreamVerdict =
        if facts.ClientAborted then
            ended StreamEnd.ClientAborted "client disconnected"
        elif facts.WriteFailed then
            ended StreamEnd.TimedOut TimeLimitReason
        elif facts.SawErrorEvent && not facts.PartialEvent then
            ended StreamEnd.UpstreamErrorEvent "upstream sent an SSE error event"
        elif facts.SawMessageStop && not facts.PartialEvent then
            ended StreamEnd.Completed ""
        else
            match facts.Read with
            | StreamRead.Eof when facts.PartialEvent ->
                broken StreamEnd.UpstreamTruncated ErrorType.Api "upstream closed the stream in the middle of an event"
            | StreamRead.Eof ->
                broken StreamEnd.UpstreamTruncated ErrorType.Api "upstream closed the stream before message_stop"
            | StreamRead.Failed reason ->
                broken StreamEnd.UpstreamFailed ErrorType.Api ("upstream connection lost: " + reason)
            | StreamRead.Cancelled -> broken StreamEnd.TimedOut ErrorType.Timeout TimeLimitReason
