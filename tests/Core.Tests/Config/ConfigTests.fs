module CcRelay.Core.Tests.ConfigTests

open System
open CcRelay.Core
open Xunit

// ---------------------------
// A tiny node-tree builder: each node says its line; keys sit at column 1, values at column 10.
// ---------------------------

let private at (line: int) : Position = { Line = line; Column = 10 }
let private plain (line: int) (text: string) : ConfigNode = Scalar(ScalarValue.Plain text, at line)

let private quoted (line: int) (text: string) : ConfigNode =
    Scalar(ScalarValue.String text, at line)

let private seq (line: int) (items: ConfigNode list) : ConfigNode = Sequence(items, at line)

let private map (line: int) (entries: (string * ConfigNode) list) : ConfigNode =
    let entry (key: string, value: ConfigNode) = {
        Key = key
        KeyAt = {
            (ConfigNode.position value) with
                Column = 1
        }
        Value = value
    }

    Mapping(entries |> List.map entry, at line)

let private noEnvironment: string -> string option = fun _ -> None

let private environment (pairs: (string * string) list) : string -> string option = (Map.ofList pairs).TryFind

/// A provider entry starting at `line`, with `name` and `type` on the next two lines.
let private provider (line: int) (name: string) (providerType: string) (rest: (string * ConfigNode) list) =
    map line ([ "name", plain (line + 1) name; "type", plain (line + 2) providerType ] @ rest)

let private load (document: ConfigNode) : ConfigLoad =
    ConfigDecode.decode noEnvironment document

let private loaded (result: ConfigLoad) : RelayConfig * ConfigIssue list =
    match result with
    | Loaded(config, warnings) -> config, warnings
    | Invalid(errors, _) ->
        failwith $"expected Loaded, got errors:\n%s{errors |> List.map string |> String.concat Environment.NewLine}"

let private invalid (result: ConfigLoad) : ConfigIssue list * ConfigIssue list =
    match result with
    | Invalid(errors, warnings) -> errors, warnings
    | Loaded(config, _) -> failwith $"expected Invalid, got %A{config}"

/// The only error, checked for its path and line.
let private singleError (path: string) (line: int) (result: ConfigLoad) : ConfigIssue =
    let errors, _ = invalid result
    let error = Assert.Single errors
    Assert.Equal(path, error.Path)
    Assert.Equal(Some line, error.Position |> Option.map _.Line)
    error

let private paths (issues: ConfigIssue list) : string list = issues |> List.map _.Path

/// A document whose only provider is a keyed `zai`, so provider rules can be tested one at a time.
let private withServer (server: (string * ConfigNode) list) : ConfigNode = map 1 [ "server", map 2 server ]

// ---------------------------
// Defaults
// ---------------------------

[<Fact>]
let ``an empty document loads the defaults without warnings`` () =
    let config, warnings = load ConfigNode.empty |> loaded
    Assert.Equal(Config.defaults, config)
    Assert.Empty warnings

[<Fact>]
let ``a null document loads the defaults`` () =
    let config, _ = load (Scalar(ScalarValue.Null, at 1)) |> loaded
    Assert.Equal(Config.defaults, config)

[<Fact>]
let ``a document that is not a mapping is an error`` () =
    let error = load (seq 1 []) |> singleError "(document)" 1
    Assert.Contains("expected a mapping, got a list", error.Message)

[<Fact>]
let ``an empty providers list uses the default Anthropic passthrough provider`` () =
    let config, _ = load (map 1 [ "providers", seq 2 [] ]) |> loaded
    Assert.Equal<ProviderConfig list>(Config.defaults.Providers, config.Providers)

[<Fact>]
let ``server defaults apply when the section is empty`` () =
    let config, _ = load (map 1 [ "server", plain 2 "" ]) |> loaded
    Assert.Equal(Config.defaultServer, config.Server)
    Assert.Equal({ Host = "127.0.0.1"; Port = 8787 }, config.Server.Listen)
    Assert.Equal(33_554_432L, config.Server.MaxBodyBytes)
    Assert.Equal(600_000, config.Server.TimeoutMs)
    Assert.Equal(120_000, config.Server.FirstByteTimeoutMs)
    Assert.Equal(30_000, config.Server.ShutdownTimeoutMs)

[<Fact>]
let ``a provider gets its type's base URL, auth style and models`` () =
    let document =
        map 1 [
            "providers",
            seq 2 [
                provider 3 "mm" "minimax" [ "keys", seq 6 [ map 7 [ "key", plain 7 "k1" ] ] ]
            ]
        ]

    let config, _ = load document |> loaded
    let minimax = Assert.Single config.Providers
    Assert.True minimax.Enabled
    Assert.Equal(Uri "https://api.minimax.io/anthropic", minimax.BaseUrl)
    Assert.Equal(AuthStyle.Bearer, minimax.AuthStyle)
    Assert.Equal<string list>(ProviderType.defaultModels ProviderType.Minimax, minimax.Models)
    Assert.Equal("k1", (Assert.Single minimax.Keys).Key)

[<Fact>]
let ``enabled defaults to true, unlike the Go project`` () =
    let config, _ =
        load (map 1 [ "providers", seq 2 [ provider 3 "local" "ollama" [] ] ]) |> loaded

    Assert.True (Assert.Single config.Providers).Enabled

// ---------------------------
// server
// ---------------------------

[<Theory>]
[<InlineData("0.0.0.0:80", "0.0.0.0", 80)>]
[<InlineData("localhost:0", "localhost", 0)>]
[<InlineData("[::1]:8787", "::1", 8787)>]
[<InlineData(":9000", "0.0.0.0", 9000)>]
[<InlineData("relay.internal:65535", "relay.internal", 65535)>]
let ``server.listen accepts host:port forms`` (text: string, host: string, port: int) =
    let config, _ = load (withServer [ "listen", quoted 3 text ]) |> loaded
    Assert.Equal({ Host = host; Port = port }, config.Server.Listen)

[<Theory>]
[<InlineData("nowhere")>]
[<InlineData("host:")>]
[<InlineData("host:65536")>]
[<InlineData("host:-1")>]
[<InlineData("::1:80")>]
[<InlineData("a b:80")>]
[<InlineData("[nothost]:80")>]
[<InlineData("bad_host!:80")>]
let ``server.listen rejects what is not host:port`` (text: string) =
    let error =
        load (withServer [ "listen", quoted 3 text ]) |> singleError "server.listen" 3

    Assert.NotEmpty error.Message

[<Fact>]
let ``server.timeout_ms out of range names the value and the range`` () =
    let error =
        load (withServer [ "timeout_ms", plain 4 "90000000" ])
        |> singleError "server.timeout_ms" 4

    Assert.Equal("must be from 0 to 86400000, got 90000000", error.Message)

[<Theory>]
[<InlineData("first_byte_timeout_ms", "0")>]
[<InlineData("first_byte_timeout_ms", "3600001")>]
[<InlineData("shutdown_timeout_ms", "600001")>]
[<InlineData("stream_keepalive_ms", "999")>]
[<InlineData("stream_keepalive_ms", "290001")>]
[<InlineData("max_concurrent", "-1")>]
[<InlineData("max_body_bytes", "-5")>]
let ``server integers are range-checked`` (key: string, value: string) =
    load (withServer [ key, plain 3 value ])
    |> singleError $"server.%s{key}" 3
    |> ignore

