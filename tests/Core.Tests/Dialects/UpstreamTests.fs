module CcRelay.Core.Tests.UpstreamTests

open System
open Xunit
open CcRelay.Core

let private key (value: string) : KeyConfig = {
    Key = value
    RpmLimit = 0
    ItpmLimit = 0
    OtpmLimit = 0
    TpmLimit = 0
    Priority = 1
    Weight = 1
    Aws = None
}

let private provider (providerType: ProviderType) (keys: string list) : ProviderConfig =
    let baseUrl =
        ProviderType.defaultBaseUrl providerType
        |> Option.defaultValue (Uri "https://compatible.example.test/anthropic")

    {
        Config.defaultProvider (ProviderType.wireName providerType) providerType baseUrl with
            Keys = keys |> List.map key
    }

let private facts (model: string) : RequestFacts = {
    Model = model
    ModelTokenStart = 9
    ModelTokenLength = model.Length + 2
    Stream = false
    MaxTokens = 0
    EstimatedInputTokens = 0
    ThinkingSignatures = false
    UnsignedThinking = false
    FirstMessageStart = -1
    FirstMessageLength = 0
    Stage = RequestFacts.noStages
}

// ---------------------------
// url
// ---------------------------

[<Theory>]
[<InlineData("https://api.z.ai/api/anthropic",
             "/v1/messages?beta=true",
             "https://api.z.ai/api/anthropic/v1/messages?beta=true")>]
[<InlineData("https://api.z.ai/api/anthropic/",
             "/v1/messages?beta=true",
             "https://api.z.ai/api/anthropic/v1/messages?beta=true")>]
[<InlineData("https://api.minimax.io/anthropic", "/v1/messages", "https://api.minimax.io/anthropic/v1/messages")>]
[<InlineData("https://api.anthropic.com", "/v1/messages?beta=true", "https://api.anthropic.com/v1/messages?beta=true")>]
[<InlineData("https://api.anthropic.com/",
             "/v1/messages/count_tokens",
             "https://api.anthropic.com/v1/messages/count_tokens")>]
[<InlineData("http://localhost:11434", "/v1/messages", "http://localhost:11434/v1/messages")>]
[<InlineData("http://127.0.0.1:8080/a/b/c/",
             "/v1/models?limit=5&after_id=x",
             "http://127.0.0.1:8080/a/b/c/v1/models?limit=5&after_id=x")>]
let ``url keeps the base path prefix and appends the client's path and query``
    (baseUrl: string, pathAndQuery: string, expected: string)
    =
    Assert.Equal(expected, (Upstream.url (Uri baseUrl) pathAndQuery).AbsoluteUri)

[<Fact>]
let ``url keeps percent-escapes of the path and query as sent`` () =
    Assert.Equal(
        "https://x.test/a%20b/v1/models/a%2Fb?q=%20x&r=a+b",
        (Upstream.url (Uri "https://x.test/a%20b") "/v1/models/a%2Fb?q=%20x&r=a+b").AbsoluteUri
    )

// Regression: a query in base_url was silently dropped; like the Go relay (httputil SetURL), it is merged
// in front of the client's query.
[<Theory>]
[<InlineData("https://x.test/p?key=1", "/v1/messages?beta=true", "https://x.test/p/v1/messages?key=1&beta=true")>]
[<InlineData("https://x.test/p?key=1", "/v1/messages", "https://x.test/p/v1/messages?key=1")>]
[<InlineData("https://x.test/p/?a=1&b=2", "/v1/messages?", "https://x.test/p/v1/messages?a=1&b=2")>]
[<InlineData("https://x.test/p?", "/v1/messages?beta=true", "https://x.test/p/v1/messages?beta=true")>]
let ``url merges a query in the base URL with the client's`` (baseUrl: string, pathAndQuery: string, expected: string) =
    Assert.Equal(expected, (Upstream.url (Uri baseUrl) pathAndQuery).AbsoluteUri)

[<Fact>]
let ``url drops a fragment of the base URL`` () =
    Assert.Equal("https://x.test/p/v1/messages", (Upstream.url (Uri "https://x.test/p#f") "/v1/messages").AbsoluteUri)

// ---------------------------
// credentials
// ---------------------------

[<Fact>]
let ``an anthropic provider receives the caller's subscription token`` () =
    Assert.Equal<(string * string) list>(
        [ "authorization", "Bearer sk-ant-oat01-token" ],
        Upstream.credentials (provider ProviderType.Anthropic [ "configured" ]) [ BearerToken "sk-ant-oat01-token" ]
    )

[<Fact>]
let ``an anthropic provider receives the caller's own api key`` () =
    Assert.Equal<(string * string) list>(
        [ "x-api-key", "user-key" ],
        Upstream.credentials (provider ProviderType.Anthropic [ "configured" ]) [ ApiKey "user-key" ]
    )

