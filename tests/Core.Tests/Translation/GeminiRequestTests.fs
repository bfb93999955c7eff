module CcRelay.Core.Tests.GeminiRequestTests

open System
open System.Text
open System.Text.Json
open Xunit
open CcRelay.Core

let internal studio: GeminiSettings = {
    Endpoint = GeminiEndpoint.AiStudio
    Thinking = GeminiThinking.Auto
    OnDropped = DroppedPolicy.Report
}

let private translateAs (model: string) (kind: GeminiRequestKind) (echo: bool) (json: string) =
    match GeminiRequest.translate studio model kind echo (ReadOnlySpan(Encoding.UTF8.GetBytes json)) with
    | Ok translated -> translated
    | Error e -> failwith e

let private translate (json: string) =
    translateAs "gemini-2.5-pro" GeminiRequestKind.Generate true json

let private root (translated: TranslatedRequest) : JsonElement =
    JsonDocument.Parse(translated.Body: byte array).RootElement

let private contents (translated: TranslatedRequest) : JsonElement list =
    (root translated).GetProperty("contents").EnumerateArray() |> List.ofSeq

let private parts (content: JsonElement) : JsonElement list =
    content.GetProperty("parts").EnumerateArray() |> List.ofSeq

let private str (element: JsonElement) (name: string) : string =
    string (element.GetProperty(name).GetString())

let private has (element: JsonElement) (name: string) : bool = fst (element.TryGetProperty name)

[<Fact>]
let ``system becomes systemInstruction, turns become user and model contents, sampling goes to generationConfig`` () =
    let translated =
        translate
            """{"model":"claude-sonnet-4-6","max_tokens":1000,"temperature":0.5,"top_p":0.9,"top_k":40,"stop_sequences":["END"],
                "system":[{"type":"text","text":"attribution"},{"type":"text","text":"be brief","cache_control":{"type":"ephemeral"}}],
                "metadata":{"user_id":"u"},
                "messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"text","text":"hello"}]},{"role":"user","content":[{"type":"text","text":"more"}]}]}"""

    let json = root translated

    Assert.Equal<string list>(
        [ "attribution"; "be brief" ],
        json.GetProperty("systemInstruction").GetProperty("parts").EnumerateArray()
        |> Seq.map (fun p -> str p "text")
        |> List.ofSeq
    )

    let all = contents translated
    Assert.Equal<string list>([ "user"; "model"; "user" ], all |> List.map (fun c -> str c "role"))
    Assert.Equal("hello", str (parts all[1]).[0] "text")
    let config = json.GetProperty "generationConfig"
    Assert.Equal(1000, config.GetProperty("maxOutputTokens").GetInt32())
    Assert.Equal(0.5, config.GetProperty("temperature").GetDouble())
    Assert.Equal(0.9, config.GetProperty("topP").GetDouble())
    Assert.Equal(40, config.GetProperty("topK").GetInt32())
    let stops = config.GetProperty "stopSequences"
    Assert.Equal("END", stops.[0].GetString())
    Assert.False(has json "model")
    Assert.False(has json "metadata")
    Assert.Equal<string list>([ "cache_control" ], translated.Dropped)

[<Fact>]
let ``a mid-conversation system message becomes a user turn in place inside system-reminder, its other blocks reported``
    ()
    =
    let translated =
        translate
            """{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},
                {"role":"system","content":[{"type":"text","text":"be brief"},{"type":"text","text":"no emoji"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA=="}}]},
                {"role":"user","content":"more"}]}"""

    let all = contents translated
    Assert.Equal<string list>([ "user"; "model"; "user"; "user" ], all |> List.map (fun c -> str c "role"))
    Assert.Equal("<system-reminder>\nbe brief\nno emoji\n</system-reminder>", str (parts all[2]).[0] "text")
    Assert.Equal<string list>([ "image" ], translated.Dropped)

[<Fact>]
let ``a message of a role Gemini has no place for is reported, not lost silently`` () =
    let translated =
        translate
            """{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"},{"role":"tool","content":"x"}]}"""

    Assert.Equal<string list>([ "user" ], contents translated |> List.map (fun c -> str c "role"))
    Assert.Equal<string list>([ "message_role:tool" ], translated.Dropped)

