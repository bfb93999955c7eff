module CcRelay.Core.Tests.Pipelines.PipelineTests

open System.Text
open System.Text.Json
open CcRelay.Core
open Xunit

let private load (toml: string) : ConfigLoad =
    match Toml.parse toml with
    | Ok document -> ConfigDecode.decode (fun _ -> None) document
    | Error e -> failwith e.Message

let private providers =
    """
[[providers]]
name = "anthropic"
type = "anthropic"

[[providers]]
name = "deepseek"
type = "openai"
base_url = "https://api.deepseek.com"
keys = [ { key = "sk-test" } ]
"""

let private loaded (toml: string) : RelayConfig =
    match load (providers + toml) with
    | Loaded(config, _) -> config
    | Invalid(errors, _) -> failwith (errors |> List.map string |> String.concat "\n")

let private errors (toml: string) : ConfigIssue list =
    match load (providers + toml) with
    | Loaded _ -> failwith "loaded"
    | Invalid(errors, _) -> errors

// ---------------------------
// Config
// ---------------------------

[<Fact>]
let ``a pipeline loads with its steps, policy and attachments`` () =
    let config =
        loaded
            """
[pipelines.fixes]
on_error = "skip"
providers = ["deepseek"]
models = ["claude-haiku-*"]
request = [ { use = "max_tokens", cap = 8192 }, "strip_cache_control", { use = "reasoning_effort" } ]
response = [ "repair_tool_json" ]
"""

    let pipeline = config.Pipelines.Pipelines |> List.exactlyOne
    Assert.Equal("fixes", pipeline.Name)
    Assert.Equal(OnError.Skip, pipeline.OnError)
    Assert.Equal<string list>([ "deepseek" ], pipeline.Attach.Providers)

    Assert.Equal<string list>(
        [ "max_tokens"; "strip_cache_control"; "reasoning_effort" ],
        pipeline.Request |> List.map _.Name
    )

    Assert.Equal(Transform.MaxTokens(Some 8192L, None), pipeline.Request.Head.Transform)
    Assert.Equal(Transform.ReasoningEffort(4096L, 16384L), pipeline.Request[2].Transform)
    Assert.Equal(Transform.RepairToolJson, pipeline.Response.Head.Transform)

[<Fact>]
let ``an unknown transformer is located, with a suggestion`` () =
    let issue =
        errors
            """
[pipelines.p]
providers = ["anthropic"]
request = [ { use = "max_token", cap = 1 } ]
"""
        |> List.exactlyOne

    Assert.Equal("pipelines.p.request[0]", issue.Path)
    Assert.Contains("unknown transformer \"max_token\"; did you mean max_tokens?", issue.Message)
    Assert.True issue.Position.IsSome

[<Fact>]
let ``bad options are each reported`` () =
    let issues =
        errors
            """
[pipelines.p]
providers = ["anthropic"]
request = [ { use = "max_tokens", cap = "lots" }, { use = "sampling", temprature = 1 }, { use = "system" }, { use = "max_tokens", cap = 1, set = 2 } ]
"""

    let paths = issues |> List.map _.Path
    Assert.Contains("pipelines.p.request[0].cap", paths)
    Assert.Contains("pipelines.p.request[1].temprature", paths)
    Assert.Contains("pipelines.p.request[2]", paths)
    Assert.Contains("pipelines.p.request[3]", paths)
    Assert.Contains(issues, fun i -> i.Message.Contains "takes only one of cap, set")

[<Fact>]
let ``a transformer that cannot apply to the provider's dialect is an error`` () =
    let issue =
        errors
            """
[pipelines.p]
providers = ["anthropic"]
request = [ "reasoning_effort" ]
"""
        |> List.exactlyOne

    Assert.Equal("pipelines.p.request[0]", issue.Path)

    Assert.Contains(
        "reasoning_effort cannot apply to provider anthropic (dialect anthropic); it applies to: openai",
        issue.Message
    )