[<Fact>]
let ``an anthropic provider receives every foreign credential, in order`` () =
    Assert.Equal<(string * string) list>(
        [ "x-api-key", "user-key"; "authorization", "Bearer tok" ],
        Upstream.credentials (provider ProviderType.Anthropic []) [ ApiKey "user-key"; BearerToken "tok" ]
    )

[<Fact>]
let ``an anthropic provider uses its configured key when the caller brings none`` () =
    Assert.Equal<(string * string) list>(
        [ "x-api-key", "configured" ],
        Upstream.credentials (provider ProviderType.Anthropic [ "configured"; "second" ]) []
    )

[<Theory>]
[<InlineData("zai")>]
[<InlineData("ollama")>]
[<InlineData("anthropic_compatible")>]
let ``other providers use their configured key as x-api-key, never the caller's`` (typeName: string) =
    let providerType = ProviderType.tryParse typeName |> Option.get

    Assert.Equal<(string * string) list>(
        [ "x-api-key", "k1" ],
        Upstream.credentials (provider providerType [ "k1"; "k2" ]) [ ApiKey "user-key"; BearerToken "tok" ]
    )

[<Fact>]
let ``minimax uses its configured key as a bearer token`` () =
    Assert.Equal<(string * string) list>(
        [ "authorization", "Bearer mm-key" ],
        Upstream.credentials (provider ProviderType.Minimax [ "mm-key" ]) [ BearerToken "tok" ]
    )

[<Fact>]
let ``a configured auth style overrides the type's default`` () =
    let bearerZai = {
        provider ProviderType.Zai [ "z" ] with
            AuthStyle = AuthStyle.Bearer
    }

    Assert.Equal<(string * string) list>([ "authorization", "Bearer z" ], Upstream.credentials bearerZai [])

[<Fact>]
let ``nothing is sent when there is neither a key nor a credential to pass through`` () =
    Assert.Empty(Upstream.credentials (provider ProviderType.Anthropic []) [])
    Assert.Empty(Upstream.credentials (provider ProviderType.Zai []) [])
    Assert.Empty(Upstream.credentials (provider ProviderType.Zai []) [ ApiKey "user-key" ])
    Assert.Empty(Upstream.credentials (provider ProviderType.Minimax [ "" ]) [])

// ---------------------------
// plan and candidates
// ---------------------------

[<Fact>]
let ``plan renames a mapped model and targets the provider's URL`` () =
    let zai = {
        provider ProviderType.Zai [ "zk" ] with
            ModelMapping = Map [ "claude-sonnet-4-6", "GLM-5" ]
    }

    let plan =
        Dialect.plan zai (ValueSome zai.Keys.Head) (facts "claude-sonnet-4-6") "/v1/messages?beta=true" [] [
            BearerToken "tok"
        ]

    Assert.Equal("zai", plan.Provider.Name)
    Assert.Equal("https://api.z.ai/api/anthropic/v1/messages?beta=true", plan.Url.AbsoluteUri)
    Assert.Equal<(string * string) list>([ "x-api-key", "zk" ], plan.Credentials)
    Assert.Equal(BodyEdit.PatchModel "GLM-5", plan.Body)
    Assert.Equal("GLM-5", plan.UpstreamModel)

[<Fact>]
let ``plan leaves an unmapped model alone`` () =
    let plan =
        Dialect.plan (provider ProviderType.Anthropic []) ValueNone (facts "claude-opus-4-6") "/v1/messages" [] [
            ApiKey "u"
        ]

    Assert.Equal(BodyEdit.Unchanged, plan.Body)
    Assert.Equal("claude-opus-4-6", plan.UpstreamModel)
    Assert.Equal<(string * string) list>([ "x-api-key", "u" ], plan.Credentials)

[<Fact>]
let ``plan does not rewrite a model mapped to itself`` () =
    let same = {
        provider ProviderType.Zai [] with
            ModelMapping = Map [ "GLM-5", "GLM-5" ]
    }

    let plan = Dialect.plan same ValueNone (facts "GLM-5") "/v1/messages" [] []
    Assert.Equal(BodyEdit.Unchanged, plan.Body)
    Assert.Equal("GLM-5", plan.UpstreamModel)

[<Fact>]
let ``model mapping matches the exact name only`` () =
    let zai = {
        provider ProviderType.Zai [] with
            ModelMapping = Map [ "claude-sonnet-4-6", "GLM-5" ]
    }

    Assert.Equal(BodyEdit.Unchanged, (Dialect.plan zai ValueNone (facts "Claude-Sonnet-4-6") "/v1/messages" [] []).Body)

[<Fact>]
let ``candidates are the enabled providers in config order`` () =
    let providers = [
        provider ProviderType.Zai []
        {
            provider ProviderType.Minimax [] with
                Enabled = false
        }
        provider ProviderType.Anthropic []
    ]

    Assert.Equal<string list>(
        [ "zai"; "anthropic" ],
        Upstream.candidates {
            Config.defaults with
                Providers = providers
        }
        |> List.map _.Name
    )
