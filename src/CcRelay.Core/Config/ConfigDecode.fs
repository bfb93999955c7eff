namespace CcRelay.Core

open System

/// Turns a parsed config document into a validated `RelayConfig`, reporting every problem at once.
///
/// Keys follow the Go project (seed-cc-relay.md §3.2). Where we differ, on purpose: `server.listen` has a
/// default; `providers[].enabled` defaults to true; `max_body_bytes: 0` means the default cap, not
/// unlimited; a disabled provider's problems are warnings; unknown keys are warnings (Go ignored them
/// silently); `${VAR}` expansion is per value, strict, and never touches keys or comments.
[<RequireQualifiedAccess>]
module ConfigDecode =

    let private rootKeys: string list =
        [
            "server"
            "providers"
            "logging"
            "metrics"
            "otel"
            "routing"
            "health"
            "grpc"
            "security"
            "clients"
            "ledger"
            "pipelines"
            "plugins"
            "state"
        ]
        @ (ConfigSections.all |> List.map (fun (name, _, _) -> name))

    let private serverKeys: string list =
        [
            "listen"
            "api_key"
            "auth"
            "timeout_ms"
            "max_concurrent"
            "max_body_bytes"
            "enable_http2"
            "first_byte_timeout_ms"
            "shutdown_timeout_ms"
            "stream_keepalive"
            "stream_keepalive_ms"
        ]
        @ ConfigEdge.serverKeys

    let private authKeys: string list = [
        "api_key"
        "allow_bearer"
        "allow_subscription"
        "bearer_secret"
        "allow_any_bearer"
    ]

    let private loggingKeys: string list = [ "level"; "format"; "output"; "pretty"; "debug_options"; "file" ]

    let private debugOptionKeys: string list = [
        "log_request_body"
        "log_request_headers"
        "log_response_headers"
        "log_response_body"
        "log_tls_metrics"
        "max_body_log_size"
    ]

    let private keyAt (key: string) (fields: Fields) : Position =
        ConfigRead.entry key fields
        |> Option.map _.KeyAt
        |> Option.defaultValue fields.At

    let private nonEmpty (text: string option) : string option =
        text |> Option.filter (fun t -> t.Length > 0)

    // ---------------------------
    // server
    // ---------------------------

    /// `server.auth`, with the legacy `server.api_key` used when `auth.api_key` is empty.
    let private auth (server: Fields) (legacyApiKey: string option) : Decoded<AuthSettings> =
        ConfigRead.subsection "auth" authKeys server
        |> Decoded.bind (fun fields ->
            decoded {
                let! apiKey = fields |> ConfigRead.field "api_key" ConfigRead.optionalString

                and! allowBearer =
                    fields |> ConfigRead.field "allow_bearer" ConfigRead.optionalBoolean

                and! allowSubscription =
                    fields |> ConfigRead.field "allow_subscription" ConfigRead.optionalBoolean

                and! bearerSecret =
                    fields |> ConfigRead.field "bearer_secret" ConfigRead.optionalString

                and! allowAnyBearer =
                    fields |> ConfigRead.field "allow_any_bearer" ConfigRead.optionalBoolean

                return
                    {
                        ApiKey = nonEmpty apiKey |> Option.orElse (nonEmpty legacyApiKey)
                        // `allow_subscription` is an alias: either one turns bearer auth on; `allow_any_bearer`
                        // turns it on without a secret, on purpose.
                        AllowBearer =
                            allowBearer = Some true
                            || allowSubscription = Some true
                            || allowAnyBearer = Some true
                        BearerSecret = nonEmpty bearerSecret
                    },
                    nonEmpty apiKey
            }
            |> Decoded.bind (fun (settings, ownKey) ->
                let anyBearer = ConfigEdge.anyBearer fields settings.BearerSecret.IsSome

                let findings = [
                    yield! anyBearer
                    if ownKey.IsSome && (nonEmpty legacyApiKey).IsSome then
                        Finding.warning (
                            ConfigRead.issue
                                (server.Cursor.Child "api_key")
                                (keyAt "api_key" server)
                                "is ignored because server.auth.api_key is set"
                        )
                    if settings.BearerSecret.IsSome && not settings.AllowBearer then
                        Finding.warning (
                            ConfigRead.issue
                                (fields.Cursor.Child "bearer_secret")
                                (keyAt "bearer_secret" fields)
                                "has no effect unless allow_bearer (or allow_subscription) is true"
                        )
                ]

                {
                    Value = Some settings
                    Findings = findings
                }))

    let private server (root: Fields) : Decoded<ServerConfig> =
        ConfigRead.subsection "server" serverKeys root
        |> Decoded.bind (fun fields ->
            let integer (key: string) (minimum: int64) (maximum: int64) (fallback: int64) : Decoded<int64> =
                fields
                |> ConfigRead.field key (ConfigRead.optionalInteger minimum maximum)
                |> Decoded.orDefault fallback

            let defaults = Config.defaultServer

            decoded {
                let! legacyApiKey =
                    fields
                    |> ConfigRead.field "api_key" ConfigRead.optionalString
                    |> Decoded.attempt

                let! settings = auth fields (Option.flatten legacyApiKey)

                and! listen =
                    fields
                    |> ConfigRead.field "listen" ConfigSections.listen
                    |> Decoded.orDefault defaults.Listen

                and! timeoutMs = integer "timeout_ms" 0L 86_400_000L (int64 defaults.TimeoutMs)
                and! maxConcurrent = integer "max_concurrent" 0L (int64 Int32.MaxValue) 0L
                // 0 means "the default cap", not "unlimited" as in Go: an unbounded body is never wanted.
                and! maxBodyBytes = integer "max_body_bytes" 0L Int64.MaxValue 0L

                and! enableHttp2 =
                    fields
                    |> ConfigRead.field "enable_http2" ConfigRead.optionalBoolean
                    |> Decoded.orDefault false

                and! firstByteTimeoutMs =
                    integer "first_byte_timeout_ms" 1L 3_600_000L (int64 defaults.FirstByteTimeoutMs)

                and! shutdownTimeoutMs =
                    integer "shutdown_timeout_ms" 0L 600_000L (int64 defaults.ShutdownTimeoutMs)

                and! streamKeepAlive =
                    fields
                    |> ConfigRead.field "stream_keepalive" (ConfigRead.optionalChoice OpenAiKnobs.keepAliveModes)
                    |> Decoded.orDefault defaults.StreamKeepAlive

                and! streamKeepAliveMs =
                    integer "stream_keepalive_ms" 1_000L 290_000L (int64 defaults.StreamKeepAliveMs)

                return {
                    Listen = listen
                    Auth = settings
                    TimeoutMs = int timeoutMs
                    MaxConcurrent = int maxConcurrent
                    MaxBodyBytes =
                        if maxBodyBytes = 0L then
                            defaults.MaxBodyBytes
                        else
                            maxBodyBytes
                    EnableHttp2 = enableHttp2
                    FirstByteTimeoutMs = int firstByteTimeoutMs
                    ShutdownTimeoutMs = int shutdownTimeoutMs
                    StreamKeepAlive = streamKeepAlive
                    StreamKeepAliveMs = int streamKeepAliveMs
                }
            })

    // ---------------------------
    // logging
    // ---------------------------

    /// `logging.debug_options`. `log_tls_metrics` is checked, not stored (nothing reads it yet).
    let private debugOptions (logging: Fields) : Decoded<DebugOptions> =
        ConfigRead.subsection "debug_options" debugOptionKeys logging
        |> Decoded.bind (fun fields ->
            let flag (key: string) : Decoded<bool> =
                fields
                |> ConfigRead.field key ConfigRead.optionalBoolean
                |> Decoded.orDefault false

            decoded {
                let! logRequestBody = flag "log_request_body"
                and! logRequestHeaders = flag "log_request_headers"
                and! logResponseHeaders = flag "log_response_headers"
                and! logResponseBody = flag "log_response_body"
                and! _ = flag "log_tls_metrics"

                and! maxBodyLogSize =
                    fields
                    |> ConfigRead.field "max_body_log_size" (ConfigRead.optionalInteger 0L (int64 Int32.MaxValue))
                    |> Decoded.orDefault 0L

                return {
                    LogRequestBody = logRequestBody
                    LogRequestHeaders = logRequestHeaders
                    LogResponseHeaders = logResponseHeaders
                    LogResponseBody = logResponseBody
                    // 0 means the default, as in the Go project
                    MaxBodyLogSize =
                        if maxBodyLogSize = 0L then
                            Config.defaultDebugOptions.MaxBodyLogSize
                        else
                            int maxBodyLogSize
                }
            })

    let private logging (root: Fields) : Decoded<LoggingConfig> =
        ConfigRead.subsection "logging" loggingKeys root
        |> Decoded.bind (fun fields ->
            let defaults = Config.defaultLogging

            let fileWarning =
                match ConfigRead.entry "file" fields with
                | Some entry -> [
                    Finding.warning (
                        ConfigRead.issue
                            (fields.Cursor.Child "file")
                            entry.KeyAt
                            "is not read (nor was it in the Go project); write output: <path> to log to a file"
                    )
                  ]
                | None -> []

            decoded {
                let! level =
                    fields
                    |> ConfigRead.field
                        "level"
                        (ConfigRead.optionalChoice [
                            "debug", LogLevel.Debug
                            "info", LogLevel.Info
                            "warn", LogLevel.Warn
                            "error", LogLevel.Error
                        ])
                    |> Decoded.orDefault defaults.Level

                // `console` and `pretty` are the Go project's names for human-readable text.
                and! format =
                    fields
                    |> ConfigRead.field
                        "format"
                        (ConfigRead.optionalChoice [
                            "json", LogFormat.Json
                            "text", LogFormat.Text
                            "console", LogFormat.Text
                            "pretty", LogFormat.Text
                        ])
                    |> Decoded.orDefault defaults.Format

                and! output = fields |> ConfigRead.field "output" ConfigRead.optionalString
                and! _ = fields |> ConfigRead.field "pretty" ConfigRead.optionalBoolean
                and! debug = debugOptions fields

                return {
                    Level = level
                    Format = format
                    Output = nonEmpty output |> Option.defaultValue defaults.Output
                    DebugOptions = debug
                }
            }
            |> Decoded.tell fileWarning)

    // ---------------------------
    // metrics
    // ---------------------------

    let private metricsKeys: string list = [
        "enabled"
        "path"
        "listen"
        "max_model_labels"
        "prometheus_endpoint"
        "prometheus_listen"
    ]

    /// An absolute URL path that no relay route uses.
    let private metricsPath: Read<string option> =
        fun cursor node ->
            ConfigRead.optionalString cursor node
            |> Decoded.bind (fun text ->
                let at = ConfigNode.position node

                match text with
                | None
                | Some "" -> Decoded.none
                | Some path when
                    not (path.StartsWith '/')
                    || path
                       |> Seq.exists (fun c -> Char.IsWhiteSpace c || Char.IsControl c || "?#{}%".Contains c)
                    ->
                    ConfigRead.fail
                        cursor
                        at
                        $"expected a URL path such as /metrics (starting with /, without spaces, ?, #, {{, }} or %%), got %s{ConfigRead.quote path}"
                | Some path when
                    path = "/"
                    || path = "/health"
                    || path = "/v1"
                    || path.StartsWith "/v1/"
                    || path.StartsWith "//"
                    ->
                    ConfigRead.fail
                        cursor
                        at
                        $"%s{ConfigRead.quote path} is taken by the relay's own routes; use e.g. /metrics"
                | Some path -> Decoded.ok (Some path))

    /// A new key and the Go project's name for it: the new key wins; when both are set the Go one is
    /// ignored with a warning.
    let private withAlias
        (fields: Fields)
        (key: string)
        (goKey: string)
        (read: Read<'Value option>)
        : Decoded<'Value option> =
        let preferred = fields |> ConfigRead.field key read
        let legacy = fields |> ConfigRead.field goKey read

        decoded {
            let! preferred = preferred
            and! legacy = legacy
            return Option.orElse legacy preferred
        }
        |> Decoded.tell [
            match ConfigRead.entry key fields, ConfigRead.entry goKey fields with
            | Some _, Some entry ->
                Finding.warning (
                    ConfigRead.issue
                        (fields.Cursor.Child goKey)
                        entry.KeyAt
                        $"is ignored because metrics.%s{key} is set"
                )
            | _ -> ()
        ]

    /// `metrics`. The Go project's `prometheus_endpoint` and `prometheus_listen` are read as `path` and `listen`.
    let private metrics (root: Fields) : Decoded<MetricsConfig> =
        ConfigRead.subsection "metrics" metricsKeys root
        |> Decoded.bind (fun fields ->
            let defaults = Config.defaultMetrics

            decoded {
                let! enabled =
                    fields
                    |> ConfigRead.field "enabled" ConfigRead.optionalBoolean
                    |> Decoded.orDefault defaults.Enabled

                and! path =
                    withAlias fields "path" "prometheus_endpoint" metricsPath
                    |> Decoded.orDefault defaults.Path

                and! listen = withAlias fields "listen" "prometheus_listen" ConfigSections.listen

                and! maxModelLabels =
                    fields
                    |> ConfigRead.field "max_model_labels" (ConfigRead.optionalInteger 1L 10_000L)
                    |> Decoded.orDefault (int64 defaults.MaxModelLabels)

                return {
                    Enabled = enabled
                    Path = path
                    Listen = listen
                    MaxModelLabels = int maxModelLabels
                }
            })

    // ---------------------------
    // otel
    // ---------------------------

    let private otelKeys: string list = [ "enabled"; "endpoint"; "protocol"; "service_name"; "propagate_trace_context" ]

    /// An absolute http(s) URL without credentials (an OTLP collector).
    let private otlpEndpoint: Read<Uri option> =
        fun cursor node ->
            ConfigRead.optionalString cursor node
            |> Decoded.bind (fun text ->
                match text with
                | None
                | Some "" -> Decoded.none
                | Some text ->
                    match Uri.TryCreate(text, UriKind.Absolute) with
                    | true, NonNull uri when
                        (uri.Scheme = Uri.UriSchemeHttp || uri.Scheme = Uri.UriSchemeHttps)
                        && uri.Host <> ""
                        && uri.UserInfo = ""
                        ->
                        Decoded.ok (Some uri)
                    | true, NonNull uri when uri.UserInfo <> "" ->
                        ConfigRead.fail
                            cursor
                            (ConfigNode.position node)
                            "must not contain a user name or password; use the exporter's header settings"
                    | _ ->
                        ConfigRead.fail
                            cursor
                            (ConfigNode.position node)
                            $"expected an absolute http:// or https:// URL, e.g. http://localhost:4317, got %s{ConfigRead.quote text}")

    /// `otel`: OTLP export of traces and metrics (off by default).
    let private otel (root: Fields) : Decoded<OtelConfig> =
        ConfigRead.subsection "otel" otelKeys root
        |> Decoded.bind (fun fields ->
            let defaults = Config.defaultOtel

            decoded {
                let! enabled =
                    fields
                    |> ConfigRead.field "enabled" ConfigRead.optionalBoolean
                    |> Decoded.orDefault defaults.Enabled

                and! endpoint = fields |> ConfigRead.field "endpoint" otlpEndpoint

                and! protocol =
                    fields
                    |> ConfigRead.field
                        "protocol"
                        (ConfigRead.optionalChoice [
                            "grpc", OtlpProtocol.Grpc
                            "http/protobuf", OtlpProtocol.HttpProtobuf
                        ])
                    |> Decoded.orDefault defaults.Protocol

                and! serviceName =
                    fields
                    |> ConfigRead.field "service_name" (ConfigRead.some ConfigRead.nonEmptyString)
                    |> Decoded.orDefault defaults.ServiceName

                and! propagate =
                    fields
                    |> ConfigRead.field "propagate_trace_context" ConfigRead.optionalBoolean
                    |> Decoded.orDefault defaults.PropagateTraceContext

                return {
                    Enabled = enabled
                    Endpoint = endpoint
                    Protocol = protocol
                    ServiceName = serviceName
                    PropagateTraceContext = propagate
                }
            })

    // ---------------------------
    // The document
    // ---------------------------

    let private acceptedSections (root: Fields) : Decoded<unit> =
        ConfigSections.all
        |> List.choose (fun (name, shape, strict) ->
            ConfigRead.entry name root
            |> Option.map (ConfigSections.decode shape strict (root.Cursor.Child name)))
        |> Decoded.sequence
        |> Decoded.map ignore

    /// Orders issues as they appear in the file; issues without a position go last.
    let private byPosition (issues: ConfigIssue list) : ConfigIssue list =
        issues
        |> List.sortBy (fun i ->
            match i.Position with
            | Some p -> p.Line, p.Column
            | None -> Int32.MaxValue, Int32.MaxValue)

    /// Decodes a document. `lookup` reads environment variables for `${VAR}` expansion.
    let decode (lookup: string -> string option) (document: ConfigNode) : ConfigLoad =
        let root: Cursor = { Path = ""; Lookup = lookup }

        let result =
            ConfigRead.section rootKeys root document
            |> Decoded.bind (fun fields ->
                decoded {
                    let! server = server fields
                    and! providers, failedProviders = ConfigProviders.decode fields
                    and! logging = logging fields
                    and! metrics = metrics fields
                    and! otel = otel fields
                    and! routing = ConfigRouting.routing fields
                    and! health = ConfigRouting.health fields
                    and! grpc = ConfigGrpc.decode fields
                    and! edge = ConfigEdge.decode fields
                    and! pipelines, pipelineReferences = PipelineDecode.decode fields
                    and! () = acceptedSections fields
                    and! clients, mentions = ConfigClients.decode fields
                    and! ledger = ConfigClients.ledger fields
                    and! state = ConfigState.decode fields

                    return! {
                        Value =
                            Some {
                                Server = server
                                Providers = providers
                                Logging = logging
                                Metrics = metrics
                                Otel = otel
                                Routing = routing.Config
                                Health = health
                                Grpc = grpc
                                Edge = edge
                                Clients = clients
                                Ledger = ledger
                                Pipelines = pipelines
                                State = state
                            }
                        Findings =
                            ConfigRouting.checkNames routing providers failedProviders
                            @ ConfigEdge.checkUpstreams fields edge providers
                            @ ConfigClients.checkProviders mentions ((providers |> List.map _.Name) @ failedProviders)
                            @ PipelineDecode.check pipelineReferences providers
                            @ PipelineDecode.checkStages fields routing.Config.Stages
                    }
                })

        let ofSeverity (severity: Severity) : ConfigIssue list =
            result.Findings
            |> List.filter (fun f -> f.Severity = severity)
            |> List.map _.Issue
            |> byPosition

        match ofSeverity Severity.Error, result.Value with
        | [], Some config -> Loaded(config, ofSeverity Severity.Warning)
        | [], None ->
            // Every path that loses the value records an error; this guards the invariant anyway.
            Invalid(
                [
                    {
                        Path = "(document)"
                        Position = None
                        Message = "the configuration could not be decoded"
                    }
                ],
                ofSeverity Severity.Warning
            )
        | errors, _ -> Invalid(errors, ofSeverity Severity.Warning)

/// The decoder for C# callers.
[<AbstractClass; Sealed>]
type ConfigDecoder =

    /// Decodes a document; `environment` returns a variable's value, or null when it is unset.
    static member Decode(document: ConfigNode, environment: Func<string, string | null>) : ConfigLoad =
        ConfigDecode.decode (fun name -> environment.Invoke name |> Option.ofObj) document
