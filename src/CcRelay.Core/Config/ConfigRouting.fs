namespace CcRelay.Core

/// A decoded `routing` section, with where its provider names were written (checked against `providers`
/// once both are decoded).
type internal RoutingEntry = {
    Config: RoutingConfig
    /// Each provider name the section refers to: the cursor and position of the value.
    Names: (string * Cursor * Position) list
}

/// Decodes the `routing` and `health` sections (seed-cc-relay.md §3.2 keys, plus `max_attempts`,
/// `hedge_after_ms`, `circuit_breaker.window_ms` and `health_check.probe`/`url`).
[<RequireQualifiedAccess>]
module internal ConfigRouting =

    let private routingKeys: string list = [
        "strategy"
        "max_attempts"
        "failover_timeout"
        "hedge_after_ms"
        "debug"
        "model_mapping"
        "default_provider"
        "stages"
        "long_context_threshold"
        "model_switching"
        "list_switch_models"
    ]

    // ---------------------------
    // stages
    // ---------------------------

    /// One stage target: `"provider"`, `"provider,model"`, or `{provider: …, model: …}`; with where its
    /// provider name was written.
    let private target: Read<StageTarget * (string * Cursor * Position)> =
        fun cursor node ->
            let at = ConfigNode.position node

            match node with
            | Mapping _ ->
                ConfigRead.section [ "provider"; "model" ] cursor node
                |> Decoded.bind (fun fields ->
                    decoded {
                        let! provider = ConfigRead.required fields "provider" ConfigRead.optionalString
                        and! model = fields |> ConfigRead.field "model" ConfigRead.optionalString
                        return provider, model
                    }
                    |> Decoded.bind (fun (provider, model) ->
                        let providerAt = ConfigRead.valueAt "provider" fields

                        if provider.Length = 0 then
                            ConfigRead.fail (cursor.Child "provider") providerAt "must be a non-empty string"
                        else
                            Decoded.ok (
                                {
                                    Provider = provider
                                    Model = model |> Option.filter (fun m -> m.Length > 0)
                                },
                                (provider, cursor.Child "provider", providerAt)
                            )))
            | _ ->
                ConfigRead.nonEmptyString cursor node
                |> Decoded.bind (fun text ->
                    let comma = text.IndexOf ','

                    let provider, model =
                        if comma < 0 then
                            text.Trim(), None
                        else
                            text.Substring(0, comma).Trim(), Some(text.Substring(comma + 1).Trim())

                    match model with
                    | Some "" ->
                        ConfigRead.fail
                            cursor
                            at
                            $"expected \"provider\" or \"provider,model\", got %s{ConfigRead.quote text}"
                    | _ when provider.Length = 0 ->
                        ConfigRead.fail
                            cursor
                            at
                            $"expected \"provider\" or \"provider,model\", got %s{ConfigRead.quote text}"
                    | _ -> Decoded.ok ({ Provider = provider; Model = model }, (provider, cursor, at)))

    /// A stage's value: one target or a non-empty list of them.
    let private targets: Read<(StageTarget * (string * Cursor * Position)) list> =
        fun cursor node ->
            match node with
            | Sequence([], at) -> ConfigRead.fail cursor at "must name at least one target"
            | Sequence(items, _) -> items |> List.mapi (fun i n -> target (cursor.Item i) n) |> Decoded.sequence
            | _ -> target cursor node |> Decoded.map List.singleton

    /// `routing.stages`: each key a stage (an unknown one is an error: a typo would silently route to the
    /// default), each value its targets.
    let private stages (fields: Fields) : Decoded<(Stage * (StageTarget * (string * Cursor * Position)) list) list> =
        match ConfigRead.entry "stages" fields with
        | None -> Decoded.ok []
        | Some { Value = Scalar(ScalarValue.Null, _) } -> Decoded.ok []
        | Some { Value = Mapping(entries, _) } ->
            let cursor = fields.Cursor.Child "stages"
            let names = Stage.all |> List.map fst

            entries
            |> List.map (fun e ->
                match Stage.all |> List.tryFind (fun (name, _) -> name = e.Key) with
                | Some(_, stage) -> targets (cursor.Child e.Key) e.Value |> Decoded.map (fun t -> stage, t)
                | None ->
                    let hint =
                        match ConfigRead.suggest names e.Key with
                        | Some s -> $"; did you mean \"%s{s}\"?"
                        | None -> ""

                    let known = String.concat ", " names
                    ConfigRead.fail (cursor.Child e.Key) e.KeyAt $"unknown stage%s{hint} (stages: %s{known})")
            |> Decoded.sequence
        | Some e ->
            ConfigRead.fail
                (fields.Cursor.Child "stages")
                (ConfigNode.position e.Value)
                "expected a mapping of stage names to targets"

    /// An integer field in [minimum, maximum], with a default; `0` means the default where `zeroIsDefault`
    /// (the Go project's rule for the `health` numbers, so its configs keep their meaning).
    let private integer
        (fields: Fields)
        (key: string)
        (minimum: int64)
        (maximum: int64)
        (zeroIsDefault: bool)
        (fallback: int)
        : Decoded<int> =
        fields
        |> ConfigRead.field key (ConfigRead.optionalInteger minimum maximum)
        |> Decoded.orDefault (int64 fallback)
        |> Decoded.map (fun v -> if zeroIsDefault && v = 0L then fallback else int v)

    /// `routing.strategy: model_based` needs a non-empty `routing.model_mapping` (the Go project's rule).
    let private modelBasedNeedsMapping (fields: Fields) (config: RoutingConfig) : Finding list =
        if config.Strategy = RoutingStrategy.ModelBased && config.ModelRules.IsEmpty then
            [
                Finding.error (
                    ConfigRead.issue
                        (fields.Cursor.Child "model_mapping")
                        (ConfigRead.valueAt "model_mapping" fields)
                        "is required when strategy is model_based"
                )
            ]
        else
            []

    /// Decodes `routing`. Absent: the defaults.
    let routing (root: Fields) : Decoded<RoutingEntry> =
        ConfigRead.subsection "routing" routingKeys root
        |> Decoded.bind (fun fields ->
            let defaults = Config.defaultRouting

            let ruleNames (rules: (string * string) list) =
                match ConfigRead.entry "model_mapping" fields with
                | Some { Value = Mapping(entries, _) } ->
                    let cursor = fields.Cursor.Child "model_mapping"

                    List.zip rules (entries |> List.truncate rules.Length)
                    |> List.map (fun ((pattern, provider), e) ->
                        provider, cursor.Child pattern, ConfigNode.position e.Value)
                | _ -> []

            decoded {
                let! strategy =
                    fields
                    |> ConfigRead.field "strategy" (ConfigRead.optionalChoice RoutingStrategy.all)
                    |> Decoded.orDefault defaults.Strategy

                and! maxAttempts = integer fields "max_attempts" 1L 100L false defaults.MaxAttempts
                // Go's key has no unit suffix; it is milliseconds. 0 = no time bound (Go: 0 meant 5000).
                and! failoverTimeout =
                    integer fields "failover_timeout" 0L 3_600_000L false defaults.FailoverTimeoutMs

                and! hedgeAfter =
                    integer fields "hedge_after_ms" 0L 3_600_000L false defaults.HedgeAfterMs

                and! debug =
                    fields
                    |> ConfigRead.field "debug" ConfigRead.optionalBoolean
                    |> Decoded.orDefault false

                and! rules =
                    fields
                    |> ConfigRead.field "model_mapping" (ConfigRead.optionalMap ConfigRead.nonEmptyString)
                    |> Decoded.orDefault []

                and! defaultProvider =
                    fields |> ConfigRead.field "default_provider" ConfigRead.optionalString

                and! stageRoutes = stages fields

                and! threshold =
                    integer
                        fields
                        "long_context_threshold"
                        1L
                        100_000_000L
                        false
                        Config.defaultStages.LongContextThreshold

                and! switching =
                    fields
                    |> ConfigRead.field "model_switching" ConfigRead.optionalBoolean
                    |> Decoded.orDefault Config.defaultStages.ModelSwitching

                and! listSwitches =
                    fields
                    |> ConfigRead.field "list_switch_models" ConfigRead.optionalBoolean
                    |> Decoded.orDefault Config.defaultStages.ListSwitchModels

                let defaultProvider = defaultProvider |> Option.filter (fun p -> p.Length > 0)

                let config = {
                    Strategy = strategy
                    MaxAttempts = maxAttempts
                    FailoverTimeoutMs = failoverTimeout
                    HedgeAfterMs = hedgeAfter
                    Debug = debug
                    ModelRules =
                        rules
                        |> List.map (fun (pattern, provider) -> {
                            Pattern = pattern
                            Provider = provider
                        })
                    DefaultProvider = defaultProvider
                    Stages = {
                        Routes = stageRoutes |> List.map (fun (stage, ts) -> stage, ts |> List.map fst)
                        LongContextThreshold = threshold
                        ModelSwitching = switching
                        ListSwitchModels = listSwitches
                    }
                }

                let defaultName =
                    match defaultProvider with
                    | Some name -> [
                        name, fields.Cursor.Child "default_provider", ConfigRead.valueAt "default_provider" fields
                      ]
                    | None -> []

                return! {
                    Value =
                        Some {
                            Config = config
                            Names =
                                ruleNames rules
                                @ defaultName
                                @ (stageRoutes |> List.collect (fun (_, ts) -> ts |> List.map snd))
                        }
                    Findings = modelBasedNeedsMapping fields config
                }
            })

    /// Every provider name that `routing` refers to must exist in `providers` (enabled or not): a typo would
    /// otherwise silently route elsewhere. `failed` names providers that have errors of their own: they are
    /// not reported again through the names that refer to them.
    let checkNames (routing: RoutingEntry) (providers: ProviderConfig list) (failed: string list) : Finding list =
        let known = providers |> List.map _.Name

        routing.Names
        |> List.choose (fun (name, cursor, at) ->
            if List.contains name known || List.contains name failed then
                None
            else
                let hint =
                    match ConfigRead.suggest known name with
                    | Some s -> $"; did you mean \"%s{s}\"?"
                    | None -> ""

                Some(
                    Finding.error (ConfigRead.issue cursor at $"names no provider: %s{ConfigRead.quote name}%s{hint}")
                ))

    // ---------------------------
    // health
    // ---------------------------

    let private probes: (string * string) list =
        [ "models"; "count_tokens"; "url" ] |> List.map (fun p -> p, p)

    let private healthCheck (health: Fields) : Decoded<HealthCheckConfig> =
        ConfigRead.subsection "health_check" [ "enabled"; "interval_ms"; "probe"; "url" ] health
        |> Decoded.bind (fun fields ->
            let defaults = Config.defaultHealth.HealthCheck

            decoded {
                let! enabled =
                    fields
                    |> ConfigRead.field "enabled" ConfigRead.optionalBoolean
                    |> Decoded.orDefault defaults.Enabled

                and! interval = integer fields "interval_ms" 0L 86_400_000L true defaults.IntervalMs

                and! probe = fields |> ConfigRead.field "probe" (ConfigRead.optionalChoice probes)

                and! url = fields |> ConfigRead.field "url" ConfigRead.optionalString

                let urlAt = ConfigRead.valueAt "url" fields
                let urlCursor = fields.Cursor.Child "url"

                let! probe =
                    match probe, url |> Option.filter (fun u -> u.Length > 0) with
                    | (None | Some "url"), Some text ->
                        match System.Uri.TryCreate(text, System.UriKind.Absolute) with
                        | true, NonNull uri when uri.Scheme = "http" || uri.Scheme = "https" ->
                            Decoded.ok (ProbeKind.Url uri)
                        | _ ->
                            ConfigRead.fail
                                urlCursor
                                urlAt
                                $"expected an absolute http:// or https:// URL, got %s{ConfigRead.quote text}"
                    | Some "url", None -> ConfigRead.fail urlCursor fields.At "is required when probe is url"
                    | Some "count_tokens", _ -> Decoded.ok ProbeKind.CountTokens
                    | _ -> Decoded.ok ProbeKind.Models

                return {
                    Enabled = enabled
                    IntervalMs = interval
                    Probe = probe
                }
            })

    let private circuitBreaker (health: Fields) : Decoded<CircuitBreakerConfig> =
        ConfigRead.subsection
            "circuit_breaker"
            [ "failure_threshold"; "window_ms"; "open_duration_ms"; "half_open_probes" ]
            health
        |> Decoded.bind (fun fields ->
            let defaults = Config.defaultHealth.CircuitBreaker

            decoded {
                let! threshold =
                    integer fields "failure_threshold" 0L 1000L true defaults.FailureThreshold

                and! window = integer fields "window_ms" 0L 86_400_000L true defaults.WindowMs

                and! openDuration =
                    integer fields "open_duration_ms" 0L 86_400_000L true defaults.OpenDurationMs

                and! probes = integer fields "half_open_probes" 0L 1000L true defaults.HalfOpenProbes

                return {
                    FailureThreshold = threshold
                    WindowMs = window
                    OpenDurationMs = openDuration
                    HalfOpenProbes = probes
                }
            })

    /// Decodes `health`. Absent: the defaults.
    let health (root: Fields) : Decoded<HealthConfig> =
        ConfigRead.subsection "health" [ "health_check"; "circuit_breaker" ] root
        |> Decoded.bind (fun fields ->
            decoded {
                let! check = healthCheck fields
                and! breaker = circuitBreaker fields

                return {
                    HealthCheck = check
                    CircuitBreaker = breaker
                }
            })
