module CcRelay.Core.Tests.ChatRequestTests

open System
open System.Text
open System.Text.Json
open Xunit
open CcRelay.Core

let internal deepSeek: OpenAiSettings = {
    ReasoningField = ReasoningField.ReasoningContent
    MaxTokensField = MaxTokensField.MaxTokens
    StreamUsage = true
    Thinking = ThinkingControl.ThinkingField
    Api = OpenAiApi.Chat
    OnDropped = DroppedPolicy.Report
    MidSystem = MidSystem.InPlace
}

let internal openAiItself: OpenAiSettings = {
    ReasoningField = ReasoningField.NoField
    MaxTokensField = MaxTokensField.MaxCompletionTokens
    StreamUsage = true
    Thinking = ThinkingControl.ReasoningEffort
    Api = OpenAiApi.Chat
    OnDropped = DroppedPolicy.Report
    MidSystem = MidSystem.InPlace
}

let private translateWith (settings: OpenAiSettings) (json: string) : TranslatedRequest =
    match ChatRequest.translate settings "target-model" true (ReadOnlySpan(Encoding.UTF8.GetBytes json)) with
    | Ok translated -> translated
    | Error e -> failwith e

let private root (translated: TranslatedRequest) : JsonElement =
    JsonDocument.Parse(translated.Body: byte array).RootElement

let private messages (translated: TranslatedRequest) : JsonElement list =
    (root translated).GetProperty("messages").EnumerateArray() |> List.ofSeq

let private str (element: JsonElement) (name: string) : string =
    string (element.GetProperty(name).GetString())

let private midSystemBody =
    """{"model":"m","max_tokens":100,"system":"top","messages":[
        {"role":"user","content":"hi"},
        {"role":"system","content":[{"type":"text","text":"Available agent types: a, b"},{"type":"text","text":"more"}]},
        {"role":"assistant","content":[{"type":"text","text":"ok"}]},
        {"role":"system","content":"be brief"},
        {"role":"user","content":"go"}]}"""

let private rolesAndContents (translated: TranslatedRequest) : (string * string) list =
    messages translated |> List.map (fun m -> str m "role", str m "content")

[<Fact>]
let ``a mid-conversation system message is a system message in place by default, its text blocks joined`` () =
    let translated = translateWith deepSeek midSystemBody

    Assert.Equal<(string * string) list>(
        [
            "system", "top"
            "user", "hi"
            "system", "Available agent types: a, b\nmore"
            "assistant", "ok"
            "system", "be brief"
            "user", "go"
        ],
        rolesAndContents translated
    )

    Assert.Empty translated.Dropped

[<Fact>]
let ``mid_conversation_system user: a user message in place with the text in a system-reminder`` () =
    let translated =
        translateWith
            {
                deepSeek with
                    MidSystem = MidSystem.AsUser
            }
            midSystemBody

    Assert.Equal<(string * string) list>(
        [
            "system", "top"
            "user", "hi"
            "user", "<system-reminder>\nAvailable agent types: a, b\nmore\n</system-reminder>"
            "assistant", "ok"
            "user", "<system-reminder>\nbe brief\n</system-reminder>"
            "user", "go"
        ],
        rolesAndContents translated
    )

    Assert.Empty translated.Dropped

[<Fact>]
let ``mid_conversation_system drop: left out and reported as system_message, once`` () =
    let translated =
        translateWith
            {
                deepSeek with
                    MidSystem = MidSystem.Drop
            }
            midSystemBody

    Assert.Equal<(string * string) list>(
        [ "system", "top"; "user", "hi"; "assistant", "ok"; "user", "go" ],
        rolesAndContents translated
    )

    Assert.Equal<string list>([ "system_message" ], translated.Dropped)

[<Fact>]
let ``a mid-conversation system message's other blocks and cache_control are reported`` () =
    let translated =
        translateWith
            deepSeek
            """{"model":"m","max_tokens":100,"messages":[
                {"role":"user","content":"hi"},
                {"role":"system","content":[{"type":"text","text":"note","cache_control":{"type":"ephemeral"}},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]}]}"""

    Assert.Equal<(string * string) list>([ "user", "hi"; "system", "note" ], rolesAndContents translated)
    Assert.Equal<string list>([ "cache_control"; "image" ], translated.Dropped)

