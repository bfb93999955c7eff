module CcRelay.Core.Tests.Pipelines.TransformersTests

open System
open System.Text
open System.Text.Json
open CcRelay.Core
open Xunit

let private bytes (text: string) : byte array = Encoding.UTF8.GetBytes text
let private text (body: byte array) : string = Encoding.UTF8.GetString body

/// Applies a request step and returns the edited body (fails the test when it did not change it).
let private apply (transform: Transform) (body: string) : string =
    match Transformers.applyRequest transform None (bytes body) with
    | StepOutcome.Changed(edited, reserialised) ->
        Assert.False(reserialised, "a built-in request step edits in place")
        text edited
    | other -> failwith $"expected a change, got %A{other}"

let private outcome (transform: Transform) (body: string) : StepOutcome =
    Transformers.applyRequest transform None (bytes body)

let private request =
    """{"model":"claude-sonnet-4-5", "max_tokens": 32000,"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}],"stream":true}"""

// ---------------------------
// max_tokens
// ---------------------------

[<Fact>]
let ``max_tokens cap lowers a larger value in place`` () =
    let edited = apply (Transform.MaxTokens(Some 8192L, None)) request
    Assert.Equal(request.Replace("32000", "8192"), edited)

[<Fact>]
let ``max_tokens cap leaves a smaller value alone`` () =
    Assert.Equal(StepOutcome.Unchanged, outcome (Transform.MaxTokens(Some 64000L, None)) request)

[<Fact>]
let ``max_tokens set writes the value and adds it when absent`` () =
    Assert.Equal(request.Replace("32000", "100"), apply (Transform.MaxTokens(None, Some 100L)) request)
    Assert.Equal("""{"model":"m","max_tokens":5}""", apply (Transform.MaxTokens(None, Some 5L)) """{"model":"m"}""")

// ---------------------------
// sampling
// ---------------------------

let private sampling = {
    Temperature = None
    TopP = None
    TopK = None
    TemperatureMin = None
    TemperatureMax = None
    TopPMax = None
    TopKMax = None
}

[<Fact>]
let ``sampling sets temperature and top_k`` () =
    let edited =
        apply
            (Transform.Sampling {
                sampling with
                    Temperature = Some 0.2m
                    TopK = Some 40L
            })
            """{"model":"m","temperature":1}"""

    Assert.Equal("""{"model":"m","temperature":0.2,"top_k":40}""", edited)

[<Fact>]
let ``sampling clamps only what the request carries`` () =
    let clamp =
        Transform.Sampling {
            sampling with
                TemperatureMax = Some 1.0m
                TopPMax = Some 0.9m
        }

    Assert.Equal("""{"temperature":1.0, "top_p":0.9}""", apply clamp """{"temperature":1.7, "top_p":0.95}""")
    Assert.Equal(StepOutcome.Unchanged, outcome clamp """{"model":"m"}""")
    Assert.Equal(StepOutcome.Unchanged, outcome clamp """{"temperature":0.5}""")

// ---------------------------
// strip_cache_control, drop_fields
// ---------------------------

[<Fact>]
let ``strip_cache_control removes every marker at any depth`` () =
    let body =
        """{"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":[{"cache_control":{"type":"ephemeral"},"type":"text","text":"a"}]}],"tools":[{"name":"t","cache_control":{"type":"ephemeral"}}]}"""

    Assert.Equal(
        """{"system":[{"type":"text","text":"s"}],"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}],"tools":[{"name":"t"}]}""",
        apply Transform.StripCacheControl body
    )

[<Fact>]
let ``strip_cache_control has nothing to do without markers`` () =
    Assert.Equal(StepOutcome.Unchanged, outcome Transform.StripCacheControl """{"model":"m"}""")

[<Fact>]
let ``drop_fields drops top-level members only unless deep`` () =
    let body = """{"a":1,"b":{"a":2},"c":3}"""
    Assert.Equal("""{"b":{"a":2},"c":3}""", apply (Transform.DropFields([ "a" ], false)) body)
    Assert.Equal("""{"b":{},"c":3}""", apply (Transform.DropFields([ "a" ], true)) body)
    Assert.Equal("""{"a":1,"b":{"a":2}}""", apply (Transform.DropFields([ "c" ], false)) body)
    Assert.Equal("{}", apply (Transform.DropFields([ "a"; "b"; "c" ], false)) body)

// ---------------------------
// tool_choice
// ---------------------------

let private withTools =
    """{"model":"m","tools":[{"name":"get_weather","input_schema":{}}]}"""

