module CcRelay.Core.Tests.RequestFactsTests

open System
open System.Text
open Xunit
open CcRelay.Core

let private bytes (text: string) : byte array = Encoding.UTF8.GetBytes text

let private inspectBytes (body: byte array) : Result<RequestFacts, BodyError> =
    RequestFacts.inspect (ReadOnlySpan body)

let private inspect (text: string) : Result<RequestFacts, BodyError> = inspectBytes (bytes text)

let private facts (text: string) : RequestFacts =
    match inspect text with
    | Ok facts -> facts
    | Error e -> failwith $"expected facts, got %A{e}"

let private rewrite (text: string) (model: string) : string =
    let body = bytes text
    let facts = facts text

    RequestFacts.withModel (ReadOnlySpan body) facts model
    |> Encoding.UTF8.GetString

let private isNotJson (result: Result<RequestFacts, BodyError>) : bool =
    match result with
    | Error(BodyError.NotJson _) -> true
    | _ -> false

// ---------------------------
// inspect
// ---------------------------

[<Fact>]
let ``inspect reads the model, its token and the stream flag`` () =
    let body =
        """{"max_tokens":1024,"model":"claude-sonnet-4-6","stream":true,"messages":[]}"""

    let facts = facts body

    Assert.Equal("claude-sonnet-4-6", facts.Model)
    Assert.True(facts.Stream)
    Assert.Equal("\"claude-sonnet-4-6\"", body.Substring(facts.ModelTokenStart, facts.ModelTokenLength))

[<Theory>]
[<InlineData("""{"model":"m"}""")>]
[<InlineData("""{"model":"m","stream":false}""")>]
[<InlineData("""{"model":"m","stream":"true"}""")>]
[<InlineData("""{"model":"m","stream":1}""")>]
[<InlineData("""{"model":"m","stream":null}""")>]
[<InlineData("""{"model":"m","stream":{"a":true}}""")>]
[<InlineData("""{"model":"m","stream":[true]}""")>]
[<InlineData("""{"model":"m","metadata":{"stream":true}}""")>]
let ``stream is false unless the top-level value is true`` (body: string) = Assert.False((facts body).Stream)

[<Fact>]
let ``an escaped model is unescaped and its raw token located`` () =
    let body = """{ "model" : "a\"b\\c\u00e9\n" }"""
    let facts = facts body

    Assert.Equal("a\"b\\c\u00e9\n", facts.Model)
    Assert.Equal("""  "a\"b\\c\u00e9\n" """.Trim(), body.Substring(facts.ModelTokenStart, facts.ModelTokenLength))

[<Fact>]
let ``token offsets count bytes, not characters`` () =
    let body = bytes "{\"system\":\"caf\u00e9 中文 😀\",\"model\":\"m-\u00e9\"}"
    let result = inspectBytes body

    match result with
    | Ok facts ->
        let token =
            Encoding.UTF8.GetString(body, facts.ModelTokenStart, facts.ModelTokenLength)

        Assert.Equal("\"m-\u00e9\"", token)
    | Error e -> failwith $"%A{e}"

[<Fact>]
let ``an escaped property name still counts as model`` () =
    Assert.Equal("m", (facts """{"mod\u0065l":"m"}""").Model)

[<Fact>]
let ``nested model keys are ignored`` () =
    let body =
        """{"metadata":{"model":"inner"},"messages":[{"model":"x"}],"model":"outer"}"""

    Assert.Equal("outer", (facts body).Model)

[<Theory>]
[<InlineData("""{"metadata":{"model":"inner"}}""")>]
[<InlineData("""{"Model":"m","models":"n","mode":"o"}""")>]
[<InlineData("""{}""")>]
let ``a body without a top-level model is MissingModel`` (body: string) =
    Assert.Equal(Error BodyError.MissingModel, inspect body)

[<Theory>]
[<InlineData("""{"model":""}""")>]
[<InlineData("""{"model":null}""")>]
[<InlineData("""{"model":42}""")>]
[<InlineData("""{"model":true}""")>]
[<InlineData("""{"model":["m"]}""")>]
[<InlineData("""{"model":{"id":"m"}}""")>]
let ``a model that is not a non-empty string is ModelNotString`` (body: string) =
    Assert.Equal(Error BodyError.ModelNotString, inspect body)

[<Theory>]
[<InlineData("[]")>]
[<InlineData("""[{"model":"m"}]""")>]
[<InlineData("\"model\"")>]
[<InlineData("42")>]
[<InlineData("null")>]
[<InlineData("true")>]
let ``a body that is JSON but not an object is NotAnObject`` (body: string) =
    Assert.Equal(Error BodyError.NotAnObject, inspect body)

