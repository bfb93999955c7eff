module CcRelay.Core.Properties.SseEndProperties

open System
open System.Text.Json
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators

// ---------------------------
// Generators
// ---------------------------

/// Any way a read can stop; a failure's reason is any text (exception messages hold line breaks and quotes).
let private read: Gen<StreamRead> =
    Gen.oneof [
        Gen.constant StreamRead.Eof
        Gen.constant StreamRead.Cancelled
        anyText |> Gen.map StreamRead.Failed
    ]

let private facts: Arbitrary<StreamFacts> =
    gen {
        let! sawMessageStop = Gen.elements [ false; true ]
        let! sawErrorEvent = Gen.elements [ false; true ]
        let! partialEvent = Gen.elements [ false; true ]
        let! read = read
        // mostly a client that stays, so the upstream's side of the table is well covered
        let! clientAborted = Gen.frequency [ 3, Gen.constant false; 1, Gen.constant true ]
        let! writeFailed = Gen.frequency [ 3, Gen.constant false; 1, Gen.constant true ]

        return {
            SawMessageStop = sawMessageStop
            SawErrorEvent = sawErrorEvent
            PartialEvent = partialEvent
            Read = read
            ClientAborted = clientAborted
            WriteFailed = writeFailed
        }
    }
    |> Check.arb

// ---------------------------
// Properties
// ---------------------------

[<Fact>]
let ``never a clean end unless message_stop was seen, nothing is pending, and the client got every byte`` () =
    Check.property (
        Prop.forAll facts (fun facts ->
            if (SseEnd.classify facts).End = StreamEnd.Completed then
                Assert.True(facts.SawMessageStop)
                Assert.False(facts.PartialEvent)
                Assert.False(facts.ClientAborted)
                Assert.False(facts.WriteFailed))
    )

[<Fact>]
let ``a client abort is always ClientAborted and never appends an error event`` () =
    Check.property (
        Prop.forAll facts (fun facts ->
            let verdict = SseEnd.classify { facts with ClientAborted = true }
            Assert.Equal(StreamEnd.ClientAborted, verdict.End)
            Assert.Equal(None, verdict.ErrorEvent))
    )

[<Fact>]
let ``nothing is appended after a failed write, nor after the upstream's own error event or a clean end`` () =
    Check.property (
        Prop.forAll facts (fun facts ->
            let verdict = SseEnd.classify facts

            let broken =
                match verdict.End with
                | StreamEnd.UpstreamTruncated
                | StreamEnd.UpstreamFailed -> true
                | StreamEnd.TimedOut -> not facts.WriteFailed
                | StreamEnd.Completed
                | StreamEnd.UpstreamErrorEvent
                | StreamEnd.ClientAborted -> false

            Assert.Equal(broken, verdict.ErrorEvent.IsSome)

            if facts.WriteFailed then
                Assert.Equal(None, verdict.ErrorEvent))
    )

[<Fact>]
let ``a broken stream ends with exactly one error event: timeout_error for the time limit, else api_error, saying the reason``
    ()
    =
    Check.property (
        Prop.forAll facts (fun facts ->
            let verdict = SseEnd.classify facts

            match verdict.ErrorEvent with
            | None -> ()
            | Some bytes ->
                let event = Assert.Single(Sse.parse (ReadOnlySpan bytes))
                Assert.Equal(Some "error", event.Event)
                use json = JsonDocument.Parse event.Data
                let error = json.RootElement.GetProperty "error"

                let expected =
                    if verdict.End = StreamEnd.TimedOut then
                        "timeout_error"
                    else
                        "api_error"

                Assert.Equal(expected, error.GetProperty("type").GetString())
                Assert.Equal(verdict.Reason, error.GetProperty("message").GetString())
                // nothing follows the event: the stream's last bytes are its blank line
                Assert.Equal(-1, Sse.findEventEnd (ReadOnlySpan(bytes, Sse.findEventEnd (ReadOnlySpan bytes), 0))))
    )

[<Fact>]
let ``the relay never blames the upstream's error event it did not see, nor a time limit on a read that ended`` () =
    Check.property (
        Prop.forAll facts (fun facts ->
            match (SseEnd.classify facts).End with
            | StreamEnd.UpstreamErrorEvent -> Assert.True(facts.SawErrorEvent)
            | StreamEnd.UpstreamFailed -> Assert.True(facts.Read.IsFailed)
            | StreamEnd.UpstreamTruncated -> Assert.Equal(StreamRead.Eof, facts.Read)
            | StreamEnd.TimedOut -> Assert.True(facts.Read = StreamRead.Cancelled || facts.WriteFailed)
            | StreamEnd.Completed
            | StreamEnd.ClientAborted -> ())
    )

[<Fact>]
let ``the client leaving while the error event is written turns any verdict into ClientAborted`` () =
    Check.property (
        Prop.forAll facts (fun facts ->
            let first = SseEnd.classify facts

            if first.ErrorEvent.IsSome then
                let retold = SseEnd.classify { facts with ClientAborted = true }
                Assert.Equal(StreamEnd.ClientAborted, retold.End)
                Assert.Equal(None, retold.ErrorEvent))
    )