[<Fact>]
let ``server.max_body_bytes 0 means the default cap; other values are kept`` () =
    let zero, _ = load (withServer [ "max_body_bytes", plain 3 "0" ]) |> loaded
    let set, _ = load (withServer [ "max_body_bytes", plain 3 "1048576" ]) |> loaded
    Assert.Equal(33_554_432L, zero.Server.MaxBodyBytes)
    Assert.Equal(1_048_576L, set.Server.MaxBodyBytes)

[<Fact>]
let ``server values are read`` () =
    let config, _ =
        load (
            withServer [
                "timeout_ms", plain 3 "0"
                "max_concurrent", plain 4 "0x10"
                "enable_http2", plain 5 "TRUE"
                "first_byte_timeout_ms", plain 6 "0o17"
                "shutdown_timeout_ms", plain 7 "+5"
            ]
        )
        |> loaded

    Assert.Equal(0, config.Server.TimeoutMs)
    Assert.Equal(16, config.Server.MaxConcurrent)
    Assert.True config.Server.EnableHttp2
    Assert.Equal(15, config.Server.FirstByteTimeoutMs)
    Assert.Equal(5, config.Server.ShutdownTimeoutMs)

[<Fact>]
let ``server.stream_keepalive and its interval are read; another spelling is refused with the choices`` () =
    let config, _ =
        load (withServer [ "stream_keepalive", plain 3 "pings"; "stream_keepalive_ms", plain 4 "5000" ])
        |> loaded

    Assert.Equal(KeepAliveMode.Pings, config.Server.StreamKeepAlive)
    Assert.Equal(5000, config.Server.StreamKeepAliveMs)
    let defaults, _ = load (withServer []) |> loaded
    Assert.Equal(KeepAliveMode.Events, defaults.Server.StreamKeepAlive)

    let error =
        load (withServer [ "stream_keepalive", plain 3 "deltas" ])
        |> singleError "server.stream_keepalive" 3

    Assert.Contains("events", error.Message)
    Assert.Contains("pings", error.Message)

[<Fact>]
let ``a quoted number is not an integer`` () =
    let error =
        load (withServer [ "timeout_ms", quoted 3 "60" ])
        |> singleError "server.timeout_ms" 3

    Assert.Contains("remove the quotes", error.Message)

[<Theory>]
[<InlineData("yes")>]
[<InlineData("on")>]
[<InlineData("1")>]
let ``only true and false are booleans`` (text: string) =
    let error =
        load (withServer [ "enable_http2", plain 3 text ])
        |> singleError "server.enable_http2" 3

    Assert.Contains($"got \"%s{text}\"", error.Message)

[<Fact>]
let ``allow_subscription is an alias of allow_bearer`` () =
    let config, _ =
        load (
            withServer [
                "auth", map 3 [ "allow_subscription", plain 4 "true"; "bearer_secret", quoted 5 "s" ]
            ]
        )
        |> loaded

    Assert.Equal(
        {
            ApiKey = None
            AllowBearer = true
            BearerSecret = Some "s"
        },
        config.Server.Auth
    )

[<Fact>]
let ``the legacy server.api_key is used when auth.api_key is empty`` () =
    let config, warnings = load (withServer [ "api_key", quoted 3 "legacy" ]) |> loaded
    Assert.Equal(Some "legacy", config.Server.Auth.ApiKey)
    Assert.Empty warnings

[<Fact>]
let ``auth.api_key wins over the legacy key, with a warning`` () =
    let config, warnings =
        load (withServer [ "api_key", quoted 3 "legacy"; "auth", map 4 [ "api_key", quoted 5 "new" ] ])
        |> loaded

    Assert.Equal(Some "new", config.Server.Auth.ApiKey)
    Assert.Equal<string list>([ "server.api_key" ], paths warnings)

[<Fact>]
let ``a bearer secret without bearer auth is a warning`` () =
    let _, warnings =
        load (withServer [ "auth", map 3 [ "bearer_secret", quoted 4 "s" ] ]) |> loaded

    Assert.Equal<string list>([ "server.auth.bearer_secret" ], paths warnings)

// ---------------------------
// Environment variables
// ---------------------------

[<Fact>]
let ``values are expanded from the environment, quoted or plain`` () =
    let document =
        withServer [
            "listen", plain 3 "${HOST:-127.0.0.1}:${PORT}"
            "auth", map 4 [ "api_key", quoted 5 "${RELAY_KEY}" ]
        ]

    let config, _ =
        ConfigDecode.decode (environment [ "PORT", "9999"; "RELAY_KEY", "secret" ]) document
        |> loaded

    Assert.Equal({ Host = "127.0.0.1"; Port = 9999 }, config.Server.Listen)
    Assert.Equal(Some "secret", config.Server.Auth.ApiKey)

[<Fact>]
let ``an integer can come from an unquoted reference`` () =
    let config, _ =
        ConfigDecode.decode (environment [ "TIMEOUT", "1000" ]) (withServer [ "timeout_ms", plain 3 "${TIMEOUT}" ])
        |> loaded

    Assert.Equal(1000, config.Server.TimeoutMs)

[<Fact>]
let ``an unset variable is an error naming the variable and the path`` () =
    let error =
        load (withServer [ "auth", map 3 [ "api_key", quoted 4 "${PROXY_API_KEY}" ] ])
        |> singleError "server.auth.api_key" 4

    Assert.Contains("PROXY_API_KEY is not set", error.Message)

[<Fact>]
let ``keys are never expanded`` () =
    let document =
        map 1 [
            "providers",
            seq 2 [
                provider 3 "local" "ollama" [ "model_mapping", map 6 [ "${MODEL}", quoted 6 "${TARGET:-qwen}" ] ]
            ]
        ]

    let config, _ = load document |> loaded
    Assert.Equal<Map<string, string>>(Map.ofList [ "${MODEL}", "qwen" ], (Assert.Single config.Providers).ModelMapping)

[<Fact>]
let ``a value that expands to a literal dollar is kept`` () =
    let config, _ =
        load (withServer [ "auth", map 3 [ "api_key", plain 4 "pa$$w$rd" ] ]) |> loaded

    Assert.Equal(Some "pa$w$rd", config.Server.Auth.ApiKey)

// ---------------------------
// providers
// ---------------------------

let private providers (items: ConfigNode list) : ConfigNode = map 1 [ "providers", seq 2 items ]

let private keys (line: int) (values: string list) : string * ConfigNode =
    "keys", seq line (values |> List.mapi (fun i v -> map (line + i) [ "key", quoted (line + i) v ]))

[<Fact>]
let ``name and type are required`` () =
    let errors, _ = load (providers [ map 3 [ "enabled", plain 3 "true" ] ]) |> invalid
    Assert.Equal<string list>([ "providers[0].name"; "providers[0].type" ], paths errors)

[<Fact>]
let ``an empty name is an error`` () =
    let quotedEmpty = map 3 [ "name", quoted 4 ""; "type", plain 5 "anthropic" ]
    let error = load (providers [ quotedEmpty ]) |> singleError "providers[0].name" 4
    Assert.Equal("must not be empty", error.Message)
    // A plain empty scalar is null: the name is missing.
    let missing =
        load (providers [ provider 3 "" "anthropic" [] ])
        |> singleError "providers[0].name" 4

    Assert.Equal("is required", missing.Message)