[<Fact>]
let ``unknown providers, plugins and sides are errors`` () =
    let issues =
        errors
            """
[pipelines.p]
providers = ["anthropc"]
request = [ { plugin = "nope" }, "repair_tool_json" ]
response = [ "strip_cache_control" ]
"""

    let messages = issues |> List.map _.Message |> String.concat "\n"
    Assert.Contains("no provider is named \"anthropc\"; did you mean anthropic?", messages)
    Assert.Contains("unknown plugin \"nope\"", messages)
    Assert.Contains("repair_tool_json is a response transformer", messages)
    Assert.Contains("strip_cache_control is a request transformer", messages)

[<Fact>]
let ``a plugin loads with its sandbox and its own policy`` () =
    let config =
        loaded
            """
[plugins.redact]
command = "/usr/bin/redact"
args = ["--fast"]
env = { MODE = "strict" }
timeout_ms = 250
memory_mb = 64

[pipelines.p]
on_error = "fail"
models = ["*"]
request = [ { plugin = "redact" } ]
"""

    let plugin = config.Pipelines.Plugins |> List.exactlyOne
    Assert.Equal(250, plugin.TimeoutMs)
    Assert.Equal(64, plugin.MemoryMb)
    Assert.Equal(60, plugin.CpuSeconds)
    Assert.Equal<(string * string) list>([ "MODE", "strict" ], plugin.Env)
    // the plugin's own fail-safe policy (default skip) wins over the pipeline's
    let step = config.Pipelines.Pipelines.Head.Request.Head
    Assert.Equal("plugin:redact", step.Name)
    Assert.Equal(OnError.Skip, step.OnError)

[<Fact>]
let ``config show renders pipelines and plugins, a plugin's env redacted`` () =
    let config =
        loaded
            """
[plugins.redact]
command = "/usr/bin/redact"
env = { TOKEN = "s3cret-value" }

[pipelines.p]
models = ["claude-*"]
request = [ { use = "max_tokens", cap = 8192 }, { plugin = "redact" }, { use = "system", append = "x" } ]
response = [ "repair_tool_json" ]
"""

    let yaml = ConfigRender.toYaml config
    Assert.Contains("""request: [{use: max_tokens, cap: 8192}, {plugin: "redact"}, {use: system, append: "x"}]""", yaml)
    Assert.Contains("""response: [{use: repair_tool_json}]""", yaml)
    Assert.Contains("""env: {"TOKEN": "<redacted>"}""", yaml)
    Assert.DoesNotContain("s3cret-value", yaml)

[<Fact>]
let ``a pipeline attached to nothing is a warning`` () =
    match load (providers + "\n[pipelines.p]\nrequest = [\"strip_cache_control\"]\n") with
    | Loaded(_, warnings) ->
        Assert.Contains(warnings, fun w -> w.Path = "pipelines.p" && w.Message.Contains "attached to nothing")
    | Invalid(errors, _) -> failwith $"%A{errors}"

[<Fact>]
let ``a pipeline change is a live setting change`` () =
    let before = loaded ""

    let after =
        loaded "\n[pipelines.p]\nmodels = [\"*\"]\nrequest = [\"strip_cache_control\"]\n"

    Assert.Contains(ConfigChange.SettingChanged "pipelines", ConfigDiff.between before after)

// ---------------------------
// Stage attachment
// ---------------------------

let private staged =
    """
[routing.stages]
think = "deepseek"
default = "anthropic"

[pipelines.reasoner]
stages = ["think"]
request = [ { use = "max_tokens", cap = 4096 } ]
"""

[<Fact>]
let ``a pipeline attached to a stage applies to requests of that stage only`` () =
    let config = loaded staged
    let pipeline = config.Pipelines.Pipelines |> List.exactlyOne
    Assert.Equal<string list>([ "think" ], pipeline.Attach.Stages)
    // any provider, any model: the stage decides
    Assert.Equal<string list>([ "reasoner" ], (Pipeline.select config.Pipelines "anthropic" "m" "think").Names)
    Assert.True((Pipeline.select config.Pipelines "deepseek" "m" "default").IsEmpty)
    Assert.True((Pipeline.select config.Pipelines "deepseek" "m" "-").IsEmpty)

