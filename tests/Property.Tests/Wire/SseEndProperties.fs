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
        anyText |> Gen.map (fun reason -> StreamRead.PluginFailed("plugin:p", reason))
    ]

/// Mostly writes that went through, so the upstream's side of the table is well covered.
let private write: Gen<StreamWrite> =
    Gen.frequency [
        4, Gen.constant StreamWrite.Delivered
        1, Gen.constant StreamWrite.Failed
        1, Gen.constant StreamWrite.Cancelled
    ]

/// Mostly a client that stays, for the same reason.
let private clientAborted: Gen<bool> =
    Gen.frequency [ 3, Gen.constant false; 1, Gen.constant true ]

let private facts: Arbitrary<StreamFacts> =
    gen {
        let! sawMessageStop = Gen.elements [ false; true ]
        let! sawErrorEvent = Gen.elements [ false; true ]
        let! partialEvent = Gen.elements [ false; true ]
        let! read = read
        let! clientAborted = clientAborted
        let! write = write

        return {
            SawMessageStop = sawMessageStop
            SawErrorEvent = sawErrorEvent
            PartialEvent = partialEvent
            Read = read
            ClientAborted = clientAborted
            Write = write
        }
    }
    |> Check.arb

let private bodyFacts: Arbitrary<BodyFacts> =
    gen {
        let! read = read
        let! write = write
        let! clientAborted = clientAborted

        return {
            Read = read
            Write = write
            ClientAborted = clientAborted
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
                Assert.Equal(StreamWrite.Delivered, facts.Write))
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
                | StreamEnd.UpstreamFailed
                | StreamEnd.PluginFailed -> true
                | StreamEnd.TimedOut -> facts.Write = StreamWrite.Delivered
                | StreamEnd.Completed
                | StreamEnd.UpstreamErrorEvent
                | StreamEnd.ClientAborted -> false

            Assert.Equal(broken, verdict.ErrorEvent.IsSome)

            if facts.Write <> StreamWrite.Delivered then
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
            | StreamEnd.PluginFailed -> Assert.True(facts.Read.IsPluginFailed)
            | StreamEnd.TimedOut ->
                Assert.True(facts.Read = StreamRead.Cancelled || facts.Write = StreamWrite.Cancelled)
            | StreamEnd.Completed
            | StreamEnd.ClientAborted -> ())
    )

[<Fact>]
let ``a failed write is always the client leaving: never the time limit nor the upstream, nothing appended`` () =
    Check.property (
        Prop.forAll facts (fun facts ->
            let verdict =
                SseEnd.classify {
                    facts with
                        Write = StreamWrite.Failed
                }

            Assert.Equal(StreamEnd.ClientAborted, verdict.End)
            Assert.Equal(None, verdict.ErrorEvent))
    )

[<Fact>]
let ``the upstream or the time limit is blamed only while the client is there and no write failed`` () =
    Check.property (
        Prop.forAll facts (fun facts ->
            match (SseEnd.classify facts).End with
            | StreamEnd.UpstreamErrorEvent
            | StreamEnd.UpstreamTruncated
            | StreamEnd.UpstreamFailed
            | StreamEnd.PluginFailed
            | StreamEnd.TimedOut -> Assert.False(SseEnd.clientLeft facts.ClientAborted facts.Write)
            | StreamEnd.Completed
            | StreamEnd.ClientAborted -> ())
    )

[<Fact>]
let ``the client leaving while the error event is written turns any verdict into ClientAborted`` () =
    Check.property (
        Prop.forAll facts (fun facts ->
            let first = SseEnd.classify facts

            if first.ErrorEvent.IsSome then
                // what the host tells Core when writing the appended event fails
                let retold =
                    SseEnd.classify {
                        facts with
                            Write = StreamWrite.Failed
                    }

                Assert.Equal(StreamEnd.ClientAborted, retold.End)
                Assert.Equal(None, retold.ErrorEvent))
    )

[<Fact>]
let ``a JSON copy ends by the client exactly when it left, complete only when everything went through`` () =
    Check.property (
        Prop.forAll bodyFacts (fun facts ->
            let left = SseEnd.clientLeft facts.ClientAborted facts.Write

            match BodyEnd.classify facts with
            | BodyEnd.ClientAborted -> Assert.True(left)
            | BodyEnd.Completed ->
                Assert.False(left)
                Assert.Equal(StreamRead.Eof, facts.Read)
                Assert.Equal(StreamWrite.Delivered, facts.Write)
            | BodyEnd.UpstreamFailed ->
                Assert.False(left)
                Assert.True(facts.Read <> StreamRead.Eof || facts.Write = StreamWrite.Cancelled))
    )

[<Fact>]
let ``a JSON copy and a stream agree on whether the client left`` () =
    Check.property (
        Prop.forAll facts (fun stream ->
            let body = {
                Read = stream.Read
                Write = stream.Write
                ClientAborted = stream.ClientAborted
            }

            Assert.Equal(
                BodyEnd.classify body = BodyEnd.ClientAborted,
                (SseEnd.classify stream).End = StreamEnd.ClientAborted
            ))
    )