[<Fact>]
let ``images inline or as fileData, a PDF inline, a text document as text`` () =
    let translated =
        translate
            """{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[
                {"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"AAAA"}},
                {"type":"image","source":{"type":"url","url":"https://example.com/cat.png"}},
                {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBER"}},
                {"type":"document","source":{"type":"text","media_type":"text/plain","data":"plain words"}},
                {"type":"text","text":"what is this?"}]}]}"""

    let p = parts (contents translated).[0]
    Assert.Equal("image/jpeg", str (p[0].GetProperty "inlineData") "mimeType")
    Assert.Equal("AAAA", str (p[0].GetProperty "inlineData") "data")
    Assert.Equal("https://example.com/cat.png", str (p[1].GetProperty "fileData") "fileUri")
    Assert.Equal("image/png", str (p[1].GetProperty "fileData") "mimeType")
    Assert.Equal("application/pdf", str (p[2].GetProperty "inlineData") "mimeType")
    Assert.Equal("plain words", str p[3] "text")
    Assert.Equal("what is this?", str p[4] "text")
    Assert.Empty translated.Dropped

[<Fact>]
let ``tool_use becomes functionCall, tool results come first as one functionResponse each with error and output`` () =
    let translated =
        translate
            """{"model":"m","max_tokens":10,"messages":[
                {"role":"user","content":"read both"},
                {"role":"assistant","content":[{"type":"text","text":"ok"},
                    {"type":"tool_use","id":"toolu_a","name":"Read","input":{"file_path":"a.ts"}},
                    {"type":"tool_use","id":"toolu_b","name":"mcp__fs/read file","input":{"p":1}}]},
                {"role":"user","content":[{"type":"text","text":"and then?"},
                    {"type":"tool_result","tool_use_id":"toolu_a","content":"alpha"},
                    {"type":"tool_result","tool_use_id":"toolu_b","is_error":true,"content":[{"type":"text","text":"denied"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"QQ=="}}]}]}]}"""

    let all = contents translated
    let model = parts all[1]
    Assert.Equal("ok", str model[0] "text")
    let first = model[1].GetProperty "functionCall"
    Assert.Equal("Read", str first "name")
    Assert.Equal("a.ts", str (first.GetProperty "args") "file_path")
    // history from another model: the first call of the step skips the signature check, its sibling goes bare
    Assert.Equal(GeminiWire.SkipSignature, str model[1] "thoughtSignature")
    Assert.False(has model[2] "thoughtSignature")
    let renamed = str (model[2].GetProperty "functionCall") "name"
    Assert.Matches("^[A-Za-z_][A-Za-z0-9_-]{0,62}$", renamed)
    Assert.Equal("mcp__fs/read file", translated.ToolNames[renamed])

    let user = parts all[2]
    let a = user[0].GetProperty "functionResponse"
    Assert.Equal("Read", str a "name")
    Assert.Equal("alpha", str (a.GetProperty "response") "output")
    let b = user[1].GetProperty "functionResponse"
    Assert.Equal(renamed, str b "name")
    Assert.Equal("denied", str (b.GetProperty "response") "error")
    Assert.Equal("and then?", str user[2] "text")
    Assert.Equal("QQ==", str (user[3].GetProperty "inlineData") "data")

[<Fact>]
let ``a tool result whose tool_use is gone (compacted) finds its function by the id the relay minted`` () =
    let id = GeminiWire.toolId "get_weather" (Some "call-7") "abc123" 0

    let translated =
        translate (
            """{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"""
            + JsonSerializer.Serialize id
            + ""","content":"sunny"}]}]}"""
        )

    let response = (parts (contents translated).[0]).[0].GetProperty "functionResponse"
    Assert.Equal("get_weather", str response "name")
    Assert.Equal("call-7", str response "id")

