module CcRelay.Core.Tests.ResponsesTests

open System
open System.Text
open System.Text.Json
open Xunit
open CcRelay.Core

let internal plan: ResponsesAnswerPlan = {
    // the client's model: the answers name it, not the upstream's gpt-5 (Claude Code keeps thinking only then)
    Model = "claude-sonnet-4-6"
    EstimatedInputTokens = 42
    ToolNames = Map.ofList [ "short_abc", "mcp__a_very_long_name" ]
    Family = "openai"
}

let private translate (family: string) (echo: bool) (json: string) : TranslatedRequest =
    match ResponsesRequest.translate family "gpt-5" echo (ReadOnlySpan(Encoding.UTF8.GetBytes json)) with
    | Ok translated -> translated
    | Error e -> failwith e

let private root (translated: TranslatedRequest) : JsonElement =
    JsonDocument.Parse(translated.Body: byte array).RootElement

/// The events of a whole upstream stream (the SSE `data:` payloads), ended by the upstream closing.
let internal run (plan: ResponsesAnswerPlan) (payloads: string list) : AnthropicEvent list =
    let sse =
        payloads
        |> List.map (fun p ->
            let kind = JsonDocument.Parse(p).RootElement.GetProperty("type").GetString()
            $"event: %s{kind}\ndata: %s{p}\n\n")
        |> String.concat ""

    let state, events =
        ResponsesStream.feed (ResponsesStream.start plan) (ReadOnlySpan(Encoding.UTF8.GetBytes sse))

    let _, ending = ResponsesStream.finish state
    events @ ending

let private created =
    """{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","model":"gpt-5","status":"in_progress","output":[],"usage":null}}"""

let private completed (output: string) (status: string) (incomplete: string) =
    """{"type":"response.STATUS","sequence_number":99,"response":{"id":"resp_1","model":"gpt-5","status":"STATUS","incomplete_details":INCOMPLETE,"output":OUTPUT,"usage":{"input_tokens":100,"input_tokens_details":{"cached_tokens":60},"output_tokens":30,"output_tokens_details":{"reasoning_tokens":12},"total_tokens":130}}}"""
        .Replace("STATUS", status)
        .Replace("INCOMPLETE", incomplete)
        .Replace("OUTPUT", output)

let private endUsage = {
    InputTokens = 40L
    OutputTokens = 30L
    CacheReadTokens = 60L
    CacheWriteTokens = 0L
}

let private signatureOf (events: AnthropicEvent list) : string =
    events
    |> List.pick (fun e ->
        match e with
        | AnthropicEvent.SignatureDelta(_, signature) -> Some signature
        | _ -> None)

// ---------------------------
// Requests
// ---------------------------

[<Fact>]
let ``system becomes instructions, the attribution block left out; the body is stateless and asks for encrypted reasoning``
    ()
    =
    let body =
        root (
            translate
                "openai"
                true
                """{"model":"claude-sonnet-4-6","max_tokens":1,"stream":true,"system":[{"type":"text","text":"x-anthropic-billing-header: cc_version=2"},{"type":"text","text":"be brief"},{"type":"text","text":"and kind"}],"messages":[{"role":"user","content":"hi"}]}"""
        )

    Assert.Equal("gpt-5", body.GetProperty("model").GetString())
    Assert.Equal("be brief\nand kind", body.GetProperty("instructions").GetString())
    // Claude Code's probes send max_tokens 1; OpenAI's minimum is 16
    Assert.Equal(16, body.GetProperty("max_output_tokens").GetInt32())
    Assert.False(body.GetProperty("store").GetBoolean())
    Assert.Equal("reasoning.encrypted_content", (body.GetProperty "include").[0].GetString())
    Assert.True(body.GetProperty("stream").GetBoolean())
    let input = body.GetProperty "input"
    Assert.Equal("message", input[0].GetProperty("type").GetString())
    Assert.Equal("user", input[0].GetProperty("role").GetString())
    Assert.Equal("hi", input[0].GetProperty("content").GetString())

