namespace CcRelay.Core

open System
open System.Text
open System.Text.Json

/// The pipelines that apply to one attempt, their steps in order.
type SelectedPipeline = {
    /// The pipelines' names, in the order they run.
    Names: string list
    /// Steps on the Anthropic request (before the dialect), plugins included.
    Anthropic: PipelineStep list
    /// Steps on the body sent upstream (after the dialect).
    Upstream: PipelineStep list
    /// Steps on the answer.
    Response: PipelineStep list
} with

    /// Whether nothing applies.
    member this.IsEmpty: bool =
        this.Anthropic.IsEmpty && this.Upstream.IsEmpty && this.Response.IsEmpty

/// One line of a request's pipeline report.
[<RequireQualifiedAccess>]
type StepReport =
    /// The step edited the body (`Reserialised`: not in place).
    | Applied of Name: string * Reserialised: bool
    /// The step had nothing to do for this request.
    | Unchanged of Name: string
    /// The step failed and was left out (`on_error: skip`).
    | Skipped of Name: string * Reason: string
    /// The step does not apply to this attempt's dialect (a model-attached pipeline at another provider).
    | NotApplicable of Name: string * Dialect: string

/// A pipeline run over one body: the body so far (all or nothing: a failed step never leaves its edit), what
/// each step did, and the failure that stops the request (`on_error: fail`).
type PipelineRun = {
    /// The body after the steps so far.
    Body: byte array
    /// Whether any step edited it.
    Changed: bool
    /// The steps' reports, in order.
    Reports: StepReport list
    /// The failing step and why; the request fails with `Pipeline.errorStatus` and an Anthropic error.
    Failure: (string * string) option
}

