/// The management API's pure parts: the `grpc` section, provider and key views, the operator switch beside the
/// breaker (and what survives a reload), the token check.
module CcRelay.Core.Tests.ManagementTests

open System
open Xunit
open CcRelay.Core
open CcRelay.Core.Tests.Fixtures

// ---------------------------
// The `grpc` section
// ---------------------------

let private position (line: int) : Position = { Line = line; Column = 10 }

let private plain (line: int) (text: string) : ConfigNode =
    Scalar(ScalarValue.Plain text, position line)

let private quoted (line: int) (text: string) : ConfigNode =
    Scalar(ScalarValue.String text, position line)

let private map (line: int) (entries: (string * ConfigNode) list) : ConfigNode =
    let entry (key: string, value: ConfigNode) = {
        Key = key
        KeyAt = {
            (ConfigNode.position value) with
                Column = 1
        }
        Value = value
    }

    Mapping(entries |> List.map entry, position line)

let private load (environment: Map<string, string>) (document: ConfigNode) : ConfigLoad =
    ConfigDecode.decode environment.TryFind document

let private loaded (result: ConfigLoad) : RelayConfig * ConfigIssue list =
    match result with
    | Loaded(config, warnings) -> config, warnings
    | Invalid(errors, _) -> failwith $"expected Loaded, got %A{errors}"

[<Fact>]
let ``without a grpc section the API is off`` () =
    let config, _ = load Map.empty (map 1 []) |> loaded
    Assert.Equal(Config.defaultGrpc, config.Grpc)
    Assert.False config.Grpc.Enabled
    Assert.Equal("127.0.0.1:8788", string config.Grpc.Listen)

[<Fact>]
let ``the Go project's grpc section loads and is effective, web_listen included`` () =
    let config, warnings =
        load
            Map.empty
            (map 1 [
                "grpc", map 2 [ "listen", quoted 3 "127.0.0.1:9090"; "web_listen", quoted 4 "127.0.0.1:9091" ]
            ])
        |> loaded

    Assert.True config.Grpc.Enabled
    Assert.Equal("127.0.0.1:9090", string config.Grpc.Listen)
    Assert.Equal(Some "127.0.0.1:9091", config.Grpc.WebListen |> Option.map string)
    Assert.Empty warnings
    Assert.Contains("web_listen: \"127.0.0.1:9091\"", ConfigRender.toYaml config)

[<Fact>]
let ``a web_listen off loopback without a token is an error at grpc.web_listen`` () =
    let errors =
        load
            Map.empty
            (map 1 [
                "grpc", map 2 [ "listen", quoted 3 "127.0.0.1:9090"; "web_listen", quoted 4 "0.0.0.0:9091" ]
            ])
        |> function
            | ConfigLoad.Invalid(errors, _) -> errors
            | other -> failwith $"expected errors, got %A{other}"

    let error = Assert.Single errors
    Assert.Equal("grpc.web_listen", error.Path)
    Assert.Contains("not a loopback address", error.Message)

[<Fact>]
let ``enabled false turns a present section off; the token is expanded from the environment`` () =
    let config, _ =
        load
            (Map [ "TOKEN", "s3cret" ])
            (map 1 [
                "grpc", map 2 [ "enabled", plain 3 "false"; "auth_token", quoted 4 "${TOKEN}" ]
            ])
        |> loaded

    Assert.False config.Grpc.Enabled
    Assert.Equal(Some "s3cret", config.Grpc.AuthToken)

[<Theory>]
[<InlineData("0.0.0.0:8788")>]
[<InlineData(":8788")>]
[<InlineData("192.168.1.5:8788")>]
[<InlineData("[::]:8788")>]
let ``a non-loopback listener without a token is a located error`` (listen: string) =
    match load Map.empty (map 1 [ "grpc", map 2 [ "listen", quoted 3 listen ] ]) with
    | Invalid(errors, _) ->
        let error = Assert.Single errors
        Assert.Equal("grpc.listen", error.Path)
        Assert.Equal(Some(position 3), error.Position)
        Assert.Contains("auth_token", error.Message)
    | Loaded _ -> failwith "expected an error"