[<Fact>]
let ``thought signatures go back on the part they came with, thoughts are not replayed; another family's thinking is left out``
    ()
    =
    let call = GeminiWire.toolId "Bash" None "n1" 0

    let body =
        """{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"go"},{"role":"assistant","content":[
              {"type":"thinking","thinking":"Plan it.","signature":"cc-relay:gemini:v1:SIG-THOUGHT"},
              {"type":"thinking","thinking":"anthropic's","signature":"EqQBCkYIBxgCKkA"},
              {"type":"thinking","thinking":"","signature":"cc-relay:gemini:v1:SIG-CALL"},
              {"type":"tool_use","id":"""
        + JsonSerializer.Serialize call
        + ""","name":"Bash","input":{"command":"ls"}},
              {"type":"text","text":"done"},
              {"type":"thinking","thinking":"","signature":"cc-relay:gemini:v1:SIG-LAST"}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"""
        + JsonSerializer.Serialize call
        + ""","content":"a b"}]}]}"""

    let model = parts (contents (translate body)).[1]
    Assert.Equal(2, model.Length)
    Assert.Equal("SIG-CALL", str model[0] "thoughtSignature")
    Assert.Equal("Bash", str (model[0].GetProperty "functionCall") "name")
    Assert.Equal("done", str model[1] "text")
    Assert.Equal("SIG-LAST", str model[1] "thoughtSignature")

    // a thought run's signature goes on the part after it
    let answered =
        translate
            """{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"go"},{"role":"assistant","content":[
                  {"type":"thinking","thinking":"Plan it.","signature":"cc-relay:gemini:v1:SIG-THOUGHT"},{"type":"text","text":"answer"}]}]}"""

    let answer = parts (contents answered).[1]
    Assert.Equal("answer", str (Assert.Single answer) "text")
    Assert.Equal("SIG-THOUGHT", str answer[0] "thoughtSignature")

    // crossing from another family: nothing of the thinking is echoed (the call gets the skip value)
    let stripped =
        parts (contents (translateAs "gemini-3-pro" GeminiRequestKind.Generate false body)).[1]

    Assert.Equal(2, stripped.Length)
    Assert.Equal(GeminiWire.SkipSignature, str stripped[0] "thoughtSignature")
    Assert.False(has stripped[1] "thoughtSignature")

[<Fact>]
let ``thinking left out of a Gemini request is reported as thinking_blocks, Gemini's own signatures are not`` () =
    let history (blocks: string) =
        $"""{{"model":"m","max_tokens":10,"messages":[{{"role":"user","content":"go"}},
            {{"role":"assistant","content":[%s{blocks},{{"type":"text","text":"done"}}]}},{{"role":"user","content":"next"}}]}}"""

    let thinking (signature: string) =
        $"""{{"type":"thinking","thinking":"Plan it.","signature":"%s{signature}"}}"""

    let dropped (echo: bool) (blocks: string) =
        (translateAs "gemini-2.5-pro" GeminiRequestKind.Generate echo (history blocks)).Dropped

    Assert.Empty(dropped true (thinking "cc-relay:gemini:v1:SIG"))
    Assert.Equal<string list>([ "thinking_blocks" ], dropped true (thinking "EqQBCkYIBxgCKkA"))
    Assert.Equal<string list>([ "thinking_blocks" ], dropped true """{"type":"redacted_thinking","data":"EmwK"}""")
    Assert.Equal<string list>([ "thinking_blocks" ], dropped false (thinking "cc-relay:gemini:v1:SIG"))
    Assert.Empty(dropped true (thinking ""))

[<Fact>]
let ``tools: declarations with cleaned schemas, no parameters when there are none, tool_choice as functionCallingConfig``
    ()
    =
    let translated =
        translate
            """{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"x"}],
                "tools":[{"name":"Read","description":"reads","input_schema":{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","additionalProperties":false,
                    "properties":{"file_path":{"type":"string","format":"uri"},"limit":{"type":"integer","exclusiveMinimum":0},"mode":{"const":"fast"},
                                  "opt":{"type":["string","null"]},"tags":{"type":"array"},"ref":{"$ref":"#/$defs/Point"}},
                    "required":["file_path","ghost"],"$defs":{"Point":{"type":"object","properties":{"x":{"type":"number"}}}}}},
                         {"name":"Noop","input_schema":{"type":"object","properties":{}}},
                         {"type":"web_search_20250305","name":"web_search"}],
                "tool_choice":{"type":"tool","name":"Read","disable_parallel_tool_use":true}}"""

    let json = root translated
    let declarations = json.GetProperty("tools").[0].GetProperty("functionDeclarations")
    Assert.Equal(1, json.GetProperty("tools").GetArrayLength())
    let read = declarations[0]
    Assert.Equal("reads", str read "description")
    let parameters = read.GetProperty "parameters"
    Assert.Equal("OBJECT", str parameters "type")
    Assert.False(has parameters "additionalProperties")
    Assert.False(has parameters "$schema")
    Assert.False(has parameters "$defs")
    let props = parameters.GetProperty "properties"
    Assert.False(has (props.GetProperty "file_path") "format")
    Assert.Contains("uri", str (props.GetProperty "file_path") "description")
    Assert.False(has (props.GetProperty "limit") "exclusiveMinimum")
    let modes = (props.GetProperty "mode").GetProperty "enum"
    Assert.Equal("fast", modes.[0].GetString())
    Assert.Equal("STRING", str (props.GetProperty "opt") "type")
    Assert.True((props.GetProperty "opt").GetProperty("nullable").GetBoolean())
    Assert.True(has (props.GetProperty "tags") "items")
    Assert.Equal("NUMBER", str ((props.GetProperty "ref").GetProperty("properties").GetProperty "x") "type")

    Assert.Equal<string list>(
        [ "file_path" ],
        parameters.GetProperty("required").EnumerateArray()
        |> Seq.map (fun r -> string (r.GetString()))
        |> List.ofSeq
    )

    Assert.Equal("Noop", str declarations[1] "name")
    Assert.False(has declarations[1] "parameters")
    let calling = json.GetProperty("toolConfig").GetProperty "functionCallingConfig"
    Assert.Equal("ANY", str calling "mode")
    let allowed = calling.GetProperty "allowedFunctionNames"
    Assert.Equal("Read", allowed.[0].GetString())
    Assert.Equal<string list>([ "web_search"; "disable_parallel_tool_use" ], translated.Dropped)

