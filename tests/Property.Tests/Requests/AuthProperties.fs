module CcRelay.Core.Properties.AuthProperties

open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators

let private configured (value: string option) : string option = value |> Option.filter ((<>) "")

/// The token of an `Authorization: Bearer` value (scheme case-insensitive, token trimmed and non-empty).
let private bearerToken (authorization: string option) : string option =
    authorization
    |> Option.bind (fun value ->
        let value = value.Trim()

        if value.Length >= 7 && value.Substring(0, 7).ToLowerInvariant() = "bearer " then
            Some(value.Substring(7).Trim()) |> Option.filter ((<>) "")
        else
            None)

/// The decision table of seed-cc-relay §4.2, plus the relay's rule that its own secrets are consumed:
/// written from the table, not from `Auth`.
let private oracle
    (settings: AuthSettings)
    (apiKey: string option)
    (authorization: string option)
    : bool * Credential list =
    let relayKey = configured settings.ApiKey
    let bearerSecret = configured settings.BearerSecret
    let own = [ relayKey; bearerSecret ] |> List.choose id
    let key = apiKey |> Option.filter ((<>) "")
    let token = bearerToken authorization

    let passes =
        (relayKey.IsNone && not settings.AllowBearer)
        || (relayKey.IsSome && key = relayKey)
        || (settings.AllowBearer
            && token.IsSome
            && (bearerSecret.IsNone || token = bearerSecret))

    let forward = [
        match key with
        | Some k when not (List.contains k own) -> ApiKey k
        | _ -> ()
        match token with
        | Some t when not (List.contains t own) -> BearerToken t
        | _ -> ()
    ]

    passes, forward

let private authenticate (settings: AuthSettings) (apiKey: string option) (authorization: string option) =
    Auth.authenticate (Auth.compile settings) (Option.toObj apiKey) (Option.toObj authorization)

let private request =
    gen {
        let! settings = authSettings
        let! apiKey, authorization = presentedHeaders settings
        return settings, apiKey, authorization
    }

let private forwarded (verdict: AuthVerdict) : Credential list =
    match verdict with
    | Allowed forward -> forward
    | Denied _ -> []

[<Fact>]
let ``authenticate agrees with the decision table`` () =
    Check.quick
        1000
        (Prop.forAll (Check.arb request) (fun (settings, apiKey, authorization) ->
            let passes, forward = oracle settings apiKey authorization

            match authenticate settings apiKey authorization with
            | Allowed actual ->
                Assert.True(passes, "allowed, but the table denies")
                Assert.Equal<Credential list>(forward, actual)
            | Denied reason -> Assert.False(passes, $"denied (%s{reason}), but the table allows")))

[<Fact>]
let ``with no auth configured every request is Allowed and every presented credential forwarded`` () =
    let openRequest =
        gen {
            let! apiKey, authorization = presentedHeaders Config.defaultServer.Auth
            return apiKey, authorization
        }

    Check.property (
        Prop.forAll (Check.arb openRequest) (fun (apiKey, authorization) ->
            let expected = [
                match apiKey with
                | Some k when k <> "" -> ApiKey k
                | _ -> ()
                match bearerToken authorization with
                | Some t -> BearerToken t
                | None -> ()
            ]

            Assert.Equal(Allowed expected, authenticate Config.defaultServer.Auth apiKey authorization))
    )

[<Fact>]
let ``the relay's own secret is never forwarded, whichever header carries it`` () =
    Check.quick
        1000
        (Prop.forAll (Check.arb request) (fun (settings, apiKey, authorization) ->
            let own = [ settings.ApiKey; settings.BearerSecret ] |> List.choose configured

            for credential in forwarded (authenticate settings apiKey authorization) do
                match credential with
                | ApiKey value
                | BearerToken value -> Assert.DoesNotContain(value, own)))

[<Fact>]
let ``a request carrying only wrong credentials is Denied`` () =
    let wrong =
        gen {
            // a relay that checks something
            let! settings =
                authSettings
                |> Gen.map (fun s -> {
                    s with
                        ApiKey = Some "relay-key"
                        BearerSecret = Some "bearer-secret"
                })

            let! apiKey =
                Gen.optionOf (Gen.oneof [ secret; nearMiss "relay-key"; nearMiss "bearer-secret" ])

            let! token =
                Gen.optionOf (Gen.oneof [ secret; nearMiss "relay-key"; nearMiss "bearer-secret" ])

            let! authorization =
                token
                |> Option.map (bearerHeader >> Gen.map Some)
                |> Option.defaultValue (Gen.constant None)

            return settings, apiKey, authorization
        }

    Check.property (
        Prop.forAll (Check.arb wrong) (fun (settings, apiKey, authorization) ->
            // a near miss that only differs by surrounding spaces is the right token once trimmed
            let trimmedRight =
                bearerToken authorization = Some "bearer-secret" && settings.AllowBearer

            if not trimmedRight then
                match authenticate settings apiKey authorization with
                | Denied _ -> ()
                | Allowed forward -> failwith $"allowed with %A{forward}")
    )

[<Fact>]
let ``allow_bearer without a secret admits any non-empty bearer and forwards it`` () =
    let bearerRequest =
        gen {
            let! apiKey = Gen.optionOf secret
            let! token = secret
            let! header = bearerHeader token
            let! presentedKey = Gen.optionOf secret
            return apiKey, token, header, presentedKey
        }

    Check.property (
        Prop.forAll (Check.arb bearerRequest) (fun (apiKey, token, header, presentedKey) ->
            let settings = {
                ApiKey = apiKey
                AllowBearer = true
                BearerSecret = None
            }

            match authenticate settings presentedKey (Some header) with
            | Allowed forward ->
                // forwarded unless it is the relay's api_key used as a bearer
                Assert.Equal(Some token <> apiKey, List.contains (BearerToken token) forward)
            | Denied reason -> failwith $"denied: %s{reason}")
    )

[<Fact>]
let ``api_key admits exactly its own value`` () =
    let keyRequest =
        gen {
            let! key = secret
            let! presented = Gen.oneof [ Gen.constant key; nearMiss key; secret ]
            return key, presented
        }

    Check.property (
        Prop.forAll (Check.arb keyRequest) (fun (key, presented) ->
            let settings = {
                ApiKey = Some key
                AllowBearer = false
                BearerSecret = None
            }

            match authenticate settings (Some presented) None with
            | Allowed forward ->
                Assert.Equal(key, presented)
                Assert.Empty forward
            | Denied reason ->
                Assert.NotEqual<string>(key, presented)
                Assert.Equal("invalid x-api-key", reason))
    )
