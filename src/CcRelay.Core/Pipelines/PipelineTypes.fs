namespace CcRelay.Core

/// What a pipeline does when one of its steps cannot be applied at run time (`on_error`).
[<RequireQualifiedAccess>]
type OnError =
    /// Leave the step out (its edit is not made), report it, and go on with the rest.
    | Skip
    /// Fail the request with an Anthropic-shaped error; nothing is sent upstream.
    | Fail

    /// The config spelling.
    member this.WireName: string =
        match this with
        | Skip -> "skip"
        | Fail -> "fail"

/// How `system` edits the request's system prompt.
[<RequireQualifiedAccess>]
type SystemEdit =
    | Append
    | Prepend
    | Replace

/// Sampling settings: values to set, bounds to clamp to (only a value the request carries is clamped).
type SamplingOptions = {
    Temperature: decimal option
    TopP: decimal option
    TopK: int64 option
    TemperatureMin: decimal option
    TemperatureMax: decimal option
    TopPMax: decimal option
    TopKMax: int64 option
}

/// How `gemini_schema_clean` gives Gemini a tool's `input_schema` and a structured output's schema.
[<RequireQualifiedAccess>]
type GeminiSchemaMode =
    /// Cleaned into the OpenAPI subset of `parameters` / `responseSchema` (`GeminiSchema`'s allow-list).
    | OpenApi
    /// As JSON Schema, unchanged, in `parametersJsonSchema` / `responseJsonSchema` (models that take it).
    | JsonSchema

/// The translators' provider fix-ups (docs/pipelines.md, "The translation phase"): what the translation-phase
/// transformers `reasoning_echo` and `gemini_schema_clean` set. `TranslationFixups.defaults` is what a translation
/// does when no pipeline names them.
type TranslationFixups = {
    /// `reasoning_echo.echo`: the target's own earlier reasoning is given back on its assistant turns (Chat
    /// Completions `reasoning_content`/`reasoning`, Responses encrypted reasoning items, Gemini thought signatures).
    EchoReasoning: bool
    /// `reasoning_echo.fill_missing`: a turn that must carry reasoning and has none gets a placeholder: a Chat
    /// Completions tool-call turn `reasoning_content: ""` (`reasoning_field: reasoning_content`), a Gemini step's
    /// first function call `skip_thought_signature_validator` (protocols.md §6.6.2, §6.7).
    FillMissingReasoning: bool
    /// `gemini_schema_clean.mode`.
    GeminiSchema: GeminiSchemaMode
    /// `gemini_schema_clean.hints`: what the cleaning loses (a pattern, a format, an exclusive bound) is written
    /// into the schema's description.
    SchemaHints: bool
}

/// The translators' fix-ups.
[<RequireQualifiedAccess>]
module TranslationFixups =

    /// What a translation does when no pipeline names a translation-phase transformer.
    let defaults: TranslationFixups = {
        EchoReasoning = true
        FillMissingReasoning = true
        GeminiSchema = GeminiSchemaMode.OpenApi
        SchemaHints = true
    }

/// One built-in transformer with its options, or a plugin.
[<RequireQualifiedAccess>]
type Transform =
    /// `max_tokens`: lower it to `Cap` (when above), or set it to `Set`.
    | MaxTokens of Cap: int64 option * Set: int64 option
    /// `sampling`: set or clamp `temperature`, `top_p`, `top_k`.
    | Sampling of Options: SamplingOptions
    /// `strip_cache_control`: every `cache_control` member, at any depth.
    | StripCacheControl
    /// `tool_choice`: force tool use (`any`), one tool, `auto` or `none`; by default only when tools are given.
    | ToolChoice of Choice: string * Name: string option * OnlyWithTools: bool
    /// `system`: append, prepend or replace the system prompt's text.
    | System of Edit: SystemEdit * Text: string
    /// `rename_model`: the model sent, by pattern (`Map`, most specific first) or to one name (`To`).
    | RenameModel of Map: (string * string) list * To: string option
    /// `drop_fields`: top-level members of the body sent upstream (at any depth with `Deep`).
    | DropFields of Fields: string list * Deep: bool
    /// `reasoning_effort`: a Chat Completions target's `reasoning_effort` from the thinking budget.
    | ReasoningEffort of LowBelow: int64 * HighFrom: int64
    /// `reasoning_echo` (translation phase): give the target's reasoning back (`Echo`), fill what is missing.
    | ReasoningEcho of Echo: bool * FillMissing: bool
    /// `gemini_schema_clean` (translation phase): how schemas reach Gemini, and whether lost constraints are hinted.
    | GeminiSchemaClean of Mode: GeminiSchemaMode * Hints: bool
    /// `repair_tool_json`: malformed tool-call JSON in answers.
    | RepairToolJson
    /// `plugin: <name>`: an external transformer (`plugins.<name>`).
    | Plugin of Name: string