[<Fact>]
let ``an unknown stage is located, with the stages allowed and a suggestion`` () =
    let issue =
        errors "\n[pipelines.p]\nstages = [\"thinking\"]\nrequest = [\"strip_cache_control\"]\n"
        |> List.exactlyOne

    Assert.Equal("pipelines.p.stages[0]", issue.Path)
    Assert.True issue.Position.IsSome

    Assert.Contains(
        "got \"thinking\"; allowed: long_context, web_search, image, subagent, background, think, default, direct",
        issue.Message
    )

[<Fact>]
let ``a stage that is never chosen is a located warning`` () =
    let toml =
        "\n[routing]\nmodel_switching = false\n[routing.stages]\nthink = \"deepseek\"\n"
        + "[pipelines.p]\nstages = [\"think\", \"background\", \"default\", \"direct\"]\nrequest = [\"strip_cache_control\"]\n"

    match load (providers + toml) with
    | Loaded(_, warnings) ->
        let staged =
            warnings |> List.filter (fun w -> w.Path.StartsWith "pipelines.p.stages")

        Assert.Equal<string list>([ "pipelines.p.stages[1]"; "pipelines.p.stages[3]" ], staged |> List.map _.Path)
        Assert.Contains("routing.stages gives background no targets", staged[0].Message)
        Assert.Contains("routing.model_switching is off", staged[1].Message)
        Assert.True staged[0].Position.IsSome
        // attached to stages only: attached to something
        Assert.DoesNotContain(warnings, fun w -> w.Message.Contains "attached to nothing")
    | Invalid(errors, _) -> failwith $"%A{errors}"

[<Fact>]
let ``config show renders a pipeline's stages`` () =
    let yaml = ConfigRender.toYaml (loaded staged)
    Assert.Contains("""stages: ["think"]""", yaml)

[<Fact>]
let ``route explain shows the pipelines of each provider and what their steps do`` () =
    let config = loaded staged

    let request =
        Encoding.UTF8.GetBytes
            """{"model":"claude-sonnet-4-5","max_tokens":32000,"thinking":{"type":"enabled","budget_tokens":2000},"messages":[{"role":"user","content":"hi"}]}"""

    match
        RouteExplain.explain
            config
            System.TimeSpan.Zero
            (System.ReadOnlySpan request)
            Stages.noHeaders
            []
            "/v1/messages"
    with
    | Ok explained ->
        Assert.Equal(Stage.Think, explained.Stage)
        let first = explained.Providers.Head
        Assert.Equal("deepseek", first.Provider)
        Assert.Equal<string list>([ "reasoner" ], first.Pipelines)
        Assert.Equal("max_tokens", first.Transformers)
        Assert.Contains("pipelines: reasoner; transformers: max_tokens", RouteExplain.toText explained)
        Assert.Contains("\"transformers\": \"max_tokens\"", Encoding.UTF8.GetString(RouteExplain.toJson explained))
    | Error e -> failwith e

// ---------------------------
// Selection and runs
// ---------------------------

let private config =
    loaded
        """
[pipelines.deepseek]
providers = ["deepseek"]
request = [ { use = "drop_fields", fields = ["stream_options"] }, { use = "max_tokens", cap = 100 } ]
response = [ "repair_tool_json" ]

[pipelines.haiku]
on_error = "skip"
models = ["claude-haiku-*"]
request = [ { use = "tool_choice", type = "tool", name = "missing", only_with_tools = false }, { use = "system", append = "!" } ]
"""

[<Fact>]
let ``pipelines are selected by provider and by model pattern, in file order`` () =
    let both = Pipeline.select config.Pipelines "deepseek" "claude-haiku-4-5" "default"
    Assert.Equal<string list>([ "deepseek"; "haiku" ], both.Names)
    Assert.Equal<string list>([ "max_tokens"; "tool_choice"; "system" ], both.Anthropic |> List.map _.Name)
    Assert.Equal<string list>([ "drop_fields" ], both.Upstream |> List.map _.Name)
    Assert.True((Pipeline.select config.Pipelines "anthropic" "claude-opus-4" "default").IsEmpty)

