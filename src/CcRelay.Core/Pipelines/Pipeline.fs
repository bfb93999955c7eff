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
    /// Steps inside the translator (`reasoning_echo`, `gemini_schema_clean`): they set `TranslationFixups`.
    Translation: PipelineStep list
    /// Steps on the body sent upstream (after the dialect).
    Upstream: PipelineStep list
    /// Steps on the answer.
    Response: PipelineStep list
} with

    /// Whether nothing applies.
    member this.IsEmpty: bool =
        this.Anthropic.IsEmpty
        && this.Translation.IsEmpty
        && this.Upstream.IsEmpty
        && this.Response.IsEmpty

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
    /// A translation-phase step: the translator wrote the request with its settings (`TranslationFixups`).
    | Translated of Name: string

/// What kind of step failed: what its failure does to the request and to an answer.
[<RequireQualifiedAccess>]
type FailedStep =
    /// A built-in transformer that cannot apply: the request is refused (400 `invalid_request_error`); on the
    /// answer side the upstream's answer goes on as it came (it is never withheld for a repair the relay could
    /// not make).
    | Transformer
    /// A plugin (the relay's side failed): the request fails with a 500 `api_error`; on the answer side the
    /// answer is withheld and that error replaces it.
    | Plugin

/// The step that stopped a pipeline run (`on_error: fail`).
type StepFailure = {
    /// The step's name (`plugin:<name>` for a plugin).
    Step: string
    Reason: string
    Kind: FailedStep
}

/// What the relay does with a whole JSON answer after its answer-side steps (`Pipeline.answerVerdict`).
[<RequireQualifiedAccess>]
type AnswerVerdict =
    /// The answer goes on as the upstream gave it: no step changed it, or a built-in step failed.
    | AsItCame
    /// The steps' body replaces the answer.
    | Edited of Body: byte array
    /// A plugin step failed under `on_error: fail`: the answer is withheld, the relay's Anthropic error
    /// (`api_error`) replaces it.
    | Withheld of Refusal: byte array

/// A pipeline run over one body: the body so far (all or nothing: a failed step never leaves its edit), what
/// each step did, and the failure that stops the request (`on_error: fail`).
type PipelineRun = {
    /// The body after the steps so far.
    Body: byte array
    /// Whether any step edited it.
    Changed: bool
    /// The steps' reports, in order.
    Reports: StepReport list
    /// The failing step, why, and what kind of step it is; the request fails with `Pipeline.errorStatus` and an
    /// Anthropic error.
    Failure: StepFailure option
}