[<Fact>]
let ``a mid-conversation system message becomes a developer message item in place`` () =
    let body =
        root (
            translate
                "openai"
                true
                """{"model":"m","max_tokens":100,"messages":[
                    {"role":"user","content":"hi"},
                    {"role":"system","content":[{"type":"text","text":"Available agent types: a, b"}]},
                    {"role":"assistant","content":[{"type":"text","text":"ok"}]},
                    {"role":"system","content":"be brief"},
                    {"role":"user","content":"go"}]}"""
        )

    let input = body.GetProperty "input" |> _.EnumerateArray() |> List.ofSeq

    Assert.Equal<string list>(
        [ "user"; "developer"; "assistant"; "developer"; "user" ],
        input |> List.map (fun i -> i.GetProperty("role").GetString() |> string)
    )

    let part = (input[1].GetProperty "content").[0]
    Assert.Equal("input_text", part.GetProperty("type").GetString())
    Assert.Equal("Available agent types: a, b", part.GetProperty("text").GetString())
    Assert.Equal("be brief", input[3].GetProperty("content").GetString())

[<Fact>]
let ``a tool loop: function_call and function_call_output items, results before the turn's text, errors prefixed`` () =
    let translated =
        translate
            "openai"
            true
            """{"model":"m","max_tokens":100,"messages":[
                {"role":"user","content":[{"type":"text","text":"weather?"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]},
                {"role":"assistant","content":[{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}},{"type":"tool_use","id":"toolu_2","name":"get_time","input":{}}]},
                {"role":"user","content":[{"type":"text","text":"thanks"},{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny"},{"type":"tool_result","tool_use_id":"toolu_2","is_error":true,"content":[{"type":"text","text":"no clock"}]}]}
            ],"tools":[{"name":"get_weather","description":"w","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}},{"name":"get_time","input_schema":{"type":"object"}}],
            "tool_choice":{"type":"any","disable_parallel_tool_use":true}}"""

    let body = root translated
    let input = body.GetProperty("input").EnumerateArray() |> Array.ofSeq

    Assert.Equal<string list>(
        [
            "message"
            "message"
            "function_call"
            "function_call"
            "function_call_output"
            "function_call_output"
            "message"
        ],
        input
        |> Array.map (fun i -> string (i.GetProperty("type").GetString()))
        |> List.ofArray
    )

    let image = (input[0].GetProperty "content").[1]
    Assert.Equal("input_image", image.GetProperty("type").GetString())
    Assert.Equal("data:image/png;base64,AAAA", image.GetProperty("image_url").GetString())
    Assert.Equal("output_text", (input[1].GetProperty "content").[0].GetProperty("type").GetString())
    Assert.Equal("toolu_1", input[2].GetProperty("call_id").GetString())
    Assert.Equal("get_weather", input[2].GetProperty("name").GetString())
    Assert.Equal("""{"city":"Paris"}""", input[2].GetProperty("arguments").GetString())
    Assert.Equal("sunny", input[4].GetProperty("output").GetString())
    Assert.Equal("Error: no clock", input[5].GetProperty("output").GetString())
    Assert.Equal("thanks", (input[6].GetProperty "content").[0].GetProperty("text").GetString())
    let tool = (body.GetProperty "tools").[0]
    Assert.Equal("function", tool.GetProperty("type").GetString())
    Assert.Equal("get_weather", tool.GetProperty("name").GetString())
    Assert.False(tool.GetProperty("strict").GetBoolean())
    Assert.Equal("required", body.GetProperty("tool_choice").GetString())
    Assert.False(body.GetProperty("parallel_tool_calls").GetBoolean())
    Assert.Empty translated.Dropped

[<Fact>]
let ``thinking budgets and adaptive effort become reasoning effort with a summary; sampling is then left out and reported``
    ()
    =
    let effortOf (thinking: string) =
        let translated =
            translate
                "openai"
                true
                ("""{"model":"m","max_tokens":100,"temperature":1,"messages":[{"role":"user","content":"hi"}],"""
                 + thinking
                 + "}")

        let body = root translated

        match body.TryGetProperty "reasoning" with
        | true, reasoning ->
            Assert.Equal("auto", reasoning.GetProperty("summary").GetString())
            Assert.False(body.TryGetProperty "temperature" |> fst)
            Assert.Contains("temperature", translated.Dropped)
            reasoning.GetProperty("effort").GetString()
        | _ ->
            Assert.Equal(1, body.GetProperty("temperature").GetInt32())
            "none"

    Assert.Equal("low", effortOf """"thinking":{"type":"enabled","budget_tokens":2000}""")
    Assert.Equal("high", effortOf """"thinking":{"type":"enabled","budget_tokens":32000}""")
    Assert.Equal("medium", effortOf """"thinking":{"type":"adaptive"}""")
    Assert.Equal("high", effortOf """"thinking":{"type":"adaptive"},"output_config":{"effort":"max"}""")
    Assert.Equal("none", effortOf """"thinking":{"type":"disabled"}""")