let private body =
    Encoding.UTF8.GetBytes """{"model":"claude-haiku-4-5","max_tokens":500,"system":"s","messages":[]}"""

[<Fact>]
let ``on_error skip leaves the failing step out and reports it`` () =
    let selected =
        Pipeline.select config.Pipelines "anthropic" "claude-haiku-4-5" "default"

    let run =
        Pipeline.runBuiltIn selected.Anthropic "anthropic" None (Pipeline.start body)

    Assert.True run.Failure.IsNone

    Assert.Equal(
        """{"model":"claude-haiku-4-5","max_tokens":500,"system":"s!","messages":[]}""",
        Encoding.UTF8.GetString run.Body
    )

    Assert.Equal("tool_choice(skipped),system", Pipeline.report run)
    Assert.Contains("missing", Pipeline.skipped run.Reports)

[<Fact>]
let ``on_error fail stops the run with the body untouched and an Anthropic error`` () =
    let failing = {
        Name = "tool_choice"
        Transform = Transform.ToolChoice("tool", Some "missing", false)
        OnError = OnError.Fail
    }

    let capped = {
        Name = "max_tokens"
        Transform = Transform.MaxTokens(Some 100L, None)
        OnError = OnError.Fail
    }

    let run =
        Pipeline.runBuiltIn [ capped; failing ] "anthropic" None (Pipeline.start body)

    Assert.Equal(Some "tool_choice", run.Failure |> Option.map _.Step)
    Assert.Equal(Some FailedStep.Transformer, run.Failure |> Option.map _.Kind)
    Assert.Equal("max_tokens,tool_choice(failed)", Pipeline.report run)
    Assert.Equal(400, Pipeline.errorStatus run.Failure.Value)

    use error = JsonDocument.Parse(Pipeline.errorBody [] run.Failure.Value)
    Assert.Equal("invalid_request_error", error.RootElement.GetProperty("error").GetProperty("type").GetString())

[<Fact>]
let ``a dialect-limited step of a model-attached pipeline is not applicable elsewhere`` () =
    let step = {
        Name = "reasoning_effort"
        Transform = Transform.ReasoningEffort(1L, 2L)
        OnError = OnError.Fail
    }

    let run = Pipeline.runBuiltIn [ step ] "anthropic" None (Pipeline.start body)
    Assert.Equal("reasoning_effort(n/a)", Pipeline.report run)
    Assert.False run.Changed

// ---------------------------
// Plugin protocol
// ---------------------------

[<Fact>]
let ``the request line embeds the body as it is`` () =
    let line = PluginProtocol.requestLine 7L "p" "m" (System.ReadOnlySpan body)
    let text = Encoding.UTF8.GetString line
    Assert.EndsWith("}\n", text)
    Assert.Contains(Encoding.UTF8.GetString body, text)
    use document = JsonDocument.Parse(text)
    Assert.Equal(7L, document.RootElement.GetProperty("id").GetInt64())
    Assert.Equal(1, document.RootElement.GetProperty("v").GetInt32())

[<Fact>]
let ``a pretty-printed body is embedded on one line, as the same JSON`` () =
    let pretty =
        Encoding.UTF8.GetBytes "{\r\n  \"model\": \"m\",\n  \"messages\": [\"a\\nb\"]\n}"

    let line =
        PluginProtocol.requestLine 1L "p" "m" (System.ReadOnlySpan pretty)
        |> Encoding.UTF8.GetString

    Assert.Equal(line.Length - 1, line.IndexOf '\n')
    use document = JsonDocument.Parse line
    let messages = document.RootElement.GetProperty("body").GetProperty "messages"
    Assert.Equal("a\nb", messages[0].GetString())