[<Theory>]
[<InlineData("127.0.0.1:0")>]
[<InlineData("localhost:8788")>]
[<InlineData("[::1]:8788")>]
let ``a loopback listener needs no token`` (listen: string) =
    let config, _ =
        load Map.empty (map 1 [ "grpc", map 2 [ "listen", quoted 3 listen ] ]) |> loaded

    Assert.True config.Grpc.Enabled

[<Fact>]
let ``a non-loopback listener with a token, or a disabled one without, is accepted`` () =
    let withToken, _ =
        load
            Map.empty
            (map 1 [
                "grpc", map 2 [ "listen", quoted 3 "0.0.0.0:8788"; "auth_token", quoted 4 "t" ]
            ])
        |> loaded

    let disabled, _ =
        load
            Map.empty
            (map 1 [
                "grpc", map 2 [ "listen", quoted 3 "0.0.0.0:8788"; "enabled", plain 4 "false" ]
            ])
        |> loaded

    Assert.True withToken.Grpc.Enabled
    Assert.False disabled.Grpc.Enabled

[<Fact>]
let ``the token is rendered redacted and a grpc change needs a restart`` () =
    let config = {
        Config.defaults with
            Grpc = {
                Config.defaultGrpc with
                    Enabled = true
                    AuthToken = Some "s3cret"
                    WebListen = None
            }
    }

    let yaml = ConfigRender.toYaml config
    Assert.DoesNotContain("s3cret", yaml)
    Assert.Contains("auth_token: \"<redacted>\"", yaml)

    let changes = ConfigDiff.between Config.defaults config
    Assert.Contains(ConfigChange.RestartRequired "grpc.enabled", changes)
    Assert.Equal(Config.defaults.Grpc, (ConfigDiff.applicable Config.defaults config).Grpc)
    // a file that differs only in its grpc section applies nothing: the reload says a restart is needed
    Assert.Equal(ReloadEffect.RestartRequired, ConfigDiff.effect changes)

// ---------------------------
// Views and the operator switch
// ---------------------------

let private runtime () : RelayRuntime =
    relay RoutingStrategy.Failover [ provider "a" [ key "a1" 10; key "a2" 0 ]; provider "b" [ key "b1" 10 ] ]
    |> Relay.create TimeSpan.Zero

[<Fact>]
let ``providers show keys by id only, with their remaining capacity`` () =
    let views = Management.providers (runtime ()) TimeSpan.Zero
    Assert.Equal<string list>([ "a"; "b" ], views |> List.map _.Name)
    let a = views.Head
    Assert.Equal("closed", a.Circuit)
    Assert.True a.Up
    Assert.Equal<string list>([ KeyId.ofSecret "a1"; KeyId.ofSecret "a2" ], a.Keys |> List.map _.KeyId)
    Assert.Equal(10L, a.Keys.Head.RpmRemaining)
    Assert.Equal(-1L, a.Keys[1].RpmRemaining)
    Assert.DoesNotContain("a1", sprintf "%A" views |> fun s -> s.Replace(KeyId.ofSecret "a1", ""))

[<Fact>]
let ``a disabled provider is never planned, shows as disabled, and enabling brings it back`` () =
    let disabled = Management.setEnabled (runtime ()) "a" false
    Assert.Equal(OperatorChange.Done true, disabled.Value)
    Assert.Equal<RelayEffect list>([ RelayEffect.BreakerDisabled "a" ], disabled.Effects)

    let view = Management.providers disabled.Runtime TimeSpan.Zero |> List.head
    Assert.True view.OperatorDisabled
    Assert.Equal("disabled", view.Circuit)
    Assert.False view.Up

    let _, dispatch = plan disabled.Runtime TimeSpan.Zero (request "m")

    let planned =
        dispatch.Order |> Array.map (fun i -> dispatch.Policy.Providers[i].Name)

    Assert.Equal<string array>([| "b" |], planned)

    // asking again changes nothing
    Assert.Equal(OperatorChange.Done false, (Management.setEnabled disabled.Runtime "a" false).Value)

    let enabled = Management.setEnabled disabled.Runtime "a" true
    Assert.Equal(OperatorChange.Done true, enabled.Value)
    let view = Management.providers enabled.Runtime TimeSpan.Zero |> List.head
    Assert.False view.OperatorDisabled
    Assert.Equal("closed", view.Circuit)

