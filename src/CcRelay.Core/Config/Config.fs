namespace CcRelay.Core

open System

/// A `host:port` listen address.
type ListenAddress = {
    Host: string
    Port: int
} with

    override this.ToString() =
        if this.Host.Contains ':' then
            $"[%s{this.Host}]:%d{this.Port}"
        else
            $"%s{this.Host}:%d{this.Port}"

    /// Parses `host:port`, `[ipv6]:port` or `:port` (all IPv4 interfaces, as Go's `net.Listen` reads it
    /// for IPv4). Port 0 asks the OS for a free port. The error says what is wrong and what is allowed.
    static member TryParse(text: string) : Result<ListenAddress, string> =
        let expected =
            "expected host:port, e.g. 127.0.0.1:8787, localhost:8787 or [::1]:8787"

        let port (portText: string) : Result<int, string> =
            match
                Int32.TryParse(portText, Globalization.NumberStyles.None, Globalization.CultureInfo.InvariantCulture)
            with
            | _ when portText.Length = 0 -> Error $"the port is missing (%s{expected})"
            | true, p when p <= 65535 -> Ok p
            | _ -> Error $"the port must be a number from 0 to 65535, got \"%s{portText}\""

        if String.IsNullOrWhiteSpace text then
            Error $"must not be empty (%s{expected})"
        elif text |> Seq.exists Char.IsWhiteSpace then
            Error $"must not contain spaces, got \"%s{text}\""
        elif text.StartsWith '[' then
            match text.IndexOf "]:" with
            | -1 -> Error $"got \"%s{text}\"; %s{expected}"
            | close ->
                let host = text.Substring(1, close - 1)

                match Net.IPAddress.TryParse host with
                | true, NonNull address when address.AddressFamily = Net.Sockets.AddressFamily.InterNetworkV6 ->
                    port (text.Substring(close + 2))
                    |> Result.map (fun p -> { Host = host; Port = p })
                | _ -> Error $"\"%s{host}\" in brackets is not an IPv6 address"
        else
            match text.LastIndexOf ':' with
            | -1 -> Error $"got \"%s{text}\"; %s{expected}"
            | colon ->
                let host = text.Substring(0, colon)

                if host.Contains ':' then
                    Error $"got \"%s{text}\"; write an IPv6 address in brackets, e.g. [::1]:8787"
                elif host.Length > 0 && Uri.CheckHostName host = UriHostNameType.Unknown then
                    Error $"\"%s{host}\" is not a valid host name or IP address"
                else
                    port (text.Substring(colon + 1))
                    |> Result.map (fun p -> {
                        Host = (if host.Length = 0 then "0.0.0.0" else host)
                        Port = p
                    })

/// Where AWS credentials for SigV4 come from: a Bedrock provider's own (when it has no `keys`), or one `keys[]`
/// entry's credential set.
[<RequireQualifiedAccess>]
type AwsCredentialSource =
    /// `aws_access_key_id` / `aws_secret_access_key` (and `aws_session_token`) from the config.
    | Static of AccessKeyId: string * SecretAccessKey: string * SessionToken: string option
    /// A named profile of the shared AWS config and credentials files (`aws_profile`).
    | Profile of Name: string
    /// The standard chain: `AWS_BEARER_TOKEN_BEDROCK`, then the environment, the default profile, container
    /// and instance credentials.
    | Chain

/// One configured provider key (`providers[].keys[]`).
type KeyConfig = {
    Key: string
    RpmLimit: int
    ItpmLimit: int
    OtpmLimit: int
    /// Deprecated: split evenly into ITPM and OTPM when both are 0.
    TpmLimit: int
    Priority: int
    Weight: int
    /// Bedrock only: an AWS credential set (`aws_access_key_id` / `aws_secret_access_key` / `aws_session_token`,
    /// or `aws_profile`) that signs this key's requests with SigV4; `Key` is then the set's identity in the pool
    /// (a secret, never shown). None: `Key` is the credential itself.
    Aws: AwsCredentialSource option
}

/// Which Bedrock API the relay calls (`bedrock_api`).
[<RequireQualifiedAccess>]
type BedrockApi =
    /// InvokeModel / InvokeModelWithResponseStream (`/model/{id}/invoke[-with-response-stream]`, AWS event
    /// stream answers): every Claude model on Bedrock, what Claude Code's own Bedrock mode uses. The default.
    | Invoke
    /// The Messages API on bedrock-runtime (`/anthropic/v1/messages`): the native Anthropic shape and SSE.
    | Messages