[<Theory>]
[<InlineData("""{"v":1,"id":3,"body":{"model":"x"}}""", "changed")>]
[<InlineData("""{"v":1,"id":3,"unchanged":true}""", "unchanged")>]
[<InlineData("""{"v":1,"id":3,"error":"nope"}""", "failed")>]
[<InlineData("""{"v":1,"id":4,"unchanged":true}""", "failed")>]
[<InlineData("""{"v":2,"id":3,"unchanged":true}""", "failed")>]
[<InlineData("""{"v":1,"id":3,"body":[1]}""", "failed")>]
[<InlineData("""not json""", "failed")>]
[<InlineData("""{"id":3,"unchanged":true}""", "failed")>]
let ``plugin answers are read strictly`` (line: string, expected: string) =
    let kind =
        match PluginProtocol.answer 3L (System.ReadOnlySpan(Encoding.UTF8.GetBytes line)) with
        | StepOutcome.Changed(_, true) -> "changed"
        | StepOutcome.Changed(_, false) -> "in place?"
        | StepOutcome.Unchanged -> "unchanged"
        | StepOutcome.Failed _ -> "failed"

    Assert.Equal(expected, kind)

[<Fact>]
let ``plugin states are added to the health body`` () =
    let health = Encoding.UTF8.GetBytes """{"status":"ok","providers":[]}"""

    let status = {
        Name = "p"
        State = "running"
        Calls = 2L
        Failures = 1L
        Restarts = 0L
        LastError = "x"
        Sandboxed = true
        P50Ms = 0.25
        Processes = 4
        Pool = {
            Running = 2
            Busy = 1
            Waiting = 3
            Streams = 5
        }
        Draining = 1
    }

    let edited = PluginStatuses.addToHealth health [ status ] |> Encoding.UTF8.GetString
    Assert.StartsWith("""{"status":"ok","providers":[],"plugins":[{"name":"p","state":"running","calls":2""", edited)

    Assert.EndsWith(
        ""","sandboxed":true,"p50_ms":0.25,"processes":4,"running":2,"busy":1,"waiting":3,"streams":5,"draining":1}]}""",
        edited
    )

[<Fact>]
let ``a plugin's p50 is the median of its last calls`` () =
    let ring = PluginLatency.create ()
    Assert.Equal(0.0, PluginLatency.p50 ring 0L)

    [ 5.0; 1.0; 3.0; 100.0 ]
    |> List.iteri (fun i ms -> PluginLatency.record ring (int64 i) ms)
    // four samples: the lower middle one
    Assert.Equal(3.0, PluginLatency.p50 ring 4L)

    // the window slides: after Window more fast calls the slow ones are gone
    for i in 4 .. 4 + PluginLatency.Window - 1 do
        PluginLatency.record ring (int64 i) 0.5

    Assert.Equal(0.5, PluginLatency.p50 ring (int64 (4 + PluginLatency.Window)))

// ---------------------------
// Answer-side plugins: protocol version 2 (responses, stream events)
// ---------------------------

[<Fact>]
let ``a plugin sees requests by default; sees and event_timeout_ms load`` () =
    let config =
        loaded
            """
[plugins.plain]
command = "/usr/bin/plain"

[plugins.answers]
command = "/usr/bin/answers"
sees = ["response", "event"]
event_timeout_ms = 50
on_error = "fail"

[pipelines.p]
models = ["*"]
request = [ { plugin = "plain" } ]
response = [ "repair_tool_json", { plugin = "answers" } ]
"""

    let plain = config.Pipelines.Plugins |> List.find (fun p -> p.Name = "plain")
    let answers = config.Pipelines.Plugins |> List.find (fun p -> p.Name = "answers")
    Assert.Equal<PluginKind list>([ PluginKind.Request ], plain.Sees)
    Assert.Equal(200, plain.EventTimeoutMs)
    Assert.Equal<PluginKind list>([ PluginKind.Response; PluginKind.Event ], answers.Sees)
    Assert.Equal(50, answers.EventTimeoutMs)
    let response = config.Pipelines.Pipelines.Head.Response
    Assert.Equal<string list>([ "repair_tool_json"; "plugin:answers" ], response |> List.map _.Name)
    Assert.Equal(OnError.Fail, (List.last response).OnError)

    Assert.Equal<string list>(
        [ "plugin:answers" ],
        StreamPlugins.eventSteps config.Pipelines.Plugins response
        |> List.map (fst >> _.Name)
    )

    Assert.Equal<string list>(
        [ "plugin:answers" ],
        StreamPlugins.answerSteps config.Pipelines.Plugins response
        |> List.map (fst >> _.Name)
    )