[<Fact>]
let ``a disabled provider is never probed, even when its circuit was open`` () =
    let config = {
        relay RoutingStrategy.Failover [ provider "a" [ key "a1" 10 ] ] with
            Health = {
                Config.defaultHealth with
                    HealthCheck = {
                        Config.defaultHealth.HealthCheck with
                            Enabled = true
                            IntervalMs = 1
                    }
            }
    }

    let runtime = Relay.create TimeSpan.Zero config

    let opened =
        RelayRuntime.withProvider
            0
            {
                runtime.Providers[0] with
                    Breaker = {
                        CircuitBreaker.closed with
                            State = CircuitBreaker.Open(at 30.0)
                            Generation = 1
                    }
            }
            runtime

    Assert.NotEmpty (RelayHealth.probesDue opened (at 1.0)).Value
    let disabled = (Management.setEnabled opened "a" false).Runtime
    Assert.Empty (RelayHealth.probesDue disabled (at 1.0)).Value

[<Fact>]
let ``operator state survives a reload while the provider keeps its name`` () =
    let disabled = (Management.setEnabled (runtime ()) "a" false).Runtime

    // the same providers, b's key changed: a stays disabled
    let next =
        relay RoutingStrategy.Failover [ provider "a" [ key "a1" 10 ]; provider "b" [ key "b2" 5 ] ]

    let reloaded = Relay.reconcile (at 1.0) next disabled
    Assert.True (Management.providers reloaded (at 1.0) |> List.head).OperatorDisabled

    // renamed: a new provider, enabled
    let renamed =
        relay RoutingStrategy.Failover [ provider "a2" [ key "a1" 10 ]; provider "b" [ key "b1" 10 ] ]

    let reloaded = Relay.reconcile (at 1.0) renamed disabled
    Assert.False (Management.providers reloaded (at 1.0) |> List.head).OperatorDisabled

[<Fact>]
let ``an unknown provider, or one disabled in the config, cannot be switched`` () =
    let config =
        relay RoutingStrategy.Failover [
            provider "a" [ key "a1" 10 ]
            {
                provider "off" [ key "o1" 10 ] with
                    Enabled = false
            }
        ]

    let runtime = Relay.create TimeSpan.Zero config
    Assert.Equal(OperatorChange.UnknownProvider, (Management.setEnabled runtime "nope" false).Value)
    Assert.Equal(OperatorChange.DisabledInConfig, (Management.setEnabled runtime "off" true).Value)
    let off = Management.providers runtime TimeSpan.Zero |> List.last
    Assert.Equal("config_disabled", off.Circuit)
    Assert.False off.EnabledInConfig

[<Fact>]
let ``an open circuit says when it changes; the probe result is kept`` () =
    let runtime = runtime ()

    let opened =
        RelayRuntime.withProvider
            0
            {
                runtime.Providers[0] with
                    Breaker = {
                        CircuitBreaker.closed with
                            State = CircuitBreaker.Open(at 30.0)
                            Generation = 1
                    }
            }
            runtime

    let view = Management.providers opened (at 10.0) |> List.head
    Assert.Equal("open", view.Circuit)
    Assert.Equal(ValueSome(at 20.0), view.CircuitChangesIn)
    Assert.Equal(ValueNone, view.ProbeSucceeded)

    let failed = (RelayHealth.probed opened (at 10.0) "a" false).Runtime
    Assert.Equal(ValueSome false, (Management.providers failed (at 10.0) |> List.head).ProbeSucceeded)
    let succeeded = (RelayHealth.probed failed (at 11.0) "a" true).Runtime
    let view = Management.providers succeeded (at 11.0) |> List.head
    Assert.Equal(ValueSome true, view.ProbeSucceeded)
    Assert.Equal("half_open", view.Circuit)