/// `type: bedrock` settings.
type BedrockSettings = {
    /// `aws_region` (required): the endpoint's region and the SigV4 signing region.
    Region: string
    Credentials: AwsCredentialSource
    Api: BedrockApi
    /// `bedrock_betas`: the `anthropic-beta` values passed on into the body's `anthropic_beta`; others are
    /// dropped (and reported).
    Betas: string list
}

/// `type: vertex` settings.
type VertexSettings = {
    /// `gcp_project_id` (required).
    ProjectId: string
    /// `gcp_region` (required): a region such as `us-east5`, or `global`, `us`, `eu`.
    Region: string
    /// `gcp_credentials_file`: a service-account or authorized-user JSON file; None: Application Default
    /// Credentials.
    CredentialsFile: string option
}

/// How a Foundry provider without `keys` obtains a Microsoft Entra ID token.
[<RequireQualifiedAccess>]
type EntraCredential =
    /// `DefaultAzureCredential`: environment, workload identity, managed identity, Azure CLI, …
    | Default
    /// A service principal's client secret (`azure_tenant_id`, `azure_client_id`, `azure_client_secret`).
    | ClientSecret of TenantId: string * ClientId: string * Secret: string
    /// A service principal's certificate (`azure_tenant_id`, `azure_client_id`, `azure_client_certificate_path`).
    | ClientCertificate of TenantId: string * ClientId: string * Path: string

/// `type: azure` (alias `foundry`) settings.
type FoundrySettings = {
    /// `azure_resource_name`: the `{resource}` of `https://{resource}.services.ai.azure.com/anthropic`
    /// (None when `base_url` is given instead).
    Resource: string option
    /// Used when the provider has no `keys`.
    Entra: EntraCredential
    /// `azure_authority_host`: the Entra ID authority for `Entra` (a sovereign cloud such as
    /// `https://login.microsoftonline.us`, or Azure Stack); None: Azure.Identity's default (the public cloud, or
    /// `AZURE_AUTHORITY_HOST`).
    AuthorityHost: string option
}

/// Which field of a Chat Completions message carries the model's reasoning (`reasoning_field`).
[<RequireQualifiedAccess>]
type ReasoningField =
    /// `reasoning_content` (DeepSeek, GLM, Kimi, Qwen, older vLLM).
    | ReasoningContent
    /// `reasoning` (OpenRouter, Ollama, newer vLLM).
    | Reasoning
    /// None: the provider shows no reasoning (OpenAI's own Chat Completions); nothing is read or echoed.
    | NoField

/// Which request field carries the output limit (`max_tokens_field`).
[<RequireQualifiedAccess>]
type MaxTokensField =
    /// `max_tokens` (DeepSeek, vLLM, Ollama and most compatible servers).
    | MaxTokens
    /// `max_completion_tokens` (OpenAI's o-series and GPT-5-era models refuse `max_tokens`).
    | MaxCompletionTokens

/// How the request's `thinking` reaches a Chat Completions provider (`thinking_control`).
[<RequireQualifiedAccess>]
type ThinkingControl =
    /// Nothing is sent: the model thinks or not as it does by default (and `thinking` is reported dropped).
    | NoControl
    /// `reasoning_effort: low | medium | high` from the budget or `output_config.effort` (OpenAI reasoning models).
    | ReasoningEffort
    /// `thinking: {"type": "enabled" | "disabled"}` (DeepSeek, GLM, Kimi).
    | ThinkingField

/// Which OpenAI API a `type: openai` provider is spoken to in (`openai_api`).
[<RequireQualifiedAccess>]
type OpenAiApi =
    /// Chat Completions (`/v1/chat/completions`): every OpenAI-compatible server.
    | Chat
    /// Responses (`/v1/responses`): OpenAI's own reasoning models, whose encrypted reasoning is carried across turns.
    | Responses

/// How a Chat Completions provider gets a mid-conversation system message (`{role: "system"}` among the messages,
/// Claude Code's `mid-conversation-system` beta): `mid_conversation_system`.
[<RequireQualifiedAccess>]
type MidSystem =
    /// A `system` message in place (OpenAI, DeepSeek, vLLM and Ollama with most chat templates).
    | InPlace
    /// A `user` message in place, its text inside `<system-reminder>…</system-reminder>` (what Claude Code itself
    /// falls back to): for servers whose chat template refuses a system message after the first.
    | AsUser
    /// Left out, and reported as `system_message`.
    | Drop

