module CcRelay.Core.Tests.ConfigRenderTests

open System
open Microsoft.FSharp.Reflection
open CcRelay.Core
open Xunit

let private key (secret: string) : KeyConfig = {
    Key = secret
    RpmLimit = 60
    ItpmLimit = 0
    OtpmLimit = 0
    TpmLimit = 100_000
    Priority = 1
    Weight = 2
    Aws = None
}

/// A config holding every kind of secret, with values no default would produce.
let private withSecrets: RelayConfig = {
    Config.defaults with
        Server = {
            Config.defaultServer with
                Auth = {
                    ApiKey = Some "relay-api-key-123"
                    AllowBearer = true
                    BearerSecret = Some "relay-bearer-456"
                }
        }
        Providers = [
            {
                Config.defaultProvider "zai" ProviderType.Zai (Uri "https://api.z.ai/api/anthropic") with
                    Keys = [ key "zai-key-aaa"; key "zai-key-bbb" ]
                    ModelMapping = Map.ofList [ "claude-sonnet-4-6", "GLM-4.7" ]
            }
            {
                Config.defaultProvider
                    "bedrock"
                    ProviderType.Bedrock
                    (Uri "https://bedrock-runtime.us-east-1.amazonaws.com") with
                    Keys = [
                        {
                            key "aws:AKIDKEYSET:aws-key-secret-fff" with
                                Aws = Some(AwsCredentialSource.Static("AKIDKEYSET", "aws-key-secret-fff", None))
                        }
                        {
                            key "aws-profile:team-b" with
                                Aws = Some(AwsCredentialSource.Profile "team-b")
                        }
                    ]
                    Cloud =
                        CloudSettings.Bedrock {
                            Region = "us-east-1"
                            Credentials =
                                AwsCredentialSource.Static("AKIDEXAMPLE", "aws-secret-ccc", Some "aws-session-ddd")
                            Api = BedrockApi.Invoke
                            Betas = [ "interleaved-thinking-2025-05-14" ]
                        }
            }
            {
                Config.defaultProvider
                    "foundry"
                    ProviderType.Foundry
                    (Uri "https://res.services.ai.azure.com/anthropic") with
                    Cloud =
                        CloudSettings.Foundry {
                            Resource = Some "res"
                            Entra = EntraCredential.ClientSecret("tenant", "client", "entra-secret-eee")
                            AuthorityHost = Some "https://login.microsoftonline.us"
                        }
            }
        ]
        Edge = {
            Config.defaultEdge with
                Tls =
                    Some {
                        CertFile = {
                            Path = "/etc/tls.crt"
                            Key = "server.tls.cert_file"
                            At = None
                        }
                        KeyFile = {
                            Path = "/etc/tls.key"
                            Key = "server.tls.key_file"
                            At = None
                        }
                        MinVersion = TlsVersion.Tls13
                        Listen = Some { Host = "0.0.0.0"; Port = 8443 }
                    }
                Security = {
                    Config.defaultEdge.Security with
                        UpstreamHosts = [ HostPattern.Suffix "anthropic.com" ]
                        StatusToken = Some "status-token-ggg"
                        Audit =
                            Some {
                                Path = "/var/log/audit.jsonl"
                                AuthFailuresPerMinute = 10
                            }
                }
        }
}