[<Fact>]
let ``system blocks become one system message first, the model is the target's, max_tokens by the knob`` () =
    let translated =
        translateWith
            openAiItself
            """{"model":"claude-sonnet-4-6","max_tokens":1000,"system":[{"type":"text","text":"attribution"},{"type":"text","text":"be brief","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"}]}"""

    let json = root translated
    Assert.Equal("target-model", str json "model")
    Assert.Equal(1000, json.GetProperty("max_completion_tokens").GetInt32())
    Assert.False(json.TryGetProperty("max_tokens") |> fst)
    let all = messages translated
    Assert.Equal("system", str all[0] "role")
    Assert.Equal("attribution\nbe brief", str all[0] "content")
    Assert.Equal("user", str all[1] "role")
    Assert.Equal("hi", str all[1] "content")
    Assert.Equal<string list>([ "cache_control" ], translated.Dropped)

[<Fact>]
let ``tool results come first as one tool message each, is_error prefixed, images carried into the user turn`` () =
    let translated =
        translateWith
            deepSeek
            """{"model":"m","max_tokens":10,"messages":[
                {"role":"user","content":"list files"},
                {"role":"assistant","content":[{"type":"text","text":"Running both."},
                    {"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"ls"}},
                    {"type":"tool_use","id":"toolu_2","name":"Read","input":{"path":"a.png"}}]},
                {"role":"user","content":[
                    {"type":"text","text":"here you go"},
                    {"type":"tool_result","tool_use_id":"toolu_1","content":"a.png\nb.txt"},
                    {"type":"tool_result","tool_use_id":"toolu_2","is_error":true,"content":[{"type":"text","text":"too big"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]}]}]}"""

    let all = messages translated
    Assert.Equal<string list>([ "user"; "assistant"; "tool"; "tool"; "user" ], all |> List.map (fun m -> str m "role"))
    let assistant = all[1]
    Assert.Equal("Running both.", str assistant "content")
    // DeepSeek refuses a tool turn without reasoning_content, even an empty one
    Assert.Equal("", str assistant "reasoning_content")
    let calls = assistant.GetProperty("tool_calls").EnumerateArray() |> List.ofSeq
    Assert.Equal<string list>([ "toolu_1"; "toolu_2" ], calls |> List.map (fun c -> str c "id"))
    Assert.Equal("""{"command":"ls"}""", str (calls[0].GetProperty "function") "arguments")
    Assert.Equal("toolu_1", str all[2] "tool_call_id")
    Assert.Equal("a.png\nb.txt", str all[2] "content")
    Assert.Equal("Error: too big", str all[3] "content")
    let parts = all[4].GetProperty("content").EnumerateArray() |> List.ofSeq
    Assert.Equal("here you go", str parts[0] "text")
    Assert.Equal("data:image/png;base64,AAAA", str (parts[1].GetProperty "image_url") "url")

