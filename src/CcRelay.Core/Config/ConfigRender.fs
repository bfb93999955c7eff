namespace CcRelay.Core

open System
open System.Globalization
open System.Text

/// Renders the effective configuration as YAML for `cc-relay config show`: every value after defaults and
/// `${VAR}` expansion, in the schema's key names. Secrets never appear: `api_key` and `bearer_secret` read
/// `"<redacted>"`, and each provider key is shown only as its `key_id` (`KeyId.ofSecret`).
///
/// NOTE: the output is for reading, not for loading back. `key_id` is not a config key, and a provider
/// that needs a key would then have none.
[<RequireQualifiedAccess>]
module ConfigRender =

    /// What a configured secret is shown as.
    let redacted: string = "<redacted>"

    /// A YAML double-quoted scalar: always read back as this exact string, whatever it looks like
    /// (`true`, `0123`, `~`, `a: b`). Characters YAML does not allow as they are, or that other tools
    /// read as line breaks, are escaped; an ill-formed UTF-16 sequence becomes U+FFFD.
    let quote (text: string) : string =
        let builder = StringBuilder(text.Length + 2)
        builder.Append '"' |> ignore

        for rune in text.EnumerateRunes() do
            match rune.Value with
            | 0x22 -> builder.Append "\\\"" |> ignore
            | 0x5C -> builder.Append "\\\\" |> ignore
            | 0x09 -> builder.Append "\\t" |> ignore
            | 0x0A -> builder.Append "\\n" |> ignore
            | 0x0D -> builder.Append "\\r" |> ignore
            | value when
                Rune.IsControl rune
                || value = 0x2028
                || value = 0x2029
                || value = 0xFEFF
                || value = 0xFFFE
                || value = 0xFFFF
                ->
                builder.Append("\\u").Append(value.ToString("X4", CultureInfo.InvariantCulture))
                |> ignore
            | _ -> builder.Append(rune.ToString()) |> ignore

        builder.Append('"').ToString()

    let private boolean (value: bool) : string = if value then "true" else "false"

    let private integer (value: int64) : string =
        value.ToString(CultureInfo.InvariantCulture)

    let private decimalText (value: decimal) : string =
        value.ToString(CultureInfo.InvariantCulture)

    let private secret (value: string option) : string =
        match value with
        | Some _ -> quote redacted
        | None -> "null"

    let private authHeader (style: AuthStyle) : string =
        match style with
        | AuthStyle.XApiKey -> "x-api-key"
        | AuthStyle.Bearer -> "bearer"

    let private level (value: LogLevel) : string =
        match value with
        | LogLevel.Debug -> "debug"
        | LogLevel.Info -> "info"
        | LogLevel.Warn -> "warn"
        | LogLevel.Error -> "error"

    let private format (value: LogFormat) : string =
        match value with
        | LogFormat.Json -> "json"
        | LogFormat.Text -> "text"

    let private optional (render: 'Value -> string) (value: 'Value option) : string =
        match value with
        | Some v -> render v
        | None -> "null"

    let private keyStrategy (value: KeyStrategy) : string =
        KeyStrategy.all |> List.find (fun (_, k) -> k = value) |> fst

    let private floatText (value: float) : string =
        value.ToString("R", CultureInfo.InvariantCulture)

    let private server (config: ServerConfig) : string list = [
        "server:"
        $"  listen: %s{quote (string config.Listen)}"
        "  auth:"
        $"    api_key: %s{secret config.Auth.ApiKey}"
        $"    allow_bearer: %s{boolean config.Auth.AllowBearer}"
        $"    bearer_secret: %s{secret config.Auth.BearerSecret}"
        $"  timeout_ms: %s{integer (int64 config.TimeoutMs)}"
        $"  first_byte_timeout_ms: %s{integer (int64 config.FirstByteTimeoutMs)}"
        $"  shutdown_timeout_ms: %s{integer (int64 config.ShutdownTimeoutMs)}"
        $"  stream_keepalive: %s{OpenAiKnobs.keepAliveModes
                                 |> List.find (fun (_, v) -> v = config.StreamKeepAlive)
                                 |> fst}"
        $"  stream_keepalive_ms: %s{integer (int64 config.StreamKeepAliveMs)}"
        $"  max_concurrent: %s{integer (int64 config.MaxConcurrent)}"
        $"  max_body_bytes: %s{integer config.MaxBodyBytes}"
        $"  enable_http2: %s{boolean config.EnableHttp2}"
    ]

    let private key (key: KeyConfig) : string list = [
        $"      - key_id: %s{quote (KeyId.ofSecret key.Key)}"
        match key.Aws with
        | Some(AwsCredentialSource.Static(id, _, token)) ->
            $"        aws_access_key_id: %s{quote (KeyId.ofSecret id)}"
            $"        aws_secret_access_key: %s{quote redacted}"

            if token.IsSome then
                $"        aws_session_token: %s{quote redacted}"
        | Some(AwsCredentialSource.Profile name) -> $"        aws_profile: %s{quote name}"
        | Some AwsCredentialSource.Chain
        | None -> ()
        $"        rpm_limit: %s{integer (int64 key.RpmLimit)}"
        $"        itpm_limit: %s{integer (int64 key.ItpmLimit)}"
        $"        otpm_limit: %s{integer (int64 key.OtpmLimit)}"
        $"        tpm_limit: %s{integer (int64 key.TpmLimit)}"
        $"        priority: %s{integer (int64 key.Priority)}"
        $"        weight: %s{integer (int64 key.Weight)}"
    ]

    /// A cloud provider's settings; secrets as `<redacted>`, an access key id as its key id.
    let private cloud (settings: CloudSettings) : string list =
        match settings with
        | CloudSettings.Direct -> []
        | CloudSettings.Bedrock b -> [
            $"    aws_region: %s{quote b.Region}"
            match b.Credentials with
            | AwsCredentialSource.Static(id, _, token) ->
                $"    aws_access_key_id: %s{quote (KeyId.ofSecret id)}"
                $"    aws_secret_access_key: %s{quote redacted}"

                if token.IsSome then
                    $"    aws_session_token: %s{quote redacted}"
            | AwsCredentialSource.Profile name -> $"    aws_profile: %s{quote name}"
            | AwsCredentialSource.Chain -> ()
            match b.Api with
            | BedrockApi.Invoke -> "    bedrock_api: invoke"
            | BedrockApi.Messages -> "    bedrock_api: messages"
            match b.Betas with
            | [] -> "    bedrock_betas: []"
            | betas ->
                "    bedrock_betas:"

                for beta in betas do
                    $"      - %s{quote beta}"
          ]
        | CloudSettings.Vertex v -> [
            $"    gcp_project_id: %s{quote v.ProjectId}"
            $"    gcp_region: %s{quote v.Region}"
            match v.CredentialsFile with
            | Some file -> $"    gcp_credentials_file: %s{quote file}"
            | None -> ()
          ]
        | CloudSettings.Foundry f -> [
            match f.Resource with
            | Some resource -> $"    azure_resource_name: %s{quote resource}"
            | None -> ()
            match f.Entra with
            | EntraCredential.Default -> ()
            | EntraCredential.ClientSecret(tenant, client, _) ->
                $"    azure_tenant_id: %s{quote tenant}"
                $"    azure_client_id: %s{quote client}"
                $"    azure_client_secret: %s{quote redacted}"
            | EntraCredential.ClientCertificate(tenant, client, path) ->
                $"    azure_tenant_id: %s{quote tenant}"
                $"    azure_client_id: %s{quote client}"
                $"    azure_client_certificate_path: %s{quote path}"
            match f.AuthorityHost with
            | Some host -> $"    azure_authority_host: %s{quote host}"
            | None -> ()
          ]
        | CloudSettings.OpenAi o -> [
            $"    reasoning_field: %s{OpenAiKnobs.reasoningFieldName o.ReasoningField}"
            $"    max_tokens_field: %s{OpenAiKnobs.maxTokensFieldName o.MaxTokensField}"
            $"    stream_usage: %s{boolean o.StreamUsage}"
            $"    thinking_control: %s{OpenAiKnobs.thinkingControlName o.Thinking}"
            $"    mid_conversation_system: %s{OpenAiKnobs.midSystemName o.MidSystem}"
            $"    openai_api: %s{OpenAiKnobs.apiName o.Api}"
            $"    on_dropped: %s{OpenAiKnobs.droppedPolicyName o.OnDropped}"
          ]
        | CloudSettings.Gemini g -> [
            match g.Endpoint with
            | GeminiEndpoint.AiStudio -> ()
            | GeminiEndpoint.Vertex v ->
                $"    gcp_project_id: %s{quote v.ProjectId}"
                $"    gcp_region: %s{quote v.Region}"

                match v.CredentialsFile with
                | Some file -> $"    gcp_credentials_file: %s{quote file}"
                | None -> ()
            $"    gemini_thinking: %s{OpenAiKnobs.geminiThinkingName g.Thinking}"
            $"    on_dropped: %s{OpenAiKnobs.droppedPolicyName g.OnDropped}"
          ]

    let private provider (provider: ProviderConfig) : string list = [
        $"  - name: %s{quote provider.Name}"
        $"    type: %s{ProviderType.wireName provider.Type}"
        $"    enabled: %s{boolean provider.Enabled}"
        // OriginalString: the URL as configured (Uri.ToString would add a trailing slash).
        $"    base_url: %s{quote provider.BaseUrl.OriginalString}"
        $"    auth_header: %s{authHeader provider.AuthStyle}"
        $"    priority: %s{integer (int64 provider.Priority)}"
        $"    weight: %s{integer (int64 provider.Weight)}"
        $"    family: %s{quote provider.Family}"
        "    pooling:"
        $"      strategy: %s{keyStrategy provider.KeyStrategy}"
        match provider.Keys with
        | [] -> "    keys: []"
        | keys ->
            "    keys:"
            yield! keys |> List.collect key
        if provider.ModelMapping.IsEmpty then
            "    model_mapping: {}"
        else
            "    model_mapping:"

            for KeyValue(incoming, upstream) in provider.ModelMapping do
                $"      %s{quote incoming}: %s{quote upstream}"
        match provider.Models with
        | [] -> "    models: []"
        | models ->
            "    models:"

            for model in models do
                $"      - %s{quote model}"
        match provider.Pricing with
        | [] -> "    pricing: {}"
        | rules ->
            "    pricing:"

            for rule in rules do
                let p = rule.Price

                $"      %s{quote rule.Pattern}: {{ input: %s{decimalText p.Input}, output: %s{decimalText p.Output}, cache_read: %s{decimalText p.CacheRead}, cache_write: %s{decimalText p.CacheWrite} }}"
        yield! cloud provider.Cloud
    ]

    let private logging (config: LoggingConfig) : string list = [
        "logging:"
        $"  level: %s{level config.Level}"
        $"  format: %s{format config.Format}"
        $"  output: %s{quote config.Output}"
        "  debug_options:"
        $"    log_request_body: %s{boolean config.DebugOptions.LogRequestBody}"
        $"    log_request_headers: %s{boolean config.DebugOptions.LogRequestHeaders}"
        $"    log_response_headers: %s{boolean config.DebugOptions.LogResponseHeaders}"
        $"    log_response_body: %s{boolean config.DebugOptions.LogResponseBody}"
        $"    max_body_log_size: %s{integer (int64 config.DebugOptions.MaxBodyLogSize)}"
    ]

    let private routing (config: RoutingConfig) : string list = [
        "routing:"
        $"  strategy: %s{RoutingStrategy.wireName config.Strategy}"
        $"  max_attempts: %s{integer (int64 config.MaxAttempts)}"
        $"  failover_timeout: %s{integer (int64 config.FailoverTimeoutMs)}"
        $"  hedge_after_ms: %s{integer (int64 config.HedgeAfterMs)}"
        $"  debug: %s{boolean config.Debug}"
        match config.ModelRules with
        | [] -> "  model_mapping: {}"
        | rules ->
            "  model_mapping:"

            for rule in rules do
                $"    %s{quote rule.Pattern}: %s{quote rule.Provider}"
        $"  default_provider: %s{optional quote config.DefaultProvider}"
        match config.Stages.Routes with
        | [] -> "  stages: {}"
        | routes ->
            "  stages:"

            for stage, targets in routes do
                $"    %s{Stage.wireName stage}:"

                for target in targets do
                    $"      - provider: %s{quote target.Provider}"

                    match target.Model with
                    | Some model -> $"        model: %s{quote model}"
                    | None -> ()
        $"  long_context_threshold: %s{integer (int64 config.Stages.LongContextThreshold)}"
        $"  model_switching: %s{boolean config.Stages.ModelSwitching}"
        $"  list_switch_models: %s{boolean config.Stages.ListSwitchModels}"
    ]

    let private health (config: HealthConfig) : string list = [
        "health:"
        "  health_check:"
        $"    enabled: %s{boolean config.HealthCheck.Enabled}"
        $"    interval_ms: %s{integer (int64 config.HealthCheck.IntervalMs)}"
        match config.HealthCheck.Probe with
        | ProbeKind.Models -> "    probe: models"
        | ProbeKind.CountTokens -> "    probe: count_tokens"
        | ProbeKind.Url target ->
            "    probe: url"
            $"    url: %s{quote target.OriginalString}"
        "  circuit_breaker:"
        $"    failure_threshold: %s{integer (int64 config.CircuitBreaker.FailureThreshold)}"
        $"    window_ms: %s{integer (int64 config.CircuitBreaker.WindowMs)}"
        $"    open_duration_ms: %s{integer (int64 config.CircuitBreaker.OpenDurationMs)}"
        $"    half_open_probes: %s{integer (int64 config.CircuitBreaker.HalfOpenProbes)}"
    ]

    let private metrics (config: MetricsConfig) : string list = [
        "metrics:"
        $"  enabled: %s{boolean config.Enabled}"
        $"  path: %s{quote config.Path}"
        $"  listen: %s{optional (string >> quote) config.Listen}"
        $"  max_model_labels: %s{integer (int64 config.MaxModelLabels)}"
    ]

    let private protocol (value: OtlpProtocol) : string =
        match value with
        | OtlpProtocol.Grpc -> "grpc"
        | OtlpProtocol.HttpProtobuf -> quote "http/protobuf"

    let private otel (config: OtelConfig) : string list = [
        "otel:"
        $"  enabled: %s{boolean config.Enabled}"
        $"  endpoint: %s{optional (fun (u: Uri) -> quote u.OriginalString) config.Endpoint}"
        $"  protocol: %s{protocol config.Protocol}"
        $"  service_name: %s{quote config.ServiceName}"
        $"  propagate_trace_context: %s{boolean config.PropagateTraceContext}"
    ]

    let private grpc (config: GrpcConfig) : string list = [
        "grpc:"
        $"  enabled: %s{boolean config.Enabled}"
        $"  listen: %s{quote (string config.Listen)}"
        $"  auth_token: %s{secret config.AuthToken}"
        match config.WebListen with
        | Some web -> $"  web_listen: %s{quote (string web)}"
        | None -> ()
    ]

    let private tlsVersion (version: TlsVersion) : string =
        match version with
        | TlsVersion.Tls12 -> quote "1.2"
        | TlsVersion.Tls13 -> quote "1.3"

    /// The edge's `server` keys (rendered right after the `server` section's own).
    let private edgeServer (edge: EdgeConfig) : string list = [
        match edge.Tls with
        | Some tls ->
            "  tls:"
            $"    cert_file: %s{quote tls.CertFile.Path}"
            $"    key_file: %s{quote tls.KeyFile.Path}"
            $"    min_version: %s{tlsVersion tls.MinVersion}"
            $"    listen: %s{optional (fun (l: ListenAddress) -> quote (string l)) tls.Listen}"
        | None -> "  tls: null"
        $"  queue_size: %s{optional (fun (n: int) -> integer (int64 n)) edge.Queue.Size}"
        $"  queue_timeout_ms: %s{integer (int64 edge.Queue.TimeoutMs)}"
        "  limits:"
        $"    request_headers_timeout_ms: %s{integer (int64 edge.Limits.RequestHeadersTimeoutMs)}"
        $"    keep_alive_timeout_ms: %s{integer (int64 edge.Limits.KeepAliveTimeoutMs)}"
        $"    min_request_body_bytes_per_second: %s{integer (int64 edge.Limits.MinRequestBodyBytesPerSecond)}"
        $"    min_response_bytes_per_second: %s{integer (int64 edge.Limits.MinResponseBytesPerSecond)}"
        $"    min_rate_grace_ms: %s{integer (int64 edge.Limits.MinRateGraceMs)}"
        $"    max_connections: %s{integer edge.Limits.MaxConnections}"
    ]

    let private security (config: SecurityConfig) : string list = [
        "security:"
        match config.UpstreamHosts with
        | [] -> "  upstream_hosts: []"
        | hosts ->
            let shown = hosts |> List.map (HostPattern.text >> quote) |> String.concat ", "
            $"  upstream_hosts: [%s{shown}]"
        $"  upstream_ca_file: %s{optional (fun (f: ConfigFileRef) -> quote f.Path) config.UpstreamCaFile}"
        $"  upstream_min_tls: %s{tlsVersion config.UpstreamMinTls}"
        $"  status_token: %s{secret config.StatusToken}"
        match config.Audit with
        | Some audit ->
            "  audit_log:"
            $"    path: %s{quote audit.Path}"
            $"    auth_failures_per_minute: %s{integer (int64 audit.AuthFailuresPerMinute)}"
        | None -> "  audit_log: null"
    ]

    let private names (values: string list) : string =
        "[" + String.Join(", ", values |> List.map quote) + "]"

    /// A client: its key only as its key id (the first 8 hex digits of its SHA-256), never the key or its digest.
    let private instant (at: DateTimeOffset) : string =
        quote (at.ToString("yyyy-MM-dd'T'HH:mm:ssK", CultureInfo.InvariantCulture))

    let private client (client: ClientConfig) : string list = [
        $"  - name: %s{quote client.Name}"
        $"    key_id: %s{quote client.KeyId}"
        $"    expires: %s{optional instant client.ExpiresAt}"
        $"    providers: %s{names client.Providers}"
        $"    models: %s{names client.Models}"
        $"    stages: %s{names client.Stages}"
        $"    rpm_limit: %s{integer (int64 client.RpmLimit)}"
        $"    itpm_limit: %s{integer (int64 client.ItpmLimit)}"
        $"    otpm_limit: %s{integer (int64 client.OtpmLimit)}"
        $"    max_concurrent: %s{integer (int64 client.MaxConcurrent)}"
        match client.Budgets with
        | [] -> "    budgets: []"
        | budgets ->
            "    budgets:"

            for b in budgets do
                $"      - period: %s{b.Period.WireName}"
                $"        usd: %s{decimalText b.LimitUsd}"
                $"        models: %s{optional quote b.Models}"
        match client.Metadata with
        | [] -> "    metadata: {}"
        | metadata ->
            "    metadata:"

            for name, value in metadata do
                $"      %s{quote name}: %s{quote value}"
    ]

    let private ledger (config: LedgerConfig) : string list = [
        "ledger:"
        $"  enabled: %s{boolean config.Enabled}"
        $"  path: %s{optional quote config.Path}"
        $"  flush_interval_ms: %s{integer (int64 config.FlushIntervalMs)}"
        $"  queue_capacity: %s{integer (int64 config.QueueCapacity)}"
        $"  time_zone: %s{quote config.TimeZone.Id}"
    ]

    /// One pipeline step as a flow mapping: `{use: max_tokens, cap: 8192}`, `{plugin: "redact"}`.
    let private step (step: PipelineStep) : string =
        let some (name: string) (render: 'Value -> string) (value: 'Value option) =
            value |> Option.map (fun v -> name, render v) |> Option.toList

        let list (items: string list) =
            "[" + String.Join(", ", items |> List.map quote) + "]"

        let options =
            match step.Transform with
            | Transform.MaxTokens(cap, set) -> some "cap" integer cap @ some "set" integer set
            | Transform.Sampling o ->
                some "temperature" decimalText o.Temperature
                @ some "top_p" decimalText o.TopP
                @ some "top_k" integer o.TopK
                @ some "temperature_min" decimalText o.TemperatureMin
                @ some "temperature_max" decimalText o.TemperatureMax
                @ some "top_p_max" decimalText o.TopPMax
                @ some "top_k_max" integer o.TopKMax
            | Transform.StripCacheControl
            | Transform.RepairToolJson
            | Transform.Plugin _ -> []
            | Transform.ToolChoice(choice, name, onlyWithTools) ->
                [ "type", choice ]
                @ some "name" quote name
                @ [ "only_with_tools", boolean onlyWithTools ]
            | Transform.System(edit, text) ->
                let key =
                    match edit with
                    | SystemEdit.Append -> "append"
                    | SystemEdit.Prepend -> "prepend"
                    | SystemEdit.Replace -> "replace"

                [ key, quote text ]
            | Transform.RenameModel(map, target) ->
                some "to" quote target
                @ (if map.IsEmpty then
                       []
                   else
                       [
                           "map",
                           "{"
                           + String.Join(", ", map |> List.map (fun (k, v) -> quote k + ": " + quote v))
                           + "}"
                       ])
            | Transform.DropFields(fields, deep) -> [ "fields", list fields; "deep", boolean deep ]
            | Transform.ReasoningEffort(low, high) -> [ "low_below", integer low; "high_from", integer high ]
            | Transform.ReasoningEcho(echo, fill) -> [ "echo", boolean echo; "fill_missing", boolean fill ]
            | Transform.GeminiSchemaClean(GeminiSchemaMode.OpenApi, hints) -> [
                "mode", "openapi"
                "hints", boolean hints
              ]
            | Transform.GeminiSchemaClean(GeminiSchemaMode.JsonSchema, _) -> [ "mode", "json_schema" ]

        match step.Transform with
        | Transform.Plugin name -> "{plugin: " + quote name + "}"
        | _ ->
            "{use: "
            + step.Name
            + String.concat "" (options |> List.map (fun (k, v) -> ", " + k + ": " + v))
            + "}"

    /// `pipelines` and `plugins`; a plugin's `env` values read `"<redacted>"` (they may be secrets).
    let private pipelines (config: PipelinesConfig) : string list = [
        match config.Pipelines with
        | [] -> "pipelines: {}"
        | pipelines ->
            "pipelines:"

            for p in pipelines do
                $"  %s{quote p.Name}:"
                $"    on_error: %s{p.OnError.WireName}"
                $"""    providers: [%s{String.Join(", ", p.Attach.Providers |> List.map quote)}]"""
                $"""    models: [%s{String.Join(", ", p.Attach.Models |> List.map quote)}]"""
                $"""    stages: [%s{String.Join(", ", p.Attach.Stages |> List.map quote)}]"""
                $"""    request: [%s{String.Join(", ", p.Request |> List.map step)}]"""
                $"""    response: [%s{String.Join(", ", p.Response |> List.map step)}]"""
        match config.Plugins with
        | [] -> "plugins: {}"
        | plugins ->
            "plugins:"

            for p in plugins do
                $"  %s{quote p.Name}:"
                $"    command: %s{quote p.Command}"
                $"""    args: [%s{String.Join(", ", p.Args |> List.map quote)}]"""
                $"""    env: {{%s{String.Join(", ", p.Env |> List.map (fun (k, _) -> quote k + ": " + quote redacted))}}}"""
                $"    timeout_ms: %d{p.TimeoutMs}"
                $"    memory_mb: %d{p.MemoryMb}"
                $"    cpu_seconds: %d{p.CpuSeconds}"
                $"    on_error: %s{p.OnError.WireName}"
                $"""    sees: [%s{String.Join(", ", p.Sees |> List.map _.WireName)}]"""
                $"    event_timeout_ms: %d{p.EventTimeoutMs}"
                $"    processes: %d{p.Processes}"
    ]

    /// The configuration as YAML text, one key per line, `\n` line ends, ending with a line end.
    let toYaml (config: RelayConfig) : string =
        let lines = [
            yield! server config.Server
            yield! edgeServer config.Edge
            match config.Providers with
            | [] -> "providers: []"
            | providers ->
                "providers:"
                yield! providers |> List.collect provider
            yield! logging config.Logging
            yield! routing config.Routing
            yield! health config.Health
            yield! metrics config.Metrics
            yield! otel config.Otel
            yield! grpc config.Grpc
            yield! security config.Edge.Security
            match config.Clients with
            | [] -> "clients: []"
            | clients ->
                "clients:"
                yield! clients |> List.collect client
            yield! ledger config.Ledger
            yield! pipelines config.Pipelines
            yield! ConfigState.render redacted config.State
        ]

        String.Join("\n", lines) + "\n"