/// What the relay does with a request that asks for something the target cannot do (`on_dropped`).
[<RequireQualifiedAccess>]
type DroppedPolicy =
    /// Leave it out and say so (`x-cc-relay-dropped`, the request's log line, a metric).
    | Report
    /// Refuse the request: a 400 `invalid_request_error` naming what the target cannot do.
    | Refuse

/// `type: openai` settings: the knobs real Chat Completions servers differ on.
type OpenAiSettings = {
    /// `reasoning_field`: where reasoning is read from an answer and echoed back on later turns.
    ReasoningField: ReasoningField
    /// `max_tokens_field`.
    MaxTokensField: MaxTokensField
    /// `stream_usage`: whether `stream_options: {"include_usage": true}` is sent with a stream.
    StreamUsage: bool
    /// `thinking_control`.
    Thinking: ThinkingControl
    /// `openai_api`: Chat Completions or Responses.
    Api: OpenAiApi
    /// `on_dropped`: report what was left out (the default) or refuse the request.
    OnDropped: DroppedPolicy
    /// `mid_conversation_system`: how a system message among the messages reaches Chat Completions.
    MidSystem: MidSystem
}

/// How the request's `thinking` reaches Gemini (`gemini_thinking`).
[<RequireQualifiedAccess>]
type GeminiThinking =
    /// By the model's name: `thinkingLevel` for Gemini 3 (`gemini-3…`), `thinkingBudget` for the rest.
    | Auto
    /// `thinkingConfig.thinkingBudget` (Gemini 2.5).
    | Budget
    /// `thinkingConfig.thinkingLevel` (Gemini 3).
    | Level
    /// No `thinkingConfig` is sent (and `thinking` is reported dropped).
    | NoControl

/// Where a `type: gemini` provider's Gemini runs.
[<RequireQualifiedAccess>]
type GeminiEndpoint =
    /// Google AI Studio (the Gemini Developer API): `/v1beta/models/{model}:…`, keys as `x-goog-api-key`.
    | AiStudio
    /// Vertex AI (`gcp_project_id` given): `/projects/{p}/locations/{r}/publishers/google/models/{model}:…`,
    /// Google OAuth tokens (or keys as bearer tokens).
    | Vertex of VertexSettings

/// `type: gemini` settings.
type GeminiSettings = {
    Endpoint: GeminiEndpoint
    /// `gemini_thinking`.
    Thinking: GeminiThinking
    /// `on_dropped`: report what was left out (the default) or refuse the request.
    OnDropped: DroppedPolicy
}

/// The cloud platform a provider runs on, with its settings.
[<RequireQualifiedAccess>]
type CloudSettings =
    /// An Anthropic-shaped endpoint reached with keys or a passed-through credential.
    | Direct
    | Bedrock of BedrockSettings
    | Vertex of VertexSettings
    | Foundry of FoundrySettings
    /// Not a cloud: a `type: openai` provider's translation settings (the request is translated to Chat Completions).
    | OpenAi of OpenAiSettings
    /// Not a cloud of its own: a `type: gemini` provider's settings (the request is translated to `generateContent`).
    | Gemini of GeminiSettings

/// One provider (`providers[]`), with type defaults applied.
type ProviderConfig = {
    Name: string
    Type: ProviderType
    Enabled: bool
    BaseUrl: Uri
    AuthStyle: AuthStyle
    Keys: KeyConfig list
    /// Exact incoming model name → model name sent upstream.
    ModelMapping: Map<string, string>
    /// Models listed by `/v1/models` (type defaults when the config gives none).
    Models: string list
    /// `pricing`: this provider's price rules, in file order; consulted before the built-in prices
    /// (`Pricing.withOverrides provider.Pricing Pricing.builtIn`).
    Pricing: PriceRule list
    /// Routing priority (higher first); defaults to the first key's `priority`, as in the Go project.
    Priority: int
    /// Routing weight (>= 1); defaults to the first key's `weight` (0 counts as 1).
    Weight: int
    /// Providers of one family accept each other's thinking signatures: every `anthropic`-type provider
    /// is family `anthropic`; any other provider is its own family (its name) unless configured.
    Family: string
    /// How the provider picks among its keys.
    KeyStrategy: KeyStrategy
    /// The cloud settings of a `bedrock`, `vertex` or `azure` provider (`CloudSettings.Direct` for the rest).
    Cloud: CloudSettings
}