/// Pipelines: which apply to an attempt, running them step by step under their `on_error` policy, and the
/// report (debug header, log field).
[<RequireQualifiedAccess>]
module Pipeline =

    /// No pipeline.
    let none: SelectedPipeline = {
        Names = []
        Anthropic = []
        Translation = []
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
                Translation =
                    request
                    |> List.filter (fun s -> Transformers.phase s.Transform = StepPhase.Translation)
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
                    Failure =
                        Some {
                            Step = step.Name
                            Reason = reason
                            Kind =
                                match step.Transform with
                                | Transform.Plugin _ -> FailedStep.Plugin
                                | _ -> FailedStep.Transformer
                        }
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
            | StepReport.NotApplicable(name, _) -> name + "(n/a)"
            | StepReport.Translated name -> name + "(translation)")
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
    let errorStatus (failure: StepFailure) : int =
        match failure.Kind with
        | FailedStep.Plugin -> 500
        | FailedStep.Transformer -> 400

    /// The Anthropic-shaped error body of a failed pipeline; `reason` as the caller gives it (scrubbed of secrets).
    let private errorBodyOf (failure: StepFailure) (reason: string) : byte array =
        let stepName = failure.Step

        let errorType =
            match failure.Kind with
            | FailedStep.Plugin -> "api_error"
            | FailedStep.Transformer -> "invalid_request_error"

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

    /// The Anthropic-shaped error body of a failed pipeline, its reason scrubbed of every known secret.
    let errorBody (secrets: string seq) (failure: StepFailure) : byte array =
        errorBodyOf failure (Redact.scrub secrets failure.Reason)

    /// What becomes of a whole JSON answer after its answer-side steps ran (`run`): a plugin that failed under
    /// `on_error: fail` withholds it (the relay's error, its reason scrubbed of `secrets`); a built-in step's
    /// failure leaves it as it came; else the steps' body when they changed it.
    let answerVerdict (secrets: string seq) (run: PipelineRun) : AnswerVerdict =
        match run.Failure with
        | Some({ Kind = FailedStep.Plugin } as failure) -> AnswerVerdict.Withheld(errorBody secrets failure)
        | Some { Kind = FailedStep.Transformer } -> AnswerVerdict.AsItCame
        | None when run.Changed -> AnswerVerdict.Edited run.Body
        | None -> AnswerVerdict.AsItCame

    /// One built-in response step on a whole JSON answer (a plugin step is the host's: it calls it and
    /// `record`s the outcome).
    let answerStep (run: PipelineRun) (step: PipelineStep) : PipelineRun =
        if run.Failure.IsSome then
            run
        else
            record run step (Transformers.applyAnswer step.Transform run.Body)

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
        | Some failure when steps.Length > 0 -> steps + "," + failure.Step + "(failed)"
        | Some failure -> failure.Step + "(failed)"
        | None -> steps

    /// The dialect name of a provider, as the catalog's `AppliesTo` names it.
    let dialect (provider: ProviderConfig) : string = PipelineDecode.dialectOf provider

    /// The plan of an attempt whose pipeline failed: the relay answers it itself with the Anthropic error (its
    /// reason scrubbed of `secrets`), nothing goes upstream (no credential is applied).
    let failedPlan (plan: UpstreamPlan) (secrets: string seq) (failure: StepFailure) : UpstreamPlan = {
        plan with
            Answer = AnswerDialect.Local(errorStatus failure, errorBody secrets failure)
            Signing = Signing.Static
            Credentials = []
    }

    /// The run continued on another body (the upstream phase on the dialect's body): its reports kept.
    let continueWith (body: byte array) (run: PipelineRun) : PipelineRun = {
        run with
            Body = body
            Changed = false
    }

    /// The translators' fix-ups for an attempt at a provider of `dialect`: the translation-phase steps that
    /// apply to it, in order over `TranslationFixups.defaults` (a later step wins).
    let fixups (steps: PipelineStep seq) (dialect: string) : TranslationFixups =
        steps
        |> Seq.filter (fun step -> appliesTo step dialect)
        |> Seq.map _.Transform
        |> Transformers.fixups

    /// The run with the translation-phase steps reported: `Translated` where the translator applied them,
    /// `NotApplicable` at a provider of another dialect (a pipeline attached by model or stage). Nothing after a
    /// failure.
    let translated (steps: PipelineStep seq) (dialect: string) (run: PipelineRun) : PipelineRun =
        if run.Failure.IsSome then
            run
        else
            {
                run with
                    Reports =
                        run.Reports
                        @ [
                            for step in steps ->
                                if appliesTo step dialect then
                                    StepReport.Translated step.Name
                                else
                                    StepReport.NotApplicable(step.Name, dialect)
                        ]
            }

    /// Whether the answer side repairs tool JSON.
    let repairsToolJson (selected: SelectedPipeline) : bool =
        selected.Response
        |> List.exists (fun s -> s.Transform = Transform.RepairToolJson)