[<Fact>]
let ``what Responses cannot take is reported: stop sequences, top_k, cache_control, server tools other than web search``
    ()
    =
    let translated =
        translate
            "openai"
            true
            """{"model":"m","max_tokens":100,"top_k":5,"stop_sequences":["END"],"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}],
            "tools":[{"type":"web_search_20250305","name":"web_search"},{"type":"bash_20250124","name":"bash"}]}"""

    let body = root translated
    Assert.Equal<string list>([ "cache_control"; "bash"; "top_k"; "stop_sequences" ], translated.Dropped)
    Assert.Equal("web_search", (body.GetProperty "tools").[0].GetProperty("type").GetString())
    Assert.False(body.TryGetProperty "stop" |> fst)

[<Fact>]
let ``a reasoning envelope round-trips to a reasoning item before the items it preceded, to its own family only`` () =
    let envelope = ReasoningEnvelope.mint "openai" "rs_1" "gAAAAenc"
    Assert.StartsWith(ReasoningEnvelope.Prefix, envelope)
    Assert.Equal(Some("rs_1", "gAAAAenc", "openai"), ReasoningEnvelope.tryRead envelope)
    Assert.Equal(None, ReasoningEnvelope.tryRead AnthropicOut.ReasoningSignature)
    Assert.Equal(None, ReasoningEnvelope.tryRead (ReasoningEnvelope.Prefix + "!!!"))

    let history (signature: string) =
        $"""{{"model":"m","max_tokens":100,"messages":[
            {{"role":"user","content":"hi"}},
            {{"role":"assistant","content":[{{"type":"thinking","thinking":"I should call.","signature":"%s{signature}"}},{{"type":"tool_use","id":"call_1","name":"f","input":{{}}}}]}},
            {{"role":"user","content":[{{"type":"tool_result","tool_use_id":"call_1","content":"ok"}}]}}]}}"""

    let types (translated: TranslatedRequest) =
        (root translated).GetProperty("input").EnumerateArray()
        |> Seq.map (fun i -> string (i.GetProperty("type").GetString()))
        |> List.ofSeq

    let own = translate "openai" true (history envelope)
    Assert.Equal<string list>([ "message"; "reasoning"; "function_call"; "function_call_output" ], types own)
    let reasoning = ((root own).GetProperty "input").[1]
    Assert.Equal("rs_1", reasoning.GetProperty("id").GetString())
    Assert.Equal("gAAAAenc", reasoning.GetProperty("encrypted_content").GetString())
    Assert.Equal(0, reasoning.GetProperty("summary").GetArrayLength())

    // another family's envelope, an Anthropic signature, or stripped thinking: no reasoning item
    Assert.Equal<string list>(
        [ "message"; "function_call"; "function_call_output" ],
        types (translate "other" true (history envelope))
    )

    Assert.Equal<string list>(
        [ "message"; "function_call"; "function_call_output" ],
        types (translate "openai" true (history "EqQBCkgIARABGAIiQ"))
    )

    Assert.Equal<string list>(
        [ "message"; "function_call"; "function_call_output" ],
        types (translate "openai" false (history envelope))
    )

    // what was not given back is reported; the family's own envelope, given back, is not
    Assert.Empty((translate "openai" true (history envelope)).Dropped)
    Assert.Equal<string list>([ "thinking_blocks" ], (translate "other" true (history envelope)).Dropped)
    Assert.Equal<string list>([ "thinking_blocks" ], (translate "openai" true (history "EqQBCkgIARABGAIiQ")).Dropped)
    Assert.Equal<string list>([ "thinking_blocks" ], (translate "openai" false (history envelope)).Dropped)
    Assert.Empty((translate "openai" true (history "")).Dropped)

// ---------------------------
// JSON answers
// ---------------------------