/// Pipelines: which apply to an attempt, running them step by step under their `on_error` policy, and the
/// report (debug header, log field).
[<RequireQualifiedAccess>]
module Pipeline =

    /// No pipeline.
    let none: SelectedPipeline = {
        Names = []
        Anthropic = []
        Upstream = []
        Response = []
    }

    /// Whether a pipeline applies to an attempt at `provider` for a request of `model` (the model the client
    /// asked for) classified into `stage` (its `Stage.wireName`; "" or "-" when it was not classified).
    let applies (attach: PipelineAttach) (provider: string) (model: string) (stage: string) : bool =
        List.contains provider attach.Providers
        || attach.Models |> List.exists (fun pattern -> ModelPattern.matches pattern model)
        || List.contains stage attach.Stages

    /// The pipelines for an attempt, in file order, their steps concatenated.
    let select (config: PipelinesConfig) (provider: string) (model: string) (stage: string) : SelectedPipeline =
        let chosen =
            config.Pipelines |> List.filter (fun p -> applies p.Attach provider model stage)

        match chosen with
        | [] -> none
        | _ ->
            let request = chosen |> List.collect _.Request

            {
                Names = chosen |> List.map _.Name
                Anthropic =
                    request
                    |> List.filter (fun s -> Transformers.phase s.Transform = StepPhase.Anthropic)
                Upstream =
                    request
                    |> List.filter (fun s -> Transformers.phase s.Transform = StepPhase.Upstream)
                Response = chosen |> List.collect _.Response
            }

    /// A run over `body` (not copied: steps never write into their input).
    let start (body: byte array) : PipelineRun = {
        Body = body
        Changed = false
        Reports = []
        Failure = None
    }

    /// Whether a step can run at a provider of `dialect` (model-attached pipelines reach every provider).
    let appliesTo (step: PipelineStep) (dialect: string) : bool =
        match step.Transform with
        | Transform.Plugin _ -> true
        | transform ->
            match Transformers.tryFind step.Name with
            | Some info -> info.AppliesTo = [ "all" ] || List.contains dialect info.AppliesTo
            | None -> transform = Transform.RepairToolJson

    /// Records one step's outcome: an edit is committed, a failure skipped or made the run's failure by the
    /// step's policy. After a failure nothing more is recorded.
    let record (run: PipelineRun) (step: PipelineStep) (outcome: StepOutcome) : PipelineRun =
        match run.Failure, outcome with
        | Some _, _ -> run
        | None, StepOutcome.Changed(body, reserialised) -> {
            run with
                Body = body
                Changed = true
                Reports = run.Reports @ [ StepReport.Applied(step.Name, reserialised) ]
          }
        | None, StepOutcome.Unchanged -> {
            run with
                Reports = run.Reports @ [ StepReport.Unchanged step.Name ]
          }
        | None, StepOutcome.Failed reason ->
            match step.OnError with
            | OnError.Skip -> {
                run with
                    Reports = run.Reports @ [ StepReport.Skipped(step.Name, reason) ]
              }
            | OnError.Fail -> {
                run with
                    Failure = Some(step.Name, reason)
              }

    /// Runs the built-in steps of `steps` over the run (plugins are the host's: it calls them and `record`s
    /// their outcomes). `thinking`: the Anthropic request's `thinking` member; `dialect`: the attempt's.
    /// Consecutive steps are fused into one scan and one splice when that gives what running them one by one
    /// gives (`Transformers.applyFused`); otherwise each step scans the body it is given.
    let runBuiltIn
        (steps: PipelineStep seq)
        (dialect: string)
        (thinking: byte array option)
        (run: PipelineRun)
        : PipelineRun =
        let steps = List.ofSeq steps

        let notApplicable (run: PipelineRun) (step: PipelineStep) = {
            run with
                Reports = run.Reports @ [ StepReport.NotApplicable(step.Name, dialect) ]
        }

        let applicable = steps |> List.filter (fun step -> appliesTo step dialect)

        let fused =
            match run.Failure, applicable with
            | None, _ :: _ :: _ -> Transformers.applyFused (applicable |> List.map _.Transform) thinking run.Body
            | _ -> None

        match fused with
        | Some outcomes ->
            steps
            |> List.fold
                (fun (run: PipelineRun, outcomes: StepOutcome list) step ->
                    match outcomes with
                    | outcome :: rest when appliesTo step dialect -> record run step outcome, rest
                    | _ -> notApplicable run step, outcomes)
                (run, outcomes)
            |> fst
        | None ->
            steps
            |> List.fold
                (fun (run: PipelineRun) step ->
                    if run.Failure.IsSome then
                        run
                    elif not (appliesTo step dialect) then
                        notApplicable run step
                    else
                        record run step (Transformers.applyRequest step.Transform thinking run.Body))
                run

    /// The report as a header value: `name` for an in-place edit, `name(reserialised)`, `name(unchanged)`,
    /// `name(skipped)`, `name(n/a)`; steps separated by commas.
    let header (reports: StepReport list) : string =
        reports
        |> List.map (function
            | StepReport.Applied(name, false) -> name
            | StepReport.Applied(name, true) -> name + "(reserialised)"
            | StepReport.Unchanged name -> name + "(unchanged)"
            | StepReport.Skipped(name, _) -> name + "(skipped)"
            | StepReport.NotApplicable(name, _) -> name + "(n/a)")
        |> String.concat ","

    /// The reasons of skipped steps, for the log (`name: reason; …`), empty when none.
    let skipped (reports: StepReport list) : string =
        reports
        |> List.choose (function
            | StepReport.Skipped(name, reason) -> Some(name + ": " + reason)
            | _ -> None)
        |> String.concat "; "

    /// The HTTP status of a failed pipeline: 500 for a plugin (the relay's side failed), 400 for a built-in
    /// transformer (it cannot apply to this request).
    let errorStatus (stepName: string) : int =
        if stepName.StartsWith("plugin:", StringComparison.Ordinal) then
            500
        else
            400

    /// The Anthropic-shaped error body of a failed pipeline.
    let errorBody (stepName: string) (reason: string) : byte array =
        let errorType =
            if errorStatus stepName = 500 then
                "api_error"
            else
                "invalid_request_error"

        use stream = new IO.MemoryStream()

        (use writer = new Utf8JsonWriter(stream)
         writer.WriteStartObject()
         writer.WriteString("type", "error")
         writer.WriteStartObject "error"
         writer.WriteString("type", errorType)
         writer.WriteString("message", $"the relay's transformer %s{stepName} failed: %s{reason}")
         writer.WriteEndObject()
         writer.WriteEndObject())

        stream.ToArray()

    /// A response step's outcome on a whole JSON answer.
    let runAnswer (steps: PipelineStep list) (body: byte array) : PipelineRun =
        steps
        |> List.fold
            (fun (run: PipelineRun) step ->
                if run.Failure.IsSome then
                    run
                else
                    record run step (Transformers.applyAnswer step.Transform run.Body))
            (start body)

    /// The report including a failure (`name(failed)`), for the debug header and the log line.
    let report (run: PipelineRun) : string =
        let steps = header run.Reports

        match run.Failure with
        | Some(name, _) when steps.Length > 0 -> steps + "," + name + "(failed)"
        | Some(name, _) -> name + "(failed)"
        | None -> steps

    /// The dialect name of a provider, as the catalog's `AppliesTo` names it.
    let dialect (provider: ProviderConfig) : string = PipelineDecode.dialectOf provider

    /// The plan of an attempt whose pipeline failed: the relay answers it itself with the Anthropic error,
    /// nothing goes upstream (no credential is applied).
    let failedPlan (plan: UpstreamPlan) (stepName: string) (reason: string) : UpstreamPlan = {
        plan with
            Answer = AnswerDialect.Local(errorStatus stepName, errorBody stepName reason)
            Signing = Signing.Static
            Credentials = []
    }

    /// The run continued on another body (the upstream phase on the dialect's body): its reports kept.
    let continueWith (body: byte array) (run: PipelineRun) : PipelineRun = {
        run with
            Body = body
            Changed = false
    }

    /// Whether the answer side repairs tool JSON.
    let repairsToolJson (selected: SelectedPipeline) : bool =
        selected.Response
        |> List.exists (fun s -> s.Transform = Transform.RepairToolJson)