/// One call of a plugin: what it is given (docs/plugins.md, "The protocol").
[<RequireQualifiedAccess>]
type PluginCall =
    /// The Messages request (protocol version 1: a version-1 plugin keeps working).
    | Request of Provider: string * Model: string * Body: byte array
    /// A whole non-streamed JSON answer (version 2).
    | Response of Provider: string * Model: string * Status: int * Body: byte array
    /// One SSE event of a streamed answer (version 2): the request's id, the event's number in the stream (0, 1, …
    /// over the events given to plugins), its `event:` name and its `data` (a JSON object).
    | Event of Provider: string * Model: string * Stream: string * Seq: int64 * Name: string * Data: byte array

    /// The call's `kind` on the wire.
    member this.Kind: PluginKind =
        match this with
        | Request _ -> PluginKind.Request
        | Response _ -> PluginKind.Response
        | Event _ -> PluginKind.Event

    /// The protocol version of the call's line (and of the answer it expects): 1 for requests, 2 for the rest.
    member this.Version: int =
        match this with
        | Request _ -> 1
        | _ -> 2

    /// The size of the JSON the call carries (the answer line may be this plus a slack).
    member this.Size: int =
        match this with
        | Request(_, _, body)
        | Response(_, _, _, body) -> body.Length
        | Event(_, _, _, _, _, data) -> data.Length

