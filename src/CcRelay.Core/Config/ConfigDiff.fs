namespace CcRelay.Core

/// One difference between the running configuration and a newly loaded one.
[<RequireQualifiedAccess>]
type ConfigChange =
    | ProviderAdded of Name: string
    | ProviderRemoved of Name: string
    /// A provider kept its name; `Fields` lists what changed (`base_url`, `keys`, …).
    | ProviderChanged of Name: string * Fields: string list
    /// A setting that takes effect for the next request.
    | SettingChanged of Path: string
    /// A setting that only a restart applies (the listener is already bound).
    | RestartRequired of Path: string

/// What a reload does with the changes it found (`ConfigDiff.effect`).
[<RequireQualifiedAccess>]
type ReloadEffect =
    /// Nothing differs from the running config.
    | Unchanged
    /// Only settings a restart applies differ: nothing is swapped in, and the reload says which need a restart.
    | RestartRequired
    /// Something takes effect now; restart-only settings among the changes keep their running values (`applicable`)
    /// and are reported as needing a restart.
    | Apply

/// What a reload changes. Pure: two configs in, a list of changes out, for the reload log line.
[<RequireQualifiedAccess>]
module ConfigDiff =

    let private changedFields (fields: (string * bool) list) : string list =
        fields |> List.filter snd |> List.map fst

    let private providerFields (a: ProviderConfig) (b: ProviderConfig) : string list =
        let named =
            changedFields [
                "type", a.Type <> b.Type
                "enabled", a.Enabled <> b.Enabled
                "base_url", a.BaseUrl <> b.BaseUrl
                "auth_header", a.AuthStyle <> b.AuthStyle
                "keys", a.Keys <> b.Keys
                "model_mapping", a.ModelMapping <> b.ModelMapping
                "models", a.Models <> b.Models
                // the cloud keys (region, project, resource, credentials) by the type's own name for them
                "cloud settings", a.Cloud <> b.Cloud
            ]

        // fields added to the record later still show up, if not by name
        if named.IsEmpty && a <> b then
            [ "other settings" ]
        else
            named

    /// The edge's settings that are bound at start: the TLS listener (its certificate files are re-read when
    /// they change, whatever the config says), Kestrel's limits, the upstream TLS settings, the audit file.
    let private edgeRestart (e: EdgeConfig) (f: EdgeConfig) : string list =
        changedFields [
            "server.tls", e.Tls <> f.Tls
            "server.limits", e.Limits <> f.Limits
            "security.upstream_ca_file", e.Security.UpstreamCaFile <> f.Security.UpstreamCaFile
            "security.upstream_min_tls", e.Security.UpstreamMinTls <> f.Security.UpstreamMinTls
            "security.audit_log", e.Security.Audit <> f.Security.Audit
        ]

    /// The edge's settings the next request sees.
    let private edgeLive (e: EdgeConfig) (f: EdgeConfig) : string list =
        changedFields [
            "server.queue_size", e.Queue.Size <> f.Queue.Size
            "server.queue_timeout_ms", e.Queue.TimeoutMs <> f.Queue.TimeoutMs
            "security.upstream_hosts", e.Security.UpstreamHosts <> f.Security.UpstreamHosts
            "security.status_token", e.Security.StatusToken <> f.Security.StatusToken
        ]

    /// Every change from `current` to `next`, in a stable order: restart-only settings first, then live
    /// settings, then providers (removed, added, changed) in config order.
    let between (current: RelayConfig) (next: RelayConfig) : ConfigChange list =
        let s, t = current.Server, next.Server

        let m, n = current.Metrics, next.Metrics
        let o, p = current.Otel, next.Otel

        let restart =
            changedFields [
                "server.listen", s.Listen <> t.Listen
                "server.enable_http2", s.EnableHttp2 <> t.EnableHttp2
                "metrics.enabled", m.Enabled <> n.Enabled
                "metrics.path", m.Path <> n.Path
                "metrics.listen", m.Listen <> n.Listen
                "otel.enabled", o.Enabled <> p.Enabled
                "otel.endpoint", o.Endpoint <> p.Endpoint
                "otel.protocol", o.Protocol <> p.Protocol
                "otel.service_name", o.ServiceName <> p.ServiceName
                // the management listener and its token are set up once, at start
                "grpc.enabled", current.Grpc.Enabled <> next.Grpc.Enabled
                "grpc.listen", current.Grpc.Listen <> next.Grpc.Listen
                "grpc.auth_token", current.Grpc.AuthToken <> next.Grpc.AuthToken
                "grpc.web_listen", current.Grpc.WebListen <> next.Grpc.WebListen
                "ledger", current.Ledger <> next.Ledger
                // the shared-state connection is opened once, at start-up
                "state", current.State <> next.State
            ]
            @ edgeRestart current.Edge next.Edge
            |> List.map ConfigChange.RestartRequired

        let observability =
            changedFields [
                "metrics.max_model_labels", m.MaxModelLabels <> n.MaxModelLabels
                "otel.propagate_trace_context", o.PropagateTraceContext <> p.PropagateTraceContext
            ]

        let liveServer =
            changedFields [
                "server.auth", s.Auth <> t.Auth
                "server.timeout_ms", s.TimeoutMs <> t.TimeoutMs
                "server.max_concurrent", s.MaxConcurrent <> t.MaxConcurrent
                "server.max_body_bytes", s.MaxBodyBytes <> t.MaxBodyBytes
                "server.first_byte_timeout_ms", s.FirstByteTimeoutMs <> t.FirstByteTimeoutMs
                "server.shutdown_timeout_ms", s.ShutdownTimeoutMs <> t.ShutdownTimeoutMs
                "server.stream_keepalive", s.StreamKeepAlive <> t.StreamKeepAlive
                "server.stream_keepalive_ms", s.StreamKeepAliveMs <> t.StreamKeepAliveMs
            ]

        let liveServer = liveServer @ edgeLive current.Edge next.Edge

        let serverOther =
            if liveServer.IsEmpty && restart.IsEmpty && s <> t then
                [ "server" ]
            else
                []

        let logging =
            changedFields [
                "logging.level", current.Logging.Level <> next.Logging.Level
                "logging.format", current.Logging.Format <> next.Logging.Format
                "logging.output", current.Logging.Output <> next.Logging.Output
                "logging.debug_options", current.Logging.DebugOptions <> next.Logging.DebugOptions
            ]

        let loggingOther =
            if logging.IsEmpty && current.Logging <> next.Logging then
                [ "logging" ]
            else
                []

        let byName (providers: ProviderConfig list) =
            providers |> List.map (fun p -> p.Name, p) |> Map.ofList

        let before, after = byName current.Providers, byName next.Providers

        let removed =
            current.Providers
            |> List.filter (fun p -> not (after.ContainsKey p.Name))
            |> List.map (fun p -> ConfigChange.ProviderRemoved p.Name)

        let addedOrChanged =
            next.Providers
            |> List.choose (fun p ->
                match before.TryFind p.Name with
                | None -> Some(ConfigChange.ProviderAdded p.Name)
                | Some old when old <> p -> Some(ConfigChange.ProviderChanged(p.Name, providerFields old p))
                | Some _ -> None)

        let providersReordered =
            removed.IsEmpty
            && addedOrChanged.IsEmpty
            && List.map (fun (p: ProviderConfig) -> p.Name) current.Providers
               <> List.map (fun (p: ProviderConfig) -> p.Name) next.Providers

        let live =
            liveServer
            @ serverOther
            @ logging
            @ loggingOther
            @ observability
            @ (if providersReordered then [ "providers (order)" ] else [])
            @ changedFields [
                "pipelines", current.Pipelines.Pipelines <> next.Pipelines.Pipelines
                "plugins", current.Pipelines.Plugins <> next.Pipelines.Plugins
            ]
            |> List.map ConfigChange.SettingChanged

        // anything else (sections added to RelayConfig later) is caught by whole-record equality
        let covered = restart @ live @ removed @ addedOrChanged

        let rest =
            if covered.IsEmpty && current <> next then
                [ ConfigChange.SettingChanged "other settings" ]
            else
                []

        restart @ live @ removed @ addedOrChanged @ rest

    /// One line for the log: `providers added: b; changed: a (keys, base_url); restart required: server.listen`.
    let describe (changes: ConfigChange seq) : string =
        let changes = List.ofSeq changes

        if changes.IsEmpty then
            "no changes"
        else
            let group (label: string) (items: string list) =
                if items.IsEmpty then
                    None
                else
                    Some(label + ": " + String.concat ", " items)

            [
                group
                    "restart required for"
                    (changes
                     |> List.choose (function
                         | ConfigChange.RestartRequired p -> Some p
                         | _ -> None))
                group
                    "settings changed"
                    (changes
                     |> List.choose (function
                         | ConfigChange.SettingChanged p -> Some p
                         | _ -> None))
                group
                    "providers added"
                    (changes
                     |> List.choose (function
                         | ConfigChange.ProviderAdded n -> Some n
                         | _ -> None))
                group
                    "providers removed"
                    (changes
                     |> List.choose (function
                         | ConfigChange.ProviderRemoved n -> Some n
                         | _ -> None))
                group
                    "providers changed"
                    (changes
                     |> List.choose (function
                         | ConfigChange.ProviderChanged(n, fields) -> Some $"""%s{n} (%s{String.concat ", " fields})"""
                         | _ -> None))
            ]
            |> List.choose id
            |> String.concat "; "

    /// The config a reload actually applies: `next`, except the settings only a restart can change, which keep
    /// their running values (the listeners stay where they are, metrics and OTLP export keep their
    /// start-up settings, and the snapshot must say so).
    let applicable (running: RelayConfig) (next: RelayConfig) : RelayConfig = {
        next with
            Server = {
                next.Server with
                    Listen = running.Server.Listen
                    EnableHttp2 = running.Server.EnableHttp2
            }
            Metrics = {
                running.Metrics with
                    MaxModelLabels = next.Metrics.MaxModelLabels
            }
            Otel = {
                running.Otel with
                    PropagateTraceContext = next.Otel.PropagateTraceContext
            }
            Grpc = running.Grpc
            Edge = {
                next.Edge with
                    Tls = running.Edge.Tls
                    Limits = running.Edge.Limits
                    Security = {
                        next.Edge.Security with
                            UpstreamCaFile = running.Edge.Security.UpstreamCaFile
                            UpstreamMinTls = running.Edge.Security.UpstreamMinTls
                            Audit = running.Edge.Security.Audit
                    }
            }
            // the ledger's file and writer are opened once, at start-up; clients reload live
            Ledger = running.Ledger
            State = running.State
    }

    /// What a reload with `changes` (`between`) does: apply them when any takes effect now; when every one needs
    /// a restart (a changed `grpc:` section, TLS files, listeners), nothing is applied and the reload says so,
    /// every time, until the relay restarts.
    let effect (changes: ConfigChange list) : ReloadEffect =
        if changes.IsEmpty then
            ReloadEffect.Unchanged
        elif
            changes
            |> List.forall (function
                | ConfigChange.RestartRequired _ -> true
                | _ -> false)
        then
            ReloadEffect.RestartRequired
        else
            ReloadEffect.Apply