[<Fact>]
let ``a provider that is not a mapping is one error`` () =
    let errors, _ =
        load (providers [ plain 3 "anthropic"; provider 4 "a" "anthropic" [] ])
        |> invalid

    let error = Assert.Single errors
    Assert.Equal("providers[0]", error.Path)
    Assert.Contains("expected a mapping", error.Message)

[<Fact>]
let ``providers must be a list`` () =
    load (map 1 [ "providers", map 2 [ "name", plain 3 "a" ] ])
    |> singleError "providers" 2
    |> ignore

[<Fact>]
let ``an unknown type lists the allowed ones and suggests the closest`` () =
    let error =
        load (providers [ provider 3 "a" "antropic" [] ])
        |> singleError "providers[0].type" 5

    Assert.Contains("got \"antropic\"; allowed: anthropic, zai, minimax, ollama, anthropic_compatible", error.Message)
    Assert.Contains("did you mean \"anthropic\"?", error.Message)

[<Fact>]
let ``an enabled bedrock provider needs aws_region`` () =
    let error =
        load (providers [ provider 3 "b" "bedrock" [] ])
        |> singleError "providers[0].aws_region" 3

    Assert.Equal("is required for type bedrock", error.Message)

[<Fact>]
let ``a disabled vertex provider with missing settings is skipped with warnings`` () =
    let document =
        providers [
            provider 3 "b" "vertex" [ "enabled", plain 6 "false" ]
            provider 7 "a" "anthropic" []
        ]

    let config, warnings = load document |> loaded
    Assert.Equal<string list>([ "a" ], config.Providers |> List.map _.Name)

    Assert.Equal<string list>([ "providers[0].gcp_project_id"; "providers[0].gcp_region" ], paths warnings |> List.sort)

/// A Foundry provider with the given settings (beside its resource name).
let private foundry (rest: (string * ConfigNode) list) =
    providers [ provider 3 "f" "azure" (("azure_resource_name", plain 6 "my-res") :: rest) ]

[<Fact>]
let ``a foundry service principal with a client secret and a sovereign authority`` () =
    let config, warnings =
        foundry [
            "azure_tenant_id", plain 7 "tenant-1"
            "azure_client_id", plain 8 "client-1"
            "azure_client_secret", plain 9 "s3cret"
            "azure_authority_host", plain 10 "https://login.microsoftonline.us"
        ]
        |> load
        |> loaded

    Assert.Empty warnings

    match (List.exactlyOne config.Providers).Cloud with
    | CloudSettings.Foundry settings ->
        Assert.Equal(Some "my-res", settings.Resource)
        Assert.Equal(EntraCredential.ClientSecret("tenant-1", "client-1", "s3cret"), settings.Entra)
        Assert.Equal(Some "https://login.microsoftonline.us", settings.AuthorityHost)
    | other -> failwith $"expected Foundry settings, got %A{other}"

[<Theory>]
[<InlineData("http://login.microsoftonline.us")>]
[<InlineData("login.microsoftonline.us")>]
[<InlineData("https://login.example/?tenant=x")>]
let ``a foundry authority host must be an https URL`` (host: string) =
    let error =
        foundry [ "azure_authority_host", plain 7 host ]
        |> load
        |> singleError "providers[0].azure_authority_host" 7

    Assert.Contains("is not an https URL", error.Message)

[<Fact>]
let ``a foundry secret and certificate together, or without a tenant, are errors`` () =
    let both =
        foundry [
            "azure_tenant_id", plain 7 "t"
            "azure_client_id", plain 8 "c"
            "azure_client_secret", plain 9 "s"
            "azure_client_certificate_path", plain 10 "/c.pem"
        ]
        |> load
        |> singleError "providers[0].azure_client_certificate_path" 10

    Assert.Contains("not both", both.Message)

    let noTenant =
        foundry [ "azure_client_id", plain 8 "c"; "azure_client_secret", plain 9 "s" ]
        |> load
        |> singleError "providers[0].azure_tenant_id" 3

    Assert.Equal("is required with a client secret or certificate", noTenant.Message)

[<Fact>]
let ``anthropic_compatible requires base_url`` () =
    let error =
        load (providers [ provider 3 "c" "anthropic_compatible" [ keys 6 [ "k" ] ] ])
        |> singleError "providers[0].base_url" 3

    Assert.Equal("is required for type anthropic_compatible", error.Message)

[<Theory>]
[<InlineData("ftp://example.com")>]
[<InlineData("example.com")>]
[<InlineData("/relative/path")>]
[<InlineData("https://example.com/?a=1")>]
let ``base_url must be an absolute http(s) URL`` (url: string) =
    let error =
        load (providers [ provider 3 "a" "anthropic" [ "base_url", quoted 6 url ] ])
        |> singleError "providers[0].base_url" 6

    Assert.Contains(url, error.Message)

[<Fact>]
let ``a base_url with credentials is rejected without echoing them`` () =
    let error =
        load (
            providers [
                provider 3 "a" "anthropic" [ "base_url", quoted 6 "https://user:hunter2@example.com" ]
            ]
        )
        |> singleError "providers[0].base_url" 6

    Assert.DoesNotContain("hunter2", error.Message)

[<Fact>]
let ``auth_header overrides the type's style`` () =
    let config, _ =
        load (
            providers [
                provider 3 "a" "anthropic_compatible" [
                    "base_url", quoted 6 "http://localhost:4000"
                    "auth_header", plain 7 "bearer"
                    keys 8 [ "k" ]
                ]
            ]
        )
        |> loaded

    Assert.Equal(AuthStyle.Bearer, (Assert.Single config.Providers).AuthStyle)

[<Fact>]
let ``a key is required for zai but not for anthropic or ollama`` () =
    let keyless = seq 6 [ map 7 [ "rpm_limit", plain 7 "5" ] ]

    load (providers [ provider 3 "z" "zai" [ "keys", keyless ] ])
    |> singleError "providers[0].keys[0].key" 7
    |> ignore

    let config, warnings =
        load (providers [ provider 3 "a" "anthropic" [ "keys", keyless ] ]) |> loaded

    Assert.Empty (Assert.Single config.Providers).Keys
    Assert.Equal<string list>([ "providers[0].keys[0].key" ], paths warnings)

[<Fact>]
let ``a keyless zai warns that requests go without a credential, unless keys itself is broken`` () =
    let _, warnings = load (providers [ provider 3 "z" "zai" [] ]) |> loaded
    Assert.Contains("sent without a credential", (Assert.Single warnings).Message)

    let broken = seq 6 [ map 7 [ "key", quoted 7 "${" ] ]

    let errors, warnings =
        load (providers [ provider 3 "z" "zai" [ "keys", broken ] ]) |> invalid

    Assert.Equal<string list>([ "providers[0].keys[0].key" ], paths errors)
    Assert.Empty warnings