/// The plugin protocol (docs/plugins.md): one JSON line each way per call. Version 1 is the request side;
/// version 2 adds `kind: response` (a whole JSON answer) and `kind: event` (one SSE event of a stream). A
/// request line still says `"v":1`, so a version-1 plugin keeps working unchanged.
[<RequireQualifiedAccess>]
module PluginProtocol =

    /// The highest protocol version this relay speaks.
    [<Literal>]
    let Version = 2

    /// `head` + the raw JSON `json` + `}` + `\n`: the JSON embedded as it is, not re-encoded; its line breaks
    /// (whitespace in valid JSON: inside strings they are escaped) become spaces, so the line is one line.
    let private embed (head: string) (json: ReadOnlySpan<byte>) : byte array =
        let head = Encoding.UTF8.GetBytes head
        let line = Array.zeroCreate<byte>(head.Length + json.Length + 2)
        head.CopyTo(line, 0)
        json.CopyTo(line.AsSpan(head.Length))
        let embedded = line.AsSpan(head.Length, json.Length)

        if embedded.IndexOfAny(byte '\n', byte '\r') >= 0 then
            embedded.Replace(byte '\n', byte ' ')
            embedded.Replace(byte '\r', byte ' ')

        line[line.Length - 2] <- byte '}'
        line[line.Length - 1] <- byte '\n'
        line

    let private literal (text: string) : string =
        Encoding.UTF8.GetString(JsonSpans.stringLiteral text)

    /// The line for call `id`: `{"v":1,"id":N,"kind":"request","provider":…,"model":…,"body":{…}}`,
    /// `{"v":2,"id":N,"kind":"response","provider":…,"model":…,"status":200,"body":{…}}` or
    /// `{"v":2,"id":N,"kind":"event","provider":…,"model":…,"stream":…,"seq":N,"event":…,"data":{…}}`, + `\n`.
    let line (id: int64) (call: PluginCall) : byte array =
        let common (provider: string) (model: string) =
            $"{{\"v\":%d{call.Version},\"id\":%d{id},\"kind\":\"%s{call.Kind.WireName}\",\"provider\":%s{literal provider},\"model\":%s{literal model}"

        match call with
        | PluginCall.Request(provider, model, body) -> embed (common provider model + ",\"body\":") (ReadOnlySpan body)
        | PluginCall.Response(provider, model, status, body) ->
            embed (common provider model + $",\"status\":%d{status},\"body\":") (ReadOnlySpan body)
        | PluginCall.Event(provider, model, stream, seq, name, data) ->
            embed
                (common provider model
                 + $",\"stream\":%s{literal stream},\"seq\":%d{seq},\"event\":%s{literal name},\"data\":")
                (ReadOnlySpan data)

    /// The request line for one call (`line` of a `PluginCall.Request`).
    let requestLine (id: int64) (provider: string) (model: string) (body: ReadOnlySpan<byte>) : byte array =
        line id (PluginCall.Request(provider, model, body.ToArray()))

    let private memberOf (element: JsonElement) (name: string) =
        match element.TryGetProperty name with
        | true, value -> Some value
        | _ -> None

    /// What a plugin may change in an event: its `data` must stay an object of the same `type` (so the
    /// `event:` line still names it), and a `content_block_*` event keeps its `index` (blocks are neither
    /// moved nor invented). None when the change is allowed, else why not.
    let eventChangeRefused (name: string) (original: JsonElement) (changed: JsonElement) : string option =
        let text (e: JsonElement) (key: string) =
            match memberOf e key with
            | Some v -> v.GetRawText()
            | None -> "(none)"

        let was, now = text original "type", text changed "type"

        if now <> was then
            Some $"the plugin changed the event's type (%s{was} to %s{now})"
        elif
            name.StartsWith("content_block_", StringComparison.Ordinal)
            && text changed "index" <> text original "index"
        then
            Some $"the plugin changed the block index of a %s{name} event"
        else
            None

    /// A plugin's answer line to `call` (made as call `id`), read. `{"v":V,"id":N,"body":{…}}` (`"data":{…}` for
    /// an event: the new object, re-serialised by the plugin), `{"v":V,"id":N,"unchanged":true}`, or
    /// `{"v":V,"id":N,"error":"…"}`, where V is the call's version. Anything else — not JSON, another id or
    /// version, a body or data that is not an object, an event change `eventChangeRefused` refuses — is a
    /// failed call.
    let answerTo (call: PluginCall) (id: int64) (line: ReadOnlySpan<byte>) : StepOutcome =
        let version = call.Version

        let payload, original =
            match call with
            | PluginCall.Event(_, _, _, _, name, data) -> "data", Some(name, data)
            | _ -> "body", None

        try
            use document = JsonDocument.Parse(line.ToArray())
            let root = document.RootElement

            if root.ValueKind <> JsonValueKind.Object then
                StepOutcome.Failed "the plugin answered something other than a JSON object"
            else
                let property = memberOf root

                match property "v", property "id" with
                | Some v, _ when
                    v.ValueKind <> JsonValueKind.Number
                    || (match v.TryGetInt32() with
                        | true, n -> n <> version
                        | _ -> true)
                    ->
                    StepOutcome.Failed $"the plugin answered protocol version %s{v.GetRawText()}, not %d{version}"
                | None, _ -> StepOutcome.Failed "the plugin's answer has no v (protocol version)"
                | _, Some i when
                    i.ValueKind = JsonValueKind.Number
                    && (match i.TryGetInt64() with
                        | true, n -> n = id
                        | _ -> false)
                    ->
                    match property "error", property "unchanged", property payload with
                    | Some e, _, _ when e.ValueKind = JsonValueKind.String ->
                        StepOutcome.Failed("the plugin reported: " + e.GetString())
                    | _, Some u, _ when u.ValueKind = JsonValueKind.True -> StepOutcome.Unchanged
                    | _, _, Some changed when changed.ValueKind = JsonValueKind.Object ->
                        match original with
                        | Some(name, data) ->
                            use was = JsonDocument.Parse(data: byte array)

                            match eventChangeRefused name was.RootElement changed with
                            | Some why -> StepOutcome.Failed why
                            | None -> StepOutcome.Changed(Encoding.UTF8.GetBytes(changed.GetRawText()), true)
                        | None -> StepOutcome.Changed(Encoding.UTF8.GetBytes(changed.GetRawText()), true)
                    | _ ->
                        StepOutcome.Failed
                            $"the plugin's answer has neither %s{payload} (an object), unchanged nor error"
                | _ -> StepOutcome.Failed $"the plugin answered another call than %d{id}"
        with :? JsonException ->
            StepOutcome.Failed "the plugin answered a line that is not JSON"

    /// A plugin's answer to a request call (`answerTo` a `PluginCall.Request`).
    let answer (id: int64) (line: ReadOnlySpan<byte>) : StepOutcome =
        answerTo (PluginCall.Request("", "", [||])) id line

    /// The deadline of one call: `event_timeout_ms` for a stream event, `timeout_ms` for the rest. A call that
    /// has to start the process first (`starting`: its first call, or the first after it died) gets at least
    /// `timeout_ms`: an interpreter's start-up is no event's fault, and would otherwise cut every cold stream.
    let timeoutMs (config: PluginConfig) (call: PluginCall) (starting: bool) : int =
        match call with
        | PluginCall.Event _ when starting -> max config.TimeoutMs config.EventTimeoutMs
        | PluginCall.Event _ -> config.EventTimeoutMs
        | _ -> config.TimeoutMs

    /// Whether a plugin's own failure report (`error`) — the process stays; any other failure means the
    /// process is out of step or broken, and is stopped.
    let keepsProcess (reason: string) : bool =
        reason.StartsWith("the plugin reported:", StringComparison.Ordinal)