/// Which body a request step edits.
[<RequireQualifiedAccess>]
type StepPhase =
    /// The request in the Anthropic Messages shape, before the provider's dialect reshapes or translates it.
    | Anthropic
    /// Inside the translator (`type: openai` and `gemini`): the step sets how the request is written anew
    /// (`TranslationFixups`) instead of editing a body.
    | Translation
    /// The body sent upstream, after the dialect (a Chat Completions request for `type: openai`).
    | Upstream

/// One step of a pipeline.
type PipelineStep = {
    /// The transformer's catalog name (`plugin:<name>` for a plugin).
    Name: string
    Transform: Transform
    /// What a failure of this step does (the pipeline's `on_error`, or a plugin's own).
    OnError: OnError
}

/// Where a pipeline applies: any of its providers, model patterns or routing stages.
type PipelineAttach = {
    /// Provider names (`providers[].name`).
    Providers: string list
    /// Model patterns (`ModelPattern`: prefix, or `*` globs), matched against the model the client asked for.
    Models: string list
    /// Routing stages by their config spelling (`Stage.wireName`: `think`, `background`, …, `direct`), matched
    /// against the stage the request was classified into.
    Stages: string list
}

/// One named pipeline (`pipelines.<name>`).
type PipelineConfig = {
    Name: string
    OnError: OnError
    /// Request steps in order (the Anthropic-phase ones run before the dialect, the translation-phase ones inside
    /// the translator, the upstream-phase ones after).
    Request: PipelineStep list
    /// Response steps in order.
    Response: PipelineStep list
    Attach: PipelineAttach
}

/// What a plugin is given (`plugins.<name>.sees`; docs/plugins.md, protocol version 2).
[<RequireQualifiedAccess>]
type PluginKind =
    /// The Messages request (a step under `request:`).
    | Request
    /// A whole non-streamed JSON answer (a step under `response:`).
    | Response
    /// Each SSE event of a streamed answer (a step under `response:`).
    | Event

    /// The config and protocol spelling (`kind` of a call line).
    member this.WireName: string =
        match this with
        | Request -> "request"
        | Response -> "response"
        | Event -> "event"

/// One plugin (`plugins.<name>`): an executable speaking the JSON-lines protocol of docs/plugins.md.
type PluginConfig = {
    Name: string
    /// The executable (absolute, or relative to the working directory, or looked up in `PATH`).
    Command: string
    Args: string list
    /// The plugin's whole environment (nothing is inherited but `PATH`, `LANG`, `HOME` set to a neutral value).
    Env: (string * string) list
    /// Wall-clock deadline per call.
    TimeoutMs: int
    /// Address-space limit (`prlimit --as`), in MiB.
    MemoryMb: int
    /// CPU-time limit of the process (`prlimit --cpu`), in seconds; the process is restarted when it is spent.
    CpuSeconds: int
    /// What a failed call does.
    OnError: OnError
    /// What it is given (`sees`, default `[request]`).
    Sees: PluginKind list
    /// Wall-clock deadline per stream event (`event_timeout_ms`): an event waits at most this for the plugin.
    EventTimeoutMs: int
    /// The most processes run at once (`processes`, default `PluginPool.DefaultProcesses`): calls are spread over
    /// them, each one sandboxed alike; one starts only when a call finds every running one busy.
    Processes: int
}

/// The `pipelines` and `plugins` sections.
type PipelinesConfig = {
    Pipelines: PipelineConfig list
    Plugins: PluginConfig list
}

/// The type of a transformer option, for validation and the catalog.
[<RequireQualifiedAccess>]
type OptionKind =
    | Integer of Minimum: int64 * Maximum: int64
    | Number of Minimum: decimal * Maximum: decimal
    | Text
    | Choice of Allowed: string list
    | Flag
    | Texts
    | TextMap

    /// How the catalog shows the type.
    member this.Describe: string =
        match this with
        | Integer(lo, hi) when hi = System.Int64.MaxValue -> $"integer ≥ %d{lo}"
        | Integer(lo, hi) -> $"integer %d{lo}–%d{hi}"
        | Number(lo, hi) -> $"number %M{lo}–%M{hi}"
        | Text -> "string"
        | Choice allowed -> String.concat " | " allowed
        | Flag -> "true | false"
        | Texts -> "list of strings"
        | TextMap -> "mapping of strings"

/// One option of a catalog entry.
type OptionInfo = {
    Name: string
    Kind: OptionKind
    /// The default, as the config would write it (None: no default; absent means "not done").
    Default: string option
    Description: string
}

/// One catalog entry: what `cc-relay transformers` shows.
type TransformerInfo = {
    Name: string
    /// `request` or `response`.
    Side: string
    Summary: string
    Options: OptionInfo list
    /// Either `all` or the dialects it can apply to (`anthropic`, `bedrock`, `vertex`, `foundry`, `openai`,
    /// `openai_responses`, `gemini`).
    AppliesTo: string list
    /// Whether it edits bytes in place (false: it re-serialises, and says so in the request's report).
    InPlace: bool
    /// What it does to the body, in a sentence (what is edited, what is re-serialised).
    Edits: string
}