[<Fact>]
let ``tool_choice forces any tool when tools are given`` () =
    Assert.Equal(
        """{"model":"m","tools":[{"name":"get_weather","input_schema":{}}],"tool_choice":{"type":"any"}}""",
        apply (Transform.ToolChoice("any", None, true)) withTools
    )

[<Fact>]
let ``tool_choice leaves a request without tools alone`` () =
    Assert.Equal(StepOutcome.Unchanged, outcome (Transform.ToolChoice("any", None, true)) """{"model":"m"}""")

[<Fact>]
let ``tool_choice names a tool, and fails for a tool the request lacks`` () =
    Assert.Contains(
        "\"tool_choice\":{\"type\":\"tool\",\"name\":\"get_weather\"}",
        apply (Transform.ToolChoice("tool", Some "get_weather", true)) withTools
    )

    match outcome (Transform.ToolChoice("tool", Some "nope", true)) withTools with
    | StepOutcome.Failed reason -> Assert.Contains("nope", reason)
    | other -> failwith $"%A{other}"

// ---------------------------
// system
// ---------------------------

[<Fact>]
let ``system appends to and prepends a string prompt`` () =
    Assert.Equal(
        """{"system":"You are X. Be brief.","model":"m"}""",
        apply (Transform.System(SystemEdit.Append, " Be brief.")) """{"system":"You are X.","model":"m"}"""
    )

    Assert.Equal(
        """{"system":"Note: You are X.","model":"m"}""",
        apply (Transform.System(SystemEdit.Prepend, "Note: ")) """{"system":"You are X.","model":"m"}"""
    )

[<Fact>]
let ``system inserts a block into a prompt array`` () =
    let body = """{"system":[{"type":"text","text":"a"}]}"""

    Assert.Equal(
        """{"system":[{"type":"text","text":"a"},{"type":"text","text":"z"}]}""",
        apply (Transform.System(SystemEdit.Append, "z")) body
    )

    Assert.Equal(
        """{"system":[{"type":"text","text":"z"},{"type":"text","text":"a"}]}""",
        apply (Transform.System(SystemEdit.Prepend, "z")) body
    )

    Assert.Equal(
        """{"system":[{"type":"text","text":"z"}]}""",
        apply (Transform.System(SystemEdit.Append, "z")) """{"system":[]}"""
    )

[<Fact>]
let ``system replaces the prompt or adds one`` () =
    Assert.Equal(
        """{"system":"new"}""",
        apply (Transform.System(SystemEdit.Replace, "new")) """{"system":[{"type":"text","text":"a"}]}"""
    )

    Assert.Equal(
        """{"model":"m","system":"quote \" done"}""",
        apply (Transform.System(SystemEdit.Append, "quote \" done")) """{"model":"m"}"""
    )

// ---------------------------
// rename_model
// ---------------------------

[<Fact>]
let ``rename_model by the most specific pattern`` () =
    let rename =
        Transform.RenameModel([ "claude-*", "general"; "claude-haiku-*", "small" ], None)

    Assert.Equal("""{"model":"small","x":1}""", apply rename """{"model":"claude-haiku-4-5","x":1}""")
    Assert.Equal("""{"model":"general","x":1}""", apply rename """{"model":"claude-opus-4","x":1}""")
    Assert.Equal(StepOutcome.Unchanged, outcome rename """{"model":"gpt-5"}""")

[<Fact>]
let ``rename_model to one name`` () =
    Assert.Equal(
        """{"model":"deepseek-chat"}""",
        apply (Transform.RenameModel([], Some "deepseek-chat")) """{"model":"claude-x"}"""
    )

// ---------------------------
// reasoning_effort
// ---------------------------

[<Theory>]
[<InlineData("""{"type":"enabled","budget_tokens":1024}""", "low")>]
[<InlineData("""{"type":"enabled","budget_tokens":8000}""", "medium")>]
[<InlineData("""{"type":"enabled","budget_tokens":16384}""", "high")>]
[<InlineData("""{"type":"adaptive"}""", "medium")>]
let ``reasoning_effort maps the budget`` (thinking: string, effort: string) =
    match
        Transformers.applyRequest
            (Transform.ReasoningEffort(4096L, 16384L))
            (Some(bytes thinking))
            (bytes """{"model":"gpt-5"}""")
    with
    | StepOutcome.Changed(edited, false) ->
        Assert.Equal($"""{{"model":"gpt-5","reasoning_effort":"%s{effort}"}}""", text edited)
    | other -> failwith $"%A{other}"