[<Fact>]
let ``a response object becomes a Message: reasoning as a signed thinking block, text, tool use, usage without the cached part``
    ()
    =
    let body =
        completed
            """[{"type":"reasoning","id":"rs_9","summary":[{"type":"summary_text","text":"Plan A"},{"type":"summary_text","text":"Plan B"}],"encrypted_content":"gAAAAxyz"},
               {"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"Calling.","annotations":[]}]},
               {"type":"function_call","id":"fc_1","call_id":"call_1","name":"short_abc","arguments":"{\"a\":1}","status":"completed"}]"""
            "completed"
            "null"

    let response =
        JsonDocument.Parse(body).RootElement.GetProperty("response").GetRawText()

    let status, answer =
        ResponsesAnswer.ofJson plan 200 (ReadOnlySpan(Encoding.UTF8.GetBytes response))

    Assert.Equal(200, status)
    let message = JsonDocument.Parse(answer: byte array).RootElement
    let content = message.GetProperty "content"
    Assert.Equal("thinking", content[0].GetProperty("type").GetString())
    Assert.Equal("Plan A\n\nPlan B", content[0].GetProperty("thinking").GetString())

    Assert.Equal(
        Some("rs_9", "gAAAAxyz", "openai"),
        ReasoningEnvelope.tryRead (string (content[0].GetProperty("signature").GetString()))
    )

    Assert.Equal("Calling.", content[1].GetProperty("text").GetString())
    Assert.Equal("call_1", content[2].GetProperty("id").GetString())
    Assert.Equal("mcp__a_very_long_name", content[2].GetProperty("name").GetString())
    Assert.Equal(1, content[2].GetProperty("input").GetProperty("a").GetInt32())
    Assert.Equal("tool_use", message.GetProperty("stop_reason").GetString())
    Assert.Equal(40, message.GetProperty("usage").GetProperty("input_tokens").GetInt32())
    Assert.Equal(60, message.GetProperty("usage").GetProperty("cache_read_input_tokens").GetInt32())
    Assert.Equal(30, message.GetProperty("usage").GetProperty("output_tokens").GetInt32())

[<Fact>]
let ``stop reasons: max_output_tokens, content_filter, refusal; an error answer keeps OpenAI's words`` () =
    let stopOf (status: string) (incomplete: string) (output: string) =
        let response =
            JsonDocument.Parse(completed output status incomplete).RootElement.GetProperty("response").GetRawText()

        let _, answer =
            ResponsesAnswer.ofJson plan 200 (ReadOnlySpan(Encoding.UTF8.GetBytes response))

        JsonDocument.Parse(answer: byte array).RootElement.GetProperty("stop_reason").GetString()

    Assert.Equal("max_tokens", stopOf "incomplete" """{"reason":"max_output_tokens"}""" "[]")
    Assert.Equal("refusal", stopOf "incomplete" """{"reason":"content_filter"}""" "[]")

    Assert.Equal(
        "refusal",
        stopOf
            "completed"
            "null"
            """[{"type":"message","id":"m","content":[{"type":"refusal","refusal":"I can't help with that."}]}]"""
    )

    Assert.Equal("end_turn", stopOf "completed" "null" "[]")

    let status, error =
        ResponsesAnswer.ofJson
            plan
            429
            (ReadOnlySpan(
                Encoding.UTF8.GetBytes
                    """{"error":{"message":"Rate limit reached for gpt-5","type":"requests","code":"rate_limit_exceeded"}}"""
            ))

    Assert.Equal(429, status)
    let error = JsonDocument.Parse(error: byte array).RootElement.GetProperty("error")
    Assert.Equal("rate_limit_error", error.GetProperty("type").GetString())
    Assert.Equal("Rate limit reached for gpt-5", error.GetProperty("message").GetString())

// ---------------------------
// Streams
// ---------------------------