[<Fact>]
let ``bedrock keys may be AWS credential sets that pool beside Bedrock API keys`` () =
    let document =
        providers [
            provider 3 "b" "bedrock" [
                "aws_region", plain 4 "us-east-1"
                "keys",
                seq 6 [
                    map 7 [
                        "aws_access_key_id", plain 7 "AKIAONE"
                        "aws_secret_access_key", quoted 8 "secret-one"
                        "rpm_limit", plain 9 "50"
                    ]
                    map 10 [ "aws_profile", plain 10 "account-two" ]
                    map 11 [ "key", quoted 11 "bedrock-api-key" ]
                ]
            ]
        ]

    let config, warnings = load document |> loaded
    Assert.Empty warnings
    let keys = (Assert.Single config.Providers).Keys

    Assert.Equal<AwsCredentialSource option list>(
        [
            Some(AwsCredentialSource.Static("AKIAONE", "secret-one", None))
            Some(AwsCredentialSource.Profile "account-two")
            None
        ],
        keys |> List.map _.Aws
    )

    Assert.Equal(50, keys.Head.RpmLimit)
    // each set has its own identity in the pool (distinct key ids), the API key is itself
    Assert.Equal(3, keys |> List.map (fun k -> KeyId.ofSecret k.Key) |> List.distinct |> List.length)
    Assert.Equal("bedrock-api-key", keys[2].Key)
    Assert.Contains("secret-one", Config.keySecrets keys.Head)

[<Fact>]
let ``an AWS credential set in keys is an error beside a key, half given, or on another type`` () =
    let bedrock (entry: (string * ConfigNode) list) =
        providers [
            provider 3 "b" "bedrock" [ "aws_region", plain 4 "us-east-1"; "keys", seq 6 [ map 7 entry ] ]
        ]

    let both =
        load (bedrock [ "key", quoted 7 "k"; "aws_profile", plain 8 "p" ])
        |> singleError "providers[0].keys[0].key" 7

    Assert.Contains("not both", both.Message)

    let half =
        load (bedrock [ "aws_access_key_id", plain 7 "AKIA" ])
        |> singleError "providers[0].keys[0].aws_secret_access_key" 7

    Assert.Equal("is required with aws_access_key_id", half.Message)

    let elsewhere =
        load (
            providers [
                provider 3 "z" "zai" [ "keys", seq 6 [ map 7 [ "aws_profile", plain 7 "p" ] ] ]
            ]
        )
        |> singleError "providers[0].keys[0]" 7

    Assert.Equal("AWS credentials in keys[] apply only to type bedrock, not zai", elsewhere.Message)

[<Fact>]
let ``key limits are read and checked`` () =
    let document =
        providers [
            provider 3 "z" "zai" [
                "keys",
                seq 6 [
                    map 7 [
                        "key", quoted 7 "k"
                        "rpm_limit", plain 8 "60"
                        "itpm_limit", plain 9 "1000"
                        "otpm_limit", plain 10 "2000"
                        "tpm_limit", plain 11 "3000"
                        "priority", plain 12 "2"
                        "weight", plain 13 "4"
                    ]
                ]
            ]
        ]

    let config, _ = load document |> loaded

    Assert.Equal(
        {
            Key = "k"
            RpmLimit = 60
            ItpmLimit = 1000
            OtpmLimit = 2000
            TpmLimit = 3000
            Priority = 2
            Weight = 4
            Aws = None
        },
        Assert.Single (Assert.Single config.Providers).Keys
    )

[<Theory>]
[<InlineData("rpm_limit", "-1")>]
[<InlineData("itpm_limit", "-1")>]
[<InlineData("otpm_limit", "-1")>]
[<InlineData("tpm_limit", "-1")>]
[<InlineData("priority", "3")>]
[<InlineData("weight", "-2")>]
[<InlineData("rpm_limit", "lots")>]
let ``bad key limits are errors at their path`` (field: string, value: string) =
    let document =
        providers [
            provider 3 "z" "zai" [ "keys", seq 6 [ map 7 [ "key", quoted 7 "k"; field, plain 8 value ] ] ]
        ]

    let error = load document |> singleError $"providers[0].keys[0].%s{field}" 8
    Assert.Contains(value, error.Message)

[<Fact>]
let ``the same key twice is an error that does not show the key`` () =
    let error =
        load (providers [ provider 3 "z" "zai" [ keys 6 [ "sk-secret"; "other"; "sk-secret" ] ] ])
        |> singleError "providers[0].keys[2].key" 8

    Assert.Contains("providers[0].keys[0].key", error.Message)
    Assert.DoesNotContain("sk-secret", error.Message)

[<Fact>]
let ``provider names must be unique`` () =
    let error =
        load (providers [ provider 3 "same" "anthropic" []; provider 6 "same" "ollama" [] ])
        |> singleError "providers[1].name" 7

    Assert.Contains("duplicate provider name \"same\"", error.Message)

[<Fact>]
let ``no enabled provider is an error`` () =
    let error =
        load (providers [ provider 3 "a" "anthropic" [ "enabled", plain 6 "false" ] ])
        |> singleError "providers" 2

    Assert.StartsWith("no enabled provider", error.Message)

[<Fact>]
let ``models and model_mapping are read; an empty models list means the type's defaults`` () =
    let document =
        providers [
            provider 3 "a" "anthropic" [
                "models", seq 6 [ quoted 6 "m1"; plain 7 "m2" ]
                "model_mapping", map 8 [ "x", plain 8 "y" ]
            ]
            provider 9 "z" "zai" [ "models", seq 12 []; keys 13 [ "k" ] ]
        ]

    let config, _ = load document |> loaded
    let anthropic, zai = config.Providers[0], config.Providers[1]
    Assert.Equal<string list>([ "m1"; "m2" ], anthropic.Models)
    Assert.Equal<Map<string, string>>(Map.ofList [ "x", "y" ], anthropic.ModelMapping)
    Assert.Equal<string list>(ProviderType.defaultModels ProviderType.Zai, zai.Models)

[<Fact>]
let ``a plain scalar is a string as written`` () =
    let config, _ =
        load (providers [ provider 3 "z" "zai" [ "keys", seq 6 [ map 7 [ "key", plain 7 "0123" ] ] ] ])
        |> loaded

    Assert.Equal("0123", (Assert.Single (Assert.Single config.Providers).Keys).Key)

[<Fact>]
let ``pooling is validated`` () =
    let error =
        load (
            providers [
                provider 3 "a" "anthropic" [
                    "pooling", map 6 [ "enabled", plain 7 "true"; "strategy", plain 8 "fastest" ]
                ]
            ]
        )
        |> singleError "providers[0].pooling.strategy" 8

    Assert.Contains("allowed: least_loaded, round_robin, random, weighted", error.Message)

[<Fact>]
let ``Go cloud keys are accepted; on another type they warn`` () =
    let _, warnings =
        load (providers [ provider 3 "a" "anthropic" [ "aws_region", plain 6 "us-east-1" ] ])
        |> loaded

    Assert.Equal<string list>([ "providers[0].aws_region" ], paths warnings)
    Assert.Contains("applies only to type bedrock", (Assert.Single warnings).Message)

// ---------------------------
// Disabled providers and unset keys
// ---------------------------

[<Fact>]
let ``a disabled provider's problems are warnings and it still loads`` () =
    let document =
        providers [
            provider 3 "off" "zai" [
                "enabled", plain 6 "false"
                "base_url", quoted 7 "nope"
                "keys", seq 8 [ map 9 [ "rpm_limit", plain 10 "-1" ] ]
            ]
            provider 10 "on" "anthropic" []
        ]

    let config, warnings = load document |> loaded
    Assert.Equal<string list>([ "on" ], config.Providers |> List.map _.Name)

    Assert.Equal<string list>(
        [
            "providers[0].base_url"
            "providers[0].keys[0].key"
            "providers[0].keys[0].rpm_limit"
        ],
        paths warnings
    )

    Assert.All(warnings, fun w -> Assert.Contains("the provider is disabled", w.Message))

