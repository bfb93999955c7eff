module CcRelay.Core.Properties.HeadersProperties

open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators

let private nameAndRecased =
    gen {
        let! name = headerName
        let! recased = recase name
        return name, recased
    }
    |> Check.arb

[<Fact>]
let ``the verdicts ignore the case of the header name`` () =
    Check.property (
        Prop.forAll nameAndRecased (fun (name, recased) ->
            Assert.Equal(Headers.isHopByHop name, Headers.isHopByHop recased)
            Assert.Equal(Headers.forwardRequest name, Headers.forwardRequest recased)
            Assert.Equal(Headers.forwardResponse false name, Headers.forwardResponse false recased)
            Assert.Equal(Headers.forwardResponse true name, Headers.forwardResponse true recased))
    )

[<Fact>]
let ``no hop-by-hop header or pseudo-header ever passes`` () =
    let blocked =
        Gen.oneof [ Gen.elements hopByHopNames; pseudoName ]
        |> Gen.bind recase
        |> Check.arb

    Check.property (
        Prop.forAll blocked (fun name ->
            Assert.True(Headers.isHopByHop name)
            Assert.False(Headers.forwardRequest name)
            Assert.False(Headers.forwardResponse false name)
            Assert.False(Headers.forwardResponse true name))
    )

[<Fact>]
let ``credentials never pass forwardRequest`` () =
    Check.property (
        Prop.forAll (Gen.elements credentialNames |> Gen.bind recase |> Check.arb) (fun name ->
            Assert.False(Headers.forwardRequest name))
    )

[<Fact>]
let ``a header passes forwardRequest exactly when it is neither hop-by-hop nor owned by the relay`` () =
    Check.property (
        Prop.forAll nameAndRecased (fun (name, recased) ->
            let expected =
                not (name.StartsWith ':')
                && not (List.contains name hopByHopNames)
                && not (List.contains name relayOwnedRequestNames)

            Assert.Equal(expected, Headers.forwardRequest recased))
    )

[<Fact>]
let ``streaming only ever removes content-length from what a plain response forwards`` () =
    Check.property (
        Prop.forAll nameAndRecased (fun (name, recased) ->
            let plain = Headers.forwardResponse false recased
            let streamed = Headers.forwardResponse true recased
            Assert.Equal(plain && name <> "content-length", streamed))
    )