[<Fact>]
let ``a stream: reasoning summary parts join into one thinking block signed with the envelope, then text, then a tool call``
    ()
    =
    let events =
        run plan [
            created
            """{"type":"response.output_item.added","output_index":0,"item":{"type":"reasoning","id":"rs_1","summary":[]}}"""
            """{"type":"response.reasoning_summary_part.added","item_id":"rs_1","output_index":0,"summary_index":0,"part":{"type":"summary_text","text":""}}"""
            """{"type":"response.reasoning_summary_text.delta","item_id":"rs_1","output_index":0,"summary_index":0,"delta":"First"}"""
            """{"type":"response.reasoning_summary_text.delta","item_id":"rs_1","output_index":0,"summary_index":1,"delta":"Second"}"""
            """{"type":"response.output_item.done","output_index":0,"item":{"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"gAAAAfinal"}}"""
            """{"type":"response.output_item.added","output_index":1,"item":{"type":"message","id":"msg_1","role":"assistant","content":[]}}"""
            """{"type":"response.output_text.delta","item_id":"msg_1","output_index":1,"content_index":0,"delta":"Hi"}"""
            """{"type":"response.output_item.done","output_index":1,"item":{"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":"Hi"}]}}"""
            """{"type":"response.output_item.added","output_index":2,"item":{"type":"function_call","id":"fc_1","call_id":"call_1","name":"short_abc","arguments":""}}"""
            """{"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":2,"delta":"{\"a\":"}"""
            """{"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":2,"delta":"1}"}"""
            """{"type":"response.function_call_arguments.done","item_id":"fc_1","output_index":2,"arguments":"{\"a\":1}"}"""
            """{"type":"response.output_item.done","output_index":2,"item":{"type":"function_call","id":"fc_1","call_id":"call_1","name":"short_abc","arguments":"{\"a\":1}"}}"""
            completed "[]" "completed" "null"
        ]

    Assert.Equal<AnthropicEvent list>(
        [
            AnthropicEvent.MessageStart("resp_1", "claude-sonnet-4-6", 42L)
            AnthropicEvent.BlockStart(0, StartedBlock.Thinking)
            AnthropicEvent.ThinkingDelta(0, "First")
            AnthropicEvent.ThinkingDelta(0, "\n\nSecond")
            AnthropicEvent.SignatureDelta(0, ReasoningEnvelope.mint "openai" "rs_1" "gAAAAfinal")
            AnthropicEvent.BlockStop 0
            AnthropicEvent.BlockStart(1, StartedBlock.Text)
            AnthropicEvent.TextDelta(1, "Hi")
            AnthropicEvent.BlockStop 1
            AnthropicEvent.BlockStart(2, StartedBlock.ToolUse("call_1", "mcp__a_very_long_name"))
            AnthropicEvent.InputJsonDelta(2, "{\"a\":")
            AnthropicEvent.InputJsonDelta(2, "1}")
            AnthropicEvent.BlockStop 2
            AnthropicEvent.MessageDelta("tool_use", endUsage)
            AnthropicEvent.MessageStop
        ],
        events
    )

[<Fact>]
let ``reasoning without a summary still gets a signature-only thinking block, so it reaches the next turn`` () =
    let events =
        run plan [
            created
            """{"type":"response.output_item.added","output_index":0,"item":{"type":"reasoning","id":"rs_1","summary":[]}}"""
            """{"type":"response.output_item.done","output_index":0,"item":{"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"gAAAAx"}}"""
            completed "[]" "completed" "null"
        ]

    Assert.Equal<AnthropicEvent list>(
        [
            AnthropicEvent.MessageStart("resp_1", "claude-sonnet-4-6", 42L)
            AnthropicEvent.BlockStart(0, StartedBlock.Thinking)
            AnthropicEvent.SignatureDelta(0, ReasoningEnvelope.mint "openai" "rs_1" "gAAAAx")
            AnthropicEvent.BlockStop 0
            AnthropicEvent.MessageDelta("end_turn", endUsage)
            AnthropicEvent.MessageStop
        ],
        events
    )

[<Fact>]
let ``items only the terminal event carries are sent whole; a call's arguments sent at done when none streamed`` () =
    let events =
        run plan [
            created
            """{"type":"response.output_item.added","output_index":0,"item":{"type":"function_call","id":"fc_1","call_id":"call_1","name":"f","arguments":""}}"""
            """{"type":"response.output_item.done","output_index":0,"item":{"type":"function_call","id":"fc_1","call_id":"call_1","name":"f","arguments":"{\"x\":2}"}}"""
            completed
                """[{"type":"function_call","id":"fc_1","call_id":"call_1","name":"f","arguments":"{\"x\":2}"},{"type":"function_call","id":"fc_2","call_id":"call_2","name":"g","arguments":"{}"}]"""
                "completed"
                "null"
        ]

    Assert.Equal<AnthropicEvent list>(
        [
            AnthropicEvent.MessageStart("resp_1", "claude-sonnet-4-6", 42L)
            AnthropicEvent.BlockStart(0, StartedBlock.ToolUse("call_1", "f"))
            AnthropicEvent.InputJsonDelta(0, "{\"x\":2}")
            AnthropicEvent.BlockStop 0
            AnthropicEvent.BlockStart(1, StartedBlock.ToolUse("call_2", "g"))
            AnthropicEvent.InputJsonDelta(1, "{}")
            AnthropicEvent.BlockStop 1
            AnthropicEvent.MessageDelta("tool_use", endUsage)
            AnthropicEvent.MessageStop
        ],
        events
    )