/// The `server` section.
type ServerConfig = {
    Listen: ListenAddress
    Auth: AuthSettings
    /// Upper bound for one relayed request, headers to last byte, in ms (0 = unbounded).
    TimeoutMs: int
    /// In-flight cap on relayed requests (0 = unlimited).
    MaxConcurrent: int
    /// Largest accepted request body.
    MaxBodyBytes: int64
    EnableHttp2: bool
    /// How long the relay waits for upstream response headers before answering 504.
    FirstByteTimeoutMs: int
    /// How long shutdown waits for in-flight requests before it cuts them.
    ShutdownTimeoutMs: int
    /// `stream_keepalive`: what a stream the relay produces (translated, or from Bedrock's event stream) gets when
    /// its upstream is silent: events Claude Code's idle watchdog counts, or pings only.
    StreamKeepAlive: KeepAliveMode
    /// `stream_keepalive_ms`: how long such a stream's upstream may be silent before a keep-alive goes out.
    StreamKeepAliveMs: int
}

/// Log verbosity.
[<RequireQualifiedAccess>]
type LogLevel =
    | Debug
    | Info
    | Warn
    | Error

/// Log line format.
[<RequireQualifiedAccess>]
type LogFormat =
    | Json
    | Text

/// `logging.debug_options`: what debug-level logs may add. Each is off unless set; every one is redacted
/// (`Redact`) and written only when `logging.level` is `debug`.
type DebugOptions = {
    /// Log a redacted, truncated preview of request bodies at debug level.
    LogRequestBody: bool
    /// Log the request headers sent upstream (and the upstream URL) at debug level.
    LogRequestHeaders: bool
    /// Log upstream response headers at debug level.
    LogResponseHeaders: bool
    /// Log a redacted, truncated preview of response bodies (JSON answers and SSE streams) at debug level.
    LogResponseBody: bool
    /// The most body bytes a debug log shows.
    MaxBodyLogSize: int
}

/// The `logging` section.
type LoggingConfig = {
    Level: LogLevel
    Format: LogFormat
    /// `stdout`, `stderr` or a file path.
    Output: string
    DebugOptions: DebugOptions
}

/// The `metrics` section: the Prometheus exposition.
type MetricsConfig = {
    Enabled: bool
    /// The path `GET` serves the exposition on, e.g. `/metrics`.
    Path: string
    /// A separate listener for the exposition; None serves it on `server.listen`.
    Listen: ListenAddress option
    /// The most distinct model label values per metric; further models are counted as `other`.
    MaxModelLabels: int
}

/// The OTLP transport (`otel.protocol`).
[<RequireQualifiedAccess>]
type OtlpProtocol =
    /// OTLP over gRPC (the exporter's default; port 4317).
    | Grpc
    /// OTLP over HTTP with protobuf bodies (`POST <endpoint>/v1/traces`, `/v1/metrics`; port 4318).
    | HttpProtobuf

/// The `otel` section: OpenTelemetry export.
type OtelConfig = {
    Enabled: bool
    /// The OTLP endpoint; None leaves it to the exporter (`OTEL_EXPORTER_OTLP_ENDPOINT`, else its default).
    Endpoint: Uri option
    /// How spans and metrics travel to the endpoint.
    Protocol: OtlpProtocol
    /// `service.name` of the exported resource.
    ServiceName: string
    /// Send W3C `traceparent`/`tracestate` for the relay's span on upstream requests.
    PropagateTraceContext: bool
}

/// The `grpc` section: the management API (`proto/ccrelay/v1/management.proto`) on a listener of its own.
type GrpcConfig = {
    /// Serve the API. Off when the config has no `grpc` section; on when it has one, unless `enabled: false`.
    Enabled: bool
    /// The API's own listener (HTTP/2 without TLS); never the relay's.
    Listen: ListenAddress
    /// When set, every call must carry `authorization: Bearer <token>`; required off loopback.
    AuthToken: string option
    /// `web_listen` (the Go project's key): a second listener of the API, HTTP/1.1 without TLS, for grpc-web
    /// clients such as a browser page (the API's own listener speaks grpc-web over HTTP/2 too). None: none.
    WebListen: ListenAddress option
} with

    /// The section with `authToken` null when there is none, and no grpc-web listener.
    static member Create(enabled: bool, listen: ListenAddress, authToken: string | null) : GrpcConfig = {
        Enabled = enabled
        Listen = listen
        AuthToken = Option.ofObj authToken
        WebListen = None
    }