// ---------------------------
// The token
// ---------------------------

[<Fact>]
let ``the token check`` () =
    Assert.True(Management.authorize None null)
    Assert.True(Management.authorize (Some "t0k") "Bearer t0k")
    Assert.True(Management.authorize (Some "t0k") "bearer t0k")
    Assert.False(Management.authorize (Some "t0k") null)
    Assert.False(Management.authorize (Some "t0k") "")
    Assert.False(Management.authorize (Some "t0k") "t0k")
    Assert.False(Management.authorize (Some "t0k") "Bearer t0")
    Assert.False(Management.authorize (Some "t0k") "Bearer t0kk")

// ---------------------------
// Statistics
// ---------------------------

[<Theory>]
[<InlineData(200, "ok", "")>]
[<InlineData(429, "upstream_429", "rate_limit")>]
[<InlineData(529, "upstream_529", "overloaded")>]
[<InlineData(504, "timeout_error", "timeout")>]
[<InlineData(401, "refused", "auth")>]
[<InlineData(502, "upstream_502", "server")>]
[<InlineData(400, "upstream_400", "client")>]
[<InlineData(200, "client_aborted", "client_aborted")>]
[<InlineData(200, "stream_error", "server")>]
let ``error classes`` (status: int, result: string, expected: string) =
    Assert.Equal(expected, RequestStats.errorClass status result)

[<Fact>]
let ``a window summary per provider`` () =
    let sample (at': float) (provider: string) (status: int) (latency: float) = {
        At = at at'
        Provider = provider
        Status = status
        ErrorClass = RequestStats.errorClass status (if status = 200 then "ok" else "x")
        LatencyMs = latency
        TtfbMs = latency / 2.0
        InputTokens = 10L
        OutputTokens = 5L
        CostUsd = 0.5m
        Local = false
        FailedAttempts = []
    }

    let samples = [
        sample 0.5 "a" 200 100.0 // older than the window at 61 s: forgotten
        sample 2.0 "a" 200 10.0
        sample 3.0 "a" 429 20.0
        sample 4.0 "b" 200 30.0
        sample 61.0 "a" 200 40.0
    ]

    let summary = RequestStats.summarize (at 61.0) (at 60.0) (at 61.0) samples
    Assert.Equal<string list>([ "a"; "b" ], summary |> List.map _.Provider)
    let a = summary.Head
    Assert.Equal(3, a.Requests)
    Assert.Equal(3.0 / 60.0, a.RequestsPerSecond, 9)
    Assert.Equal(1, a.Errors)
    Assert.Equal<(string * float) list>([ "rate_limit", 1.0 / 60.0 ], a.ErrorsPerSecond)
    Assert.Equal(20.0, a.Latency.P50)
    Assert.Equal(40.0, a.Latency.P99)
    Assert.Equal(10.0, a.Ttfb.P50)
    Assert.Equal(30L, a.InputTokens)
    Assert.Equal(1.5m, a.CostUsd)

    // while the relay has run for less than the window, rates are over its uptime
    let early = RequestStats.summarize (at 4.0) (at 60.0) (at 4.0) samples
    // a: 0.5 s, 2 s and 3 s are in; 61 s is still to come
    Assert.Equal(3.0 / 4.0, early.Head.RequestsPerSecond, 9)

