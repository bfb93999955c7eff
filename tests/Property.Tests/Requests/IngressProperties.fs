module CcRelay.Core.Properties.IngressProperties

open System
open System.Text
open FsCheck.FSharp
open Xunit
open CcRelay.Core

/// A Bedrock-shaped body: `anthropic_version` first, then members with assorted spacing, escapes and values
/// (no space before a member's name: a removed member takes the separator after it, spaces included).
let private bedrockBody: FsCheck.Gen<string> =
    let name =
        Gen.elements [
            "messages"
            "max_tokens"
            "system"
            "tools"
            "thinking"
            "x é"
            "metadata"
            "a\\u002Bb"
        ]

    let value =
        Gen.elements [
            "1"
            "-0.50e+2"
            "\"a\\u002Bb ✓\""
            "[1, 2 ,{}]"
            "{\"k\" : null}"
            "true"
            "\"\""
        ]

    let space = Gen.elements [ ""; " "; "\n  " ]

    gen {
        let! members = Gen.listOf (Gen.zip3 name value space)

        let rendered =
            members |> List.map (fun (n, v, s) -> $"\"%s{n}\"%s{s}:%s{s}%s{v}%s{s}")

        return
            "{\"anthropic_version\":\"bedrock-2023-05-31\""
            + String.Join("", rendered |> List.map ((+) ","))
            + "}"
    }

let private model =
    Gen.elements [
        "m"
        "us.anthropic.claude-x-v1:0"
        "arn:aws:bedrock:r:1:application-inference-profile/p é"
    ]

[<Fact>]
let ``Bedrock body to Anthropic's and back by Dialect's Bedrock reshape is the identity, byte for byte`` () =
    Check.property (
        Prop.forAll
            (Check.arb (Gen.zip3 bedrockBody model (Gen.elements [ true; false ])))
            (fun (body, model, stream) ->
                let original = Encoding.UTF8.GetBytes body

                match Ingress.bedrockMessages model stream (ReadOnlySpan original) with
                | Error e -> failwith e
                | Ok request ->
                    // what Dialect's Bedrock reshape does to an Anthropic body (no betas to carry)
                    let back =
                        JsonEdit.edit (ReadOnlySpan request.Body) [
                            "model"
                            "stream"
                            "anthropic_version"
                            "anthropic_beta"
                        ] [
                            "anthropic_version", Encoding.UTF8.GetBytes("\"" + Bedrock.anthropicVersion + "\"")
                        ]

                    match back with
                    | Ok(bytes, _) -> bytes = original && request.Betas.IsEmpty
                    | Error e -> failwith e)
    )

[<Fact>]
let ``the converted body is valid JSON naming the model and stream, and keeps every other member`` () =
    Check.property (
        Prop.forAll (Check.arb (Gen.zip bedrockBody model)) (fun (body, model) ->
            match Ingress.bedrockMessages model true (ReadOnlySpan(Encoding.UTF8.GetBytes body)) with
            | Error e -> failwith e
            | Ok request ->
                use converted = Text.Json.JsonDocument.Parse(request.Body)
                use original = Text.Json.JsonDocument.Parse(body)
                let root = converted.RootElement

                let others (root: Text.Json.JsonElement) =
                    root.EnumerateObject()
                    |> Seq.filter (fun p -> p.Name <> "model" && p.Name <> "stream" && p.Name <> "anthropic_version")
                    |> Seq.map (fun p -> p.Name, p.Value.GetRawText())
                    |> List.ofSeq

                root.GetProperty("model").GetString() = model
                && root.GetProperty("stream").GetBoolean()
                && others root = others original.RootElement)
    )
