module CcRelay.Core.Tests.EdgeConfigTests

open System
open CcRelay.Core
open Xunit

/// Decodes a TOML document (real lines and columns) with no environment.
let private load (toml: string) : ConfigLoad =
    match Toml.parse toml with
    | Ok document -> ConfigDecode.decode (fun _ -> None) document
    | Error e -> failwith $"%A{e}"

let private loaded (result: ConfigLoad) : RelayConfig * ConfigIssue list =
    match result with
    | Loaded(config, warnings) -> config, warnings
    | Invalid(errors, _) -> failwith (errors |> List.map string |> String.concat "\n")

let private errors (result: ConfigLoad) : ConfigIssue list =
    match result with
    | Invalid(errors, _) -> errors
    | Loaded _ -> failwith "expected errors"

[<Fact>]
let ``Edge defaults: no TLS, a queue as long as max_concurrent, limits for a relay`` () =
    let config, warnings = load "" |> loaded
    Assert.Empty warnings
    Assert.Equal(Config.defaultEdge, config.Edge)
    Assert.Equal(10_000, config.Edge.Limits.RequestHeadersTimeoutMs)

[<Fact>]
let ``Edge server.tls keeps each file with its key and line`` () =
    let config, _ =
        load
            """
[server.tls]
cert_file = "/etc/relay/tls.crt"
key_file = "/etc/relay/tls.key"
min_version = "1.3"
listen = "127.0.0.1:8443"
"""
        |> loaded

    let tls = config.Edge.Tls.Value
    Assert.Equal("/etc/relay/tls.crt", tls.CertFile.Path)
    Assert.Equal("server.tls.cert_file", tls.CertFile.Key)
    Assert.Equal(Some 3, tls.CertFile.At |> Option.map _.Line)
    Assert.Equal("server.tls.key_file", tls.KeyFile.Key)
    Assert.Equal(TlsVersion.Tls13, tls.MinVersion)
    Assert.Equal(Some { Host = "127.0.0.1"; Port = 8443 }, tls.Listen)

[<Fact>]
let ``Edge server.tls without key_file or with TLS 1.1 is an error at its key`` () =
    let found =
        load
            """
[server.tls]
cert_file = "/etc/relay/tls.crt"
min_version = "1.1"
"""
        |> errors

    Assert.Contains(found, fun e -> e.Path = "server.tls.key_file" && e.Message = "is required")
    Assert.Contains(found, fun e -> e.Path = "server.tls.min_version" && e.Message.Contains "allowed: 1.2, 1.3")

[<Fact>]
let ``Edge queue, limits and security section decode`` () =
    let config, warnings =
        load
            """
[server]
max_concurrent = 8
queue_size = 2
queue_timeout_ms = 1500

[server.limits]
request_headers_timeout_ms = 2000
min_request_body_bytes_per_second = 0
max_connections = 5000

[security]
upstream_hosts = [".anthropic.com", "127.0.0.1"]
upstream_min_tls = "1.3"
status_token = "st"
audit_log = { path = "/var/log/audit.jsonl", auth_failures_per_minute = 3 }
"""
        |> loaded

    Assert.Empty warnings
    Assert.Equal(Some 2, config.Edge.Queue.Size)
    Assert.Equal(1500, config.Edge.Queue.TimeoutMs)
    Assert.Equal(2000, config.Edge.Limits.RequestHeadersTimeoutMs)
    Assert.Equal(0, config.Edge.Limits.MinRequestBodyBytesPerSecond)
    Assert.Equal(5000L, config.Edge.Limits.MaxConnections)

    Assert.Equal<HostPattern list>(
        [ HostPattern.Suffix "anthropic.com"; HostPattern.Exact "127.0.0.1" ],
        config.Edge.Security.UpstreamHosts
    )

    Assert.Equal(TlsVersion.Tls13, config.Edge.Security.UpstreamMinTls)
    Assert.Equal(Some "st", config.Edge.Security.StatusToken)

    Assert.Equal(
        Some {
            Path = "/var/log/audit.jsonl"
            AuthFailuresPerMinute = 3
        },
        config.Edge.Security.Audit
    )

    let limits = Admission.limits config
    Assert.Equal(8, limits.MaxConcurrent)
    Assert.Equal(2, limits.QueueSize)
    Assert.Equal(2, Admission.retryAfterSeconds limits)