/// The plugin protocol, version 1 (docs/plugins.md): one JSON line each way per call.
[<RequireQualifiedAccess>]
module PluginProtocol =

    /// The protocol version this relay speaks.
    [<Literal>]
    let Version = 1

    /// The request line for one call: `{"v":1,"id":N,"kind":"request","provider":…,"model":…,"body":{…}}` + `\n`.
    /// The body is embedded as it is (raw JSON), not re-encoded; its line breaks (whitespace) become spaces.
    let requestLine (id: int64) (provider: string) (model: string) (body: ReadOnlySpan<byte>) : byte array =
        let head =
            Encoding.UTF8.GetBytes(
                $"{{\"v\":%d{Version},\"id\":%d{id},\"kind\":\"request\",\"provider\":"
                + Encoding.UTF8.GetString(JsonSpans.stringLiteral provider)
                + ",\"model\":"
                + Encoding.UTF8.GetString(JsonSpans.stringLiteral model)
                + ",\"body\":"
            )

        let line = Array.zeroCreate<byte>(head.Length + body.Length + 2)
        head.CopyTo(line, 0)
        body.CopyTo(line.AsSpan(head.Length))

        // NOTE: a raw CR or LF in valid JSON can only be whitespace (inside strings they are escaped), so a
        // pretty-printed body becomes one line by turning them into spaces: the same JSON value, one line
        let embedded = line.AsSpan(head.Length, body.Length)

        if embedded.IndexOfAny(byte '\n', byte '\r') >= 0 then
            embedded.Replace(byte '\n', byte ' ')
            embedded.Replace(byte '\r', byte ' ')

        line[line.Length - 2] <- byte '}'
        line[line.Length - 1] <- byte '\n'
        line

    /// A plugin's answer line for call `id`, read: `{"v":1,"id":N,"body":{…}}` (the new body, re-serialised by
    /// the plugin), `{"v":1,"id":N,"unchanged":true}`, or `{"v":1,"id":N,"error":"…"}`. Anything else —
    /// not JSON, another id or version, a body that is not an object — is a failed call.
    let answer (id: int64) (line: ReadOnlySpan<byte>) : StepOutcome =
        try
            use document = JsonDocument.Parse(line.ToArray())
            let root = document.RootElement

            let property (name: string) =
                match root.TryGetProperty name with
                | true, value -> Some value
                | _ -> None

            if root.ValueKind <> JsonValueKind.Object then
                StepOutcome.Failed "the plugin answered something other than a JSON object"
            else
                match property "v", property "id" with
                | Some v, _ when v.ValueKind <> JsonValueKind.Number || v.GetInt32() <> Version ->
                    StepOutcome.Failed $"the plugin answered protocol version %s{v.GetRawText()}, not %d{Version}"
                | None, _ -> StepOutcome.Failed "the plugin's answer has no v (protocol version)"
                | _, Some i when i.ValueKind = JsonValueKind.Number && i.GetInt64() = id ->
                    match property "error", property "unchanged", property "body" with
                    | Some e, _, _ when e.ValueKind = JsonValueKind.String ->
                        StepOutcome.Failed("the plugin reported: " + e.GetString())
                    | _, Some u, _ when u.ValueKind = JsonValueKind.True -> StepOutcome.Unchanged
                    | _, _, Some body when body.ValueKind = JsonValueKind.Object ->
                        StepOutcome.Changed(Encoding.UTF8.GetBytes(body.GetRawText()), true)
                    | _ -> StepOutcome.Failed "the plugin's answer has neither body (an object), unchanged nor error"
                | _ -> StepOutcome.Failed $"the plugin answered another call than %d{id}"
        with :? JsonException ->
            StepOutcome.Failed "the plugin answered a line that is not JSON"

