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

let private factsOf (body: byte array) : RequestFacts =
    match RequestFacts.inspect (ReadOnlySpan body) with
    | Ok facts -> facts
    | Error e -> failwith (RequestFacts.describe e)

let private cloud (providerType: ProviderType) (settings: CloudSettings) : ProviderConfig = {
    Config.defaultProvider "c" providerType (Uri "https://cloud.example.test") with
        Cloud = settings
}

let private reshaped (provider: ProviderConfig) (body: byte array) (betas: string list) : UpstreamPlan * byte array =
    let facts = factsOf body
    let plan = Dialect.plan provider ValueNone facts "/v1/messages" betas []

    match Dialect.body plan.Body (ReadOnlySpan body) facts with
    | Ok(ValueSome edited) -> plan, edited
    | Ok ValueNone -> plan, body
    | Error e -> failwith e

[<Fact>]
let ``a Bedrock plan's body keeps every member but model and stream byte for byte`` () =
    let bedrock =
        cloud
            ProviderType.Bedrock
            (CloudSettings.Bedrock {
                Region = "us-east-1"
                Credentials = AwsCredentialSource.Chain
                Api = BedrockApi.Invoke
                Betas = Bedrock.defaultBetas
            })

    Check.property (
        Prop.forAll renderedRequest (fun (body, betas) ->
            let plan, sent = reshaped bedrock body betas
            Assert.True(isJson sent)
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

            Assert.Equal<(string * byte array) list>(expected, members sent)
            Assert.Equal<string list>(betas |> List.except accepted, plan.Dropped))
    )

[<Fact>]
let ``a Vertex plan's body keeps every member but model byte for byte`` () =
    let vertex =
        cloud
            ProviderType.Vertex
            (CloudSettings.Vertex {
                ProjectId = "p"
                Region = "us-east5"
                CredentialsFile = None
            })

    Check.property (
        Prop.forAll renderedRequest (fun (body, _) ->
            let _, sent = reshaped vertex body []

            let expected =
                ("anthropic_version", Encoding.UTF8.GetBytes "\"anthropic_version\":\"vertex-2023-10-16\"")
                :: (members body |> List.filter (fun (name, _) -> name <> "model"))

            Assert.Equal<(string * byte array) list>(expected, members sent))
    )
