/// `metrics`, `otel`, `logging.debug_options` and `providers[].pricing`.
module CcRelay.Core.Tests.ConfigObservabilityTests

open System
open CcRelay.Core
open Xunit

// ---------------------------
// The node-tree builder of ConfigTests: keys at column 1, values at column 10.
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

let private load (document: ConfigNode) : ConfigLoad =
    ConfigDecode.decode (fun _ -> None) document

let private loaded (result: ConfigLoad) : RelayConfig * ConfigIssue list =
    match result with
    | Loaded(config, warnings) -> config, warnings
    | Invalid(errors, _) ->
        failwith $"expected Loaded, got errors:\n%s{errors |> List.map string |> String.concat Environment.NewLine}"

let private invalid (result: ConfigLoad) : ConfigIssue list =
    match result with
    | Invalid(errors, _) -> errors
    | Loaded(config, _) -> failwith $"expected Invalid, got %A{config}"

let private singleError (path: string) (line: int) (result: ConfigLoad) : ConfigIssue =
    let error = Assert.Single(invalid result)
    Assert.Equal(path, error.Path)
    Assert.Equal(Some line, error.Position |> Option.map _.Line)
    error

let private section (name: string) (entries: (string * ConfigNode) list) : ConfigNode = map 1 [ name, map 2 entries ]

/// One `anthropic` provider with a `pricing` mapping starting at line 6.
let private pricing (entries: (string * ConfigNode) list) : ConfigNode =
    map 1 [
        "providers",
        seq 2 [
            map 3 [ "name", plain 3 "a"; "type", plain 4 "anthropic"; "pricing", map 6 entries ]
        ]
    ]

let private price (line: int) (entries: (string * string) list) : ConfigNode =
    map line (entries |> List.mapi (fun i (key, value) -> key, plain (line + i) value))

// ---------------------------
// Defaults
// ---------------------------

[<Fact>]
let ``without the sections, metrics are on at /metrics and otel is off`` () =
    let config, _ = load ConfigNode.empty |> loaded

    Assert.Equal(
        {
            Enabled = true
            Path = "/metrics"
            Listen = None
            MaxModelLabels = 100
        },
        config.Metrics
    )

    Assert.Equal(
        {
            Enabled = false
            Endpoint = None
            Protocol = OtlpProtocol.Grpc
            ServiceName = "cc-relay"
            PropagateTraceContext = false
        },
        config.Otel
    )

    Assert.Equal(
        {
            LogRequestBody = false
            LogRequestHeaders = false
            LogResponseHeaders = false
            LogResponseBody = false
            MaxBodyLogSize = 1000
        },
        config.Logging.DebugOptions
    )

    Assert.Empty(config.Providers.Head.Pricing)

// ---------------------------
// metrics
// ---------------------------

[<Fact>]
let ``metrics keys are read`` () =
    let config, warnings =
        load (
            section "metrics" [
                "enabled", plain 3 "false"
                "path", quoted 4 "/prom"
                "listen", quoted 5 "127.0.0.1:9100"
                "max_model_labels", plain 6 "20"
            ]
        )
        |> loaded

    Assert.Empty warnings

    Assert.Equal(
        {
            Enabled = false
            Path = "/prom"
            Listen = Some { Host = "127.0.0.1"; Port = 9100 }
            MaxModelLabels = 20
        },
        config.Metrics
    )

[<Fact>]
let ``the Go keys prometheus_endpoint and prometheus_listen are read as path and listen`` () =
    let config, warnings =
        load (
            section "metrics" [
                "enabled", plain 3 "true"
                "prometheus_endpoint", quoted 4 "/metrics"
                "prometheus_listen", quoted 5 "127.0.0.1:9100"
            ]
        )
        |> loaded

    Assert.Empty warnings
    Assert.Equal("/metrics", config.Metrics.Path)
    Assert.Equal(Some { Host = "127.0.0.1"; Port = 9100 }, config.Metrics.Listen)