[<Fact>]
let ``reasoning_effort removes the field when thinking is off`` () =
    match
        Transformers.applyRequest
            (Transform.ReasoningEffort(4096L, 16384L))
            (Some(bytes """{"type":"disabled"}"""))
            (bytes """{"model":"gpt-5","reasoning_effort":"high"}""")
    with
    | StepOutcome.Changed(edited, _) -> Assert.Equal("""{"model":"gpt-5"}""", text edited)
    | other -> failwith $"%A{other}"

[<Fact>]
let ``a body that is not a JSON object fails the step`` () =
    match outcome (Transform.MaxTokens(Some 1L, None)) "[1,2]" with
    | StepOutcome.Failed _ -> ()
    | other -> failwith $"%A{other}"

// ---------------------------
// fused steps
// ---------------------------

let private threeEdits = [
    Transform.MaxTokens(Some 8192L, None)
    Transform.StripCacheControl
    Transform.DropFields([ "metadata" ], false)
]

[<Fact>]
let ``three byte edits fuse into one scan with the sequential result`` () =
    let body =
        """{"model":"m", "max_tokens": 32000,"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}],"metadata":{"user_id":"u"},"stream":true}"""

    match Transformers.applyFused threeEdits None (bytes body) with
    | Some [ StepOutcome.Changed(a, false); StepOutcome.Changed(b, false); StepOutcome.Changed(c, false) ] ->
        let expected =
            """{"model":"m", "max_tokens": 8192,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"stream":true}"""

        Assert.Equal(expected, text a)
        Assert.Same(a, b)
        Assert.Same(a, c)
    | other -> failwith $"expected three fused edits, got %A{other}"

[<Fact>]
let ``fused steps report the ones with nothing to do`` () =
    let body = """{"model":"m","max_tokens":100,"messages":[],"metadata":{}}"""

    match Transformers.applyFused threeEdits None (bytes body) with
    | Some [ StepOutcome.Unchanged; StepOutcome.Unchanged; StepOutcome.Changed(edited, false) ] ->
        Assert.Equal("""{"model":"m","max_tokens":100,"messages":[]}""", text edited)
    | other -> failwith $"%A{other}"

[<Fact>]
let ``steps that touch the same member are not fused, and run one after another`` () =
    let steps = [
        Transform.MaxTokens(None, Some 100L)
        Transform.DropFields([ "max_tokens" ], false)
    ]

    // absent: the first adds it, the second removes what the first added
    let body = """{"model":"m","messages":[]}"""
    Assert.Equal(None, Transformers.applyFused steps None (bytes body))

    let run =
        Pipeline.runBuiltIn
            (steps
             |> List.map (fun t -> {
                 Name = "t"
                 Transform = t
                 OnError = OnError.Fail
             }))
            "anthropic"
            None
            (Pipeline.start (bytes body))

    Assert.Equal(body, text run.Body)

[<Fact>]
let ``a step that fails is not fused: its policy decides`` () =
    let steps = [
        Transform.MaxTokens(Some 10L, None)
        Transform.ToolChoice("tool", Some "x", false)
    ]

    Assert.Equal(None, Transformers.applyFused steps None (bytes request))

[<Fact>]
let ``a body with an escaped member name is read by the reader, with the same result`` () =
    let body = """{"model":"m","max\u005ftokens":32000,"messages":[]}"""

    Assert.Equal(
        """{"model":"m","max\u005ftokens":8192,"messages":[]}""",
        apply (Transform.MaxTokens(Some 8192L, None)) body
    )

// ---------------------------
// the catalog
// ---------------------------

[<Fact>]
let ``every catalog entry names its dialects and says how it edits`` () =
    for t in Transformers.catalog do
        Assert.NotEmpty t.AppliesTo
        Assert.True(t.Side = "request" || t.Side = "response")
        Assert.False(String.IsNullOrWhiteSpace t.Edits)

    Assert.Equal<string list>([ "openai" ], (Transformers.tryFind "reasoning_effort").Value.AppliesTo)
    Assert.False((Transformers.tryFind "repair_tool_json").Value.InPlace)

[<Fact>]
let ``the catalog as JSON lists every transformer`` () =
    use document = JsonDocument.Parse(TransformerCatalog.json)

    let names = [
        for t in document.RootElement.GetProperty("transformers").EnumerateArray() ->
            string (t.GetProperty("name").GetString())
    ]

    Assert.Equal<string list>(Transformers.catalog |> List.map _.Name, names)
    Assert.Contains("plugin: <name>", TransformerCatalog.text)