[<Fact>]
let ``web search alone becomes Google Search`` () =
    let json =
        root (
            translate
                """{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search_20250305","name":"web_search"}]}"""
        )

    Assert.True(has (json.GetProperty("tools")[0]) "googleSearch")

[<Theory>]
[<InlineData("gemini-2.5-pro", """{"type":"enabled","budget_tokens":2048}""", "thinkingBudget", "2048")>]
[<InlineData("gemini-2.5-flash", """{"type":"adaptive"}""", "thinkingBudget", "-1")>]
[<InlineData("gemini-2.5-flash", """{"type":"enabled","budget_tokens":31999}""", "thinkingBudget", "24576")>]
[<InlineData("gemini-3-pro-preview", """{"type":"enabled","budget_tokens":2048}""", "thinkingLevel", "\"low\"")>]
[<InlineData("gemini-3-pro-preview", """{"type":"adaptive"}""", "thinkingLevel", "\"high\"")>]
let ``thinking becomes thinkingConfig: a budget for 2.5, a level for 3, thoughts included``
    (model, thinking, field, value)
    =
    let json =
        root (
            translateAs
                model
                GeminiRequestKind.Generate
                true
                ("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"x"}],"thinking":"""
                 + thinking
                 + "}")
        )

    let config = json.GetProperty("generationConfig").GetProperty "thinkingConfig"
    Assert.True(config.GetProperty("includeThoughts").GetBoolean())
    Assert.Equal(value, config.GetProperty(field: string).GetRawText())

[<Fact>]
let ``structured output becomes responseMimeType and a cleaned responseSchema`` () =
    let json =
        root (
            translate
                """{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"x"}],
                    "output_config":{"format":{"type":"json_schema","schema":{"type":"object","additionalProperties":false,"properties":{"a":{"type":"string"}},"required":["a"]}}}}"""
        )

    let config = json.GetProperty "generationConfig"
    Assert.Equal("application/json", str config "responseMimeType")
    Assert.False(has (config.GetProperty "responseSchema") "additionalProperties")

[<Fact>]
let ``count requests: AI Studio wraps the request with its model, Vertex puts contents at the top without generationConfig``
    ()
    =
    let body =
        """{"model":"m","max_tokens":10,"system":"s","messages":[{"role":"user","content":"x"}]}"""

    let studioJson =
        root (translateAs "gemini-2.5-pro" GeminiRequestKind.CountAiStudio true body)

    let inner = studioJson.GetProperty "generateContentRequest"
    Assert.Equal("models/gemini-2.5-pro", str inner "model")
    Assert.True(has inner "contents")
    Assert.True(has inner "generationConfig")

    let vertexJson =
        root (translateAs "gemini-2.5-pro" GeminiRequestKind.CountVertex true body)

    Assert.True(has vertexJson "contents")
    Assert.True(has vertexJson "systemInstruction")
    Assert.False(has vertexJson "generationConfig")