[<Fact>]
let ``when both a key and its Go alias are set, the alias is ignored with a warning`` () =
    let config, warnings =
        load (section "metrics" [ "path", quoted 3 "/a"; "prometheus_endpoint", quoted 4 "/b" ])
        |> loaded

    Assert.Equal("/a", config.Metrics.Path)
    let warning = Assert.Single warnings
    Assert.Equal("metrics.prometheus_endpoint", warning.Path)
    Assert.Contains("metrics.path is set", warning.Message)

[<Theory>]
[<InlineData("metrics")>]
[<InlineData("/a b")>]
[<InlineData("/m?x=1")>]
[<InlineData("/m#x")>]
[<InlineData("/")>]
[<InlineData("/health")>]
[<InlineData("/v1/metrics")>]
[<InlineData("/v1")>]
[<InlineData("//metrics")>]
let ``a metrics path that is not a free URL path is an error`` (path: string) =
    load (section "metrics" [ "path", quoted 3 path ])
    |> singleError "metrics.path" 3
    |> ignore

[<Theory>]
[<InlineData("listen", "nowhere")>]
[<InlineData("max_model_labels", "0")>]
[<InlineData("max_model_labels", "10001")>]
[<InlineData("enabled", "yes")>]
let ``bad metrics values are errors at their path`` (key: string, value: string) =
    load (section "metrics" [ key, plain 3 value ])
    |> singleError $"metrics.%s{key}" 3
    |> ignore

// ---------------------------
// otel
// ---------------------------

[<Fact>]
let ``otel keys are read without warnings`` () =
    let config, warnings =
        load (
            section "otel" [
                "enabled", plain 3 "true"
                "endpoint", quoted 4 "http://localhost:4318"
                "protocol", quoted 5 "http/protobuf"
                "service_name", quoted 6 "relay-a"
                "propagate_trace_context", plain 7 "true"
            ]
        )
        |> loaded

    Assert.Equal(
        {
            Enabled = true
            Endpoint = Some(Uri "http://localhost:4318")
            Protocol = OtlpProtocol.HttpProtobuf
            ServiceName = "relay-a"
            PropagateTraceContext = true
        },
        config.Otel
    )

    Assert.Empty warnings

[<Fact>]
let ``otel protocol grpc is read`` () =
    let config, _ = load (section "otel" [ "protocol", plain 3 "grpc" ]) |> loaded
    Assert.Equal(OtlpProtocol.Grpc, config.Otel.Protocol)

[<Theory>]
[<InlineData("endpoint", "localhost:4317")>]
[<InlineData("endpoint", "grpc://collector:4317")>]
[<InlineData("endpoint", "http://user:pw@collector:4317")>]
[<InlineData("protocol", "http")>]
[<InlineData("service_name", "\"\"")>]
[<InlineData("propagate_trace_context", "1")>]
let ``bad otel values are errors at their path`` (key: string, value: string) =
    let node = if value = "\"\"" then quoted 3 "" else plain 3 value

    let error = load (section "otel" [ key, node ]) |> singleError $"otel.%s{key}" 3
    Assert.DoesNotContain("pw", error.Message)

// ---------------------------
// logging.debug_options
// ---------------------------

[<Fact>]
let ``debug options are stored; max_body_log_size 0 means the default`` () =
    let read (size: string) =
        let config, _ =
            load (
                section "logging" [
                    "debug_options",
                    map 3 [
                        "log_request_body", plain 4 "true"
                        "log_request_headers", plain 5 "true"
                        "log_response_headers", plain 6 "true"
                        "log_response_body", plain 7 "true"
                        "log_tls_metrics", plain 8 "true"
                        "max_body_log_size", plain 9 size
                    ]
                ]
            )
            |> loaded

        config.Logging.DebugOptions

    Assert.Equal(
        {
            LogRequestBody = true
            LogRequestHeaders = true
            LogResponseHeaders = true
            LogResponseBody = true
            MaxBodyLogSize = 4096
        },
        read "4096"
    )

    Assert.Equal(1000, (read "0").MaxBodyLogSize)

// ---------------------------
// providers[].pricing
// ---------------------------