[<Fact>]
let ``a plugin placed on a side it does not see is a located error`` () =
    let issues =
        errors
            """
[plugins.req]
command = "/usr/bin/req"

[plugins.ans]
command = "/usr/bin/ans"
sees = ["event"]

[plugins.bad]
command = "/usr/bin/bad"
sees = ["answers"]

[pipelines.p]
models = ["*"]
request = [ { plugin = "ans" } ]
response = [ { plugin = "req" } ]
"""

    let byPath = issues |> List.map (fun i -> i.Path, i.Message)

    Assert.Contains(
        byPath,
        fun (path, message) -> path = "pipelines.p.request[0].plugin" && message.Contains "sees: [request]"
    )

    Assert.Contains(
        byPath,
        fun (path, message) ->
            path = "pipelines.p.response[0].plugin"
            && message.Contains "sees: [response and/or event]"
    )

    Assert.Contains(
        byPath,
        fun (path, message) ->
            path = "plugins.bad.sees[0]"
            && message.Contains "allowed: request, response, event"
    )

let private event (name: string) (data: string) =
    Encoding.UTF8.GetBytes $"event: %s{name}\ndata: %s{data}\n\n"

let private delta =
    """{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi bob@example.com"}}"""

[<Fact>]
let ``response and event lines carry version 2, their kind and the JSON as it is`` () =
    let response =
        PluginProtocol.line 4L (PluginCall.Response("p", "m", 200, Encoding.UTF8.GetBytes """{"id":"msg"}"""))
        |> Encoding.UTF8.GetString

    Assert.Equal(
        """{"v":2,"id":4,"kind":"response","provider":"p","model":"m","status":200,"body":{"id":"msg"}}"""
        + "\n",
        response
    )

    let line =
        PluginProtocol.line
            5L
            (PluginCall.Event("p", "m", "req-1", 2L, "content_block_delta", Encoding.UTF8.GetBytes delta))
        |> Encoding.UTF8.GetString

    Assert.Equal(
        """{"v":2,"id":5,"kind":"event","provider":"p","model":"m","stream":"req-1","seq":2,"event":"content_block_delta","data":"""
        + delta
        + "}\n",
        line
    )

let private eventCall =
    PluginCall.Event("p", "m", "s", 0L, "content_block_delta", Encoding.UTF8.GetBytes delta)

[<Theory>]
[<InlineData("""{"v":2,"id":3,"data":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}}""",
             "changed")>]
[<InlineData("""{"v":2,"id":3,"unchanged":true}""", "unchanged")>]
[<InlineData("""{"v":2,"id":3,"error":"no"}""", "failed")>]
[<InlineData("""{"v":1,"id":3,"unchanged":true}""", "failed")>]
[<InlineData("""{"v":2,"id":3,"body":{"type":"content_block_delta","index":0}}""", "failed")>]
[<InlineData("""{"v":2,"id":3,"data":{"type":"message_stop"}}""", "failed")>]
[<InlineData("""{"v":2,"id":3,"data":{"type":"content_block_delta","index":1,"delta":{}}}""", "failed")>]
[<InlineData("""{"v":2,"id":3,"data":"text"}""", "failed")>]
let ``event answers are read strictly: same type, same block index, version 2`` (line: string, expected: string) =
    let kind =
        match PluginProtocol.answerTo eventCall 3L (System.ReadOnlySpan(Encoding.UTF8.GetBytes line)) with
        | StepOutcome.Changed(_, true) -> "changed"
        | StepOutcome.Changed(_, false) -> "in place?"
        | StepOutcome.Unchanged -> "unchanged"
        | StepOutcome.Failed _ -> "failed"

    Assert.Equal(expected, kind)