[<Fact>]
let ``the built-in default renders every key with its default`` () =
    let expected =
        """server:
  listen: "127.0.0.1:8787"
  auth:
    api_key: null
    allow_bearer: false
    bearer_secret: null
  timeout_ms: 600000
  first_byte_timeout_ms: 120000
  shutdown_timeout_ms: 30000
  stream_keepalive: events
  stream_keepalive_ms: 15000
  max_concurrent: 0
  max_body_bytes: 33554432
  enable_http2: false
  tls: null
  queue_size: null
  queue_timeout_ms: 30000
  limits:
    request_headers_timeout_ms: 10000
    keep_alive_timeout_ms: 130000
    min_request_body_bytes_per_second: 240
    min_response_bytes_per_second: 240
    min_rate_grace_ms: 5000
    max_connections: 0
providers:
  - name: "anthropic"
    type: anthropic
    enabled: true
    base_url: "https://api.anthropic.com"
    auth_header: x-api-key
    priority: 0
    weight: 1
    family: "anthropic"
    pooling:
      strategy: least_loaded
    keys: []
    model_mapping: {}
    models:
      - "claude-opus-4-6"
      - "claude-sonnet-4-6"
      - "claude-haiku-4-5"
    pricing: {}
logging:
  level: info
  format: text
  output: "stdout"
  debug_options:
    log_request_body: false
    log_request_headers: false
    log_response_headers: false
    log_response_body: false
    max_body_log_size: 1000
routing:
  strategy: failover
  max_attempts: 5
  failover_timeout: 5000
  hedge_after_ms: 0
  debug: false
  model_mapping: {}
  default_provider: null
  stages: {}
  long_context_threshold: 60000
  model_switching: true
  list_switch_models: false
health:
  health_check:
    enabled: true
    interval_ms: 10000
    probe: models
  circuit_breaker:
    failure_threshold: 5
    window_ms: 10000
    open_duration_ms: 30000
    half_open_probes: 3
metrics:
  enabled: true
  path: "/metrics"
  listen: null
  max_model_labels: 100
otel:
  enabled: false
  endpoint: null
  protocol: grpc
  service_name: "cc-relay"
  propagate_trace_context: false
grpc:
  enabled: false
  listen: "127.0.0.1:8788"
  auth_token: null
security:
  upstream_hosts: []
  upstream_ca_file: null
  upstream_min_tls: "1.2"
  status_token: null
  audit_log: null
clients: []
ledger:
  enabled: true
  path: null
  flush_interval_ms: 1000
  queue_capacity: 10000
  time_zone: "UTC"
pipelines: {}
plugins: {}
state:
  postgres: null
  flush_interval_ms: 250
"""

    Assert.Equal(expected.ReplaceLineEndings "\n", ConfigRender.toYaml Config.defaults)

[<Fact>]
let ``no secret appears; keys are shown by key id and the others as redacted`` () =
    let text = ConfigRender.toYaml withSecrets

    for secret in
        [
            "relay-api-key-123"
            "relay-bearer-456"
            "zai-key-aaa"
            "zai-key-bbb"
            "AKIDEXAMPLE"
            "aws-secret-ccc"
            "aws-session-ddd"
            "entra-secret-eee"
            "AKIDKEYSET"
            "aws-key-secret-fff"
            "status-token-ggg"
        ] do
        Assert.DoesNotContain(secret, text)

    let setKeyId = KeyId.ofSecret "AKIDKEYSET"
    Assert.Contains($"        aws_access_key_id: \"%s{setKeyId}\"\n", text)
    Assert.Contains("        aws_secret_access_key: \"<redacted>\"\n", text)
    Assert.Contains("        aws_profile: \"team-b\"\n", text)

    let accessKeyId = KeyId.ofSecret "AKIDEXAMPLE"
    Assert.Contains($"    aws_access_key_id: \"%s{accessKeyId}\"\n", text)
    Assert.Contains("    aws_secret_access_key: \"<redacted>\"\n", text)
    Assert.Contains("    azure_client_secret: \"<redacted>\"\n", text)
    Assert.Contains("    azure_authority_host: \"https://login.microsoftonline.us\"\n", text)

    for secret in [ "zai-key-aaa"; "zai-key-bbb" ] do
        Assert.Contains($"- key_id: \"%s{KeyId.ofSecret secret}\"\n", text)

    Assert.Contains("    api_key: \"<redacted>\"\n", text)
    Assert.Contains("    bearer_secret: \"<redacted>\"\n", text)
    Assert.Contains("      \"claude-sonnet-4-6\": \"GLM-4.7\"\n", text)

