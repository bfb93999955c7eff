module CcRelay.Core.Tests.AuthTests

open Xunit
open CcRelay.Core

let private settings (apiKey: string option) (allowBearer: bool) (bearerSecret: string option) : AuthSettings = {
    ApiKey = apiKey
    AllowBearer = allowBearer
    BearerSecret = bearerSecret
}

let private noAuth = settings None false None
let private apiKeyOnly = settings (Some "relay-key") false None
let private anyBearer = settings None true None
let private bearerSecret = settings None true (Some "bearer-secret")
let private keyAndAnyBearer = settings (Some "relay-key") true None

let private keyAndBearerSecret =
    settings (Some "relay-key") true (Some "bearer-secret")

let private secretWithoutAllowBearer = settings None false (Some "bearer-secret")
let private emptySecrets = settings (Some "") false (Some "")

let private missingBoth =
    "missing credential: send x-api-key or Authorization: Bearer"

/// The decision table: settings, x-api-key, Authorization, verdict.
let private table: (string * (AuthSettings * string | null * string | null * AuthVerdict)) list = [
    // no auth configured: everyone passes, every credential is the caller's own
    "open, nothing sent", (noAuth, null, null, Allowed [])
    "open, a key is forwarded", (noAuth, "user-key", null, Allowed [ ApiKey "user-key" ])
    "open, a bearer is forwarded", (noAuth, null, "Bearer tok", Allowed [ BearerToken "tok" ])
    "open, both are forwarded", (noAuth, "user-key", "Bearer tok", Allowed [ ApiKey "user-key"; BearerToken "tok" ])
    "open, empty key and non-bearer scheme are nothing", (noAuth, "", "Basic dXNlcg==", Allowed [])
    "open, empty bearer is nothing", (noAuth, null, "Bearer ", Allowed [])
    "open when secrets are empty strings", (emptySecrets, "user-key", null, Allowed [ ApiKey "user-key" ])
    // api_key only
    "api_key: right key", (apiKeyOnly, "relay-key", null, Allowed [])
    "api_key: right key, subscription token forwarded",
    (apiKeyOnly, "relay-key", "Bearer sub-token", Allowed [ BearerToken "sub-token" ])
    "api_key: wrong key", (apiKeyOnly, "wrong", null, Denied "invalid x-api-key")
    "api_key: key differs in case", (apiKeyOnly, "Relay-Key", null, Denied "invalid x-api-key")
    "api_key: key with trailing space", (apiKeyOnly, "relay-key ", null, Denied "invalid x-api-key")
    "api_key: nothing sent", (apiKeyOnly, null, null, Denied "missing credential: send x-api-key")
    "api_key: empty key and basic auth", (apiKeyOnly, "", "Basic dXNlcg==", Denied "missing credential: send x-api-key")
    "api_key: the key as a bearer is the wrong type",
    (apiKeyOnly, null, "Bearer relay-key", Denied "wrong credential type: send x-api-key")
    // allow_bearer without a secret
    "any bearer: a token passes and is forwarded",
    (anyBearer, null, "Bearer anything", Allowed [ BearerToken "anything" ])
    "any bearer: a key alone is the wrong type",
    (anyBearer, "user-key", null, Denied "wrong credential type: send Authorization: Bearer")
    "any bearer: key and token are both forwarded",
    (anyBearer, "user-key", "Bearer t", Allowed [ ApiKey "user-key"; BearerToken "t" ])
    "any bearer: nothing sent", (anyBearer, null, null, Denied "missing credential: send Authorization: Bearer")
    "any bearer: an empty token is nothing",
    (anyBearer, null, "Bearer  ", Denied "missing credential: send Authorization: Bearer")
    "any bearer: empty secret means any token",
    (settings None true (Some ""), null, "Bearer t", Allowed [ BearerToken "t" ])
    // allow_bearer with bearer_secret
    "bearer secret: right token", (bearerSecret, null, "Bearer bearer-secret", Allowed [])
    "bearer secret: scheme in any case", (bearerSecret, null, "bEARER bearer-secret", Allowed [])
    "bearer secret: wrong token", (bearerSecret, null, "Bearer wrong", Denied "invalid bearer token")
    "bearer secret: the secret as x-api-key is the wrong type",
    (bearerSecret, "bearer-secret", null, Denied "wrong credential type: send Authorization: Bearer")
    "bearer secret: right token, user key forwarded",
    (bearerSecret, "user-key", "Bearer bearer-secret", Allowed [ ApiKey "user-key" ])
    // both
    "both: right key", (keyAndBearerSecret, "relay-key", null, Allowed [])
    "both: right token", (keyAndBearerSecret, null, "Bearer bearer-secret", Allowed [])
    "both: right key and token", (keyAndBearerSecret, "relay-key", "Bearer bearer-secret", Allowed [])
    "both: right key, subscription token forwarded",
    (keyAndBearerSecret, "relay-key", "Bearer sub", Allowed [ BearerToken "sub" ])
    "both: the bearer secret in x-api-key is consumed",
    (keyAndBearerSecret, "bearer-secret", "Bearer bearer-secret", Allowed [])
    "both: wrong key and token", (keyAndBearerSecret, "wrong", "Bearer wrong", Denied "invalid x-api-key")
    "both: wrong token", (keyAndBearerSecret, null, "Bearer wrong", Denied "invalid bearer token")
    "both: the relay key as a bearer is not the bearer secret",
    (keyAndBearerSecret, null, "Bearer relay-key", Denied "invalid bearer token")
    "both: nothing sent", (keyAndBearerSecret, null, null, Denied missingBoth)
    "both, any bearer: the relay key as a bearer passes and is consumed",
    (keyAndAnyBearer, null, "Bearer relay-key", Allowed [])
    "both, any bearer: the relay key is consumed, the token forwarded",
    (keyAndAnyBearer, "relay-key", "Bearer sub", Allowed [ BearerToken "sub" ])
    "both, any bearer: nothing sent", (keyAndAnyBearer, null, null, Denied missingBoth)
    // a bearer_secret without allow_bearer does not close the relay, but is still never forwarded
    "secret without allow_bearer: open, secret consumed",
    (secretWithoutAllowBearer, null, "Bearer bearer-secret", Allowed [])
    "secret without allow_bearer: other token forwarded",
    (secretWithoutAllowBearer, null, "Bearer other", Allowed [ BearerToken "other" ])
]

let rows: objnull array seq = table |> Seq.map (fun (label, _) -> [| box label |])

[<Theory>]
[<MemberData(nameof rows)>]
let ``authenticate follows the decision table`` (row: string) =
    let settings, apiKey, authorization, expected =
        table |> List.find (fun (label, _) -> label = row) |> snd

    Assert.Equal(expected, Auth.authenticate (Auth.compile settings) apiKey authorization)

[<Fact>]
let ``the decision table has no duplicate rows`` () =
    Assert.Equal(table.Length, table |> List.map fst |> List.distinct |> List.length)

[<Fact>]
let ``isOpen only without api_key and allow_bearer`` () =
    Assert.True(Auth.isOpen (Auth.compile noAuth))
    Assert.True(Auth.isOpen (Auth.compile emptySecrets))
    Assert.True(Auth.isOpen (Auth.compile secretWithoutAllowBearer))
    Assert.False(Auth.isOpen (Auth.compile apiKeyOnly))
    Assert.False(Auth.isOpen (Auth.compile anyBearer))
    Assert.False(Auth.isOpen (Auth.compile keyAndBearerSecret))

[<Fact>]
let ``the default server config is open`` () =
    Assert.True(Auth.isOpen (Auth.compile Config.defaultServer.Auth))