[<Fact>]
let ``the target's own reasoning is echoed, another family's thinking never`` () =
    let history (signature: string) =
        ("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"q"},
            {"role":"assistant","content":[{"type":"thinking","thinking":"I should call it","signature":"@signature@"},
            {"type":"tool_use","id":"t1","name":"Bash","input":{}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"ok"}]}]}"""
            .Replace("@signature@", signature))

    let ours = translateWith deepSeek (history AnthropicOut.ReasoningSignature)
    Assert.Equal("I should call it", str (List.item 1 (messages ours)) "reasoning_content")
    let foreign = translateWith deepSeek (history "EqQBCkYIBxgCKkDAnthropicSigned")
    Assert.Equal("", str (List.item 1 (messages foreign)) "reasoning_content")

    let stripped =
        match
            ChatRequest.translate
                deepSeek
                "m"
                false
                (ReadOnlySpan(Encoding.UTF8.GetBytes(history AnthropicOut.ReasoningSignature)))
        with
        | Ok t -> t
        | Error e -> failwith e

    Assert.Equal("", str (List.item 1 (messages stripped)) "reasoning_content")

[<Fact>]
let ``reasoning left out of a Chat request is reported as thinking_blocks, the relay's unsigned block is not`` () =
    let history (blocks: string) =
        $"""{{"model":"m","max_tokens":10,"messages":[{{"role":"user","content":"q"}},
            {{"role":"assistant","content":[%s{blocks},{{"type":"tool_use","id":"t1","name":"Bash","input":{{}}}}]}},
            {{"role":"user","content":[{{"type":"tool_result","tool_use_id":"t1","content":"ok"}}]}}]}}"""

    let thinking (signature: string) =
        $"""{{"type":"thinking","thinking":"I should call it","signature":"%s{signature}"}}"""

    let dropped (echo: bool) (blocks: string) =
        match ChatRequest.translate deepSeek "m" echo (ReadOnlySpan(Encoding.UTF8.GetBytes(history blocks))) with
        | Ok t -> t.Dropped
        | Error e -> failwith e

    // the target's own reasoning, echoed: nothing lost
    Assert.Empty(dropped true (thinking AnthropicOut.ReasoningSignature))
    // Anthropic's signed thinking and its redacted thinking cannot cross: reported
    Assert.Equal<string list>([ "thinking_blocks" ], dropped true (thinking "EqQBCkYIBxgCKkDAnthropicSigned"))
    Assert.Equal<string list>([ "thinking_blocks" ], dropped true """{"type":"redacted_thinking","data":"EmwKAhgB"}""")
    // the target's own reasoning when the echo is off (crossing back, or a pipeline): reported
    Assert.Equal<string list>([ "thinking_blocks" ], dropped false (thinking AnthropicOut.ReasoningSignature))
    // the relay's unsigned keep-alive block carries nothing
    Assert.Empty(dropped true (thinking ""))

[<Fact>]
let ``tools, tool_choice and parallel calls map; server tools are reported, long names shortened and restorable`` () =
    let longName = "mcp__" + String('x', 70)

    let translated =
        translateWith
            deepSeek
            ("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"q"}],
            "tools":[{"name":"Bash","description":"run","input_schema":{"type":"object","properties":{"command":{"type":"string"}}},"cache_control":{"type":"ephemeral"}},
                     {"name":"@longName@","input_schema":{"type":"object"}},
                     {"type":"web_search_20250305","name":"web_search","max_uses":5}],
            "tool_choice":{"type":"tool","name":"@longName@","disable_parallel_tool_use":true}}"""
                .Replace("@longName@", longName))

    let json = root translated
    let tools = json.GetProperty("tools").EnumerateArray() |> List.ofSeq
    Assert.Equal(2, tools.Length)
    Assert.Equal("function", str tools[0] "type")
    Assert.Equal("Bash", str (tools[0].GetProperty "function") "name")
    let short = str (tools[1].GetProperty "function") "name"
    Assert.Equal(64, short.Length)
    Assert.Equal(Some longName, translated.ToolNames.TryFind short)
    Assert.Equal(short, str (json.GetProperty("tool_choice").GetProperty "function") "name")
    Assert.False(json.GetProperty("parallel_tool_calls").GetBoolean())
    Assert.Equal<string list>([ "web_search"; "cache_control" ], translated.Dropped)

[<Theory>]
[<InlineData("auto", "\"auto\"")>]
[<InlineData("any", "\"required\"")>]
[<InlineData("none", "\"none\"")>]
let ``tool_choice types`` (anthropic: string, openAi: string) =
    let translated =
        translateWith
            deepSeek
            ("""{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"q"}],"tools":[{"name":"A","input_schema":{"type":"object"}}],"tool_choice":{"type":"@anthropic@"}}"""
                .Replace("@anthropic@", anthropic))

    Assert.Equal(openAi, (root translated).GetProperty("tool_choice").GetRawText())