/// One SSE event going through a stream's plugin steps: its name, its data so far, the frame to send, what
/// failed (`on_error: fail`: the stream ends with an `error` event) and which steps failed under `skip` (they are
/// left out for the rest of the stream; this event goes on as they received it).
type EventRun = {
    Name: string
    Data: byte array
    /// The SSE frame to send: the original bytes until a step changes the data.
    Frame: byte array
    Changed: bool
    Failure: (string * string) option
    Skipped: (string * string) list
}

/// Stream-event plugins (docs/plugins.md): which events they are given, what a step's outcome does to the
/// event, and which steps a stream's events go through.
[<RequireQualifiedAccess>]
module StreamPlugins =

    let private eventField = "event:"B
    let private dataField = "data:"B

    /// The event's name and data, when plugins are given it: a named event other than `ping` and `error` whose
    /// data is one JSON object. Everything else (pings, errors, comments, keep-alives) goes to the client as it
    /// came, without a call.
    let start (frame: byte array) : EventRun option =
        let mutable name: string option = None
        use data = new IO.MemoryStream()
        let mutable lines = 0
        let mutable i = 0

        // a field's value: after the prefix, one leading space dropped
        let valueStart (start: int) (prefixLength: int) (stop: int) =
            let v = start + prefixLength
            if v < stop && frame[v] = byte ' ' then v + 1 else v

        while i < frame.Length do
            let start = i
            let mutable stop = i

            while stop < frame.Length && frame[stop] <> byte '\r' && frame[stop] <> byte '\n' do
                stop <- stop + 1

            let line = ReadOnlySpan(frame, start, stop - start)

            if line.StartsWith(ReadOnlySpan eventField) then
                let v = valueStart start eventField.Length stop
                name <- Some(Encoding.UTF8.GetString(frame, v, stop - v))
            elif line.StartsWith(ReadOnlySpan dataField) then
                if lines > 0 then
                    data.WriteByte(byte '\n')

                let v = valueStart start dataField.Length stop
                data.Write(frame, v, stop - v)
                lines <- lines + 1

            i <-
                if stop >= frame.Length then
                    stop
                elif
                    frame[stop] = byte '\r'
                    && stop + 1 < frame.Length
                    && frame[stop + 1] = byte '\n'
                then
                    stop + 2
                else
                    stop + 1

        match name with
        | Some n when n <> "ping" && n <> "error" && lines > 0 ->
            let bytes = data.ToArray()

            let isObject =
                try
                    use document = JsonDocument.Parse(bytes: byte array)
                    document.RootElement.ValueKind = JsonValueKind.Object
                with :? JsonException ->
                    false

            if isObject then
                Some {
                    Name = n
                    Data = bytes
                    Frame = frame
                    Changed = false
                    Failure = None
                    Skipped = []
                }
            else
                None
        | _ -> None

    /// The frame of an event: `event: <name>\ndata: <data>\n\n` (the data is one line: the plugin's answer was).
    let frame (name: string) (data: byte array) : byte array =
        Array.concat [ Encoding.UTF8.GetBytes("event: " + name + "\ndata: "); data; "\n\n"B ]

    /// Records one step's outcome on the event: a change becomes the event's data and frame; a failure under
    /// `skip` leaves the event as the step received it (and the step out for the rest of the stream, so a hung
    /// plugin costs the stream one deadline, not one per event); under `fail` it ends the stream.
    let record (run: EventRun) (step: PipelineStep) (outcome: StepOutcome) : EventRun =
        match run.Failure, outcome with
        | Some _, _ -> run
        | None, StepOutcome.Changed(data, _) -> {
            run with
                Data = data
                Frame = frame run.Name data
                Changed = true
          }
        | None, StepOutcome.Unchanged -> run
        | None, StepOutcome.Failed reason ->
            match step.OnError with
            | OnError.Skip -> {
                run with
                    Skipped = run.Skipped @ [ step.Name, reason ]
              }
            | OnError.Fail -> {
                run with
                    Failure = Some(step.Name, reason)
              }

    let private sees (plugins: PluginConfig list) (kind: PluginKind) (step: PipelineStep) : PluginConfig option =
        match step.Transform with
        | Transform.Plugin name -> plugins |> List.tryFind (fun p -> p.Name = name && List.contains kind p.Sees)
        | _ -> None

    /// The answer-side plugin steps given each event of a stream, in order, with their plugins.
    let eventSteps (plugins: PluginConfig list) (steps: PipelineStep list) : (PipelineStep * PluginConfig) list =
        steps
        |> List.choose (fun step -> sees plugins PluginKind.Event step |> Option.map (fun p -> step, p))

    /// The answer-side plugin steps given a whole JSON answer, in order, with their plugins.
    let answerSteps (plugins: PluginConfig list) (steps: PipelineStep list) : (PipelineStep * PluginConfig) list =
        steps
        |> List.choose (fun step -> sees plugins PluginKind.Response step |> Option.map (fun p -> step, p))

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
    /// The most processes it runs at once (`processes`).
    Processes: int
    /// Its processes now: running, answering a call, calls waiting for one, streams bound to one.
    Pool: PluginPoolCounts
    /// Processes of settings a reload replaced, still finishing their calls and streams.
    Draining: int
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

    /// `[{"name":…,"state":…,"calls":N,"failures":N,"restarts":N,"last_error":…,"sandboxed":bool,"p50_ms":N,
    /// "processes":N,"running":N,"busy":N,"waiting":N,"streams":N,"draining":N}, …]`.
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
             writer.WriteNumber("processes", s.Processes)
             writer.WriteNumber("running", s.Pool.Running)
             writer.WriteNumber("busy", s.Pool.Busy)
             writer.WriteNumber("waiting", s.Pool.Waiting)
             writer.WriteNumber("streams", s.Pool.Streams)
             writer.WriteNumber("draining", s.Draining)
             writer.WriteEndObject()

         writer.WriteEndArray())

        stream.ToArray()

    /// A plugin whose current settings run no process yet (`idle`); `draining`: processes of replaced settings.
    let idle (config: PluginConfig) (sandboxed: bool) (draining: int) : PluginStatus = {
        Name = config.Name
        State = "idle"
        Calls = 0L
        Failures = 0L
        Restarts = 0L
        LastError = ""
        Sandboxed = sandboxed
        P50Ms = 0.0
        Processes = config.Processes
        Pool = Unchecked.defaultof<PluginPoolCounts>
        Draining = draining
    }

    /// A `/health` body with the plugins' states added as its `plugins` member (a byte edit).
    let addToHealth (health: byte array) (statuses: PluginStatus seq) : byte array =
        match JsonSpans.set (ReadOnlySpan health) "plugins" (toJson statuses) with
        | Ok edited -> edited
        | Error _ -> health

/// `cc-relay transformers`: the catalog as text and as JSON.
[<RequireQualifiedAccess>]
module TransformerCatalog =

    let private pluginNote =
        "plugin: <name>  (request or response; applies to: all; re-serialises)\n"
        + "  An external transformer (plugins.<name>, docs/plugins.md): it receives the request, a whole JSON answer\n"
        + "  or each stream event (plugins.<name>.sees) and returns a whole new body (or event data), re-serialised by\n"
        + "  the plugin; reported as plugin:<name>(reserialised).\n"

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