[<Fact>]
let ``a valid disabled provider is listed as disabled`` () =
    let document =
        providers [
            provider 3 "off" "ollama" [ "enabled", plain 6 "false" ]
            provider 7 "on" "anthropic" []
        ]

    let config, warnings = load document |> loaded

    Assert.Equal<(string * bool) list>(
        [ "off", false; "on", true ],
        config.Providers |> List.map (fun p -> p.Name, p.Enabled)
    )

    Assert.Empty warnings

[<Fact>]
let ``an unset variable in a disabled provider is a warning`` () =
    let document =
        providers [
            provider 3 "off" "zai" [ "enabled", plain 6 "false"; "base_url", quoted 7 "${ZAI_URL}" ]
            provider 8 "on" "ollama" []
        ]

    let _, warnings = load document |> loaded
    let warning = Assert.Single warnings
    Assert.Equal("providers[0].base_url", warning.Path)
    Assert.Contains("ZAI_URL is not set", warning.Message)

[<Fact>]
let ``an unset key variable disables a provider that needs a key`` () =
    let document =
        providers [
            provider 3 "z" "zai" [ keys 6 [ "${ZAI_API_KEY}" ] ]
            provider 7 "a" "anthropic" []
        ]

    let config, warnings = load document |> loaded

    Assert.Equal<(string * bool) list>(
        [ "z", false; "a", true ],
        config.Providers |> List.map (fun p -> p.Name, p.Enabled)
    )

    Assert.Equal<string list>([ "providers[0].keys"; "providers[0].keys[0].key" ], paths warnings |> List.sort)

[<Fact>]
let ``an unset key variable on anthropic leaves passthrough on`` () =
    let config, warnings =
        load (providers [ provider 3 "a" "anthropic" [ keys 6 [ "${ANTHROPIC_API_KEY}" ] ] ])
        |> loaded

    let anthropic = Assert.Single config.Providers
    Assert.True anthropic.Enabled
    Assert.Empty anthropic.Keys
    Assert.Contains("ANTHROPIC_API_KEY is not set", (Assert.Single warnings).Message)

[<Fact>]
let ``when every provider is disabled for unset keys, the error says why`` () =
    let error =
        load (providers [ provider 3 "z" "zai" [ keys 6 [ "${ZAI_API_KEY}" ] ] ])
        |> singleError "providers" 2

    Assert.Contains("z was disabled because environment variable ZAI_API_KEY is not set", error.Message)

[<Fact>]
let ``a key with one unset variable among several keeps the others`` () =
    let config, warnings =
        ConfigDecode.decode
            (environment [ "K1", "one" ])
            (providers [ provider 3 "z" "zai" [ keys 6 [ "${K1}"; "${K2}" ] ] ])
        |> loaded

    let zai = Assert.Single config.Providers
    Assert.True zai.Enabled
    Assert.Equal<string list>([ "one" ], zai.Keys |> List.map _.Key)
    Assert.Equal<string list>([ "providers[0].keys[1].key" ], paths warnings)

// ---------------------------
// Every error at once
// ---------------------------

[<Fact>]
let ``three errors in one document are three issues with their paths, in file order`` () =
    let document =
        map 1 [
            "server", map 2 [ "listen", quoted 3 "localhost" ]
            "providers",
            seq 4 [
                provider 5 "a" "anthropic" []
                provider 8 "b" "zai" [
                    "base_url", quoted 11 "not a url"
                    "keys", seq 12 [ map 13 [ "key", quoted 13 "k"; "rpm_limit", plain 14 "-1" ] ]
                ]
            ]
        ]

    let errors, _ = load document |> invalid

    Assert.Equal<(string * int) list>(
        [
            "server.listen", 3
            "providers[1].base_url", 11
            "providers[1].keys[0].rpm_limit", 14
        ],
        errors |> List.map (fun e -> e.Path, e.Position.Value.Line)
    )

[<Fact>]
let ``warnings are kept when the load fails`` () =
    let document =
        map 1 [ "server", map 2 [ "lsten", quoted 3 "x"; "timeout_ms", plain 4 "-1" ] ]

    let errors, warnings = load document |> invalid
    Assert.Equal<string list>([ "server.timeout_ms" ], paths errors)
    Assert.Equal<string list>([ "server.lsten" ], paths warnings)

// ---------------------------
// Unknown keys and accepted sections
// ---------------------------

[<Fact>]
let ``an unknown key is a warning with a suggestion`` () =
    let _, warnings = load (withServer [ "max_body_byte", plain 3 "10" ]) |> loaded
    let warning = Assert.Single warnings
    Assert.Equal("server.max_body_byte", warning.Path)
    Assert.Equal({ Line = 3; Column = 1 }, warning.Position.Value)
    Assert.Equal("unknown key, ignored; did you mean \"max_body_bytes\"?", warning.Message)

[<Fact>]
let ``an unknown key far from any known one gets no suggestion`` () =
    let _, warnings = load (map 1 [ "telemetry", map 2 [] ]) |> loaded
    Assert.Equal("unknown key, ignored", (Assert.Single warnings).Message)

[<Fact>]
let ``each accepted but not effective section warns once; routing, health and grpc are effective`` () =
    let document =
        map 1 [
            "routing", map 2 [ "strategy", plain 3 "failover"; "failover_timeout", plain 4 "5000" ]
            "health", map 5 [ "health_check", map 6 [ "enabled", plain 7 "true" ] ]
            "grpc", map 8 [ "listen", quoted 9 "127.0.0.1:9090" ]
            "metrics", map 10 [ "enabled", plain 11 "true" ]
            "cache", map 12 [ "mode", plain 13 "single" ]
        ]

    let _, warnings = load document |> loaded
    // metrics, routing, health and grpc are effective now; cache is not
    Assert.Equal<string list>([ "cache" ], paths warnings)
    Assert.All(warnings, fun w -> Assert.Equal("accepted but not effective in this version", w.Message))

[<Fact>]
let ``an invalid routing strategy is an error`` () =
    let error =
        load (map 1 [ "routing", map 2 [ "strategy", plain 3 "fastest" ] ])
        |> singleError "routing.strategy" 3

    Assert.Contains("allowed: failover, round_robin", error.Message)

[<Fact>]
let ``model_based routing needs a model_mapping`` () =
    load (map 1 [ "routing", map 2 [ "strategy", plain 3 "model_based" ] ])
    |> singleError "routing.model_mapping" 2
    |> ignore

[<Fact>]
let ``problems in the cache section are warnings, and cache.mode is never required`` () =
    let _, warnings =
        load (
            map 1 [
                "cache", map 2 [ "mode", plain 3 "bogus"; "ristretto", map 4 [ "max_cost", plain 5 "-1" ] ]
            ]
        )
        |> loaded

    Assert.Equal<string list>([ "cache"; "cache.mode"; "cache.ristretto.max_cost" ], paths warnings)

// ---------------------------
// logging
// ---------------------------

[<Fact>]
let ``logging values are read; console and pretty are text`` () =
    let read (format: string) =
        let config, _ =
            load (
                map 1 [
                    "logging",
                    map 2 [
                        "level", plain 3 "debug"
                        "format", plain 4 format
                        "output", plain 5 "/var/log/r.log"
                    ]
                ]
            )
            |> loaded

        config.Logging

    Assert.Equal(
        {
            Level = LogLevel.Debug
            Format = LogFormat.Json
            Output = "/var/log/r.log"
            DebugOptions = Config.defaultDebugOptions
        },
        read "json"
    )

    Assert.Equal(LogFormat.Text, (read "console").Format)
    Assert.Equal(LogFormat.Text, (read "pretty").Format)