/// A TLS protocol version the relay accepts as its minimum.
[<RequireQualifiedAccess>]
type TlsVersion =
    | Tls12
    | Tls13

/// A file a config key names, with where the key sits: the host reads the file (Core does no I/O) and reports a
/// problem with it at `Key` (`server.tls.cert_file`) and `At`.
type ConfigFileRef = {
    Path: string
    Key: string
    At: Position option
}

/// `server.tls`: the relay's own listener speaks TLS (docs/security.md).
type TlsConfig = {
    /// `cert_file`: the certificate chain, PEM (leaf first). Re-read when it changes on disk.
    CertFile: ConfigFileRef
    /// `key_file`: the certificate's private key, PEM.
    KeyFile: ConfigFileRef
    /// `min_version`: `1.2` (default) or `1.3`.
    MinVersion: TlsVersion
    /// `listen`: a second listener for TLS; None makes `server.listen` itself speak TLS.
    Listen: ListenAddress option
}

/// `server.queue_size` / `server.queue_timeout_ms`: the wait queue in front of `server.max_concurrent`.
type QueueConfig = {
    /// How many requests may wait for a slot; None: as many as `max_concurrent`.
    Size: int option
    /// How long a request may wait for a slot before it is answered 529.
    TimeoutMs: int
}

/// `server.limits`: Kestrel's connection limits, chosen for a relay (long SSE answers, short requests).
type ConnectionLimits = {
    /// `request_headers_timeout_ms`: a client must send its whole header block within this.
    RequestHeadersTimeoutMs: int
    /// `keep_alive_timeout_ms`: an idle connection is closed after this.
    KeepAliveTimeoutMs: int
    /// `min_request_body_bytes_per_second`: slower request bodies are cut (0: no minimum).
    MinRequestBodyBytesPerSecond: int
    /// `min_response_bytes_per_second`: a client reading an answer slower than this is cut (0: no minimum).
    /// It applies only while a write waits for the client, so a quiet SSE stream is never cut.
    MinResponseBytesPerSecond: int
    /// `min_rate_grace_ms`: how long a rate may stay under its minimum before the connection is cut (>= 2 s).
    MinRateGraceMs: int
    /// `max_connections`: open connections the listener accepts (0: unlimited).
    MaxConnections: int64
}

/// `security.audit_log`: the audit trail (JSON lines, append-only, mode 0600).
type AuditConfig = {
    /// `path`: the file; created with mode 0600.
    Path: string
    /// `auth_failures_per_minute`: authentication failures written per source address and minute; the rest
    /// are counted and the count written with the next one.
    AuthFailuresPerMinute: int
}

/// The `security` section: who the relay talks to upstream, and what it shows without a token.
type SecurityConfig = {
    /// `upstream_hosts`: hosts (`api.anthropic.com`) and suffixes (`.anthropic.com`) providers may use; empty:
    /// any host.
    UpstreamHosts: HostPattern list
    /// `upstream_ca_file`: a PEM bundle of CAs that upstream certificates may also chain to.
    UpstreamCaFile: ConfigFileRef option
    /// `upstream_min_tls`: the lowest TLS version the relay speaks to an https upstream.
    UpstreamMinTls: TlsVersion
    /// `status_token`: when set, `/metrics` and the detailed `/health` need `Authorization: Bearer <token>`.
    StatusToken: string option
    /// `audit_log`; None: no audit trail.
    Audit: AuditConfig option
}

/// The hardened edge: TLS, admission, connection limits and the `security` section.
type EdgeConfig = {
    Tls: TlsConfig option
    Queue: QueueConfig
    Limits: ConnectionLimits
    Security: SecurityConfig
}