[<Theory>]
[<InlineData("")>]
[<InlineData("   ")>]
[<InlineData("{")>]
[<InlineData("""{"model":"m" """)>]
[<InlineData("""{"model":"m",}""")>]
[<InlineData("""{"model":"m"} {}""")>]
[<InlineData("""{"model":"m"} x""")>]
[<InlineData("""{model:"m"}""")>]
[<InlineData("""{"model":'m'}""")>]
[<InlineData("""{"model":"m" /* c */}""")>]
[<InlineData("""{"model":"m","x":[1,2}""")>]
[<InlineData("model=m")>]
let ``a body that is not JSON is NotJson`` (body: string) = Assert.True(isNotJson (inspect body))

[<Fact>]
let ``invalid JSON after the model is still NotJson`` () =
    Assert.True(isNotJson (inspect """{"model":"m","messages":[1,2,,]}"""))

[<Fact>]
let ``trailing whitespace after the object is fine`` () =
    Assert.Equal("m", (facts "{\"model\":\"m\"} \r\n\t ").Model)

// Regression: invalid UTF-8 inside the model string made GetString throw InvalidOperationException,
// which escaped inspect (a 500 instead of a 400).
[<Fact>]
let ``invalid UTF-8 in the model is NotJson, not an exception`` () =
    let body = Array.concat [ bytes "{\"model\":\"m"; [| 0xFFuy |]; bytes "\"}" ]
    Assert.True(isNotJson (inspectBytes body))

// Regression: the same for an escaped lone surrogate (`\ud800`), which no string can hold.
[<Theory>]
[<InlineData("""{"model":"\ud800"}""")>]
[<InlineData("""{"model":"a\udc00b"}""")>]
let ``an escaped lone surrogate in the model is NotJson, not an exception`` (body: string) =
    Assert.True(isNotJson (inspect body))

// JSON text must be UTF-8 (RFC 8259 §8.1): the whole body is checked, not only the model.
[<Fact>]
let ``invalid UTF-8 anywhere in the body is NotJson`` () =
    let body =
        Array.concat [ bytes "{\"system\":\"x"; [| 0xC3uy; 0x28uy |]; bytes "\",\"model\":\"m\"}" ]

    Assert.True(isNotJson (inspectBytes body))

[<Fact>]
let ``the first top-level model wins over a duplicate`` () =
    Assert.Equal("a", (facts """{"model":"a","model":"b"}""").Model)

// ---------------------------
// withModel
// ---------------------------

[<Fact>]
let ``withModel replaces only the model value`` () =
    let body =
        """{"model":"claude-sonnet-4-6","messages":[{"role":"user","content":"hi"}],"stream":true}"""

    Assert.Equal(
        """{"model":"GLM-5","messages":[{"role":"user","content":"hi"}],"stream":true}""",
        rewrite body "GLM-5"
    )

[<Fact>]
let ``withModel keeps the surrounding whitespace and key order`` () =
    let body =
        "{\n  \"max_tokens\" : 10 ,\n  \"model\" :\t\"a\" ,\n  \"x\": {\"model\": \"keep\"}\n}"

    Assert.Equal(
        "{\n  \"max_tokens\" : 10 ,\n  \"model\" :\t\"a-much-longer-name\" ,\n  \"x\": {\"model\": \"keep\"}\n}",
        rewrite body "a-much-longer-name"
    )

[<Fact>]
let ``withModel replaces an escaped model token whole`` () =
    Assert.Equal("""{"model":"b","z":1}""", rewrite """{"model":"\u0061\"\\","z":1}""" "b")

[<Fact>]
let ``withModel escapes quotes, backslashes and control characters`` () =
    let result = rewrite """{"model":"m"}""" "q\"b\\c\n\u0001"

    Assert.Equal("""{"model":"q\"b\\c\n\u0001"}""", result)
    Assert.Equal("q\"b\\c\n\u0001", (facts result).Model)

[<Fact>]
let ``withModel writes non-ASCII text so that it reads back unchanged`` () =
    let model = "mod\u00e8le-中文-😀-<&>-\u2028"
    let result = rewrite """{"model":"m","stream":true}""" model

    Assert.Equal(model, (facts result).Model)
    Assert.True((facts result).Stream)

// ---------------------------
// Routing facts
// ---------------------------

[<Fact>]
let ``inspect reads max_tokens and estimates input tokens from the size`` () =
    let body = """{"model":"m","max_tokens":4096,"messages":[]}"""
    let found = facts body
    Assert.Equal(4096, found.MaxTokens)
    Assert.Equal((body.Length + 3) / 4, found.EstimatedInputTokens)
    Assert.Equal(0, RequestFacts.estimateInputTokens 0)
    Assert.Equal(1, RequestFacts.estimateInputTokens 1)
    Assert.Equal(250, RequestFacts.estimateInputTokens 1000)