[<Fact>]
let ``events of another item while a call is open wait for it; blocks never interleave`` () =
    let events =
        run plan [
            created
            """{"type":"response.output_item.added","output_index":0,"item":{"type":"function_call","id":"fc_1","call_id":"call_1","name":"f","arguments":""}}"""
            """{"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":0,"delta":"{\"a\""}"""
            """{"type":"response.output_item.added","output_index":1,"item":{"type":"function_call","id":"fc_2","call_id":"call_2","name":"g","arguments":""}}"""
            """{"type":"response.function_call_arguments.delta","item_id":"fc_2","output_index":1,"delta":"{}"}"""
            """{"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":0,"delta":":1}"}"""
            """{"type":"response.output_item.done","output_index":0,"item":{"type":"function_call","id":"fc_1","call_id":"call_1","name":"f","arguments":"{\"a\":1}"}}"""
            """{"type":"response.output_item.done","output_index":1,"item":{"type":"function_call","id":"fc_2","call_id":"call_2","name":"g","arguments":"{}"}}"""
            completed "[]" "completed" "null"
        ]

    Assert.Equal<AnthropicEvent list>(
        [
            AnthropicEvent.MessageStart("resp_1", "claude-sonnet-4-6", 42L)
            AnthropicEvent.BlockStart(0, StartedBlock.ToolUse("call_1", "f"))
            AnthropicEvent.InputJsonDelta(0, "{\"a\"")
            AnthropicEvent.InputJsonDelta(0, ":1}")
            AnthropicEvent.BlockStop 0
            AnthropicEvent.BlockStart(1, StartedBlock.ToolUse("call_2", "g"))
            AnthropicEvent.InputJsonDelta(1, "{}")
            AnthropicEvent.BlockStop 1
            AnthropicEvent.MessageDelta("tool_use", endUsage)
            AnthropicEvent.MessageStop
        ],
        events
    )

[<Fact>]
let ``response.failed, an error event and a cut stream end in an error event, never cleanly`` () =
    let failed =
        run plan [
            created
            """{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi"}"""
            """{"type":"response.failed","response":{"id":"resp_1","status":"failed","error":{"code":"rate_limit_exceeded","message":"Slow down"}}}"""
        ]

    Assert.Equal(AnthropicEvent.Error(ErrorType.RateLimit, "Slow down"), List.last failed)

    let errored =
        run plan [
            """{"type":"error","code":"context_length_exceeded","message":"Your input exceeds the context window of this model: 400000 tokens; yours is 412345 tokens.","param":null,"sequence_number":1}"""
        ]

    match errored with
    | [ AnthropicEvent.Error(ErrorType.InvalidRequest, message) ] -> Assert.StartsWith("prompt is too long", message)
    | other -> failwithf "unexpected %A" other

    let cut =
        run plan [
            created
            """{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi"}"""
        ]

    match List.last cut with
    | AnthropicEvent.Error(ErrorType.Api, _) -> ()
    | other -> failwithf "unexpected %A" other

    Assert.DoesNotContain(AnthropicEvent.MessageStop, cut)

[<Fact>]
let ``an incomplete response ends with max_tokens and its usage`` () =
    let events =
        run plan [
            created
            """{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi"}"""
            completed "[]" "incomplete" """{"reason":"max_output_tokens"}"""
        ]

    Assert.Equal(AnthropicEvent.MessageDelta("max_tokens", endUsage), events[events.Length - 2])

// ---------------------------
// Dialect and config
// ---------------------------

