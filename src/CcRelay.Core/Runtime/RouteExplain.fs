namespace CcRelay.Core

open System
open System.Buffers
open System.Text.Json

/// One provider of an explained plan, in the order it would be tried.
type ExplainedProvider = {
    Provider: string
    /// The model the upstream would see (after the stage target and the provider's `model_mapping`).
    Model: string
    /// The id of the configured key that would be sent; "" when none (no key, or the caller's own credential).
    KeyId: string
    /// `anthropic-beta` values the provider cannot take and the relay would leave out.
    DroppedBetas: string list
    /// What translation would leave out (`cache_control`, `thinking`, `web_search`, …).
    DroppedFeatures: string list
    /// Why the request could not be prepared for this provider; "" when it could.
    Error: string
    /// The pipelines that apply to this attempt (by provider, model or stage), in the order they run.
    Pipelines: string list
    /// What their built-in steps would do to this request, as `x-cc-relay-transformers` reports it; plugins
    /// are not run by a dry run and show as `plugin:<name>(not run)`. "" without pipelines.
    Transformers: string
}

/// A configured provider that would not be tried, and why.
type SkippedProvider = { Provider: string; Reason: string }

/// The dry run of one request (`cc-relay route explain`): nothing is sent.
type RouteExplanation = {
    Stage: Stage
    Reason: string
    Strategy: RoutingStrategy
    /// The model the client asked for.
    ClientModel: string
    EstimatedInputTokens: int
    Providers: ExplainedProvider list
    Skipped: SkippedProvider list
}

