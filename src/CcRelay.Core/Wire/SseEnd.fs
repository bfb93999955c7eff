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
    /// The relay stopped reading: a stream-event plugin step failed under `on_error: fail` (the step's name and
    /// why, already scrubbed of secrets). Says nothing of the upstream.
    | PluginFailed of Step: string * Reason: string

/// How the relay's writes to the client went.
[<RequireQualifiedAccess>]
type StreamWrite =
    /// Every write and flush went through.
    | Delivered
    /// A write or flush failed: an I/O error, a reset, a flush that found the connection already done. Only
    /// the client's side of the connection makes a write fail, and nothing more can reach it.
    | Failed
    /// A write was cancelled by the relay's own token: the client's abort or the relay's time limit.
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
    /// How the writes to the client went.
    Write: StreamWrite
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
    /// A stream-event plugin failed (`on_error: fail`): the relay ended the stream with an `error` event; the
    /// upstream is not to blame.
    | PluginFailed

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
/// | the client aborted, or a write to it failed   | ClientAborted      | nothing (cannot) |
/// | a write was cancelled (client still there)    | TimedOut           | nothing (cannot) |
/// | the upstream's `error` event, nothing partial | UpstreamErrorEvent | nothing          |
/// | `message_stop`, nothing partial               | Completed          | nothing          |
/// | EOF mid-event, or before `message_stop`       | UpstreamTruncated  | `api_error`      |
/// | the read failed                               | UpstreamFailed     | `api_error`      |
/// | the read was cancelled (the time limit)       | TimedOut           | `timeout_error`  |
/// | a stream-event plugin failed (`on_error: fail`) | PluginFailed     | `api_error`      |
///
/// Once `message_stop` (or the upstream's own `error` event) is relayed the answer is whole: a reset or the
/// time limit while waiting for the upstream to close loses nothing and adds nothing.
///
/// A failed write is the client leaving even while its request is not (yet) flagged aborted: ASP.NET Core's
/// Kestrel completes the response at once when the connection goes, and cancels `RequestAborted` later, on the
/// thread pool. Blaming the time limit or the upstream for it would count a healthy upstream's answer as failed.
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

    /// Whether the client has left: its request was aborted, or a write to it failed (whatever the request
    /// says yet). A write cancelled by the relay's own token, its request not aborted, is the time limit.
    let clientLeft (clientAborted: bool) (write: StreamWrite) : bool =
        clientAborted || write = StreamWrite.Failed

    /// Classifies the end of a relayed stream (see the table above).
    let classify (facts: StreamFacts) : StreamVerdict =
        if clientLeft facts.ClientAborted facts.Write then
            ended StreamEnd.ClientAborted "client disconnected"
        elif facts.Write = StreamWrite.Cancelled then
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
            | StreamRead.PluginFailed(step, reason) ->
                broken StreamEnd.PluginFailed ErrorType.Api $"the relay's transformer %s{step} failed: %s{reason}"

/// What the host knows when it stops copying a JSON (not SSE) answer's body to the client.
type BodyFacts = {
    Read: StreamRead
    Write: StreamWrite
    /// The client's request was aborted: it went away.
    ClientAborted: bool
}

/// How copying a JSON answer's body ended, and whose fault it was.
[<RequireQualifiedAccess>]
type BodyEnd =
    /// The upstream's body ended (EOF) and every byte of it reached the client.
    | Completed
    /// Reading the upstream's body failed, or the relay's time limit cut the copy.
    | UpstreamFailed
    /// The client went away: its request was aborted, or a write to it failed (`SseEnd.clientLeft`).
    | ClientAborted

/// How copying a JSON answer's body ended. The rules, first match wins: the client left (`SseEnd.clientLeft`):
/// ClientAborted; the read and every write went through: Completed; otherwise (the read failed or was
/// cancelled, or a write was cancelled by the time limit): UpstreamFailed. Either way but Completed, the host
/// aborts the connection so a truncated body never looks complete.
[<RequireQualifiedAccess>]
module BodyEnd =

    /// Classifies the end of a copied JSON body (see the module's rules).
    let classify (facts: BodyFacts) : BodyEnd =
        if SseEnd.clientLeft facts.ClientAborted facts.Write then
            BodyEnd.ClientAborted
        elif facts.Read = StreamRead.Eof && facts.Write = StreamWrite.Delivered then
            BodyEnd.Completed
        else
            BodyEnd.UpstreamFailed

/// The C#-facing surface of `BodyEnd`.
type BodyEnd with

    /// Classifies the end of a copied JSON body (`BodyEnd.classify`).
    static member Classify(facts: BodyFacts) : BodyEnd = BodyEnd.classify facts