[<Fact>]
let ``openai_api: responses plans /v1/responses with a Responses answer; count_tokens is answered locally`` () =
    let provider = {
        Config.defaultProvider "gpt" ProviderType.OpenAi (Uri "https://api.openai.com") with
            Cloud =
                CloudSettings.OpenAi {
                    ReasoningField = ReasoningField.NoField
                    MaxTokensField = MaxTokensField.MaxCompletionTokens
                    StreamUsage = true
                    Thinking = ThinkingControl.ReasoningEffort
                    Api = OpenAiApi.Responses
                    OnDropped = DroppedPolicy.Report
                    MidSystem = MidSystem.InPlace
                }
    }

    let body =
        Encoding.UTF8.GetBytes
            """{"model":"claude-sonnet-4-6","max_tokens":64,"stream":true,"top_k":3,"messages":[{"role":"user","content":"hi"}]}"""

    let facts =
        match RequestFacts.inspect (ReadOnlySpan body) with
        | Ok facts -> facts
        | Error e -> failwith (RequestFacts.describe e)

    let plan = Dialect.plan provider ValueNone facts "/v1/messages" [] []
    Assert.Equal("https://api.openai.com/v1/responses", plan.Url.ToString())

    match Dialect.edit plan (ReadOnlySpan body) facts false with
    | Ok(edited, ValueSome sent) ->
        Assert.Equal<string list>([ "top_k" ], edited.DroppedFeatures)

        match edited.Answer with
        | AnswerDialect.OpenAiResponses answer -> Assert.Equal("gpt", answer.Family)
        | other -> failwithf "unexpected %A" other

        Assert.True(JsonDocument.Parse(sent: byte array).RootElement.TryGetProperty "input" |> fst)
        Assert.Equal(AnswerReading.TranslateStream, Dialect.reading edited.Answer 200 Framing.Sse)
    | other -> failwithf "unexpected %A" other

    let count = Dialect.plan provider ValueNone facts "/v1/messages/count_tokens" [] []
    Assert.True((Dialect.localAnswer count).IsSome)

// ---------------------------
// Token estimates
// ---------------------------

/// Counts words: enough to check what is counted and how often.
let private words =
    Func<TokenEncoding, string, int>(fun _ text -> text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length)

[<Fact>]
let ``a Responses request's tokens: instructions and items 3 each plus their text, images a fixed cost, reasoning nothing``
    ()
    =
    let body =
        """{"model":"gpt-5","instructions":"be brief now","input":[
            {"type":"message","role":"user","content":[{"type":"input_text","text":"two words"},{"type":"input_image","image_url":"data:image/png;base64,AAAA"}]},
            {"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"gAAAA lots of cipher text"},
            {"type":"function_call","call_id":"c","name":"Read","arguments":"{\"path\": \"a\"}"},
            {"type":"function_call_output","call_id":"c","output":"file text here"}]}"""B

    // developer message 3+1+3, user 3+1+2+image, reasoning 0, call 3+1+2, output 3+3, reply 3
    Assert.Equal(Some(7 + 6 + ChatRequest.ImageTokens + 6 + 6 + 3), TokenEstimate.ofBody words true (ReadOnlySpan body))
    Assert.Equal(None, TokenEstimate.ofBody words true (ReadOnlySpan "[1]"B))

[<Theory>]
[<InlineData("gpt-4o", "O200k")>]
[<InlineData("gpt-4.1-mini", "O200k")>]
[<InlineData("gpt-5", "O200k")>]
[<InlineData("o3", "O200k")>]
[<InlineData("deepseek-chat", "O200k")>]
[<InlineData("gpt-4-0613", "Cl100k")>]
[<InlineData("gpt-3.5-turbo", "Cl100k")>]
let ``the encoding follows the model`` (model: string, encoding: string) =
    Assert.Equal(encoding, string (TokenEstimate.encodingFor model))

[<Fact>]
let ``a reasoning item that nothing followed in its turn is left out (OpenAI refuses one without its following item)``
    ()
    =
    let envelope = ReasoningEnvelope.mint "openai" "rs_1" "gAAAAenc"

    let translated =
        translate
            "openai"
            true
            $"""{{"model":"m","max_tokens":100,"messages":[{{"role":"user","content":"hi"}},{{"role":"assistant","content":[{{"type":"thinking","thinking":"","signature":"%s{envelope}"}}]}},{{"role":"user","content":"again"}}]}}"""

    let types =
        (root translated).GetProperty("input").EnumerateArray()
        |> Seq.map (fun i -> string (i.GetProperty("type").GetString()))
        |> List.ofSeq

    Assert.Equal<string list>([ "message"; "message" ], types)
