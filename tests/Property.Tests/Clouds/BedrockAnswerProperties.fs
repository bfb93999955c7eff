module CcRelay.Core.Properties.BedrockAnswerProperties

open System
open System.Text
open System.Text.Json
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators

let private errorTypes: ErrorType list = [
    ErrorType.InvalidRequest
    ErrorType.Authentication
    ErrorType.Permission
    ErrorType.NotFound
    ErrorType.MethodNotAllowed
    ErrorType.RequestTooLarge
    ErrorType.RateLimit
    ErrorType.Api
    ErrorType.Timeout
    ErrorType.Overloaded
]

let private eventName: Gen<string> =
    Gen.oneof [ Gen.elements anthropicEventNames; lineText ]
    |> Gen.filter (fun name -> name <> "")

[<Fact>]
let ``chunkOfEvent then ofMessage gives the event's SSE, its JSON byte for byte`` () =
    Check.property (
        Prop.forAll (Check.arb (Gen.zip eventName anyText)) (fun (name, text) ->
            let json = JsonSerializer.SerializeToUtf8Bytes {| ``type`` = name; text = text |}
            let frame = BedrockAnswer.ofMessage (BedrockAnswer.chunkOfEvent (ReadOnlySpan json))

            let expected =
                Array.concat [ "event: "B; Encoding.UTF8.GetBytes name; "\ndata: "B; json; "\n\n"B ]

            Assert.Equal(BedrockFrame.Event(expected, name), frame))
    )

[<Fact>]
let ``exceptionOf then ofMessage keeps any message text and the class of error`` () =
    Check.property (
        Prop.forAll (Check.arb (Gen.zip (Gen.elements errorTypes) anyText)) (fun (errorType, text) ->
            let encoded = EventStream.encode (BedrockAnswer.exceptionOf errorType text)

            match EventStream.tryRead (ReadOnlySpan encoded) with
            | EventStreamRead.Message(message, _) ->
                match BedrockAnswer.ofMessage message with
                | BedrockFrame.Error(status, readBack, message, sse) ->
                    Assert.Equal(text, message)
                    // the Bedrock exceptions have no request_too_large: it travels as a validation exception
                    let sent =
                        if errorType = ErrorType.RequestTooLarge then
                            ErrorType.InvalidRequest
                        else
                            errorType

                    Assert.Equal(ErrorEnvelope.wireName sent, ErrorEnvelope.wireName readBack)
                    Assert.Equal(fst (BedrockAnswer.errorOf (BedrockAnswer.exceptionName errorType)), status)
                    Assert.Equal<byte array>(ErrorEnvelope.toSseEvent readBack text, sse)
                | other -> failwith $"expected Error, got %A{other}"
            | other -> failwith $"expected a message, got %A{other}")
    )

[<Fact>]
let ``errorBody keeps any upstream message verbatim`` () =
    let cases =
        Gen.zip3 (Gen.choose (400, 599)) (Gen.elements [ "message"; "Message" ]) anyText

    Check.property (
        Prop.forAll (Check.arb cases) (fun (httpStatus, field, text) ->
            let body = JsonSerializer.SerializeToUtf8Bytes(dict [ field, text ])
            let status, envelope = BedrockAnswer.errorBody httpStatus None (ReadOnlySpan body)
            use json = JsonDocument.Parse envelope
            Assert.Equal(text, json.RootElement.GetProperty("error").GetProperty("message").GetString())
            Assert.InRange(status, 400, 599))
    )