/// The whole effective configuration: defaults applied, variables expanded, validated.
type RelayConfig = {
    Server: ServerConfig
    Providers: ProviderConfig list
    Logging: LoggingConfig
    Metrics: MetricsConfig
    Otel: OtelConfig
    Routing: RoutingConfig
    Health: HealthConfig
    Grpc: GrpcConfig
    /// TLS, admission, connection limits, the upstream allowlist, the audit log (docs/security.md).
    Edge: EdgeConfig
    /// `clients`: per-client relay keys with their limits and budgets (docs/teams.md); empty: none.
    Clients: ClientConfig list
    /// `ledger`: the usage ledger and the budgets' calendar.
    Ledger: LedgerConfig
    /// `pipelines` and `plugins` (docs/pipelines.md).
    Pipelines: PipelinesConfig
    /// `state`: what several relays share through PostgreSQL (docs/scale-out.md).
    State: StateConfig
}

/// A problem found in a config file: where, what, and what is allowed.
type ConfigIssue = {
    /// The key path, e.g. `providers[1].base_url`.
    Path: string
    Position: Position option
    Message: string
} with

    override this.ToString() =
        match this.Position with
        | Some p -> $"%s{this.Path} (line %d{p.Line}, column %d{p.Column}): %s{this.Message}"
        | None -> $"%s{this.Path}: %s{this.Message}"

    /// A C#-friendly constructor: an issue at a 1-based line and column.
    static member At(path: string, line: int, column: int, message: string) : ConfigIssue = {
        Path = path
        Position = Some { Line = line; Column = column }
        Message = message
    }

    /// A C#-friendly constructor: an issue with no position (e.g. an unreadable file).
    static member Unplaced(path: string, message: string) : ConfigIssue = {
        Path = path
        Position = None
        Message = message
    }

/// The outcome of loading a config: a valid config with its warnings, or every error (and warning) at once.
type ConfigLoad =
    | Loaded of Config: RelayConfig * Warnings: ConfigIssue list
    | Invalid of Errors: ConfigIssue list * Warnings: ConfigIssue list

    /// A C#-friendly constructor: the load failed with these errors (and no warnings).
    static member Failed(errors: ConfigIssue seq) : ConfigLoad = Invalid(List.ofSeq errors, [])

    /// A C#-friendly constructor: the load failed with these errors and warnings.
    static member Failed(errors: ConfigIssue seq, warnings: ConfigIssue seq) : ConfigLoad =
        Invalid(List.ofSeq errors, List.ofSeq warnings)

    /// The warnings of either outcome.
    member this.AllWarnings: ConfigIssue list =
        match this with
        | Loaded(_, warnings)
        | Invalid(_, warnings) -> warnings

