module CcRelay.Core.Properties.DomainProperties

open System
open System.Text
open System.Text.Json
open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators

let private errorTypes = [
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

let private envelope = Gen.zip (Gen.elements errorTypes) anyText |> Check.arb

[<Fact>]
let ``toJson is the envelope with exactly the given type and message`` () =
    Check.property (
        Prop.forAll envelope (fun (errorType, message) ->
            use doc = JsonDocument.Parse(ErrorEnvelope.toJson errorType message)
            let root = doc.RootElement
            let error = root.GetProperty "error"

            Assert.Equal<string list>([ "type"; "error" ], root.EnumerateObject() |> Seq.map _.Name |> List.ofSeq)
            Assert.Equal("error", root.GetProperty("type").GetString())
            Assert.Equal<string list>([ "type"; "message" ], error.EnumerateObject() |> Seq.map _.Name |> List.ofSeq)
            Assert.Equal(ErrorEnvelope.wireName errorType, error.GetProperty("type").GetString())
            Assert.Equal(message, error.GetProperty("message").GetString()))
    )

[<Fact>]
let ``toSseEvent is one error frame whose data is the JSON envelope`` () =
    Check.property (
        Prop.forAll envelope (fun (errorType, message) ->
            let bytes = ErrorEnvelope.toSseEvent errorType message
            Assert.Equal(bytes.Length, Sse.findEventEnd (ReadOnlySpan bytes))
            Assert.Equal(FrameKind.Error, Sse.frameKind (ReadOnlySpan bytes))

            Assert.Equal<SseEvent list>(
                [
                    {
                        Event = Some "error"
                        Data = Encoding.UTF8.GetString(ErrorEnvelope.toJson errorType message)
                        Id = None
                        Retry = None
                    }
                ],
                Sse.parse (ReadOnlySpan bytes)
            ))
    )

[<Fact>]
let ``KeyId is the top of FNV-1a 64 over the UTF-8 bytes, as 8 lowercase hex digits`` () =
    Check.property (
        Prop.forAll (Check.arb anyText) (fun secret ->
            let hash =
                Encoding.UTF8.GetBytes secret
                |> Array.fold (fun h b -> (h ^^^ uint64 b) * 0x100000001b3UL) 0xcbf29ce484222325UL

            let id = KeyId.ofSecret secret
            Assert.Equal(hash.ToString("x16").Substring(0, 8), id)
            Assert.True(KeyId.looksLikeId id)
            Assert.Equal(id.ToLowerInvariant(), id))
    )
