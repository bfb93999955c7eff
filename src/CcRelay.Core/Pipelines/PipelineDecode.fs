namespace CcRelay.Core

open System

/// A reference from a pipeline that can only be checked once the providers are known: an attached provider,
/// and each step whose transformer applies to some dialects only.
type internal PipelineReference = {
    /// `pipelines.<name>.providers[i]`.
    ProviderPath: string
    ProviderAt: Position
    Provider: string
    /// The pipeline's steps limited to some dialects: (path, position, transformer, dialects).
    Limited: (string * Position * string * string list) list
}

/// Decodes and validates the `pipelines` and `plugins` sections (docs/pipelines.md, docs/plugins.md): every
/// problem located, unknown transformers with a suggestion, options checked against the catalog.
[<RequireQualifiedAccess>]
module internal PipelineDecode =

    let private pipelineKeys = [ "on_error"; "providers"; "models"; "request"; "response"; "stages" ]

    /// The stages a pipeline may attach to: the configurable ones and `direct` (a `provider,model` switch).
    let private stageChoices =
        (Stage.all |> List.map (fun (name, _) -> name, name)) @ [ "direct", "direct" ]

    let private stageName: Read<string> =
        fun cursor node ->
            ConfigRead.optionalChoice stageChoices cursor node
            |> Decoded.bind (function
                | Some name -> Decoded.ok name
                | None -> ConfigRead.fail cursor (ConfigNode.position node) "expected a stage name")

    let private pluginKeys = [
        "command"
        "args"
        "env"
        "timeout_ms"
        "memory_mb"
        "cpu_seconds"
        "on_error"
        "sees"
        "event_timeout_ms"
        "processes"
    ]

    let private seesChoice = [
        "request", PluginKind.Request
        "response", PluginKind.Response
        "event", PluginKind.Event
    ]

    /// One item of `sees`: request, response or event.
    let private seesItem: Read<PluginKind> =
        fun cursor node ->
            ConfigRead.optionalChoice seesChoice cursor node
            |> Decoded.bind (function
                | Some kind -> Decoded.ok kind
                | None -> ConfigRead.fail cursor (ConfigNode.position node) "expected request, response or event")

    let private onErrorChoice = [ "skip", OnError.Skip; "fail", OnError.Fail ]

    /// The dialect name of a provider, as the catalog's `AppliesTo` names it.
    let dialectOf (provider: ProviderConfig) : string =
        match provider.Cloud with
        | CloudSettings.Direct -> "anthropic"
        | CloudSettings.Bedrock _ -> "bedrock"
        | CloudSettings.Vertex _ -> "vertex"
        | CloudSettings.Foundry _ -> "foundry"
        | CloudSettings.OpenAi settings when settings.Api = OpenAiApi.Responses -> "openai_responses"
        | CloudSettings.OpenAi _ -> "openai"
        | CloudSettings.Gemini _ -> "gemini"

    /// An option's value as read from the config.
    [<RequireQualifiedAccess>]
    type private OptionValue =
        | Integer of int64
        | Number of decimal
        | Text of string
        | Flag of bool
        | Texts of string list
        | TextMap of (string * string) list

    let private readOption (kind: OptionKind) : Read<OptionValue option> =
        fun cursor node ->
            match kind with
            | OptionKind.Integer(lo, hi) ->
                ConfigRead.optionalInteger lo hi cursor node
                |> Decoded.map (Option.map OptionValue.Integer)
            | OptionKind.Number(lo, hi) ->
                ConfigRead.optionalDecimal lo hi cursor node
                |> Decoded.map (Option.map OptionValue.Number)
            | OptionKind.Text ->
                ConfigRead.some ConfigRead.nonEmptyString cursor node
                |> Decoded.map (Option.map OptionValue.Text)
            | OptionKind.Choice allowed ->
                ConfigRead.optionalChoice (allowed |> List.map (fun a -> a, a)) cursor node
                |> Decoded.map (Option.map OptionValue.Text)
            | OptionKind.Flag ->
                ConfigRead.optionalBoolean cursor node
                |> Decoded.map (Option.map OptionValue.Flag)
            | OptionKind.Texts ->
                ConfigRead.optionalList ConfigRead.nonEmptyString cursor node
                |> Decoded.map (Option.map OptionValue.Texts)
            | OptionKind.TextMap ->
                ConfigRead.optionalMap ConfigRead.nonEmptyString cursor node
                |> Decoded.map (Option.map OptionValue.TextMap)

    /// Builds a transform from its checked options; Error: what combination is wrong.
    let private build (name: string) (options: Map<string, OptionValue>) : Result<Transform, string> =
        let integer key =
            match options.TryFind key with
            | Some(OptionValue.Integer v) -> Some v
            | _ -> None

        let number key =
            match options.TryFind key with
            | Some(OptionValue.Number v) -> Some v
            | Some(OptionValue.Integer v) -> Some(decimal v)
            | _ -> None

        let text key =
            match options.TryFind key with
            | Some(OptionValue.Text v) -> Some v
            | _ -> None

        let flag key fallback =
            match options.TryFind key with
            | Some(OptionValue.Flag v) -> v
            | _ -> fallback

        let exactlyOne (keys: string list) =
            match keys |> List.filter options.ContainsKey with
            | [ one ] -> Ok one
            | [] -> Error $"""needs one of %s{String.concat ", " keys}"""
            | several -> Error $"""takes only one of %s{String.concat ", " several}"""

        match name with
        | "max_tokens" ->
            exactlyOne [ "cap"; "set" ]
            |> Result.map (fun _ -> Transform.MaxTokens(integer "cap", integer "set"))
        | "sampling" ->
            let sampling = {
                Temperature = number "temperature"
                TopP = number "top_p"
                TopK = integer "top_k"
                TemperatureMin = number "temperature_min"
                TemperatureMax = number "temperature_max"
                TopPMax = number "top_p_max"
                TopKMax = integer "top_k_max"
            }

            if options.IsEmpty then
                Error
                    "needs at least one of temperature, top_p, top_k, temperature_min, temperature_max, top_p_max, top_k_max"
            else
                match sampling.TemperatureMin, sampling.TemperatureMax with
                | Some lo, Some hi when lo > hi -> Error "temperature_min is above temperature_max"
                | _ -> Ok(Transform.Sampling sampling)
        | "strip_cache_control" -> Ok Transform.StripCacheControl
        | "tool_choice" ->
            let choice = text "type" |> Option.defaultValue "any"

            match choice, text "name" with
            | "tool", None -> Error "type: tool needs name (the tool to force)"
            | ("any" | "auto" | "none"), Some _ -> Error $"name is only for type: tool (got type: %s{choice})"
            | _, name -> Ok(Transform.ToolChoice(choice, name, flag "only_with_tools" true))
        | "system" ->
            exactlyOne [ "append"; "prepend"; "replace" ]
            |> Result.map (fun key ->
                let edit =
                    match key with
                    | "append" -> SystemEdit.Append
                    | "prepend" -> SystemEdit.Prepend
                    | _ -> SystemEdit.Replace

                Transform.System(edit, text key |> Option.defaultValue ""))
        | "rename_model" ->
            exactlyOne [ "map"; "to" ]
            |> Result.map (fun _ ->
                let map =
                    match options.TryFind "map" with
                    | Some(OptionValue.TextMap pairs) -> pairs
                    | _ -> []

                Transform.RenameModel(map, text "to"))
        | "drop_fields" ->
            match options.TryFind "fields" with
            | Some(OptionValue.Texts((_ :: _) as fields)) -> Ok(Transform.DropFields(fields, flag "deep" false))
            | _ -> Error "needs fields: a non-empty list of member names"
        | "reasoning_effort" ->
            let low = integer "low_below" |> Option.defaultValue 4096L
            let high = integer "high_from" |> Option.defaultValue 16384L

            if low > high then
                Error "low_below is above high_from"
            else
                Ok(Transform.ReasoningEffort(low, high))
        | "reasoning_echo" -> Ok(Transform.ReasoningEcho(flag "echo" true, flag "fill_missing" true))
        | "gemini_schema_clean" ->
            let mode =
                match text "mode" with
                | Some "json_schema" -> GeminiSchemaMode.JsonSchema
                | _ -> GeminiSchemaMode.OpenApi

            match mode, options.TryFind "hints" with
            | GeminiSchemaMode.JsonSchema, Some _ ->
                Error "hints is only for mode: openapi (a JSON Schema goes unchanged)"
            | _ -> Ok(Transform.GeminiSchemaClean(mode, flag "hints" true))
        | "repair_tool_json" -> Ok Transform.RepairToolJson
        | other -> Error $"unknown transformer %s{other}"

    let private names = Transformers.catalog |> List.map _.Name

    /// One step: `use: <name>` with options, `plugin: <name>`, or a bare transformer name.
    let private step
        (side: string)
        (plugins: string list)
        (pipelineOnError: OnError)
        (pluginConfigs: Map<string, PluginConfig>)
        : Read<PipelineStep * (string * Position * string * string list) option> =
        fun cursor node ->
            let at = ConfigNode.position node

            let fromName
                (name: string)
                (nameAt: Position)
                (optionsOf: TransformerInfo -> Decoded<Map<string, OptionValue>>)
                =
                match Transformers.tryFind name with
                | None ->
                    let hint =
                        match ConfigRead.suggest names name with
                        | Some near -> $"; did you mean %s{near}?"
                        | None -> ""

                    ConfigRead.fail
                        cursor
                        nameAt
                        $"""unknown transformer %s{ConfigRead.quote name}%s{hint} (the catalog: cc-relay transformers)"""
                | Some info when info.Side <> side ->
                    ConfigRead.fail
                        cursor
                        nameAt
                        $"%s{name} is a %s{info.Side} transformer; it belongs under %s{info.Side}:"
                | Some info ->
                    optionsOf info
                    |> Decoded.bind (fun options ->
                        match build name options with
                        | Ok transform ->
                            let limited =
                                if info.AppliesTo = [ "all" ] then
                                    None
                                else
                                    Some(cursor.Shown, at, name, info.AppliesTo)

                            Decoded.ok (
                                {
                                    Name = name
                                    Transform = transform
                                    OnError = pipelineOnError
                                },
                                limited
                            )
                        | Error message -> ConfigRead.fail cursor at $"%s{name} %s{message}")

            match node with
            | Scalar _ ->
                ConfigRead.nonEmptyString cursor node
                |> Decoded.bind (fun name -> fromName name at (fun _ -> Decoded.ok Map.empty))
            | Mapping(entries, _) ->
                match
                    entries |> List.tryFind (fun e -> e.Key = "plugin"),
                    entries |> List.tryFind (fun e -> e.Key = "use")
                with
                | Some plugin, None ->
                    ConfigRead.nonEmptyString (cursor.Child "plugin") plugin.Value
                    |> Decoded.bind (fun name ->
                        let extra = entries |> List.filter (fun e -> e.Key <> "plugin")

                        match extra with
                        | e :: _ ->
                            ConfigRead.fail
                                (cursor.Child e.Key)
                                e.KeyAt
                                "a plugin step takes no options (set them in plugins.<name>)"
                        | [] when not (List.contains name plugins) ->
                            let hint =
                                match ConfigRead.suggest plugins name with
                                | Some near -> $"; did you mean %s{near}?"
                                | None -> ""

                            ConfigRead.fail
                                (cursor.Child "plugin")
                                (ConfigNode.position plugin.Value)
                                $"unknown plugin %s{ConfigRead.quote name}%s{hint}; define it under plugins:"
                        | [] when
                            (match pluginConfigs.TryFind name with
                             | Some p when side = "request" -> not (List.contains PluginKind.Request p.Sees)
                             | Some p ->
                                 not (
                                     List.contains PluginKind.Response p.Sees
                                     || List.contains PluginKind.Event p.Sees
                                 )
                             | None -> false)
                            ->
                            let wanted =
                                if side = "request" then
                                    "request"
                                else
                                    "response and/or event"

                            ConfigRead.fail
                                (cursor.Child "plugin")
                                (ConfigNode.position plugin.Value)
                                $"plugin %s{ConfigRead.quote name} is under %s{side}: but does not see it; give plugins.%s{name}.sees: [%s{wanted}]"
                        | [] ->
                            Decoded.ok (
                                {
                                    Name = "plugin:" + name
                                    Transform = Transform.Plugin name
                                    OnError =
                                        pluginConfigs.TryFind name
                                        |> Option.map _.OnError
                                        |> Option.defaultValue pipelineOnError
                                },
                                None
                            ))
                | None, Some used ->
                    ConfigRead.nonEmptyString (cursor.Child "use") used.Value
                    |> Decoded.bind (fun name ->
                        fromName name (ConfigNode.position used.Value) (fun info ->
                            let known = info.Options |> List.map _.Name

                            let unknown =
                                entries
                                |> List.filter (fun e -> e.Key <> "use" && not (List.contains e.Key known))
                                |> List.map (fun e ->
                                    let allowed =
                                        if known.IsEmpty then
                                            "it takes no options"
                                        else
                                            "its options: " + String.concat ", " known

                                    (ConfigRead.fail: Cursor -> Position -> string -> Decoded<unit>)
                                        (cursor.Child e.Key)
                                        e.KeyAt
                                        $"%s{name} has no option %s{ConfigRead.quote e.Key}; %s{allowed}")
                                |> Decoded.sequence

                            let values =
                                info.Options
                                |> List.choose (fun o ->
                                    entries
                                    |> List.tryFind (fun e -> e.Key = o.Name)
                                    |> Option.map (fun e ->
                                        readOption o.Kind (cursor.Child o.Name) e.Value
                                        |> Decoded.map (Option.map (fun v -> o.Name, v))))
                                |> Decoded.sequence
                                |> Decoded.map (List.choose id >> Map.ofList)

                            Decoded.zip unknown values |> Decoded.map snd))
                | Some _, Some _ ->
                    ConfigRead.fail cursor at "a step is either use: <transformer> or plugin: <name>, not both"
                | None, None -> ConfigRead.fail cursor at "a step needs use: <transformer> (or plugin: <name>)"
            | other ->
                ConfigRead.fail cursor (ConfigNode.position other) "expected a transformer name or a mapping with use:"

    let private steps
        (key: string)
        (side: string)
        (plugins: string list)
        (onError: OnError)
        (pluginConfigs: Map<string, PluginConfig>)
        (fields: Fields)
        =
        fields
        |> ConfigRead.field key (ConfigRead.optionalList (step side plugins onError pluginConfigs))
        |> Decoded.orDefault []

    let private pipeline
        (plugins: string list)
        (pluginConfigs: Map<string, PluginConfig>)
        (name: string)
        : Read<PipelineConfig * PipelineReference list> =
        fun cursor node ->
            ConfigRead.section pipelineKeys cursor node
            |> Decoded.bind (fun fields ->
                fields
                |> ConfigRead.field "on_error" (ConfigRead.optionalChoice onErrorChoice)
                |> Decoded.orDefault OnError.Fail
                |> Decoded.bind (fun onError ->
                    decoded {
                        let! providers =
                            fields
                            |> ConfigRead.field "providers" (ConfigRead.optionalList ConfigRead.nonEmptyString)
                            |> Decoded.orDefault []

                        and! models =
                            fields
                            |> ConfigRead.field "models" (ConfigRead.optionalList ConfigRead.nonEmptyString)
                            |> Decoded.orDefault []

                        and! stages =
                            fields
                            |> ConfigRead.field "stages" (ConfigRead.optionalList stageName)
                            |> Decoded.orDefault []

                        and! request = steps "request" "request" plugins onError pluginConfigs fields
                        and! response = steps "response" "response" plugins onError pluginConfigs fields

                        let limited = (request @ response) |> List.choose snd

                        let references =
                            match ConfigRead.entry "providers" fields with
                            | Some { Value = Sequence(items, _) } ->
                                List.zip providers (items |> List.truncate providers.Length)
                                |> List.mapi (fun i (provider, item) -> {
                                    ProviderPath = (fields.Cursor.Child "providers").Item(i).Shown
                                    ProviderAt = ConfigNode.position item
                                    Provider = provider
                                    Limited = limited
                                })
                            | _ -> []

                        return
                            {
                                Name = name
                                OnError = onError
                                Request = request |> List.map fst
                                Response = response |> List.map fst
                                Attach = {
                                    Providers = providers
                                    Models = models
                                    Stages = stages
                                }
                            },
                            references
                    }
                    |> Decoded.bind (fun (config, references) ->
                        let findings = [
                            if
                                config.Attach.Providers.IsEmpty
                                && config.Attach.Models.IsEmpty
                                && config.Attach.Stages.IsEmpty
                            then
                                Finding.warning (
                                    ConfigRead.issue
                                        cursor
                                        (ConfigNode.position node)
                                        "is attached to nothing (give providers:, models: or stages:); it never runs"
                                )
                        ]

                        {
                            Value = Some(config, references)
                            Findings = findings
                        })))

    let private plugin (name: string) : Read<PluginConfig> =
        fun cursor node ->
            ConfigRead.section pluginKeys cursor node
            |> Decoded.bind (fun fields ->
                let integer key lo hi fallback =
                    fields
                    |> ConfigRead.field key (ConfigRead.optionalInteger lo hi)
                    |> Decoded.orDefault fallback

                decoded {
                    let! command =
                        ConfigRead.required fields "command" (ConfigRead.some ConfigRead.nonEmptyString)

                    and! args =
                        fields
                        |> ConfigRead.field "args" (ConfigRead.optionalList ConfigRead.nonEmptyString)
                        |> Decoded.orDefault []

                    and! env =
                        fields
                        |> ConfigRead.field "env" (ConfigRead.optionalMap ConfigRead.optionalString)
                        |> Decoded.orDefault []

                    and! timeoutMs = integer "timeout_ms" 10L 600_000L 1_000L
                    and! memoryMb = integer "memory_mb" 16L 65_536L 512L
                    and! cpuSeconds = integer "cpu_seconds" 1L 86_400L 60L

                    and! onError =
                        fields
                        |> ConfigRead.field "on_error" (ConfigRead.optionalChoice onErrorChoice)
                        |> Decoded.orDefault OnError.Skip

                    and! sees =
                        fields
                        |> ConfigRead.field "sees" (ConfigRead.optionalList seesItem)
                        |> Decoded.orDefault [ PluginKind.Request ]

                    and! eventTimeoutMs = integer "event_timeout_ms" 1L 600_000L 200L

                    // at most 64 processes: each may use memory_mb, and more than a few per core only queue on the CPU
                    and! processes = integer "processes" 1L 64L (int64 PluginPool.DefaultProcesses)

                    return {
                        Name = name
                        Command = command
                        Args = args
                        Env = env |> List.map (fun (k, v) -> k, defaultArg v "")
                        TimeoutMs = int timeoutMs
                        MemoryMb = int memoryMb
                        CpuSeconds = int cpuSeconds
                        OnError = onError
                        Sees = List.distinct sees
                        EventTimeoutMs = int eventTimeoutMs
                        Processes = int processes
                    }
                })

    /// The `pipelines` and `plugins` sections, and the references to check against the providers.
    let decode (root: Fields) : Decoded<PipelinesConfig * PipelineReference list> =
        let plugins =
            root
            |> ConfigRead.field "plugins" (ConfigRead.optionalMap (fun cursor node -> Decoded.ok (cursor, node)))
            |> Decoded.orDefault []
            |> Decoded.bind (fun entries ->
                entries
                |> List.map (fun (name, (cursor, node)) -> plugin name cursor node)
                |> Decoded.sequence)

        let pluginNames, pluginConfigs =
            match plugins.Value with
            | Some list -> list |> List.map _.Name, list |> List.map (fun p -> p.Name, p) |> Map.ofList
            | None ->
                // names still resolve when a plugin's own settings are wrong (its errors are reported already)
                match ConfigRead.entry "plugins" root with
                | Some { Value = Mapping(entries, _) } -> entries |> List.map _.Key, Map.empty
                | _ -> [], Map.empty

        let pipelines =
            root
            |> ConfigRead.field
                "pipelines"
                (ConfigRead.optionalMap (fun cursor node ->
                    let name = cursor.Path.Substring(cursor.Path.LastIndexOf '.' + 1)
                    pipeline pluginNames pluginConfigs name cursor node))
            |> Decoded.orDefault []

        Decoded.zip pipelines plugins
        |> Decoded.map (fun (pipelines, plugins) ->
            {
                Pipelines = pipelines |> List.map (snd >> fst)
                Plugins = plugins
            },
            pipelines |> List.collect (snd >> snd))

    /// The provider references checked: each attached provider exists, and every dialect-limited step can
    /// apply to it.
    let check (references: PipelineReference list) (providers: ProviderConfig list) : Finding list = [
        for reference in references do
            match providers |> List.tryFind (fun p -> p.Name = reference.Provider) with
            | None ->
                let hint =
                    match ConfigRead.suggest (providers |> List.map _.Name) reference.Provider with
                    | Some near -> $"; did you mean %s{near}?"
                    | None -> ""

                Finding.error {
                    Path = reference.ProviderPath
                    Position = Some reference.ProviderAt
                    Message = $"no provider is named %s{ConfigRead.quote reference.Provider}%s{hint}"
                }
            | Some provider ->
                let dialect = dialectOf provider

                for path, at, name, dialects in reference.Limited do
                    if not (List.contains dialect dialects) then
                        Finding.error {
                            Path = path
                            Position = Some at
                            Message =
                                $"""%s{name} cannot apply to provider %s{provider.Name} (dialect %s{dialect}); it applies to: %s{String.concat ", " dialects}"""
                        }
    ]

    /// The stage attachments checked against the routing stages: a stage no request is ever classified into
    /// (one without targets in `routing.stages`; `direct` with model switching off) is a warning, located.
    let checkStages (root: Fields) (stages: StagesConfig) : Finding list = [
        let configured = stages.Routes |> List.map (fst >> Stage.wireName)
        let cursor = root.Cursor.Child "pipelines"

        match ConfigRead.entry "pipelines" root with
        | Some { Value = Mapping(pipelines, _) } ->
            for pipeline in pipelines do
                match pipeline.Value with
                | Mapping(entries, _) ->
                    for entry in entries do
                        match entry.Key, entry.Value with
                        | "stages", Sequence(items, _) ->
                            for i, item in List.indexed items do
                                match item with
                                | Scalar((ScalarValue.String name | ScalarValue.Plain name), at) ->
                                    let why =
                                        match name with
                                        | "default" -> None
                                        | "direct" when stages.ModelSwitching -> None
                                        | "direct" ->
                                            Some "routing.model_switching is off, so no request is a direct switch"
                                        | name when List.contains name configured -> None
                                        | name when List.contains name (Stage.all |> List.map fst) ->
                                            Some
                                                $"routing.stages gives %s{name} no targets, so no request is classified %s{name} (a stage is chosen only when it has targets)"
                                        | _ -> None // an unknown name is an error already

                                    match why with
                                    | Some why ->
                                        Finding.warning (
                                            ConfigRead.issue
                                                ((cursor.Child pipeline.Key).Child("stages").Item i)
                                                at
                                                $"%s{why}; the pipeline never runs for it"
                                        )
                                    | None -> ()
                                | _ -> ()
                        | _ -> ()
                | _ -> ()
        | _ -> ()
    ]