[<Fact>]
let ``an IPv6 listen address keeps its brackets`` () =
    let config = {
        Config.defaults with
            Server = {
                Config.defaultServer with
                    Listen = { Host = "::1"; Port = 9000 }
            }
    }

    Assert.Contains("  listen: \"[::1]:9000\"\n", ConfigRender.toYaml config)

[<Theory>]
[<InlineData("plain", "\"plain\"")>]
[<InlineData("true", "\"true\"")>]
[<InlineData("0123", "\"0123\"")>]
[<InlineData("a: b # c", "\"a: b # c\"")>]
[<InlineData("say \"hi\"", "\"say \\\"hi\\\"\"")>]
[<InlineData("back\\slash", "\"back\\\\slash\"")>]
[<InlineData("two\nlines\r\tx", "\"two\\nlines\\r\\tx\"")>]
[<InlineData("bell\u0007 del\u007f nel\u0085 ls\u2028", "\"bell\\u0007 del\\u007F nel\\u0085 ls\\u2028\"")>]
[<InlineData("é 模型 🙂", "\"é 模型 🙂\"")>]
let ``quote writes a YAML double-quoted scalar that reads back as the same string`` (text: string, expected: string) =
    Assert.Equal(expected, ConfigRender.quote text)

[<Fact>]
let ``quote replaces a lone surrogate, which no YAML reader accepts`` () =
    Assert.Equal("\"a\uFFFDb\"", ConfigRender.quote "a\uD800b")

/// `FirstByteTimeoutMs` -> `first_byte_timeout_ms`; `EnableHttp2` -> `enable_http2`.
let private snakeCase (name: string) : string =
    name
    |> Seq.mapi (fun i c ->
        if i > 0 && Char.IsUpper c then
            $"_%c{Char.ToLowerInvariant c}"
        else
            string (Char.ToLowerInvariant c))
    |> String.concat ""

[<Fact>]
let ``every field of the config records is rendered, so a new field cannot be left out silently`` () =
    // Fields whose YAML name is not their snake-cased record name.
    let renamed =
        Map.ofList [
            "AuthStyle", "auth_header"
            "Key", "key_id"
            "ModelRules", "model_mapping"
            "KeyStrategy", "strategy"
            "FailoverTimeoutMs", "failover_timeout"
            // the cloud settings are rendered by their keys (aws_region, gcp_project_id, azure_resource_name, …)
            "Cloud", "aws_region"
            // a key's AWS credential set: its profile, or its access key id (as a key id) and redacted secret
            "Aws", "aws_profile"
            // the edge renders into `server` (tls, queue_size, queue_timeout_ms, limits) and `security`
            "Edge", "security"
            "Queue", "queue_size"
            "Size", "queue_size"
            "TimeoutMs", "queue_timeout_ms"
            "Audit", "audit_log"
            "StreamKeepAlive", "stream_keepalive"
            "StreamKeepAliveMs", "stream_keepalive_ms"
        ]

    let records = [
        typeof<RelayConfig>
        typeof<ServerConfig>
        typeof<AuthSettings>
        typeof<ProviderConfig>
        typeof<KeyConfig>
        typeof<LoggingConfig>
        typeof<DebugOptions>
        typeof<MetricsConfig>
        typeof<OtelConfig>
        typeof<RoutingConfig>
        typeof<HealthConfig>
        typeof<HealthCheckConfig>
        typeof<CircuitBreakerConfig>
        typeof<EdgeConfig>
        typeof<TlsConfig>
        typeof<QueueConfig>
        typeof<ConnectionLimits>
        typeof<SecurityConfig>
        typeof<AuditConfig>
    ]

    let lines = (ConfigRender.toYaml withSecrets).Split '\n'

    for record in records do
        for field in FSharpType.GetRecordFields record do
            let name =
                renamed |> Map.tryFind field.Name |> Option.defaultValue (snakeCase field.Name)

            Assert.True(
                lines
                |> Array.exists (fun line -> line.TrimStart(' ', '-').StartsWith(name + ":", StringComparison.Ordinal)),
                $"%s{record.Name}.%s{field.Name} is not rendered as %s{name}"
            )
