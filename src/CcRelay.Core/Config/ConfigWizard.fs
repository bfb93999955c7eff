namespace CcRelay.Core

open System
open System.Text.RegularExpressions

/// One question of `cc-relay config init --interactive`: what to ask, and the answer an empty line gives.
type WizardQuestion = { Prompt: string; Default: string }

/// The format `cc-relay config init` writes.
[<RequireQualifiedAccess>]
type ConfigFormat =
    | Yaml
    | Toml

/// A provider chosen in the wizard or by `--provider`: its name (the type's spelling when asked
/// interactively), its type and the variable holding its key ("": none).
type WizardProvider = {
    Name: string
    Type: ProviderType
    KeyVariable: string
}

/// The wizard's answers so far (also what `config init`'s flags give, all at once).
type WizardState = {
    /// None until the providers question is answered.
    Providers: WizardProvider list option
    /// How many providers' key questions are answered.
    Keys: int
    Strategy: RoutingStrategy option
    /// None until the stages question is answered; then each stage with its target.
    Stages: (Stage * StageTarget) list option
    /// `--listen` (not asked interactively); None: `Config.defaultListen`.
    Listen: ListenAddress option
}

/// The flags of `cc-relay config init` that answer the wizard's questions, as given (empty or None: not given).
type WizardFlags = {
    /// `--provider NAME:TYPE[:KEY_ENV]`, repeatable.
    Providers: string list
    /// `--strategy NAME`.
    Strategy: string option
    /// `--stage STAGE=PROVIDER[,MODEL]`, repeatable.
    Stages: string list
    /// `--listen HOST:PORT`.
    Listen: string option
}

