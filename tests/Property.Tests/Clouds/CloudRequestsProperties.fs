module CcRelay.Core.Properties.CloudRequestsProperties

open System
open System.Text
open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators
open CcRelay.Core.Properties.JsonEditProperties

let private renderedRequest =
    gen {
        let! json, _ = requestBody
        let! text = renderJson json
        let! betas = Gen.subListOf ("unknown-beta" :: Bedrock.defaultBetas)
        return Encoding.UTF8.GetBytes text, betas
    }
    |> Check.arb

[<Fact>]
let ``Bedrock reshape keeps every member but model and stream byte for byte`` () =
    Check.property (
        Prop.forAll renderedRequest (fun (body, betas) ->
            match Bedrock.reshape (ReadOnlySpan body) [ String.Join(",", betas) ] Bedrock.defaultBetas with
            | Error e -> failwith e
            | Ok reshaped ->
                Assert.True(isJson reshaped.Body)
                let accepted = betas |> List.filter (fun b -> List.contains b Bedrock.defaultBetas)

                let expected =
                    [
                        "anthropic_version", Encoding.UTF8.GetBytes "\"anthropic_version\":\"bedrock-2023-05-31\""
                        if not accepted.IsEmpty then
                            "anthropic_beta",
                            Encoding.UTF8.GetBytes(
                                "\"anthropic_beta\":["
                                + String.Join(",", accepted |> List.map (fun b -> "\"" + b + "\""))
                                + "]"
                            )
                    ]
                    @ (members body
                       |> List.filter (fun (name, _) -> name <> "model" && name <> "stream"))

                Assert.Equal<(string * byte array) list>(expected, members reshaped.Body)
                Assert.Equal<string list>(betas |> List.except accepted, reshaped.DroppedBetas))
    )

[<Fact>]
let ``Vertex reshape keeps every member but model byte for byte`` () =
    Check.property (
        Prop.forAll renderedRequest (fun (body, _) ->
            match Vertex.reshape (ReadOnlySpan body) false with
            | Error e -> failwith e
            | Ok reshaped ->
                let expected =
                    ("anthropic_version", Encoding.UTF8.GetBytes "\"anthropic_version\":\"vertex-2023-10-16\"")
                    :: (members body |> List.filter (fun (name, _) -> name <> "model"))

                Assert.Equal<(string * byte array) list>(expected, members reshaped))
    )

let private modelIds =
    Gen.frequency [
        3, stringOf 12 textPiece
        1,
        Gen.elements [
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
            "a%2Fb"
            "x?y#z"
        ]
    ]
    |> Check.arb

[<Fact>]
let ``encodeModelId round-trips and leaves no slash, query or fragment`` () =
    Check.property (
        Prop.forAll modelIds (fun modelId ->
            let encoded = Bedrock.encodeModelId modelId
            Assert.Equal(modelId, Uri.UnescapeDataString encoded)
            Assert.DoesNotContain("/", encoded)
            Assert.DoesNotContain("?", encoded)
            Assert.DoesNotContain("#", encoded)
            Assert.True(encoded |> Seq.forall (fun c -> c > ' ' && c < '\u007f')))
    )

[<Fact>]
let ``canonicalUri of an encoded path decodes twice to the raw path`` () =
    Check.property (
        Prop.forAll (Gen.listOf (stringOf 6 textPiece) |> Gen.resize 5 |> Check.arb) (fun segments ->
            let raw = "/" + String.Join("/", segments)
            let wire = "/" + String.Join("/", segments |> List.map Bedrock.encodeModelId)
            let canonical = SigV4.canonicalUri wire
            Assert.Equal(raw, Uri.UnescapeDataString(Uri.UnescapeDataString canonical))

            Assert.True(
                canonical
                |> Seq.forall (fun c -> Char.IsAsciiLetterOrDigit c || "-_.~/%".Contains c)
            ))
    )
