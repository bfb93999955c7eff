namespace CcRelay.Core

open System

/// The edge's keys: `server.tls`, `server.queue_size`, `server.queue_timeout_ms`, `server.limits` and the
/// `security` section (docs/security.md), and the checks that need the providers (`security.upstream_hosts`).
/// File-valued keys are kept with their place (`ConfigFileRef`): the host reads the files and reports there.
[<RequireQualifiedAccess>]
module internal ConfigEdge =

    /// The `server` keys this module reads (the server decoder accepts them and leaves them to this one).
    let serverKeys: string list = [ "tls"; "queue_size"; "queue_timeout_ms"; "limits" ]

    let private tlsKeys: string list = [ "cert_file"; "key_file"; "min_version"; "listen" ]

    let private limitKeys: string list = [
        "request_headers_timeout_ms"
        "keep_alive_timeout_ms"
        "min_request_body_bytes_per_second"
        "min_response_bytes_per_second"
        "min_rate_grace_ms"
        "max_connections"
    ]

    let private securityKeys: string list = [
        "upstream_hosts"
        "upstream_ca_file"
        "upstream_min_tls"
        "status_token"
        "audit_log"
    ]

    let private auditKeys: string list = [ "path"; "auth_failures_per_minute" ]

    let private tlsVersions: (string * TlsVersion) list = [ "1.2", TlsVersion.Tls12; "1.3", TlsVersion.Tls13 ]

    /// The config spelling of a TLS version.
    let tlsVersionName (version: TlsVersion) : string =
        tlsVersions |> List.find (fun (_, v) -> v = version) |> fst

    /// A TLS version: `1.2` or `1.3` (YAML reads an unquoted `1.2` as a number; both spellings are taken).
    let private tlsVersion: Read<TlsVersion option> =
        fun cursor node ->
            let text =
                match node with
                | Scalar(ScalarValue.Float value, at) ->
                    Scalar(ScalarValue.String(value.ToString("0.0", Globalization.CultureInfo.InvariantCulture)), at)
                | other -> other

            ConfigRead.optionalChoice tlsVersions cursor text

    /// A file path, kept with its key and place.
    let private file: Read<ConfigFileRef option> =
        fun cursor node ->
            ConfigRead.optionalString cursor node
            |> Decoded.bind (fun path ->
                match path with
                | None
                | Some "" -> Decoded.none
                | Some path ->
                    Decoded.ok (
                        Some {
                            Path = path
                            Key = cursor.Shown
                            At = Some(ConfigNode.position node)
                        }
                    ))

    /// The `server` mapping's entries, read without a second unknown-key report (the server decoder makes it);
    /// an absent or ill-shaped `server` has none (its error is reported there too).
    let private serverFields (root: Fields) : Fields =
        let cursor = root.Cursor.Child "server"

        match ConfigRead.entry "server" root with
        | Some { Value = Mapping(entries, at) as node } ->
            ConfigRead.section (entries |> List.map _.Key) cursor node
            |> _.Value
            |> Option.defaultValue {
                Cursor = cursor
                At = at
                Entries = Map.empty
            }
        | _ -> {
            Cursor = cursor
            At = root.At
            Entries = Map.empty
          }

    let private tls (server: Fields) : Decoded<TlsConfig option> =
        match ConfigRead.entry "tls" server with
        | None -> Decoded.none
        | Some _ ->
            ConfigRead.subsection "tls" tlsKeys server
            |> Decoded.bind (fun fields ->
                decoded {
                    let! cert = ConfigRead.required fields "cert_file" file
                    and! key = ConfigRead.required fields "key_file" file

                    and! minVersion =
                        fields
                        |> ConfigRead.field "min_version" tlsVersion
                        |> Decoded.orDefault TlsVersion.Tls12

                    and! listen = fields |> ConfigRead.field "listen" ConfigSections.listen

                    return
                        Some {
                            CertFile = cert
                            KeyFile = key
                            MinVersion = minVersion
                            Listen = listen
                        }
                })

    let private limits (server: Fields) : Decoded<ConnectionLimits> =
        ConfigRead.subsection "limits" limitKeys server
        |> Decoded.bind (fun fields ->
            let d = Config.defaultEdge.Limits

            let integer (key: string) (minimum: int64) (maximum: int64) (fallback: int64) : Decoded<int64> =
                fields
                |> ConfigRead.field key (ConfigRead.optionalInteger minimum maximum)
                |> Decoded.orDefault fallback

            decoded {
                let! headers =
                    integer "request_headers_timeout_ms" 100L 600_000L (int64 d.RequestHeadersTimeoutMs)

                and! keepAlive =
                    integer "keep_alive_timeout_ms" 100L 3_600_000L (int64 d.KeepAliveTimeoutMs)

                and! bodyRate =
                    integer
                        "min_request_body_bytes_per_second"
                        0L
                        1_000_000_000L
                        (int64 d.MinRequestBodyBytesPerSecond)

                and! responseRate =
                    integer "min_response_bytes_per_second" 0L 1_000_000_000L (int64 d.MinResponseBytesPerSecond)

                // Kestrel wants more than 1 s: its heartbeat checks the rates once a second
                and! grace = integer "min_rate_grace_ms" 2_000L 600_000L (int64 d.MinRateGraceMs)
                and! connections = integer "max_connections" 0L Int64.MaxValue d.MaxConnections

                return {
                    RequestHeadersTimeoutMs = int headers
                    KeepAliveTimeoutMs = int keepAlive
                    MinRequestBodyBytesPerSecond = int bodyRate
                    MinResponseBytesPerSecond = int responseRate
                    MinRateGraceMs = int grace
                    MaxConnections = connections
                }
            })

    let private hostPattern: Read<HostPattern> =
        fun cursor node ->
            ConfigRead.nonEmptyString cursor node
            |> Decoded.bind (fun text ->
                match HostPattern.parse text with
                | Ok pattern -> Decoded.ok pattern
                | Error message -> ConfigRead.fail cursor (ConfigNode.position node) message)

    let private audit (security: Fields) : Decoded<AuditConfig option> =
        match ConfigRead.entry "audit_log" security with
        | None -> Decoded.none
        | Some { Value = Scalar _ as node } ->
            // the short form: `audit_log: /var/log/cc-relay/audit.jsonl`
            file (security.Cursor.Child "audit_log") node
            |> Decoded.map (
                Option.map (fun f -> {
                    Path = f.Path
                    AuthFailuresPerMinute = 10
                })
            )
        | Some _ ->
            ConfigRead.subsection "audit_log" auditKeys security
            |> Decoded.bind (fun fields ->
                decoded {
                    let! path = ConfigRead.required fields "path" ConfigRead.optionalString

                    and! perMinute =
                        fields
                        |> ConfigRead.field "auth_failures_per_minute" (ConfigRead.optionalInteger 1L 100_000L)
                        |> Decoded.orDefault 10L

                    return
                        Some {
                            Path = path
                            AuthFailuresPerMinute = int perMinute
                        }
                })

    let private security (root: Fields) : Decoded<SecurityConfig> =
        ConfigRead.subsection "security" securityKeys root
        |> Decoded.bind (fun fields ->
            let d = Config.defaultEdge.Security

            decoded {
                let! hosts =
                    fields
                    |> ConfigRead.field "upstream_hosts" (ConfigRead.optionalList hostPattern)
                    |> Decoded.orDefault []

                and! caFile = fields |> ConfigRead.field "upstream_ca_file" file

                and! minTls =
                    fields
                    |> ConfigRead.field "upstream_min_tls" tlsVersion
                    |> Decoded.orDefault d.UpstreamMinTls

                and! token = fields |> ConfigRead.field "status_token" ConfigRead.optionalString
                and! audit = audit fields

                return {
                    UpstreamHosts = hosts
                    UpstreamCaFile = caFile
                    UpstreamMinTls = minTls
                    StatusToken = token |> Option.filter (fun t -> t.Length > 0)
                    Audit = audit
                }
            })

    /// The edge settings of a document: `server.tls`, the queue, `server.limits`, `security`.
    let decode (root: Fields) : Decoded<EdgeConfig> =
        let server = serverFields root
        let d = Config.defaultEdge

        decoded {
            let! tls = tls server

            and! queueSize =
                server
                |> ConfigRead.field "queue_size" (ConfigRead.optionalInteger 0L (int64 Int32.MaxValue))

            and! queueTimeout =
                server
                |> ConfigRead.field "queue_timeout_ms" (ConfigRead.optionalInteger 0L 3_600_000L)
                |> Decoded.orDefault (int64 d.Queue.TimeoutMs)

            and! limits = limits server
            and! security = security root

            return {
                Tls = tls
                Queue = {
                    Size = queueSize |> Option.map int
                    TimeoutMs = int queueTimeout
                }
                Limits = limits
                Security = security
            }
        }

    /// `server.auth` without a `bearer_secret`: `allow_bearer: true` would admit any bearer token, so it needs
    /// the explicit `allow_any_bearer: true` (an error otherwise, at `allow_bearer`). The Go project's
    /// `allow_subscription: true` keeps loading (its example config uses it to pass Claude subscription tokens
    /// through to Anthropic, which checks them), with a warning.
    let anyBearer (auth: Fields) (hasSecret: bool) : Finding list =
        let flag (key: string) : bool =
            (auth |> ConfigRead.field key ConfigRead.optionalBoolean).Value = Some(Some true)

        let any = flag "allow_any_bearer"

        [
            if hasSecret && any then
                Finding.warning (
                    ConfigRead.issue
                        (auth.Cursor.Child "allow_any_bearer")
                        (ConfigRead.valueAt "allow_any_bearer" auth)
                        "has no effect: bearer_secret is set, so only that token is admitted"
                )
            elif not hasSecret && not any then
                if flag "allow_bearer" then
                    Finding.error (
                        ConfigRead.issue
                            (auth.Cursor.Child "allow_bearer")
                            (ConfigRead.valueAt "allow_bearer" auth)
                            "without bearer_secret admits any bearer token: set bearer_secret, or allow_any_bearer: true to admit any token on purpose (e.g. Claude subscription tokens the upstream checks)"
                    )
                elif flag "allow_subscription" then
                    Finding.warning (
                        ConfigRead.issue
                            (auth.Cursor.Child "allow_subscription")
                            (ConfigRead.valueAt "allow_subscription" auth)
                            "without bearer_secret admits any bearer token (passed on for the upstream to check); write allow_any_bearer: true to say so, or set bearer_secret"
                    )
        ]

    /// The place of `providers[i].base_url` for the provider named `name` (the item itself when it has no
    /// `base_url`, e.g. a cloud provider whose URL comes from its region).
    let private providerPlace (root: Fields) (name: string) : string * Position =
        let fallback = "security.upstream_hosts", ConfigRead.valueAt "security" root

        match ConfigRead.entry "providers" root with
        | Some { Value = Sequence(items, _) } ->
            items
            |> List.indexed
            |> List.tryPick (fun (i, item) ->
                match item with
                | Mapping(entries, at) when
                    entries
                    |> List.exists (fun e ->
                        e.Key = "name"
                        && (match e.Value with
                            | Scalar((ScalarValue.String n | ScalarValue.Plain n), _) -> n = name
                            | _ -> false))
                    ->
                    match entries |> List.tryFind (fun e -> e.Key = "base_url") with
                    | Some e -> Some($"providers[%d{i}].base_url", ConfigNode.position e.Value)
                    | None -> Some($"providers[%d{i}]", at)
                | _ -> None)
            |> Option.defaultValue fallback
        | _ -> fallback

    /// Every provider whose `base_url` names a host outside `security.upstream_hosts`: an error at its
    /// `base_url`. A disabled provider is checked too (enabling it at run time must not bypass the list).
    let checkUpstreams (root: Fields) (edge: EdgeConfig) (providers: ProviderConfig list) : Finding list =
        let allowed = edge.Security.UpstreamHosts

        providers
        |> List.filter (fun p -> not (HostPattern.allows allowed p.BaseUrl.Host))
        |> List.map (fun p ->
            let path, at = providerPlace root p.Name
            let listed = allowed |> List.map HostPattern.text |> String.concat ", "

            Finding.error {
                Path = path
                Position = Some at
                Message =
                    $"provider %s{ConfigRead.quote p.Name}: host %s{ConfigRead.quote p.BaseUrl.Host} is not in security.upstream_hosts (%s{listed})"
            })