/// A plugin's state, for `/health`, the metrics and the management API.
type PluginStatus = {
    Name: string
    /// `idle` (never called), `running`, `stopped` (died or cut off; restarted on the next call).
    State: string
    Calls: int64
    Failures: int64
    Restarts: int64
    /// The last failure's reason (the relay's words, never the plugin's output).
    LastError: string
    /// Whether the CPU and memory limits are enforced (prlimit found).
    Sandboxed: bool
    /// The median round trip of its last answered calls (`PluginLatency.Window` of them), in ms; 0 before any.
    P50Ms: float
}

/// The round trips of a plugin's last answered calls, for its p50: a ring the host writes one sample into per
/// answered call (`record`), read whole (`p50`).
[<RequireQualifiedAccess>]
module PluginLatency =

    /// How many recent calls the p50 is over.
    [<Literal>]
    let Window = 256

    /// A ring with room for `Window` samples.
    let create () : float array = Array.zeroCreate Window

    /// Puts the `count`-th sample (0-based: the number recorded before it) into the ring.
    let record (ring: float array) (count: int64) (milliseconds: float) : unit =
        ring[int (count % int64 ring.Length)] <- milliseconds

    /// The median of the samples in the ring after `count` were recorded (the last `Window`); 0 when none. An
    /// even number of samples gives the lower middle one (a sample that was measured, not a mean of two).
    let p50 (ring: float array) (count: int64) : float =
        let n = int (min count (int64 ring.Length))

        if n = 0 then
            0.0
        else
            let samples = Array.sub ring 0 n
            Array.sortInPlace samples
            samples[(n - 1) / 2]

/// Plugin states as JSON.
[<RequireQualifiedAccess>]
module PluginStatuses =

    /// `[{"name":…,"state":…,"calls":N,"failures":N,"restarts":N,"last_error":…,"sandboxed":bool,"p50_ms":N}, …]`.
    let toJson (statuses: PluginStatus seq) : byte array =
        use stream = new IO.MemoryStream()

        (use writer = new Utf8JsonWriter(stream)
         writer.WriteStartArray()

         for s in statuses do
             writer.WriteStartObject()
             writer.WriteString("name", s.Name)
             writer.WriteString("state", s.State)
             writer.WriteNumber("calls", s.Calls)
             writer.WriteNumber("failures", s.Failures)
             writer.WriteNumber("restarts", s.Restarts)
             writer.WriteString("last_error", s.LastError)
             writer.WriteBoolean("sandboxed", s.Sandboxed)
             writer.WriteNumber("p50_ms", Math.Round(s.P50Ms, 3))
             writer.WriteEndObject()

         writer.WriteEndArray())

        stream.ToArray()

    /// A `/health` body with the plugins' states added as its `plugins` member (a byte edit).
    let addToHealth (health: byte array) (statuses: PluginStatus seq) : byte array =
        match JsonSpans.set (ReadOnlySpan health) "plugins" (toJson statuses) with
        | Ok edited -> edited
        | Error _ -> health