/// Defaults shared by the decoder and the no-config mode.
[<RequireQualifiedAccess>]
module Config =

    /// `127.0.0.1:8787`: loopback only, unless the operator says otherwise.
    let defaultListen: ListenAddress = { Host = "127.0.0.1"; Port = 8787 }

    /// The `server` section when nothing is configured.
    let defaultServer: ServerConfig = {
        Listen = defaultListen
        Auth = {
            ApiKey = None
            AllowBearer = false
            BearerSecret = None
        }
        TimeoutMs = 600_000
        MaxConcurrent = 0
        MaxBodyBytes = 32L * 1024L * 1024L
        EnableHttp2 = false
        FirstByteTimeoutMs = 120_000
        ShutdownTimeoutMs = 30_000
        StreamKeepAlive = KeepAliveMode.Events
        StreamKeepAliveMs = 15_000
    }

    /// `logging.debug_options` when nothing is configured: nothing extra is logged, bodies are cut at 1000 bytes.
    let defaultDebugOptions: DebugOptions = {
        LogRequestBody = false
        LogRequestHeaders = false
        LogResponseHeaders = false
        LogResponseBody = false
        MaxBodyLogSize = 1000
    }

    /// The `logging` section when nothing is configured.
    let defaultLogging: LoggingConfig = {
        Level = LogLevel.Info
        Format = LogFormat.Text
        Output = "stdout"
        DebugOptions = defaultDebugOptions
    }

    /// The `metrics` section when nothing is configured: on, at `/metrics` on the relay's own listener.
    let defaultMetrics: MetricsConfig = {
        Enabled = true
        Path = "/metrics"
        Listen = None
        MaxModelLabels = 100
    }

    /// The `otel` section when nothing is configured: off.
    let defaultOtel: OtelConfig = {
        Enabled = false
        Endpoint = None
        Protocol = OtlpProtocol.Grpc
        ServiceName = "cc-relay"
        PropagateTraceContext = false
    }

    /// The `grpc` section when the config has none: off (listening, when enabled, on 127.0.0.1:8788).
    let defaultGrpc: GrpcConfig = {
        Enabled = false
        Listen = { Host = "127.0.0.1"; Port = 8788 }
        AuthToken = None
        WebListen = None
    }

    /// The edge when nothing is configured: no TLS, a queue as long as `max_concurrent` with a 30 s wait,
    /// Kestrel's limits tightened for a relay, any upstream host, TLS 1.2 upstream, no status token, no audit log.
    let defaultEdge: EdgeConfig = {
        Tls = None
        Queue = { Size = None; TimeoutMs = 30_000 }
        Limits = {
            RequestHeadersTimeoutMs = 10_000
            KeepAliveTimeoutMs = 130_000
            MinRequestBodyBytesPerSecond = 240
            MinResponseBytesPerSecond = 240
            MinRateGraceMs = 5_000
            MaxConnections = 0L
        }
        Security = {
            UpstreamHosts = []
            UpstreamCaFile = None
            UpstreamMinTls = TlsVersion.Tls12
            StatusToken = None
            Audit = None
        }
    }

    /// The `ledger` section when nothing is configured: on, at the default path, flushed every second, UTC.
    let defaultLedger: LedgerConfig = {
        Enabled = true
        Path = None
        FlushIntervalMs = 1_000
        QueueCapacity = 10_000
        TimeZone = TimeZoneInfo.Utc
    }

    /// The `state` section when nothing is configured: local state only; a 250 ms flush once `postgres` is set.
    let defaultState: StateConfig = {
        Postgres = None
        FlushIntervalMs = 250
    }

    /// The family a provider belongs to when the config names none.
    let defaultFamily (name: string) (providerType: ProviderType) : string =
        match providerType with
        | ProviderType.Anthropic -> "anthropic"
        | ProviderType.Zai
        | ProviderType.Minimax
        | ProviderType.Ollama
        | ProviderType.AnthropicCompatible
        // Claude behind a cloud mints Anthropic's own thinking signatures, yet the platforms do not promise to
        // accept each other's: each cloud provider is its own family unless `family` says otherwise.
        | ProviderType.Bedrock
        | ProviderType.Vertex
        | ProviderType.Foundry
        | ProviderType.OpenAi
        | ProviderType.Gemini -> name

    /// The secrets a provider's cloud settings hold (for redaction): AWS secret key and session token, the Entra
    /// client secret. Access key ids are not secret but are shown only as key ids all the same.
    let cloudSecrets (settings: CloudSettings) : string list =
        match settings with
        | CloudSettings.Bedrock {
                                    Credentials = AwsCredentialSource.Static(id, secret, token)
                                } -> [ id; secret ] @ Option.toList token
        | CloudSettings.Foundry {
                                    Entra = EntraCredential.ClientSecret(_, _, secret)
                                } -> [ secret ]
        | CloudSettings.Bedrock _
        | CloudSettings.Vertex _
        | CloudSettings.Foundry _
        | CloudSettings.OpenAi _
        | CloudSettings.Gemini _
        | CloudSettings.Direct -> []

    /// The secrets a configured key holds (for redaction): the key itself, and an AWS credential set's secret
    /// key and session token (its access key id is not secret, but is shown only as a key id).
    let keySecrets (key: KeyConfig) : string list =
        key.Key
        :: (match key.Aws with
            | Some(AwsCredentialSource.Static(id, secret, token)) -> [ id; secret ] @ Option.toList token
            | _ -> [])
        |> List.filter (fun s -> s.Length > 0)

    /// A provider of the given type with every default applied and no keys.
    let defaultProvider (name: string) (providerType: ProviderType) (baseUrl: Uri) : ProviderConfig = {
        Name = name
        Type = providerType
        Enabled = true
        BaseUrl = baseUrl
        AuthStyle = ProviderType.defaultAuthStyle providerType
        Keys = []
        ModelMapping = Map.empty
        Models = ProviderType.defaultModels providerType
        Pricing = []
        Priority = 0
        Weight = 1
        Family = defaultFamily name providerType
        KeyStrategy = KeyStrategy.LeastLoaded
        Cloud = CloudSettings.Direct
    }

    /// No stage configured; long context from 60 000 estimated tokens (claude-code-router's default); model
    /// switching on, not listed.
    let defaultStages: StagesConfig = {
        Routes = []
        LongContextThreshold = 60_000
        ModelSwitching = true
        ListSwitchModels = false
    }

    /// The `routing` section when nothing is configured: failover in priority order, up to 5 attempts,
    /// 5 s of failing over, no hedging.
    let defaultRouting: RoutingConfig = {
        Strategy = RoutingStrategy.Failover
        MaxAttempts = 5
        FailoverTimeoutMs = 5_000
        HedgeAfterMs = 0
        Debug = false
        ModelRules = []
        DefaultProvider = None
        Stages = defaultStages
    }

    /// The `health` section when nothing is configured (the Go project's values, plus a 10 s window).
    let defaultHealth: HealthConfig = {
        HealthCheck = {
            Enabled = true
            IntervalMs = 10_000
            Probe = ProbeKind.Models
        }
        CircuitBreaker = {
            FailureThreshold = 5
            WindowMs = 10_000
            OpenDurationMs = 30_000
            HalfOpenProbes = 3
        }
    }

    /// The embedded default: one `anthropic` provider in passthrough mode (the caller's own credential
    /// is forwarded), listening on 127.0.0.1:8787. Used when no config file exists.
    let defaults: RelayConfig = {
        Server = defaultServer
        Providers = [
            defaultProvider "anthropic" ProviderType.Anthropic (Uri "https://api.anthropic.com")
        ]
        Logging = defaultLogging
        Metrics = defaultMetrics
        Otel = defaultOtel
        Routing = defaultRouting
        Health = defaultHealth
        Grpc = defaultGrpc
        Edge = defaultEdge
        Clients = []
        Ledger = defaultLedger
        Pipelines = { Pipelines = []; Plugins = [] }
        State = defaultState
    }

