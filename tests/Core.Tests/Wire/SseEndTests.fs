module CcRelay.Core.Tests.SseEndTests

open System
open System.Text.Json
open Xunit
open CcRelay.Core

/// A stream that relayed `message_stop`, then hit EOF with nothing pending, the client still there.
let private clean: StreamFacts = {
    SawMessageStop = true
    SawErrorEvent = false
    PartialEvent = false
    Read = StreamRead.Eof
    ClientAborted = false
    Write = StreamWrite.Delivered
}

/// The appended event's (error type, message), when there is one.
let private appended (verdict: StreamVerdict) : (string * string) option =
    verdict.ErrorEvent
    |> Option.map (fun bytes ->
        match Sse.parse (ReadOnlySpan bytes) with
        | [ { Event = Some "error"; Data = data } ] ->
            use json = JsonDocument.Parse data
            let error = json.RootElement.GetProperty "error"
            string (error.GetProperty("type").GetString()), string (error.GetProperty("message").GetString())
        | other -> failwith $"expected one error event, got %A{other}")

/// Under every way the read can stop, `facts` end as `expected` with nothing appended.
let private endsSilently (expected: StreamEnd) (facts: StreamFacts) : unit =
    for read in [ StreamRead.Eof; StreamRead.Failed "reset"; StreamRead.Cancelled ] do
        let verdict = SseEnd.classify { facts with Read = read }
        Assert.Equal(expected, verdict.End)
        Assert.Equal(None, verdict.ErrorEvent)

[<Fact>]
let ``message_stop then EOF is a clean end, nothing appended`` () =
    let verdict = SseEnd.classify clean
    Assert.Equal(StreamEnd.Completed, verdict.End)
    Assert.Equal("", verdict.Reason)
    Assert.Equal(None, appended verdict)

[<Fact>]
let ``EOF before message_stop is truncation, and an api_error event is appended`` () =
    let verdict = SseEnd.classify { clean with SawMessageStop = false }
    Assert.Equal(StreamEnd.UpstreamTruncated, verdict.End)

    Assert.Equal(Some("api_error", "upstream closed the stream before message_stop"), appended verdict)

[<Fact>]
let ``EOF in the middle of an event is truncation even after message_stop`` () =
    let verdict = SseEnd.classify { clean with PartialEvent = true }
    Assert.Equal(StreamEnd.UpstreamTruncated, verdict.End)

    Assert.Equal(Some("api_error", "upstream closed the stream in the middle of an event"), appended verdict)

[<Fact>]
let ``a reset before message_stop appends an api_error naming the cause`` () =
    let verdict =
        SseEnd.classify {
            clean with
                SawMessageStop = false
                Read = StreamRead.Failed "Connection reset by peer"
        }

    Assert.Equal(StreamEnd.UpstreamFailed, verdict.End)
    Assert.Equal(Some("api_error", "upstream connection lost: Connection reset by peer"), appended verdict)

[<Fact>]
let ``a reset or the time limit after message_stop loses nothing: a clean end`` () =
    endsSilently StreamEnd.Completed clean

[<Fact>]
let ``a cancelled read with the client still there is the time limit: timeout_error appended`` () =
    let verdict =
        SseEnd.classify {
            clean with
                SawMessageStop = false
                Read = StreamRead.Cancelled
        }

    Assert.Equal(StreamEnd.TimedOut, verdict.End)
    Assert.Equal(Some("timeout_error", SseEnd.TimeLimitReason), appended verdict)

[<Fact>]
let ``the upstream's own error event is passed through and nothing is added`` () =
    endsSilently StreamEnd.UpstreamErrorEvent {
        clean with
            SawMessageStop = false
            SawErrorEvent = true
    }

[<Fact>]
let ``an error event followed by a cut mid-event is truncation`` () =
    let verdict =
        SseEnd.classify {
            clean with
                SawMessageStop = false
                SawErrorEvent = true
                PartialEvent = true
        }

    Assert.Equal(StreamEnd.UpstreamTruncated, verdict.End)

[<Fact>]
let ``a client that went away gets nothing appended, whatever the read did`` () =
    endsSilently StreamEnd.ClientAborted {
        clean with
            SawMessageStop = false
            ClientAborted = true
    }

[<Fact>]
let ``a failed write is the client leaving, before its request is flagged aborted too: nothing appended`` () =
    endsSilently StreamEnd.ClientAborted {
        clean with
            SawMessageStop = false
            Write = StreamWrite.Failed
    }

    // not the time limit, not the upstream: even when the upstream had broken too
    endsSilently StreamEnd.ClientAborted {
        clean with
            PartialEvent = true
            Write = StreamWrite.Failed
    }

[<Fact>]
let ``a write cancelled with the client still there is the time limit cutting it, never a clean end`` () =
    let verdict =
        SseEnd.classify {
            clean with
                Write = StreamWrite.Cancelled
        }

    Assert.Equal(StreamEnd.TimedOut, verdict.End)
    Assert.Equal(None, verdict.ErrorEvent)

[<Fact>]
let ``a write cancelled by the client's abort is the client leaving`` () =
    let verdict =
        SseEnd.classify {
            clean with
                ClientAborted = true
                Write = StreamWrite.Cancelled
        }

    Assert.Equal(StreamEnd.ClientAborted, verdict.End)

// ---------------------------
// BodyEnd: a copied JSON body
// ---------------------------

/// A JSON body copied to its EOF, every write through, the client still there.
let private copied: BodyFacts = {
    Read = StreamRead.Eof
    Write = StreamWrite.Delivered
    ClientAborted = false
}

[<Fact>]
let ``a JSON body copied to its end is complete`` () =
    Assert.Equal(BodyEnd.Completed, BodyEnd.classify copied)

[<Fact>]
let ``a failed write of a JSON body is the client leaving, before its request is flagged aborted too`` () =
    Assert.Equal(
        BodyEnd.ClientAborted,
        BodyEnd.classify {
            copied with
                Write = StreamWrite.Failed
        }
    )

[<Fact>]
let ``a JSON body whose client aborted is the client leaving, whatever the read did`` () =
    for read in [ StreamRead.Eof; StreamRead.Failed "reset"; StreamRead.Cancelled ] do
        Assert.Equal(
            BodyEnd.ClientAborted,
            BodyEnd.classify {
                copied with
                    Read = read
                    ClientAborted = true
            }
        )

[<Fact>]
let ``a failed read, or the time limit cutting the copy, is the upstream's failure`` () =
    for facts in
        [
            {
                copied with
                    Read = StreamRead.Failed "reset"
            }
            {
                copied with
                    Read = StreamRead.Cancelled
            }
            {
                copied with
                    Write = StreamWrite.Cancelled
            }
        ] do
        Assert.Equal(BodyEnd.UpstreamFailed, BodyEnd.classify facts)