[<Fact>]
let ``pricing rules are read in file order, with cache prices defaulting to the input price`` () =
    let config, warnings =
        load (
            pricing [
                "claude-sonnet-4*",
                price 7 [ "input", "3"; "output", "15"; "cache_read", "0.30"; "cache_write", "3.75" ]
                "glm-5", price 11 [ "input", ".5"; "output", "2e0" ]
                "*", price 13 [ "input", "0"; "output", "0" ]
            ]
        )
        |> loaded

    Assert.Empty warnings

    let expected: PriceRule list = [
        {
            Pattern = "claude-sonnet-4*"
            Price = {
                Input = 3m
                Output = 15m
                CacheRead = 0.30m
                CacheWrite = 3.75m
            }
        }
        {
            Pattern = "glm-5"
            Price = {
                Input = 0.5m
                Output = 2m
                CacheRead = 0.5m
                CacheWrite = 0.5m
            }
        }
        {
            Pattern = "*"
            Price = {
                Input = 0m
                Output = 0m
                CacheRead = 0m
                CacheWrite = 0m
            }
        }
    ]

    Assert.Equal<PriceRule list>(expected, config.Providers.Head.Pricing)

[<Fact>]
let ``configured prices reach the cost model`` () =
    let config, _ =
        load (pricing [ "glm-5", price 7 [ "input", "1"; "output", "2" ] ]) |> loaded

    let table = Pricing.withOverrides config.Providers.Head.Pricing Pricing.builtIn

    let usage = {
        InputTokens = 1_000_000L
        OutputTokens = 1_000_000L
        CacheReadTokens = 0L
        CacheWriteTokens = 0L
    }

    Assert.Equal(Some 3m, Pricing.cost table "GLM-5" usage)
    Assert.Equal(Some 30m, Pricing.cost table "claude-opus-4-6" usage)

[<Fact>]
let ``integer and float scalars from TOML are prices too`` () =
    let config, _ =
        load (
            pricing [
                "m",
                map 7 [
                    "input", Scalar(ScalarValue.Integer 2L, at 7)
                    "output", Scalar(ScalarValue.Float 0.25, at 8)
                ]
            ]
        )
        |> loaded

    let rule = Assert.Single config.Providers.Head.Pricing
    Assert.Equal(2m, rule.Price.Input)
    Assert.Equal(0.25m, rule.Price.Output)

[<Fact>]
let ``input and output prices are required`` () =
    let errors = load (pricing [ "m", price 7 [ "cache_read", "1" ] ]) |> invalid

    Assert.Equal<string list>(
        [ "providers[0].pricing.m.input"; "providers[0].pricing.m.output" ],
        errors |> List.map _.Path
    )

[<Theory>]
[<InlineData("-1")>]
[<InlineData("100001")>]
[<InlineData("cheap")>]
[<InlineData(".inf")>]
[<InlineData(".nan")>]
let ``a price that is not a number from 0 to 100000 is an error`` (value: string) =
    load (pricing [ "m", price 7 [ "input", value; "output", "1" ] ])
    |> singleError "providers[0].pricing.m.input" 7
    |> ignore

[<Fact>]
let ``a quoted price is an error that says to remove the quotes`` () =
    let error =
        load (pricing [ "m", map 7 [ "input", quoted 7 "3"; "output", plain 8 "1" ] ])
        |> singleError "providers[0].pricing.m.input" 7

    Assert.Contains("remove the quotes", error.Message)

[<Theory>]
[<InlineData("claude-*-4")>]
[<InlineData("*claude")>]
[<InlineData("a**")>]
[<InlineData(" ")>]
let ``a star anywhere but at the end, or an empty pattern, is an error`` (pattern: string) =
    load (pricing [ pattern, price 7 [ "input", "1"; "output", "1" ] ])
    |> singleError $"providers[0].pricing.%s{pattern}" 7
    |> ignore

[<Fact>]
let ``an unknown price key warns with a suggestion`` () =
    let _, warnings =
        load (pricing [ "m", price 7 [ "input", "1"; "output", "1"; "cache_reads", "1" ] ])
        |> loaded

    Assert.Contains("did you mean \"cache_read\"", (Assert.Single warnings).Message)