[<Fact>]
let ``Edge upstream_hosts: a provider outside the list is an error at its base_url`` () =
    let found =
        load
            """
[security]
upstream_hosts = [".anthropic.com"]

[[providers]]
name = "main"
type = "anthropic"

[[providers]]
name = "elsewhere"
type = "zai"
base_url = "https://api.example.net/anthropic"
keys = [{ key = "k" }]
"""
        |> errors

    let error = Assert.Single found
    Assert.Equal("providers[1].base_url", error.Path)
    Assert.Equal(Some 12, error.Position |> Option.map _.Line)
    Assert.Contains("\"api.example.net\" is not in security.upstream_hosts (.anthropic.com)", error.Message)

[<Fact>]
let ``Edge upstream_hosts: a provider inside the list loads, a malformed entry is an error`` () =
    let config, _ =
        load
            """
[security]
upstream_hosts = [".anthropic.com"]

[[providers]]
name = "main"
type = "anthropic"
"""
        |> loaded

    Assert.Equal("main", config.Providers.Head.Name)

    let error =
        load
            """
[security]
upstream_hosts = ["https://api.anthropic.com/"]
"""
        |> errors
        |> Assert.Single

    Assert.Equal("security.upstream_hosts[0]", error.Path)
    Assert.Contains("is a URL", error.Message)

[<Fact>]
let ``Edge allow_bearer without bearer_secret needs allow_any_bearer`` () =
    let error =
        load
            """
[server.auth]
allow_bearer = true
"""
        |> errors
        |> Assert.Single

    Assert.Equal("server.auth.allow_bearer", error.Path)
    Assert.Equal(Some 3, error.Position |> Option.map _.Line)
    Assert.Contains("allow_any_bearer: true", error.Message)

    let config, warnings =
        load
            """
[server.auth]
allow_any_bearer = true
"""
        |> loaded

    Assert.Empty warnings
    Assert.True config.Server.Auth.AllowBearer
    Assert.Equal(None, config.Server.Auth.BearerSecret)

    let withSecret, _ =
        load
            """
[server.auth]
allow_bearer = true
bearer_secret = "s"
"""
        |> loaded

    Assert.Equal(Some "s", withSecret.Server.Auth.BearerSecret)

[<Fact>]
let ``Edge allow_subscription without bearer_secret still loads, with a warning (the Go example uses it)`` () =
    let config, warnings =
        load
            """
[server.auth]
allow_subscription = true
"""
        |> loaded

    Assert.True config.Server.Auth.AllowBearer
    let warning = Assert.Single warnings
    Assert.Equal("server.auth.allow_subscription", warning.Path)

[<Fact>]
let ``Edge changes: limits and TLS need a restart, the queue and the token do not`` () =
    let running = Config.defaults

    let next = {
        running with
            Edge = {
                running.Edge with
                    Queue = { Size = Some 3; TimeoutMs = 10 }
                    Limits = {
                        running.Edge.Limits with
                            RequestHeadersTimeoutMs = 1
                    }
                    Security = {
                        running.Edge.Security with
                            StatusToken = Some "t"
                    }
            }
    }

    let changes = ConfigDiff.between running next
    Assert.Contains(ConfigChange.RestartRequired "server.limits", changes)
    Assert.Contains(ConfigChange.SettingChanged "server.queue_size", changes)
    Assert.Contains(ConfigChange.SettingChanged "security.status_token", changes)
    let applied = ConfigDiff.applicable running next
    Assert.Equal(running.Edge.Limits, applied.Edge.Limits)
    Assert.Equal(Some "t", applied.Edge.Security.StatusToken)