/// Where a request would go and what would be done to it, from the config alone: a fresh runtime (every
/// circuit closed, every key's buckets full, no latency measured), the strategy's first draw (random ones
/// with a fixed seed), no caller credential forwarded.
[<RequireQualifiedAccess>]
module RouteExplain =

    /// Explains `body` (an Anthropic Messages request) under `config` at `now`. `headers` and `betas` stand
    /// for the request's headers; `pathAndQuery` is the client path (`/v1/messages`). Error: the body is
    /// refused as the relay would refuse it.
    let explain
        (config: RelayConfig)
        (now: TimeSpan)
        (body: ReadOnlySpan<byte>)
        (headers: StageHeaders)
        (betas: string seq)
        (pathAndQuery: string)
        : Result<RouteExplanation, string> =
        let betas = List.ofSeq betas

        match RequestFacts.inspectFor (Stages.active config) body with
        | Error e -> Error(RequestFacts.describe e)
        | Ok facts ->
            let decision = Stages.classify config facts headers
            let runtime = Relay.create now config
            let request = Relay.request facts 0UL false 0UL now
            let planned = Relay.planRoute runtime now request decision.Targets
            let runtime = planned.Runtime
            let dispatch = planned.Value
            let policy = runtime.Policy
            let explained = ResizeArray<ExplainedProvider>()
            let skipped = ResizeArray<SkippedProvider>()
            let tried = Collections.Generic.HashSet<string>(StringComparer.Ordinal)

            for position in 0 .. dispatch.Order.Length - 1 do
                let p = dispatch.Order[position]
                let name = policy.Providers[p].Name

                let step = Relay.next runtime now { dispatch with Position = position }

                match step.Value with
                | struct (Step.Send attempt, _) when attempt.ProviderIndex = p ->
                    tried.Add name |> ignore

                    let model =
                        if attempt.Model.Length > 0 then
                            attempt.Model
                        else
                            facts.Model

                    let prepared =
                        if model = facts.Model then
                            Ok(facts, body.ToArray())
                        else
                            let swapped = RequestFacts.withModel body facts model

                            RequestFacts.inspect (ReadOnlySpan swapped)
                            |> Result.map (fun f -> f, swapped)
                            |> Result.mapError RequestFacts.describe

                    let entry =
                        match prepared with
                        | Error e -> {
                            Provider = name
                            Model = model
                            KeyId = attempt.KeyId
                            DroppedBetas = []
                            DroppedFeatures = []
                            Error = e
                            Pipelines = []
                            Transformers = ""
                          }
                        | Ok(facts, bytes) ->
                            // the attempt's pipelines, as the host runs them (FailoverForwarder): the Anthropic
                            // phase before the dialect, the upstream phase on the dialect's body
                            let selected =
                                Pipeline.select config.Pipelines name facts.Model (Stage.wireName decision.Stage)

                            let dialect = Pipeline.dialect attempt.Provider

                            let builtIn (steps: PipelineStep list) =
                                steps
                                |> List.filter (fun s ->
                                    match s.Transform with
                                    | Transform.Plugin _ -> false
                                    | _ -> true)

                            let anthropic =
                                Pipeline.runBuiltIn (builtIn selected.Anthropic) dialect None (Pipeline.start bytes)

                            let facts, bytes =
                                if anthropic.Changed && anthropic.Failure.IsNone then
                                    match RequestFacts.inspect (ReadOnlySpan anthropic.Body) with
                                    | Ok changed -> changed, anthropic.Body
                                    | Error _ -> facts, bytes
                                else
                                    facts, bytes

                            let plan = Dialect.plan attempt.Provider attempt.Key facts pathAndQuery betas []

                            let report (run: PipelineRun) =
                                if selected.IsEmpty then
                                    ""
                                else
                                    let plugins =
                                        selected.Anthropic
                                        |> List.choose (fun s ->
                                            match s.Transform with
                                            | Transform.Plugin _ -> Some(s.Name + "(not run)")
                                            | _ -> None)

                                    [ Pipeline.report run ] @ plugins
                                    |> List.filter (fun s -> s.Length > 0)
                                    |> String.concat ","

                            let failure (run: PipelineRun) =
                                match run.Failure with
                                | Some failure -> $"the pipeline fails at %s{failure.Step}: %s{failure.Reason}"
                                | None -> ""

                            let fixups = Pipeline.fixups selected.Translation dialect

                            match Dialect.editWith fixups plan (ReadOnlySpan bytes) facts false with
                            | Ok(plan, reshaped) ->
                                // the translation-phase steps: applied by the translator, n/a at other dialects
                                let anthropic = Pipeline.translated selected.Translation dialect anthropic

                                let run =
                                    if anthropic.Failure.IsNone && not selected.Upstream.IsEmpty then
                                        let payload =
                                            match reshaped with
                                            | ValueSome body -> body
                                            | ValueNone -> bytes

                                        Pipeline.runBuiltIn
                                            selected.Upstream
                                            dialect
                                            (Transformers.thinkingOf (ReadOnlySpan bytes))
                                            (Pipeline.continueWith payload anthropic)
                                    else
                                        anthropic

                                {
                                    Provider = name
                                    Model = plan.UpstreamModel
                                    KeyId = attempt.KeyId
                                    DroppedBetas = plan.Dropped
                                    DroppedFeatures = plan.DroppedFeatures
                                    Error = failure run
                                    Pipelines = selected.Names
                                    Transformers = report run
                                }
                            | Error e -> {
                                Provider = name
                                Model = plan.UpstreamModel
                                KeyId = attempt.KeyId
                                DroppedBetas = plan.Dropped
                                DroppedFeatures = []
                                Error = e
                                Pipelines = selected.Names
                                Transformers = report anthropic
                              }

                    explained.Add entry
                | _ ->
                    tried.Add name |> ignore

                    skipped.Add {
                        Provider = name
                        Reason = "no capacity: no key ready"
                    }

            let targets = decision.Targets |> List.map _.Provider

            for provider in config.Providers do
                if not (tried.Contains provider.Name) then
                    let i = RelayPolicy.indexOf policy provider.Name

                    let reason =
                        if not provider.Enabled then
                            "disabled"
                        elif not targets.IsEmpty && not (List.contains provider.Name targets) then
                            $"not a target of stage %s{Stage.wireName decision.Stage}"
                        elif i >= 0 && not (Routing.admissible policy now runtime.Providers[i]) then
                            "circuit open"
                        elif
                            policy.Strategy = RoutingStrategy.ModelBased
                            && targets.IsEmpty
                            && i >= 0
                            && not (Array.contains i (Routing.modelCandidates policy facts.Model))
                        then
                            "does not serve the model"
                        else
                            "not planned"

                    skipped.Add {
                        Provider = provider.Name
                        Reason = reason
                    }

            Ok {
                Stage = decision.Stage
                Reason = decision.Reason
                Strategy = policy.Strategy
                ClientModel = facts.Model
                EstimatedInputTokens = facts.EstimatedInputTokens
                Providers = List.ofSeq explained
                Skipped = List.ofSeq skipped
            }

    /// Whether some provider would be tried.
    let routable (explanation: RouteExplanation) : bool =
        explanation.Providers |> List.exists (fun p -> p.Error.Length = 0)

    /// The explanation as text, one fact per line.
    let toText (e: RouteExplanation) : string =
        let text = Text.StringBuilder()
        let line (s: string) = text.Append(s).Append('\n') |> ignore

        let list (items: string list) =
            if items.IsEmpty then "none" else String.Join(", ", items)

        line $"stage:     %s{Stage.wireName e.Stage} (%s{e.Reason})"
        line $"strategy:  %s{RoutingStrategy.wireName e.Strategy}"
        line $"model:     %s{e.ClientModel} (~%d{e.EstimatedInputTokens} input tokens estimated)"
        line "providers, in order:"

        if e.Providers.IsEmpty then
            line "  none: no provider would be tried"

        e.Providers
        |> List.iteri (fun i p ->
            let key = if p.KeyId.Length > 0 then p.KeyId else "none"
            line $"  %d{i + 1}. %s{p.Provider}  model=%s{p.Model}  key_id=%s{key}"

            if p.Error.Length > 0 then
                line $"     cannot send: %s{p.Error}"
            else
                line $"     dropped betas: %s{list p.DroppedBetas}; dropped by translation: %s{list p.DroppedFeatures}"

            if not p.Pipelines.IsEmpty then
                line $"     pipelines: %s{list p.Pipelines}; transformers: %s{p.Transformers}")

        if not e.Skipped.IsEmpty then
            line "skipped:"

            for s in e.Skipped do
                line $"  %s{s.Provider}: %s{s.Reason}"

        text.ToString()

    /// The explanation as JSON (`--json`).
    let toJson (e: RouteExplanation) : byte array =
        let buffer = ArrayBufferWriter<byte>(512)

        do
            use writer = new Utf8JsonWriter(buffer, JsonWriterOptions(Indented = true))
            writer.WriteStartObject()
            writer.WriteString("stage", Stage.wireName e.Stage)
            writer.WriteString("reason", e.Reason)
            writer.WriteString("strategy", RoutingStrategy.wireName e.Strategy)
            writer.WriteString("model", e.ClientModel)
            writer.WriteNumber("estimated_input_tokens", e.EstimatedInputTokens)
            writer.WriteStartArray "providers"

            for p in e.Providers do
                writer.WriteStartObject()
                writer.WriteString("provider", p.Provider)
                writer.WriteString("model", p.Model)

                if p.KeyId.Length > 0 then
                    writer.WriteString("key_id", p.KeyId)
                else
                    writer.WriteNull "key_id"

                writer.WriteStartArray "dropped_betas"

                for b in p.DroppedBetas do
                    writer.WriteStringValue b

                writer.WriteEndArray()
                writer.WriteStartArray "dropped_features"

                for f in p.DroppedFeatures do
                    writer.WriteStringValue f

                writer.WriteEndArray()

                if p.Error.Length > 0 then
                    writer.WriteString("error", p.Error)

                writer.WriteStartArray "pipelines"

                for name in p.Pipelines do
                    writer.WriteStringValue name

                writer.WriteEndArray()
                writer.WriteString("transformers", p.Transformers)
                writer.WriteEndObject()

            writer.WriteEndArray()
            writer.WriteStartArray "skipped"

            for s in e.Skipped do
                writer.WriteStartObject()
                writer.WriteString("provider", s.Provider)
                writer.WriteString("reason", s.Reason)
                writer.WriteEndObject()

            writer.WriteEndArray()
            writer.WriteEndObject()

        buffer.WrittenSpan.ToArray()
