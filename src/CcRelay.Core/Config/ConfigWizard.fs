namespace CcRelay.Core

open System
open System.Text.RegularExpressions

/// One question of `cc-relay config init --interactive`: what to ask, and the answer an empty line gives.
type WizardQuestion = { Prompt: string; Default: string }

/// A provider chosen in the wizard: its type (also its name) and the variable holding its key ("": none).
type WizardProvider = {
    Type: ProviderType
    KeyVariable: string
}

/// The wizard's answers so far.
type WizardState = {
    /// None until the providers question is answered.
    Providers: WizardProvider list option
    /// How many providers' key questions are answered.
    Keys: int
    Strategy: RoutingStrategy option
    /// None until the stages question is answered; then the stages with their target text.
    Stages: (string * string) list option
}

/// `cc-relay config init --interactive`, pure: the questions in order (`question`), each answer checked
/// (`answer`: an error says what is allowed, and the question is asked again), and the config written from the
/// answers (`render`), which loads as written when the key variables are set.
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
    }

    let private names (types: ProviderType list) =
        types |> List.map ProviderType.wireName |> String.concat ", "

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
                Prompt = $"""Routing strategy (%s{RoutingStrategy.all |> List.map fst |> String.concat ", "})"""
                Default = "failover"
            }
        | Some _ when state.Stages.IsNone ->
            Some {
                Prompt =
                    $"""Routing stages as stage=provider or stage=provider,model, separated by spaces ('-': none; stages: %s{Stage.all |> List.map fst |> String.concat ", "})"""
                Default = "-"
            }
        | Some _ -> None

    let private variable =
        Regex("^[A-Za-z_][A-Za-z0-9_]*$", RegexOptions.CultureInvariant)

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

                let unknown =
                    items
                    |> List.filter (fun i -> offered |> List.forall (fun t -> ProviderType.wireName t <> i))

                match items, unknown with
                | [], _ -> Error $"name at least one provider (%s{names offered})"
                | _, bad :: _ -> Error $"unknown provider type \"%s{bad}\"; offered: %s{names offered}"
                | _ when (List.distinct items).Length <> items.Length -> Error "a provider is named twice"
                | _ ->
                    let providers =
                        items
                        |> List.map (fun i ->
                            let t = offered |> List.find (fun t -> ProviderType.wireName t = i)

                            {
                                Type = t
                                KeyVariable = defaultVariable t
                            })

                    Ok {
                        state with
                            Providers = Some providers
                    }
            | Some providers when state.Keys < providers.Length ->
                let value =
                    match text with
                    | "-" -> Some ""
                    | text when text.StartsWith("${", StringComparison.Ordinal) && text.EndsWith('}') ->
                        Some(text.Substring(2, text.Length - 3))
                    | text -> Some text

                match value with
                | Some v when v = "" || variable.IsMatch v ->
                    let updated =
                        providers
                        |> List.mapi (fun i p -> if i = state.Keys then { p with KeyVariable = v } else p)

                    Ok {
                        state with
                            Providers = Some updated
                            Keys = state.Keys + 1
                    }
                | _ ->
                    Error
                        $"\"%s{text}\" is not an environment variable name (letters, digits and _, not starting with a digit), or '-' for no key"
            | Some _ when state.Strategy.IsNone ->
                match RoutingStrategy.all |> List.tryFind (fun (name, _) -> name = text) with
                | Some(_, strategy) -> Ok { state with Strategy = Some strategy }
                | None ->
                    Error
                        $"""unknown strategy "%s{text}"; allowed: %s{RoutingStrategy.all |> List.map fst |> String.concat ", "}"""
            | Some providers ->
                let chosen = providers |> List.map (fun p -> ProviderType.wireName p.Type)

                let entries =
                    if text = "-" then
                        []
                    else
                        text.Split(' ', StringSplitOptions.RemoveEmptyEntries) |> List.ofArray

                let parse (entry: string) : Result<string * string, string> =
                    match entry.Split('=', 2) with
                    | [| stage; target |] when target.Length > 0 ->
                        let parts = target.Split(',', 2)
                        let provider = parts[0]

                        if not (Stage.all |> List.exists (fun (name, _) -> name = stage)) then
                            Error
                                $"""unknown stage "%s{stage}"; stages: %s{Stage.all |> List.map fst |> String.concat ", "}"""
                        elif not (List.contains provider chosen) then
                            Error
                                $"""stage %s{stage}: "%s{provider}" is not one of the providers (%s{String.concat ", " chosen})"""
                        elif parts.Length = 2 && parts[1].Trim().Length = 0 then
                            Error $"stage %s{stage}: the model after the comma is empty"
                        else
                            Ok(stage, target)
                    | _ -> Error $"\"%s{entry}\" is not stage=provider or stage=provider,model"

                let parsed = entries |> List.map parse

                match
                    parsed
                    |> List.tryPick (function
                        | Error e -> Some e
                        | Ok _ -> None)
                with
                | Some e -> Error e
                | None ->
                    let stages =
                        parsed
                        |> List.choose (function
                            | Ok s -> Some s
                            | Error _ -> None)

                    if (stages |> List.map fst |> List.distinct).Length <> stages.Length then
                        Error "a stage is given twice"
                    else
                        Ok { state with Stages = Some stages }

    let private quote (text: string) =
        "\"" + text.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\""

    /// The config the answers describe, as commented YAML (unanswered questions take their defaults).
    let render (state: WizardState) : string =
        let providers =
            state.Providers
            |> Option.defaultValue [
                {
                    Type = ProviderType.Anthropic
                    KeyVariable = ""
                }
            ]

        let strategy = state.Strategy |> Option.defaultValue RoutingStrategy.Failover
        let stages = state.Stages |> Option.defaultValue []

        [
            "# cc-relay configuration, written by `cc-relay config init --interactive`."
            "#"
            "#   cc-relay config validate <this file>   check it: every error and warning, with line and column"
            "#   cc-relay config show <this file>       what the relay will use, defaults included (secrets redacted)"
            "#"
            "# Every key, its default and allowed values: docs/configuration.md. ${NAME} reads the environment"
            "# variable NAME when the relay starts (unset is an error): keep keys in the environment."
            ""
            "server:"
            "  listen: \"127.0.0.1:8787\""
            ""
            "providers:"
            for p in providers do
                let name = ProviderType.wireName p.Type
                $"  - name: %s{name}"
                $"    type: %s{name}"

                if p.KeyVariable = "" then
                    if p.Type = ProviderType.Anthropic then
                        "    # no keys: each caller's own credential is passed through"
                    else
                        "    # no keys"
                else
                    "    keys:"
                    $"      - key: \"${{%s{p.KeyVariable}}}\""
            ""
            "routing:"
            $"  strategy: %s{RoutingStrategy.wireName strategy}"
            match stages with
            | [] -> "  # stages: background, think, long_context, … to a provider (docs/routing.md#stages)"
            | stages ->
                "  # each stage's requests go to its target (docs/routing.md#stages)"
                "  stages:"

                for stage, target in stages do
                    $"    %s{stage}: %s{quote target}"
        ]
        |> List.map (fun line -> line + "\n")
        |> String.concat ""