[<Fact>]
let ``a failed attempt caught by a failover counts against the provider that failed it, not the one that answered`` () =
    let sample (provider: string) (failedOver: string list) (local: bool) = {
        At = at 1.0
        Provider = provider
        Status = if local then 400 else 200
        ErrorClass = if local then "client" else ""
        LatencyMs = 10.0
        TtfbMs = 5.0
        InputTokens = 1L
        OutputTokens = 1L
        CostUsd = 0m
        Local = local
        FailedAttempts = failedOver
    }

    // a fails twice and b answers; a fails once more and b answers; the relay answers one itself (after a failed)
    let samples = [
        sample "b" [ "a"; "a" ] false
        sample "b" [ "a" ] false
        sample "b" [ "a" ] true
    ]

    let summary = RequestStats.summarize (at 2.0) (at 60.0) (at 2.0) samples
    Assert.Equal<string list>([ "a"; "b" ], summary |> List.map _.Provider)
    let a, b = summary[0], summary[1]

    // a answered nothing, but every one of its 4 attempts failed: an error rate of 100 %, not 0
    Assert.Equal(0, a.Requests)
    Assert.Equal(4, a.FailedAttempts)
    Assert.Equal(4, a.Attempts)
    Assert.Equal(4, a.Errors)
    Assert.Equal<(string * float) list>([ RequestStats.failedOverClass, 4.0 / 2.0 ], a.ErrorsPerSecond)

    // b answered 2 (the relay's own answer is not b's traffic) without an error
    Assert.Equal(2, b.Requests)
    Assert.Equal(0, b.Errors)
    Assert.Equal(2, b.Attempts)

[<Fact>]
let ``enabling a provider restores its breaker's own state: an open circuit stays open until its break ends`` () =
    let runtime = runtime ()

    let opened =
        RelayRuntime.withProvider
            0
            {
                runtime.Providers[0] with
                    Breaker = {
                        CircuitBreaker.closed with
                            State = CircuitBreaker.Open(at 30.0)
                            Generation = 1
                    }
            }
            runtime

    let disabled = Management.setEnabled opened "a" false
    Assert.Equal("disabled", (Management.providers disabled.Runtime (at 10.0) |> List.head).Circuit)

    let enabled = Management.setEnabled disabled.Runtime "a" true
    Assert.Equal<RelayEffect list>([ RelayEffect.BreakerEnabled "a" ], enabled.Effects)
    Assert.Equal(opened.Providers[0].Breaker, enabled.Runtime.Providers[0].Breaker)
    let view = Management.providers enabled.Runtime (at 10.0) |> List.head
    Assert.Equal("open", view.Circuit)
    Assert.Equal(ValueSome(at 20.0), view.CircuitChangesIn)
    Assert.False view.Up
    // after the break: half-open, its next request a probe
    Assert.Equal("half_open", (Management.providers enabled.Runtime (at 31.0) |> List.head).Circuit)

let private newKey (secret: string) : NewKey = {
    Secret = secret
    RpmLimit = 5
    ItpmLimit = 0
    OtpmLimit = 0
    Priority = 1
    Weight = 2
}

[<Fact>]
let ``a key added to the running config joins the pool on reconcile; the others keep their state`` () =
    let runtime = runtime ()
    // a1 has taken a request: its bucket is not full
    let used =
        RelayRuntime.withProvider
            0
            {
                runtime.Providers[0] with
                    Keys =
                        runtime.Providers[0].Keys
                        |> Array.mapi (fun i k -> if i = 0 then KeyPool.take TimeSpan.Zero 0L k else k)
            }
            runtime

    match KeyEdit.add used.Policy.Config "a" (newKey "a3") with
    | KeyEditResult.Changed(config, id) ->
        Assert.Equal(KeyId.ofSecret "a3", id)
        let next = Relay.reconcile (at 1.0) config used
        Assert.Equal(used.Policy.Version + 1L, next.Policy.Version)
        let keys = Management.keys next (at 1.0) "a"
        Assert.Equal<string list>([ KeyId.ofSecret "a1"; KeyId.ofSecret "a2"; id ], keys |> List.map _.KeyId)
        Assert.Equal(used.Providers[0].Keys[0], next.Providers[0].Keys[0])
        let added = List.last keys
        Assert.Equal(5, added.Limits.Rpm)
        Assert.Equal(1, added.Priority)
        Assert.Equal(2, added.Weight)
        // added again: already there, nothing to apply
        Assert.Equal(KeyEditResult.AlreadyThere id, KeyEdit.add config "a" (newKey "a3"))
        // removed: the pool is the old one again
        match KeyEdit.remove config "a" id with
        | KeyEditResult.Changed(removed, _) ->
            Assert.Equal<KeyConfig list>(used.Policy.Config.Providers.Head.Keys, removed.Providers.Head.Keys)
        | other -> failwith $"%A{other}"
    | other -> failwith $"%A{other}"