/// `cc-relay transformers`: the catalog as text and as JSON.
[<RequireQualifiedAccess>]
module TransformerCatalog =

    let private pluginNote =
        "plugin: <name>  (request; applies to: all; re-serialises)\n"
        + "  An external transformer (plugins.<name>, docs/plugins.md): it receives the request and returns a whole\n"
        + "  new body, so the request is re-serialised by the plugin; reported as plugin:<name>(reserialised).\n"

    /// The catalog as text: one block per transformer.
    let text: string =
        let block (t: TransformerInfo) =
            let sb = StringBuilder()

            let editing =
                if t.InPlace then
                    "edits bytes in place"
                else
                    "re-serialises"

            sb
                .Append($"""%s{t.Name}  (%s{t.Side}; applies to: %s{String.concat ", " t.AppliesTo}; %s{editing})""")
                .Append('\n')
                .Append("  ")
                .Append(t.Summary)
                .Append('\n')
                .Append("  edits: ")
                .Append(t.Edits)
                .Append('\n')
            |> ignore

            match t.Options with
            | [] -> sb.Append("  options: none\n") |> ignore
            | options ->
                sb.Append("  options:\n") |> ignore
                let width = options |> List.map _.Name.Length |> List.max
                let kindWidth = options |> List.map _.Kind.Describe.Length |> List.max

                for o in options do
                    let defaultText =
                        match o.Default with
                        | Some d -> $" (default %s{d})"
                        | None -> ""

                    sb
                        .Append("    ")
                        .Append(o.Name.PadRight width)
                        .Append("  ")
                        .Append(o.Kind.Describe.PadRight kindWidth)
                        .Append("  ")
                        .Append(o.Description)
                        .Append(defaultText)
                        .Append('\n')
                    |> ignore

            sb.ToString()

        (Transformers.catalog |> List.map block |> String.concat "\n")
        + "\n"
        + pluginNote

    /// The catalog as JSON: `{"version":1,"transformers":[{"name","side","summary","applies_to":[…],
    /// "in_place":bool,"edits","options":[{"name","type","default"|null,"description"}]}]}`.
    let json: byte array =
        use stream = new IO.MemoryStream()
        use writer = new Utf8JsonWriter(stream, JsonWriterOptions(Indented = true))
        writer.WriteStartObject()
        writer.WriteNumber("version", 1)
        writer.WriteStartArray "transformers"

        for t in Transformers.catalog do
            writer.WriteStartObject()
            writer.WriteString("name", t.Name)
            writer.WriteString("side", t.Side)
            writer.WriteString("summary", t.Summary)
            writer.WriteStartArray "applies_to"

            for a in t.AppliesTo do
                writer.WriteStringValue a

            writer.WriteEndArray()
            writer.WriteBoolean("in_place", t.InPlace)
            writer.WriteString("edits", t.Edits)
            writer.WriteStartArray "options"

            for o in t.Options do
                writer.WriteStartObject()
                writer.WriteString("name", o.Name)
                writer.WriteString("type", o.Kind.Describe)

                match o.Default with
                | Some d -> writer.WriteString("default", d)
                | None -> writer.WriteNull "default"

                writer.WriteString("description", o.Description)
                writer.WriteEndObject()

            writer.WriteEndArray()
            writer.WriteEndObject()

        writer.WriteEndArray()
        writer.WriteEndObject()
        writer.Flush()
        stream.ToArray()