/// `cc-relay config init`, pure: the interactive questions in order (`question`), each answer checked (`answer`:
/// an error says what is allowed, and the question is asked again), the same answers from the command line's
/// flags (`ofFlags`: every bad flag named), and the config written from the answers (`render`, YAML or TOML),
/// which loads as written when the key variables are set.
[<RequireQualifiedAccess>]
module ConfigWizard =

    /// The provider types the wizard offers: those that need nothing but a key (the clouds and
    /// `anthropic_compatible` need more settings: docs/configuration.md).
    let offered: ProviderType list = [
        ProviderType.Anthropic
        ProviderType.Zai
        ProviderType.Minimax
        ProviderType.Ollama
        ProviderType.OpenAi
        ProviderType.Gemini
    ]

    /// The usual variable of a type's key; "" for none (Anthropic passes the client's credential through,
    /// Ollama needs none).
    let defaultVariable (providerType: ProviderType) : string =
        match providerType with
        | ProviderType.Zai -> "ZAI_API_KEY"
        | ProviderType.Minimax -> "MINIMAX_API_KEY"
        | ProviderType.OpenAi -> "OPENAI_API_KEY"
        | ProviderType.Gemini -> "GEMINI_API_KEY"
        | _ -> ""

    /// Nothing answered yet.
    let start: WizardState = {
        Providers = None
        Keys = 0
        Strategy = None
        Stages = None
        Listen = None
    }

    let private errorOf (result: Result<'T, string>) : string option =
        match result with
        | Error e -> Some e
        | Ok _ -> None

    let private names (types: ProviderType list) =
        types |> List.map ProviderType.wireName |> String.concat ", "

    /// The strategies offered: all but `model_based`, which needs `routing.model_mapping` rules (not asked).
    let private offeredStrategies =
        RoutingStrategy.all
        |> List.filter (fun (_, s) -> s <> RoutingStrategy.ModelBased)

    let private strategies = offeredStrategies |> List.map fst |> String.concat ", "

    let private stageNames = Stage.all |> List.map fst |> String.concat ", "

    /// The next question; None when every question is answered.
    let question (state: WizardState) : WizardQuestion option =
        match state.Providers with
        | None ->
            Some {
                Prompt = $"Providers, separated by commas (%s{names offered})"
                Default = "anthropic"
            }
        | Some providers when state.Keys < providers.Length ->
            let p = providers[state.Keys]

            let none =
                if p.Type = ProviderType.Anthropic then
                    "no key: each caller's own credential is passed through"
                else
                    "no key"

            Some {
                Prompt =
                    $"Environment variable holding the %s{ProviderType.wireName p.Type} key, written as ${{VAR}} ('-': %s{none})"
                Default = if p.KeyVariable = "" then "-" else p.KeyVariable
            }
        | Some _ when state.Strategy.IsNone ->
            Some {
                Prompt = $"Routing strategy (%s{strategies})"
                Default = "failover"
            }
        | Some _ when state.Stages.IsNone ->
            Some {
                Prompt =
                    $"Routing stages as stage=provider or stage=provider,model, separated by spaces ('-': none; stages: %s{stageNames})"
                Default = "-"
            }
        | Some _ -> None

    let private variable =
        Regex("^[A-Za-z_][A-Za-z0-9_]*$", RegexOptions.CultureInvariant)

    /// A provider name `--provider` accepts: it cannot hold `:` (the flag's separator), nor `,` or `/` (a
    /// `provider,model` name switches to it).
    let private providerName =
        Regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", RegexOptions.CultureInvariant)

    /// A key's variable: `-` (none), `NAME` or `${NAME}`. The error never repeats the text: it may be a key.
    /// Gemini on Google AI Studio cannot go without a key (Vertex AI's Gemini needs more settings).
    let private keyVariable (providerType: ProviderType) (text: string) : Result<string, string> =
        let value =
            match text with
            | "-" -> ""
            | text when text.StartsWith("${", StringComparison.Ordinal) && text.EndsWith('}') ->
                text.Substring(2, text.Length - 3)
            | text -> text

        if value = "" && providerType = ProviderType.Gemini then
            Error
                "gemini needs a key (Google AI Studio): name its environment variable (Gemini on Vertex AI needs more settings: docs/providers.md)"
        elif value = "" || variable.IsMatch value then
            Ok value
        else
            Error
                "that is not an environment variable name (letters, digits and _, not starting with a digit), or '-' for no key; the key itself never goes in the file"

    let private offeredType (text: string) : Result<ProviderType, string> =
        match offered |> List.tryFind (fun t -> ProviderType.wireName t = text) with
        | Some t -> Ok t
        | None -> Error $"unknown provider type \"%s{text}\"; offered: %s{names offered}"

    let private strategy (text: string) : Result<RoutingStrategy, string> =
        match offeredStrategies |> List.tryFind (fun (name, _) -> name = text) with
        | Some(_, s) -> Ok s
        | None when text = RoutingStrategy.wireName RoutingStrategy.ModelBased ->
            Error
                $"model_based needs routing.model_mapping rules, which are not asked here: choose another strategy (%s{strategies}) and add them by hand (docs/routing.md)"
        | None -> Error $"unknown strategy \"%s{text}\"; allowed: %s{strategies}"

    /// One `stage=provider` or `stage=provider,model`, its provider among `chosen`.
    let private stage (chosen: string list) (entry: string) : Result<Stage * StageTarget, string> =
        match entry.Split('=', 2) with
        | [| name; target |] when target.Trim().Length > 0 ->
            let parts = target.Split(',', 2)
            let provider = parts[0].Trim()

            match Stage.all |> List.tryFind (fun (n, _) -> n = name.Trim()) with
            | None -> Error $"unknown stage \"%s{name}\"; stages: %s{stageNames}"
            | Some _ when not (List.contains provider chosen) ->
                Error
                    $"""stage %s{name.Trim()}: "%s{provider}" is not one of the providers (%s{if chosen.IsEmpty then
                                                                                                  "none valid"
                                                                                              else
                                                                                                  String.concat ", " chosen})"""
            | Some _ when parts.Length = 2 && parts[1].Trim().Length = 0 ->
                Error $"stage %s{name.Trim()}: the model after the comma is empty"
            | Some(_, s) ->
                Ok(
                    s,
                    {
                        Provider = provider
                        Model = if parts.Length = 2 then Some(parts[1].Trim()) else None
                    }
                )
        | _ -> Error $"\"%s{entry}\" is not stage=provider or stage=provider,model"

    let private twice (stages: (Stage * StageTarget) list) =
        (stages |> List.map fst |> List.distinct).Length <> stages.Length

    /// Checks an answer to the current question (an empty line: its default) and records it; Error: what is
    /// wrong and what is allowed (the question is asked again).
    let answer (state: WizardState) (line: string) : Result<WizardState, string> =
        match question state with
        | None -> Error "every question is answered"
        | Some q ->
            let text =
                match line.Trim() with
                | "" -> q.Default
                | text -> text

            match state.Providers with
            | None ->
                let items =
                    text.Split(',', StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries)
                    |> List.ofArray

                match items, items |> List.map offeredType |> List.tryPick errorOf with
                | [], _ -> Error $"name at least one provider (%s{names offered})"
                | _, Some e -> Error e
                | _ when (List.distinct items).Length <> items.Length -> Error "a provider is named twice"
                | _ ->
                    let providers =
                        items
                        |> List.map (fun i ->
                            let t = offered |> List.find (fun t -> ProviderType.wireName t = i)

                            {
                                Name = i
                                Type = t
                                KeyVariable = defaultVariable t
                            })

                    Ok {
                        state with
                            Providers = Some providers
                    }
            | Some providers when state.Keys < providers.Length ->
                keyVariable providers[state.Keys].Type text
                |> Result.map (fun v -> {
                    state with
                        Providers =
                            Some(
                                providers
                                |> List.mapi (fun i p -> if i = state.Keys then { p with KeyVariable = v } else p)
                            )
                        Keys = state.Keys + 1
                })
            | Some _ when state.Strategy.IsNone ->
                strategy text |> Result.map (fun s -> { state with Strategy = Some s })
            | Some providers ->
                let chosen = providers |> List.map _.Name

                let entries =
                    if text = "-" then
                        []
                    else
                        text.Split(' ', StringSplitOptions.RemoveEmptyEntries) |> List.ofArray

                let parsed = entries |> List.map (stage chosen)

                match parsed |> List.tryPick errorOf with
                | Some e -> Error e
                | None ->
                    let stages = parsed |> List.choose Result.toOption

                    if twice stages then
                        Error "a stage is given twice"
                    else
                        Ok { state with Stages = Some stages }

    /// The answers `config init`'s flags give (what is not given takes the interactive default, without a key
    /// question: `--provider` names the variable or the type's usual one); Error: every bad flag, each named
    /// with what is allowed. A flag's key part is never repeated in an error.
    let ofFlags (flags: WizardFlags) : Result<WizardState, string list> =
        let provider (text: string) : Result<WizardProvider, string> =
            let problem (shown: string) (message: string) =
                Error $"--provider \"%s{shown}\": %s{message}"

            match text.Split(':', 3) with
            | [| name; typeText |]
            | [| name; typeText; _ |] ->
                let shown =
                    if text.Split(':', 3).Length = 3 then
                        $"%s{name}:%s{typeText}:…"
                    else
                        text

                if not (providerName.IsMatch name) then
                    problem
                        shown
                        "the name must be 1 to 64 letters, digits, '.', '-' or '_', starting with a letter or digit"
                else
                    match offeredType typeText with
                    | Error e -> problem shown e
                    | Ok t ->
                        let key =
                            match text.Split(':', 3) with
                            | [| _; _; key |] -> keyVariable t key
                            | _ -> Ok(defaultVariable t)

                        match key with
                        | Error e -> problem shown e
                        | Ok key ->
                            Ok {
                                Name = name
                                Type = t
                                KeyVariable = key
                            }
            | _ -> problem text "expected NAME:TYPE or NAME:TYPE:KEY_ENV, e.g. glm:zai:ZAI_API_KEY"

        let parsedProviders = flags.Providers |> List.map provider
        let validProviders = parsedProviders |> List.choose Result.toOption

        let providers =
            match flags.Providers with
            | [] ->
                Ok [
                    {
                        Name = "anthropic"
                        Type = ProviderType.Anthropic
                        KeyVariable = ""
                    }
                ]
            | _ ->
                let repeated =
                    validProviders
                    |> List.countBy _.Name
                    |> List.filter (fun (_, n) -> n > 1)
                    |> List.map (fun (name, _) -> $"--provider: the name \"%s{name}\" is given twice")

                match (parsedProviders |> List.choose errorOf) @ repeated with
                | [] -> Ok validProviders
                | errors -> Error errors

        // the stages are checked against the names that parsed (also when others did not)
        let chosen =
            match providers with
            | Ok ps -> ps |> List.map _.Name
            | Error _ -> validProviders |> List.map _.Name |> List.distinct

        let strategyResult =
            match flags.Strategy with
            | None -> Ok RoutingStrategy.Failover
            | Some text -> strategy text |> Result.mapError (fun e -> $"--strategy: %s{e}")

        let stages =
            let parsed =
                flags.Stages
                |> List.map (fun entry ->
                    stage chosen entry |> Result.mapError (fun e -> $"--stage \"%s{entry}\": %s{e}"))

            let valid = parsed |> List.choose Result.toOption

            let repeated =
                valid
                |> List.countBy fst
                |> List.filter (fun (_, n) -> n > 1)
                |> List.map (fun (s, _) -> $"--stage: the stage %s{Stage.wireName s} is given twice")

            match (parsed |> List.choose errorOf) @ repeated with
            | [] -> Ok valid
            | errors -> Error errors

        let listen =
            match flags.Listen with
            | None -> Ok None
            | Some text ->
                ListenAddress.TryParse text
                |> Result.map Some
                |> Result.mapError (fun e -> $"--listen \"%s{text}\": %s{e}")

        let one =
            function
            | Ok _ -> []
            | Error e -> [ e ]

        let errors =
            (match providers with
             | Error es -> es
             | Ok _ -> [])
            @ one strategyResult
            @ (match stages with
               | Error es -> es
               | Ok _ -> [])
            @ one listen

        match providers, strategyResult, stages, listen with
        | Ok ps, Ok s, Ok st, Ok l ->
            Ok {
                Providers = Some ps
                Keys = ps.Length
                Strategy = Some s
                Stages = Some st
                Listen = l
            }
        | _ -> Error errors

    let private quote (text: string) = ConfigRender.quote text

    let private targetText (target: StageTarget) =
        match target.Model with
        | Some model -> $"%s{target.Provider},%s{model}"
        | None -> target.Provider

    /// The config the answers describe, as commented YAML or TOML (unanswered questions take their defaults).
    let render (format: ConfigFormat) (state: WizardState) : string =
        let providers =
            state.Providers
            |> Option.defaultValue [
                {
                    Name = "anthropic"
                    Type = ProviderType.Anthropic
                    KeyVariable = ""
                }
            ]

        let strategy = state.Strategy |> Option.defaultValue RoutingStrategy.Failover
        let stages = state.Stages |> Option.defaultValue []
        let listen = state.Listen |> Option.defaultValue Config.defaultListen
        let toml = format = ConfigFormat.Toml
        // YAML `key: value` at an indent, or TOML `key = value`
        let field (indent: string) (key: string) (value: string) =
            if toml then
                $"%s{key} = %s{value}"
            else
                $"%s{indent}%s{key}: %s{value}"

        // a word YAML reads as a string as it is; TOML strings are always quoted
        let word (text: string) = if toml then quote text else text

        let noKeys (p: WizardProvider) =
            if p.Type = ProviderType.Anthropic then
                "# no keys: each caller's own credential is passed through"
            else
                "# no keys"

        [
            "# cc-relay configuration, written by `cc-relay config init`."
            "#"
            "#   cc-relay config validate <this file>   check it: every error and warning, with line and column"
            "#   cc-relay config show <this file>       what the relay will use, defaults included (secrets redacted)"
            "#"
            "# Every key, its default and allowed values: docs/configuration.md. ${NAME} reads the environment"
            "# variable NAME when the relay starts (unset is an error): keep keys in the environment."
            if toml then
                "#"
                "# TOML note: a table's own keys come before its sub-tables ([[providers.keys]], [routing.stages]);"
                "# a key written after a sub-table header belongs to that sub-table."
            ""
            if toml then "[server]" else "server:"
            field "  " "listen" (quote (string listen))
            ""
            if not toml then
                "providers:"
            for p in providers do
                if toml then
                    "[[providers]]"
                    field "" "name" (quote p.Name)
                else
                    $"  - name: %s{quote p.Name}"

                field "    " "type" (word (ProviderType.wireName p.Type))

                if p.KeyVariable = "" then
                    (if toml then "" else "    ") + noKeys p
                elif toml then
                    "[[providers.keys]]"
                    $"key = \"${{%s{p.KeyVariable}}}\""
                else
                    "    keys:"
                    $"      - key: \"${{%s{p.KeyVariable}}}\""

                if toml then
                    ""
            if not toml then
                ""
            if toml then "[routing]" else "routing:"
            field "  " "strategy" (word (RoutingStrategy.wireName strategy))
            match stages with
            | [] ->
                (if toml then "" else "  ")
                + "# stages: background, think, long_context, … to a provider (docs/routing.md#stages)"
            | stages ->
                if toml then
                    ""
                    "# each stage's requests go to its target (docs/routing.md#stages)"
                    "[routing.stages]"
                else
                    "  # each stage's requests go to its target (docs/routing.md#stages)"
                    "  stages:"

                for s, target in stages do
                    field "    " (Stage.wireName s) (quote (targetText target))
        ]
        |> List.map (fun line -> line + "\n")
        |> String.concat ""

/// The C#-facing surface of `WizardFlags` and `ConfigFormat`.
type WizardFlags with

    /// The flags as the command line gave them (null: not given).
    static member Create
        (providers: string seq, strategy: string | null, stages: string seq, listen: string | null)
        : WizardFlags = {
        Providers = List.ofSeq providers
        Strategy = Option.ofObj strategy
        Stages = List.ofSeq stages
        Listen = Option.ofObj listen
    }

    /// `ConfigWizard.ofFlags`.
    member this.Answers() : Result<WizardState, string list> = ConfigWizard.ofFlags this