[<Fact>]
let ``key edits refuse an unknown or config-disabled provider, an unknown id, the last key and invalid values`` () =
    let config =
        relay RoutingStrategy.Failover [
            provider "a" [ key "a1" 10 ]
            {
                provider "off" [ key "o1" 10 ] with
                    Enabled = false
            }
        ]

    Assert.Equal(KeyEditResult.UnknownProvider, KeyEdit.add config "nope" (newKey "x"))
    Assert.Equal(KeyEditResult.DisabledInConfig, KeyEdit.add config "off" (newKey "x"))
    Assert.Equal(KeyEditResult.NoSuchKey, KeyEdit.remove config "a" "00000000")
    Assert.Equal(KeyEditResult.UnknownProvider, KeyEdit.remove config "nope" (KeyId.ofSecret "a1"))

    match KeyEdit.remove config "a" (KeyId.ofSecret "a1") with
    | KeyEditResult.Invalid message -> Assert.Contains("last key", message)
    | other -> failwith $"%A{other}"

    for bad, field in
        [
            newKey "", "key:"
            newKey "sk with space", "key:"
            { newKey "sk-x" with RpmLimit = -1 }, "rpm_limit:"
            { newKey "sk-x" with ItpmLimit = -1 }, "itpm_limit:"
            { newKey "sk-x" with OtpmLimit = -1 }, "otpm_limit:"
            { newKey "sk-x" with Weight = -1 }, "weight:"
        ] do
        match KeyEdit.add config "a" bad with
        | KeyEditResult.Invalid message ->
            Assert.StartsWith(field, message)
            Assert.DoesNotContain("sk with space", message)
        | other -> failwith $"%A{other}"

[<Fact>]
let ``models per provider come from the config, in config order, with the mapping`` () =
    let config =
        relay RoutingStrategy.Failover [
            {
                provider "a" [ key "a1" 10 ] with
                    Models = [ "m1"; "m2" ]
                    ModelMapping = Map [ "claude-sonnet-4-6", "m1" ]
            }
            {
                provider "off" [] with
                    Enabled = false
            }
        ]

    let models = ProviderModels.ofConfig config
    Assert.Equal<string list>([ "a"; "off" ], models |> List.map _.Provider)
    Assert.Equal<string list>([ "m1"; "m2" ], models.Head.Models)
    Assert.Equal<(string * string) list>([ "claude-sonnet-4-6", "m1" ], models.Head.Mapping)
    Assert.False (List.last models).EnabledInConfig

[<Fact>]
let ``a key edit, unlike a reload, leaves a revoked key revoked`` () =
    let runtime = runtime ()

    let revoked =
        RelayRuntime.withProvider
            0
            {
                runtime.Providers[0] with
                    Keys =
                        runtime.Providers[0].Keys
                        |> Array.mapi (fun i k -> if i = 1 then { k with Revoked = true } else k)
            }
            runtime

    match KeyEdit.add revoked.Policy.Config "a" (newKey "a3") with
    | KeyEditResult.Changed(config, _) ->
        let prices = ProviderPrices.compile config.Providers
        let edited = KeyEdit.reconcile (at 1.0) prices config revoked
        Assert.Equal<bool list>([ false; true; false ], edited.Providers[0].Keys |> Array.map _.Revoked |> List.ofArray)
        let reloaded = Relay.reconcile (at 1.0) config revoked

        Assert.Equal<bool list>(
            [ false; false; false ],
            reloaded.Providers[0].Keys |> Array.map _.Revoked |> List.ofArray
        )
    | other -> failwith $"%A{other}"