[<Fact>]
let ``a wrong-case log level is an error with a suggestion`` () =
    let error =
        load (map 1 [ "logging", map 2 [ "level", plain 3 "INFO" ] ])
        |> singleError "logging.level" 3

    Assert.Equal("got \"INFO\"; allowed: debug, info, warn, error; did you mean \"info\"?", error.Message)

[<Fact>]
let ``logging.file warns that output is the key to use`` () =
    let _, warnings =
        load (map 1 [ "logging", map 2 [ "file", quoted 3 "/tmp/x.log" ] ]) |> loaded

    Assert.Contains("output: <path>", (Assert.Single warnings).Message)

[<Fact>]
let ``logging debug options are checked`` () =
    load (
        map 1 [
            "logging", map 2 [ "debug_options", map 3 [ "max_body_log_size", plain 4 "-1" ] ]
        ]
    )
    |> singleError "logging.debug_options.max_body_log_size" 4
    |> ignore

// ---------------------------
// Listen address parsing (shared with the CLI)
// ---------------------------

[<Fact>]
let ``ListenAddress round-trips through ToString`` () =
    for text in [ "127.0.0.1:8787"; "[::1]:0"; "localhost:80" ] do
        match ListenAddress.TryParse text with
        | Ok address -> Assert.Equal(text, string address)
        | Error e -> failwith e

// ---------------------------
// routing, health, and the provider's routing fields
// ---------------------------

[<Fact>]
let ``routing values are stored`` () =
    let config, warnings =
        load (
            map 1 [
                "providers", seq 2 [ provider 3 "a" "anthropic" []; provider 6 "b" "ollama" [] ]
                "routing",
                map 10 [
                    "strategy", plain 11 "model_based"
                    "max_attempts", plain 12 "3"
                    "failover_timeout", plain 13 "9000"
                    "hedge_after_ms", plain 14 "2500"
                    "debug", plain 15 "true"
                    "model_mapping", map 16 [ "claude", plain 17 "a"; "qwen*", plain 18 "b" ]
                    "default_provider", plain 19 "b"
                ]
            ]
        )
        |> loaded

    Assert.Empty warnings

    Assert.Equal(
        {
            Strategy = RoutingStrategy.ModelBased
            MaxAttempts = 3
            FailoverTimeoutMs = 9000
            HedgeAfterMs = 2500
            Debug = true
            ModelRules = [
                { Pattern = "claude"; Provider = "a" }
                { Pattern = "qwen*"; Provider = "b" }
            ]
            DefaultProvider = Some "b"
            Stages = Config.defaultStages
        },
        config.Routing
    )

[<Theory>]
[<InlineData("latency_based")>]
[<InlineData("cost_based")>]
[<InlineData("weighted_failover")>]
let ``the new strategies are accepted`` (strategy: string) =
    let config, _ =
        load (map 1 [ "routing", map 2 [ "strategy", plain 3 strategy ] ]) |> loaded

    Assert.Equal(strategy, RoutingStrategy.wireName config.Routing.Strategy)

[<Fact>]
let ``a model rule naming no provider is an error with a suggestion`` () =
    let error =
        load (
            map 1 [
                "providers", seq 2 [ provider 3 "anthropic" "anthropic" [] ]
                "routing", map 10 [ "model_mapping", map 11 [ "claude", plain 12 "anthropc" ] ]
            ]
        )
        |> singleError "routing.model_mapping.claude" 12

    Assert.Equal("names no provider: \"anthropc\"; did you mean \"anthropic\"?", error.Message)

[<Fact>]
let ``a routing name of a provider that has its own error is not a second error`` () =
    load (
        map 1 [
            "providers",
            seq 2 [
                provider 3 "anthropic" "anthropic" []
                provider 6 "glm" "zai" [
                    "keys", seq 9 [ map 10 [ "key", plain 10 "k"; "rpm_limit", plain 11 "abc" ] ]
                ]
            ]
            "routing",
            map 20 [
                "model_mapping", map 21 [ "glm", plain 22 "glm" ]
                "default_provider", plain 23 "glm"
            ]
        ]
    )
    |> singleError "providers[1].keys[0].rpm_limit" 11
    |> ignore

[<Fact>]
let ``max_attempts must be at least 1`` () =
    load (map 1 [ "routing", map 2 [ "max_attempts", plain 3 "0" ] ])
    |> singleError "routing.max_attempts" 3
    |> ignore

[<Fact>]
let ``health values are stored; 0 means the default as in Go`` () =
    let config, warnings =
        load (
            map 1 [
                "health",
                map 2 [
                    "health_check",
                    map 3 [
                        "enabled", plain 4 "false"
                        "interval_ms", plain 5 "0"
                        "probe", plain 6 "count_tokens"
                    ]
                    "circuit_breaker",
                    map 7 [
                        "failure_threshold", plain 8 "7"
                        "window_ms", plain 9 "20000"
                        "open_duration_ms", plain 10 "0"
                        "half_open_probes", plain 11 "1"
                    ]
                ]
            ]
        )
        |> loaded

    Assert.Empty warnings

    Assert.Equal(
        {
            HealthCheck = {
                Enabled = false
                IntervalMs = 10_000
                Probe = ProbeKind.CountTokens
            }
            CircuitBreaker = {
                FailureThreshold = 7
                WindowMs = 20_000
                OpenDurationMs = 30_000
                HalfOpenProbes = 1
            }
        },
        config.Health
    )

[<Fact>]
let ``a url probe needs a url; a url alone means a url probe`` () =
    load (map 1 [ "health", map 2 [ "health_check", map 3 [ "probe", plain 4 "url" ] ] ])
    |> singleError "health.health_check.url" 3
    |> ignore

    let config, _ =
        load (
            map 1 [
                "health", map 2 [ "health_check", map 3 [ "url", quoted 4 "http://localhost:9/up" ] ]
            ]
        )
        |> loaded

    Assert.Equal(ProbeKind.Url(Uri "http://localhost:9/up"), config.Health.HealthCheck.Probe)

[<Fact>]
let ``a typo in health is a warning with a suggestion`` () =
    let _, warnings =
        load (
            map 1 [
                "health", map 2 [ "circuit_breaker", map 3 [ "failure_treshold", plain 4 "3" ] ]
            ]
        )
        |> loaded

    Assert.Equal("unknown key, ignored; did you mean \"failure_threshold\"?", (Assert.Single warnings).Message)

[<Fact>]
let ``provider routing fields are stored; priority and weight default to the first key's`` () =
    let config, warnings =
        load (
            providers [
                provider 3 "a" "zai" [
                    "keys",
                    seq 6 [
                        map 6 [ "key", quoted 6 "k"; "priority", plain 7 "2"; "weight", plain 8 "4" ]
                    ]
                    "pooling", map 9 [ "strategy", plain 10 "weighted" ]
                    "family", plain 11 "glm"
                ]
                provider 20 "b" "anthropic" [ "priority", plain 23 "1"; "weight", plain 24 "3" ]
            ]
        )
        |> loaded

    Assert.Empty warnings
    let a = config.Providers.Head
    Assert.Equal((2, 4, "glm", KeyStrategy.Weighted), (a.Priority, a.Weight, a.Family, a.KeyStrategy))

    let b = config.Providers[1]
    Assert.Equal((1, 3, "anthropic"), (b.Priority, b.Weight, b.Family))