[<Theory>]
[<InlineData("""{"model":"m","messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"abc"}]}]}""",
             true)>]
[<InlineData("""{"model":"m","messages":[{"role":"assistant","content":[{"signature":"abc","type":"thinking"}]}]}""",
             true)>]
[<InlineData("""{"model":"m","messages":[{"role":"assistant","content":[{"type":"redacted_thinking","data":"abc"}]}]}""",
             true)>]
[<InlineData("""{"model":"m","messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":""}]}]}""",
             false)>]
[<InlineData("""{"model":"m","messages":[{"role":"assistant","content":[{"type":"text","text":"t","signature":"abc"}]}]}""",
             false)>]
[<InlineData("""{"model":"m","thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"user","content":"hi"}]}""",
             false)>]
[<InlineData("""{"model":"m","metadata":{"x":[{"a":{"type":"thinking","signature":"s"}}]}}""", false)>]
let ``inspect sees signed thinking blocks in messages`` (body: string) (expected: bool) =
    Assert.Equal(expected, (facts body).ThinkingSignatures)

[<Fact>]
let ``inspect locates the first message`` () =
    let body =
        """{"model":"m","messages":[ {"role":"user","content":"hi"} , {"role":"assistant","content":"x"}]}"""

    let found = facts body

    Assert.Equal(
        """{"role":"user","content":"hi"}""",
        body.Substring(found.FirstMessageStart, found.FirstMessageLength)
    )

    let none = facts """{"model":"m","messages":[]}"""
    Assert.Equal(-1, none.FirstMessageStart)

// ---------------------------
// The fast path
// ---------------------------

/// A Claude Code turn: system blocks, tools, a signed thinking block replayed, escapes in the text it skips.
let private claudeCodeTurn =
    """{"model":"claude-sonnet-4-6","max_tokens":32000,"stream":true,
  "system":[{"type":"text","text":"You are Claude Code.\nUse the tools.\t\"Be precise.\" \u00e9\ud83d\ude00","cache_control":{"type":"ephemeral"}}],
  "tools":[{"name":"Read","description":"Reads a file.\n","input_schema":{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}}],
  "messages":[
    {"role":"user","content":[{"type":"text","text":"Fix the \"failing\" test in src\\Core."}]},
    {"role":"assistant","content":[{"type":"thinking","thinking":"Let me look.","signature":"EqQBCkYIBxgCKkB"},{"type":"tool_use","id":"toolu_01","name":"Read","input":{"path":"src/Routing.fs"}}]},
    {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01","content":"let order = ...\n"}]}
  ],
  "metadata":{"user_id":"user_abc"},"thinking":{"type":"enabled","budget_tokens":31999},"temperature":1.0e0}"""

[<Fact>]
let ``a Claude Code turn takes the fast path, with the reader's facts`` () =
    let body = bytes claudeCodeTurn
    let fast = RequestFacts.tryFast (ReadOnlySpan body)

    match RequestFacts.inspectWithReader (ReadOnlySpan body) with
    | Ok expected ->
        Assert.Equal(ValueSome expected, fast)
        Assert.True(expected.ThinkingSignatures)
        Assert.Equal(32000, expected.MaxTokens)
        Assert.True(expected.Stream)
        Assert.True(expected.FirstMessageStart > 0 && expected.FirstMessageLength > 0)
    | Error e -> failwith $"%A{e}"

[<Theory>]
[<InlineData("""{"m\u006fdel":"x"}""")>] // an escaped key the fast path would have to decode
[<InlineData("""{"model":"cl\u0061ude"}""")>] // an escaped model
[<InlineData("""{"model":"x","a":[1,2,]}""")>] // a trailing comma
[<InlineData("""{"model":"x"} {}""")>] // a second value
[<InlineData("""{"model":"x","n":01}""")>] // a leading zero
[<InlineData("""{"model":"x","s":"a	b"}""")>] // a raw tab inside a string
[<InlineData("""{"model":""}""")>] // an empty model
[<InlineData("""[{"model":"x"}]""")>] // not an object
let ``anything unusual is left to the reader, which gives its own verdict`` (text: string) =
    let body = bytes text
    Assert.Equal(ValueNone, RequestFacts.tryFast (ReadOnlySpan body))
    Assert.Equal(RequestFacts.inspectWithReader (ReadOnlySpan body), inspectBytes body)