[<Fact>]
let ``sampling, stop sequences, user, stream with usage; top_k and a fifth stop sequence reported`` () =
    let translated =
        translateWith
            deepSeek
            """{"model":"m","max_tokens":5,"temperature":0.2,"top_p":0.9,"top_k":40,"stop_sequences":["a","b","c","d","e"],
                "metadata":{"user_id":"user_abc"},"stream":true,"messages":[{"role":"user","content":"q"}]}"""

    let json = root translated
    Assert.Equal(0.2, json.GetProperty("temperature").GetDouble())
    Assert.Equal(0.9, json.GetProperty("top_p").GetDouble())
    Assert.Equal("""["a","b","c","d"]""", json.GetProperty("stop").GetRawText())
    Assert.Equal("user_abc", str json "user")
    Assert.True(json.GetProperty("stream").GetBoolean())
    Assert.True(json.GetProperty("stream_options").GetProperty("include_usage").GetBoolean())
    Assert.Equal<string list>([ "top_k"; "stop_sequences" ], translated.Dropped)

[<Theory>]
[<InlineData("""{"type":"enabled","budget_tokens":2000}""", "", "low")>]
[<InlineData("""{"type":"enabled","budget_tokens":10000}""", "", "medium")>]
[<InlineData("""{"type":"enabled","budget_tokens":32000}""", "", "high")>]
[<InlineData("""{"type":"adaptive"}""", "", "medium")>]
[<InlineData("""{"type":"adaptive"}""", ""","output_config":{"effort":"high"}""", "high")>]
let ``thinking as reasoning_effort`` (thinking: string, extra: string, effort: string) =
    let translated =
        translateWith
            openAiItself
            (("""{"model":"m","max_tokens":5,"thinking":@thinking@@extra@,"messages":[{"role":"user","content":"q"}]}"""
                .Replace("@thinking@", thinking))
                .Replace("@extra@", extra))

    Assert.Equal(effort, str (root translated) "reasoning_effort")
    Assert.Empty(translated.Dropped)

[<Fact>]
let ``thinking as the provider's thinking field, or reported when the provider takes no control`` () =
    let body =
        """{"model":"m","max_tokens":5,"thinking":{"type":"adaptive"},"messages":[{"role":"user","content":"q"}]}"""

    Assert.Equal("enabled", str ((root (translateWith deepSeek body)).GetProperty "thinking") "type")

    let none =
        translateWith
            {
                deepSeek with
                    Thinking = ThinkingControl.NoControl
                    Api = OpenAiApi.Chat
                    OnDropped = DroppedPolicy.Report
                    MidSystem = MidSystem.InPlace
            }
            body

    Assert.False((root none).TryGetProperty("thinking") |> fst)
    Assert.Equal<string list>([ "thinking" ], none.Dropped)

[<Fact>]
let ``documents are reported, plain-text documents kept as text; the estimate does not count image bytes`` () =
    let image = String('A', 400_000)

    let translated =
        translateWith
            deepSeek
            ("""{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[
                {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBE"}},
                {"type":"document","source":{"type":"text","media_type":"text/plain","data":"notes"}},
                {"type":"image","source":{"type":"base64","media_type":"image/png","data":"@image@"}}]}]}"""
                .Replace("@image@", image))

    Assert.Equal<string list>([ "document" ], translated.Dropped)
    let first = (messages translated).Head
    let parts = first.GetProperty("content").EnumerateArray() |> List.ofSeq
    Assert.Equal("notes", str parts[0] "text")
    Assert.InRange(translated.EstimatedInputTokens, ChatRequest.ImageTokens, ChatRequest.ImageTokens + 200)

[<Fact>]
let ``a body without messages is an error that says so`` () =
    match ChatRequest.translate deepSeek "m" true (ReadOnlySpan("""{"model":"m"}"""B)) with
    | Error message -> Assert.Contains("messages", message)
    | Ok _ -> failwith "expected an error"

[<Fact>]
let ``names OpenAI accepts are kept; others are made valid and stay apart`` () =
    Assert.Equal("Bash", ToolName.forTarget "Bash")
    let a = ToolName.forTarget ("mcp__server__" + String('a', 60) + "_one")
    let b = ToolName.forTarget ("mcp__server__" + String('a', 60) + "_two")
    Assert.NotEqual<string>(a, b)
    Assert.Matches("^[A-Za-z0-9_-]{1,64}$", a)
    Assert.Matches("^[A-Za-z0-9_-]{1,64}$", ToolName.forTarget "has space.and.dots")