[<Fact>]
let ``pooling enabled false has no effect and says so`` () =
    let _, warnings =
        load (
            providers [
                provider 3 "a" "anthropic" [ "pooling", map 6 [ "enabled", plain 7 "false" ] ]
            ]
        )
        |> loaded

    Assert.Equal("providers[0].pooling.enabled", (Assert.Single warnings).Path)

// ---------------------------
// Number readers: every message, word for word
// ---------------------------

let private readAt (read: Read<'Value option>) (node: ConfigNode) : 'Value option option * string list =
    let cursor = {
        Path = "x"
        Lookup = environment [ "SEVEN", "7"; "EMPTY", "" ]
    }

    let decoded = read cursor node
    decoded.Value, decoded.Findings |> List.map _.Issue.Message

let private integerMessages: (ConfigNode * string) list = [
    plain 1 "101", "must be from 0 to 100, got 101"
    plain 1 "-1", "must be from 0 to 100, got -1"
    quoted 1 "60", "expected an integer, got \"60\"; remove the quotes to write a number"
    plain 1 "ten", "expected an integer (from 0 to 100; decimal, 0x… or 0o…), got \"ten\""
    plain 1 "${SEVEN}00", "must be from 0 to 100, got 700"
    plain 1 "1${SEVEN}x", "expected an integer (from 0 to 100; decimal, 0x… or 0o…), got \"17x\" (from \"1${SEVEN}x\")"
    Scalar(ScalarValue.Integer 500L, at 1), "must be from 0 to 100, got 500"
    Scalar(ScalarValue.Boolean true, at 1), "expected an integer, got a boolean"
    Scalar(ScalarValue.Float 1.5, at 1), "expected an integer, got a number"
    seq 1 [], "expected an integer, got a list"
]

/// Each node read alone gives exactly its message.
let private saysExactly (read: Read<'Value option>) (cases: (ConfigNode * string) list) : unit =
    for node, message in cases do
        Assert.Equal<string list>([ message ], snd (readAt read node))

[<Fact>]
let ``the integer reader says what was wrong, in these words`` () =
    saysExactly (ConfigRead.optionalInteger 0L 100L) integerMessages

    Assert.Equal<string list>(
        [ "must be >= 1, got 0" ],
        snd (readAt (ConfigRead.optionalInteger 1L Int64.MaxValue) (plain 1 "0"))
    )

    for node, value in
        [
            plain 1 "0x10", 16L
            plain 1 "${SEVEN}", 7L
            Scalar(ScalarValue.Integer 9L, at 1), 9L
        ] do
        Assert.Equal((Some(Some value), []), readAt (ConfigRead.optionalInteger 0L 100L) node)

    for node in [ plain 1 "~"; plain 1 "${EMPTY}"; Scalar(ScalarValue.Null, at 1) ] do
        Assert.Equal((Some None, []), readAt (ConfigRead.optionalInteger 0L 100L) node)

let private decimalMessages: (ConfigNode * string) list = [
    plain 1 "100001", "must be a number from 0 to 100000, got 100001"
    plain 1 "-0.5", "must be a number from 0 to 100000, got -0.5"
    quoted 1 "3", "expected a number, got \"3\"; remove the quotes"
    plain 1 "cheap", "expected a number from 0 to 100000, got \"cheap\""
    Scalar(ScalarValue.Integer 100001L, at 1), "must be a number from 0 to 100000, got 100001"
    Scalar(ScalarValue.Float infinity, at 1), "expected a number from 0 to 100000, got Infinity"
    Scalar(ScalarValue.Float 1e20, at 1), "expected a number from 0 to 100000, got 1e+20"
    Scalar(ScalarValue.Boolean false, at 1), "expected a number, got a boolean"
    map 1 [], "expected a number, got a mapping"
]

[<Fact>]
let ``the decimal reader says what was wrong, in these words`` () =
    saysExactly (ConfigRead.optionalDecimal 0m 100000m) decimalMessages

    for node, value in
        [
            plain 1 "0.30", 0.30m
            plain 1 ".5", 0.5m
            plain 1 "1.5e-1", 0.15m
            Scalar(ScalarValue.Float 2.5, at 1), 2.5m
            Scalar(ScalarValue.Integer 3L, at 1), 3m
        ] do
        Assert.Equal((Some(Some value), []), readAt (ConfigRead.optionalDecimal 0m 100000m) node)

    Assert.Equal((Some None, []), readAt (ConfigRead.optionalDecimal 0m 100000m) (plain 1 "null"))

[<Fact>]
let ``the boolean reader says what was wrong, in these words`` () =
    saysExactly ConfigRead.optionalBoolean [
        quoted 1 "true", "expected true or false, got \"true\"; remove the quotes"
        plain 1 "yes", "expected true or false, got \"yes\""
        plain 1 "${SEVEN}", "expected true or false, got \"7\" (from \"${SEVEN}\")"
        Scalar(ScalarValue.Integer 1L, at 1), "expected true or false, got an integer"
        seq 1 [], "expected true or false, got a list"
    ]

    for node, value in
        [
            plain 1 "TRUE", Some true
            plain 1 "False", Some false
            Scalar(ScalarValue.Boolean true, at 1), Some true
            plain 1 "~", None
            plain 1 "${EMPTY}", None
        ] do
        Assert.Equal((Some value, []), readAt ConfigRead.optionalBoolean node)

// ---------------------------
// type: openai
// ---------------------------

let private openAiSettings (config: RelayConfig) : OpenAiSettings =
    match config.Providers.Head.Cloud with
    | CloudSettings.OpenAi settings -> settings
    | other -> failwith $"expected openai settings, got %A{other}"

[<Fact>]
let ``an openai provider defaults to OpenAI's API, bearer keys, and OpenAI's knobs`` () =
    let config, warnings =
        load (
            providers [
                provider 3 "gpt" "openai" [ "keys", seq 6 [ map 7 [ "key", plain 7 "sk-x" ] ] ]
            ]
        )
        |> loaded

    Assert.Empty warnings
    let p = config.Providers.Head
    Assert.Equal(Uri "https://api.openai.com", p.BaseUrl)
    Assert.Equal(AuthStyle.Bearer, p.AuthStyle)

    Assert.Equal(
        {
            ReasoningField = ReasoningField.NoField
            MaxTokensField = MaxTokensField.MaxCompletionTokens
            StreamUsage = true
            Thinking = ThinkingControl.NoControl
            Api = OpenAiApi.Chat
            OnDropped = DroppedPolicy.Report
            MidSystem = MidSystem.InPlace
        },
        openAiSettings config
    )

[<Fact>]
let ``an openai provider elsewhere reads reasoning_content and sends max_tokens; every knob can be set`` () =
    let elsewhere, _ =
        load (providers [ provider 3 "local" "openai" [ "base_url", plain 6 "http://127.0.0.1:11434" ] ])
        |> loaded

    Assert.Equal(ReasoningField.ReasoningContent, (openAiSettings elsewhere).ReasoningField)
    Assert.Equal(MaxTokensField.MaxTokens, (openAiSettings elsewhere).MaxTokensField)

    let set, _ =
        load (
            providers [
                provider 3 "ds" "openai" [
                    "base_url", plain 6 "https://api.deepseek.com"
                    "reasoning_field", plain 7 "reasoning"
                    "max_tokens_field", plain 8 "max_completion_tokens"
                    "stream_usage", plain 9 "false"
                    "thinking_control", plain 10 "thinking"
                    "mid_conversation_system", plain 11 "user"
                ]
            ]
        )
        |> loaded

    Assert.Equal(
        {
            ReasoningField = ReasoningField.Reasoning
            MaxTokensField = MaxTokensField.MaxCompletionTokens
            StreamUsage = false
            Thinking = ThinkingControl.ThinkingField
            Api = OpenAiApi.Chat
            OnDropped = DroppedPolicy.Report
            MidSystem = MidSystem.AsUser
        },
        openAiSettings set
    )

[<Fact>]
let ``an unknown openai knob value is a located error; the knobs on another type warn`` () =
    let error =
        load (providers [ provider 3 "ds" "openai" [ "thinking_control", plain 6 "effort" ] ])
        |> singleError "providers[0].thinking_control" 6

    Assert.Contains("allowed: none, reasoning_effort, thinking", error.Message)

    let _, warnings =
        load (providers [ provider 3 "a" "anthropic" [ "reasoning_field", plain 6 "reasoning" ] ])
        |> loaded

    Assert.Contains("applies only to type openai", (Assert.Single warnings).Message)

// ---------------------------
// type: gemini
// ---------------------------

let private geminiSettings (config: RelayConfig) : GeminiSettings =
    match config.Providers.Head.Cloud with
    | CloudSettings.Gemini settings -> settings
    | other -> failwith $"expected gemini settings, got %A{other}"

[<Fact>]
let ``a gemini provider with keys is Google AI Studio by default`` () =
    let config, warnings =
        load (
            providers [
                provider 3 "g" "gemini" [ "keys", seq 6 [ map 7 [ "key", plain 7 "AIza-x" ] ] ]
            ]
        )
        |> loaded

    Assert.Empty warnings
    let p = config.Providers.Head
    Assert.Equal(Uri "https://generativelanguage.googleapis.com", p.BaseUrl)

    Assert.Equal(
        {
            Endpoint = GeminiEndpoint.AiStudio
            Thinking = GeminiThinking.Auto
            OnDropped = DroppedPolicy.Report
        },
        geminiSettings config
    )

    Assert.Equal("g", p.Family)

[<Fact>]
let ``a gemini provider with gcp_project_id is Gemini on Vertex AI, at its region's endpoint, without keys`` () =
    let config, warnings =
        load (
            providers [
                provider 3 "vg" "gemini" [
                    "gcp_project_id", plain 6 "my-project"
                    "gcp_region", plain 7 "global"
                    "gemini_thinking", plain 8 "level"
                ]
            ]
        )
        |> loaded

    Assert.Empty warnings
    Assert.Equal(Uri "https://aiplatform.googleapis.com/v1", config.Providers.Head.BaseUrl)

    Assert.Equal(
        {
            Endpoint =
                GeminiEndpoint.Vertex {
                    ProjectId = "my-project"
                    Region = "global"
                    CredentialsFile = None
                }
            Thinking = GeminiThinking.Level
            OnDropped = DroppedPolicy.Report
        },
        geminiSettings config
    )

[<Fact>]
let ``gemini config errors are located: AI Studio without keys, a project without region, a bad knob`` () =
    let noKeys =
        load (providers [ provider 3 "g" "gemini" [] ])
        |> singleError "providers[0].keys" 3

    Assert.Contains("AI Studio", noKeys.Message)

    load (providers [ provider 3 "g" "gemini" [ "gcp_project_id", plain 6 "p" ] ])
    |> singleError "providers[0].gcp_region" 3
    |> ignore

    let knob =
        load (
            providers [
                provider 3 "g" "gemini" [
                    "keys", seq 6 [ map 7 [ "key", plain 7 "k" ] ]
                    "gemini_thinking", plain 8 "max"
                ]
            ]
        )
        |> singleError "providers[0].gemini_thinking" 8

    Assert.Contains("allowed: auto, budget, level, none", knob.Message)

    let errors, _ =
        load (
            providers [
                provider 3 "g" "gemini" [
                    "keys", seq 6 [ map 7 [ "key", plain 7 "k" ] ]
                    "gcp_region", plain 8 "us-central1"
                ]
            ]
        )
        |> invalid

    Assert.Equal<string list>([ "providers[0].gcp_region" ], paths errors)

[<Fact>]
let ``a gemini provider takes on_dropped; a bad value is a located error; config show renders it`` () =
    let config, warnings =
        load (
            providers [
                provider 3 "g" "gemini" [
                    "keys", seq 6 [ map 7 [ "key", plain 7 "k" ] ]
                    "on_dropped", plain 8 "refuse"
                ]
            ]
        )
        |> loaded

    Assert.Empty warnings
    Assert.Equal(DroppedPolicy.Refuse, (geminiSettings config).OnDropped)
    Assert.Contains("    on_dropped: refuse", ConfigRender.toYaml config)

    let bad =
        load (
            providers [
                provider 3 "g" "gemini" [
                    "keys", seq 6 [ map 7 [ "key", plain 7 "k" ] ]
                    "on_dropped", plain 8 "ignore"
                ]
            ]
        )
        |> singleError "providers[0].on_dropped" 8

    Assert.Contains("allowed: report, refuse", bad.Message)

    let _, warnings =
        load (providers [ provider 3 "a" "anthropic" [ "on_dropped", plain 6 "refuse" ] ])
        |> loaded

    Assert.Contains("applies only to type openai or gemini", (Assert.Single warnings).Message)

[<Fact>]
let ``the Google keys on a vertex provider do not warn for belonging to gemini too`` () =
    let _, warnings =
        load (
            providers [
                provider 3 "v" "vertex" [ "gcp_project_id", plain 6 "p"; "gcp_region", plain 7 "us-east5" ]
            ]
        )
        |> loaded

    Assert.Empty warnings

    let _, warnings =
        load (providers [ provider 3 "a" "anthropic" [ "gemini_thinking", plain 6 "level" ] ])
        |> loaded

    Assert.Contains("applies only to type gemini", (Assert.Single warnings).Message)

[<Fact>]
let ``openai_api selects the Responses API and on_dropped refusing; bad values are located errors, each reported`` () =
    let set, warnings =
        load (
            providers [
                provider 3 "gpt" "openai" [ "openai_api", plain 6 "responses"; "on_dropped", plain 7 "refuse" ]
            ]
        )
        |> loaded

    Assert.Empty warnings
    Assert.Equal(OpenAiApi.Responses, (openAiSettings set).Api)
    Assert.Equal(DroppedPolicy.Refuse, (openAiSettings set).OnDropped)

    let errors, _ =
        load (
            providers [
                provider 3 "gpt" "openai" [ "openai_api", plain 6 "completions"; "on_dropped", plain 7 "ignore" ]
            ]
        )
        |> invalid

    Assert.Equal<string list>([ "providers[0].openai_api"; "providers[0].on_dropped" ], paths errors)
    Assert.Contains("allowed: chat, responses", errors[0].Message)
    Assert.Contains("allowed: report, refuse", errors[1].Message)