/// The config spellings of `type: openai`'s knobs.
[<RequireQualifiedAccess>]
module OpenAiKnobs =

    /// `reasoning_field` values.
    let reasoningFields: (string * ReasoningField) list = [
        "reasoning_content", ReasoningField.ReasoningContent
        "reasoning", ReasoningField.Reasoning
        "none", ReasoningField.NoField
    ]

    /// `max_tokens_field` values.
    let maxTokensFields: (string * MaxTokensField) list = [
        "max_tokens", MaxTokensField.MaxTokens
        "max_completion_tokens", MaxTokensField.MaxCompletionTokens
    ]

    /// `thinking_control` values.
    let thinkingControls: (string * ThinkingControl) list = [
        "none", ThinkingControl.NoControl
        "reasoning_effort", ThinkingControl.ReasoningEffort
        "thinking", ThinkingControl.ThinkingField
    ]

    /// `mid_conversation_system` values.
    let midSystems: (string * MidSystem) list = [
        "system", MidSystem.InPlace
        "user", MidSystem.AsUser
        "drop", MidSystem.Drop
    ]

    /// `openai_api` values.
    let apis: (string * OpenAiApi) list = [ "chat", OpenAiApi.Chat; "responses", OpenAiApi.Responses ]

    /// `server.stream_keepalive` values.
    let keepAliveModes: (string * KeepAliveMode) list = [ "events", KeepAliveMode.Events; "pings", KeepAliveMode.Pings ]

    /// `on_dropped` values.
    let droppedPolicies: (string * DroppedPolicy) list = [
        "report", DroppedPolicy.Report
        "refuse", DroppedPolicy.Refuse
    ]

    let private nameOf (choices: (string * 'Value) list) (value: 'Value) : string =
        choices |> List.find (fun (_, v) -> v = value) |> fst

    let reasoningFieldName (value: ReasoningField) : string = nameOf reasoningFields value
    let maxTokensFieldName (value: MaxTokensField) : string = nameOf maxTokensFields value
    let thinkingControlName (value: ThinkingControl) : string = nameOf thinkingControls value
    let midSystemName (value: MidSystem) : string = nameOf midSystems value

    /// `gemini_thinking` values.
    let geminiThinkings: (string * GeminiThinking) list = [
        "auto", GeminiThinking.Auto
        "budget", GeminiThinking.Budget
        "level", GeminiThinking.Level
        "none", GeminiThinking.NoControl
    ]

    let geminiThinkingName (value: GeminiThinking) : string = nameOf geminiThinkings value
    let apiName (value: OpenAiApi) : string = nameOf apis value
    let droppedPolicyName (value: DroppedPolicy) : string = nameOf droppedPolicies value
