module CcRelay.Core.Properties.UpstreamProperties

open System
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators

let private segment: Gen<string> =
    Gen.frequency [
        4,
        Gen.elements [
            "v1"
            "messages"
            "api"
            "anthropic"
            "count_tokens"
            "models"
            "claude-opus-4-6"
        ]
        1, Gen.elements [ "a%20b"; "a%2Fb"; "%E4%B8%AD"; "x.y"; "~u"; "a-b_c" ]
    ]

let private path: Gen<string> =
    Gen.listOf segment
    |> Gen.resize 4
    |> Gen.map (fun parts -> String.Concat(parts |> List.map ((+) "/")))

let private query: Gen<string> =
    Gen.listOf (Gen.elements [ "beta=true"; "limit=5"; "after_id=m%201"; "q=a+b"; "flag"; "x=%26" ])
    |> Gen.resize 3
    |> Gen.map (fun parts -> String.Join("&", parts))

let private upstreamTarget =
    gen {
        let! scheme = Gen.elements [ "https"; "http" ]

        let! host =
            Gen.elements [
                "api.anthropic.com"
                "api.z.ai"
                "localhost"
                "127.0.0.1"
                "relay.example.test"
            ]

        let! port = Gen.elements [ ""; ":8080"; ":11434" ]
        let! prefix = path
        let! slash = Gen.elements [ ""; "/" ]
        let! baseQuery = Gen.frequency [ 4, Gen.constant ""; 1, query ]
        let! clientPath = path |> Gen.map (fun p -> if p = "" then "/" else p)
        let! clientQuery = Gen.frequency [ 1, Gen.constant ""; 2, query ]
        return scheme + "://" + host + port, prefix + slash, baseQuery, clientPath, clientQuery
    }
    |> Check.arb

[<Fact>]
let ``url is the base root and prefix, then the client's path, then the base query and the client's`` () =
    Check.property (
        Prop.forAll upstreamTarget (fun (origin, prefix, baseQuery, clientPath, clientQuery) ->
            let baseUrl =
                Uri(origin + prefix + (if baseQuery = "" then "" else "?" + baseQuery))

            let pathAndQuery = clientPath + (if clientQuery = "" then "" else "?" + clientQuery)
            let url = Upstream.url baseUrl pathAndQuery

            let expectedQuery =
                match baseQuery, clientQuery with
                | "", "" -> ""
                | b, "" -> "?" + b
                | "", c -> "?" + c
                | b, c -> "?" + b + "&" + c

            Assert.Equal(origin + prefix.TrimEnd('/') + clientPath + expectedQuery, url.AbsoluteUri))
    )

let private credential: Gen<Credential> =
    Gen.oneof [ secret |> Gen.map ApiKey; secret |> Gen.map BearerToken ]

let private providerAndForward =
    gen {
        let! providerType = Gen.elements ProviderType.all
        let! style = Gen.elements [ AuthStyle.XApiKey; AuthStyle.Bearer ]

        let! keys =
            Gen.listOf (Gen.frequency [ 1, Gen.constant ""; 4, secret ]) |> Gen.resize 3

        let! forward = Gen.listOf credential |> Gen.resize 2

        let provider = {
            Config.defaultProvider "p" providerType (Uri "https://example.test") with
                AuthStyle = style
                Keys =
                    keys
                    |> List.map (fun k -> {
                        Key = k
                        RpmLimit = 0
                        ItpmLimit = 0
                        OtpmLimit = 0
                        TpmLimit = 0
                        Priority = 1
                        Weight = 1
                        Aws = None
                    })
        }

        return provider, forward
    }
    |> Check.arb

[<Fact>]
let ``credentials pass the caller's through to Anthropic only, else use the first key in the provider's style`` () =
    Check.property (
        Prop.forAll providerAndForward (fun (provider, forward) ->
            let headers = Upstream.credentials provider forward

            let expected =
                if provider.Type = ProviderType.Anthropic && not forward.IsEmpty then
                    forward
                    |> List.map (function
                        | ApiKey k -> "x-api-key", k
                        | BearerToken t -> "authorization", "Bearer " + t)
                else
                    match provider.Keys with
                    | first :: _ when first.Key <> "" ->
                        match provider.AuthStyle with
                        | AuthStyle.XApiKey -> [ "x-api-key", first.Key ]
                        | AuthStyle.Bearer -> [ "authorization", "Bearer " + first.Key ]
                    | _ -> []

            Assert.Equal<(string * string) list>(expected, headers))
    )

[<Fact>]
let ``a non-Anthropic provider never receives a caller's credential`` () =
    Check.property (
        Prop.forAll providerAndForward (fun (provider, forward) ->
            if provider.Type <> ProviderType.Anthropic then
                let configured = provider.Keys |> List.map _.Key

                for _, value in Upstream.credentials provider forward do
                    let raw =
                        if value.StartsWith "Bearer " then
                            value.Substring 7
                        else
                            value

                    Assert.Contains(raw, configured))
    )