[<Fact>]
let ``an event's deadline is event_timeout_ms (timeout_ms when it starts the process), a request's and an answer's timeout_ms``
    ()
    =
    let config = {
        Name = "p"
        Command = "x"
        Args = []
        Env = []
        TimeoutMs = 1000
        MemoryMb = 64
        CpuSeconds = 1
        OnError = OnError.Skip
        Sees = [ PluginKind.Event ]
        EventTimeoutMs = 40
        Processes = 1
    }

    Assert.Equal(40, PluginProtocol.timeoutMs config eventCall false)
    Assert.Equal(1000, PluginProtocol.timeoutMs config eventCall true)
    Assert.Equal(1000, PluginProtocol.timeoutMs config (PluginCall.Request("p", "m", [||])) false)
    Assert.Equal(1000, PluginProtocol.timeoutMs config (PluginCall.Response("p", "m", 200, [||])) true)

[<Fact>]
let ``pings, errors, comments and non-object data are never given to plugins`` () =
    Assert.True((StreamPlugins.start (event "ping" """{"type":"ping"}""")).IsNone)
    Assert.True((StreamPlugins.start (event "error" """{"type":"error","error":{}}""")).IsNone)
    Assert.True((StreamPlugins.start (Encoding.UTF8.GetBytes ": keep-alive\n\n")).IsNone)
    Assert.True((StreamPlugins.start (event "x" "not json")).IsNone)

    let run =
        StreamPlugins.start (Encoding.UTF8.GetBytes("event:content_block_delta\r\ndata: " + delta + "\r\n\r\n"))
        |> Option.get

    Assert.Equal("content_block_delta", run.Name)
    Assert.Equal(delta, Encoding.UTF8.GetString run.Data)

[<Fact>]
let ``an event's step outcomes: a change rebuilds the frame, skip leaves it as received, fail ends the stream`` () =
    let original = event "content_block_delta" delta
    let run = StreamPlugins.start original |> Option.get

    let step onError = {
        Name = "plugin:p"
        Transform = Transform.Plugin "p"
        OnError = onError
    }

    let changedData =
        """{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi [email]"}}"""

    let changed =
        StreamPlugins.record run (step OnError.Skip) (StepOutcome.Changed(Encoding.UTF8.GetBytes changedData, true))

    Assert.Equal("event: content_block_delta\ndata: " + changedData + "\n\n", Encoding.UTF8.GetString changed.Frame)

    let skipped =
        StreamPlugins.record changed (step OnError.Skip) (StepOutcome.Failed "timeout")

    Assert.Same(changed.Frame, skipped.Frame)
    Assert.Equal<(string * string) list>([ "plugin:p", "timeout" ], skipped.Skipped)
    Assert.True(skipped.Failure.IsNone)

    let failed =
        StreamPlugins.record run (step OnError.Fail) (StepOutcome.Failed "crashed")

    Assert.Equal(Some("plugin:p", "crashed"), failed.Failure)
    Assert.Same(original, failed.Frame)

[<Fact>]
let ``a stream cut by a failing event plugin ends with an api_error event, not blamed on the upstream`` () =
    let verdict =
        SseEnd.classify {
            SawMessageStop = false
            SawErrorEvent = false
            PartialEvent = true
            Read = StreamRead.PluginFailed("plugin:p", "no answer within 200 ms (event_timeout_ms)")
            ClientAborted = false
            Write = StreamWrite.Delivered
        }

    Assert.Equal(StreamEnd.PluginFailed, verdict.End)
    let text = verdict.ErrorEvent |> Option.get |> Encoding.UTF8.GetString
    Assert.StartsWith("event: error\n", text)
    Assert.Contains("api_error", text)
    Assert.Contains("transformer plugin:p failed: no answer within 200 ms", text)
    Assert.Equal("plugin_error", RequestResult.wireName RequestResult.PluginFailed)
