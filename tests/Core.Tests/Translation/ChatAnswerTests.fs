module CcRelay.Core.Tests.ChatAnswerTests

open System
open System.Text
open System.Text.Json
open Xunit
open CcRelay.Core

let internal plan: ChatAnswerPlan = {
    Model = "claude-sonnet-4-6"
    EstimatedInputTokens = 42
    ToolNames = Map.ofList [ "short_abc", "mcp__a_very_long_name" ]
    ReadsReasoning = true
}

/// The events of a whole upstream stream (given as its SSE `data:` payloads), ended by the upstream closing.
let internal run (plan: ChatAnswerPlan) (payloads: string list) : AnthropicEvent list =
    let sse = payloads |> List.map (fun p -> "data: " + p + "\n\n") |> String.concat ""

    let state, events =
        ChatStream.feed (ChatStream.start plan) (ReadOnlySpan(Encoding.UTF8.GetBytes sse))

    let _, ending = ChatStream.finish state
    events @ ending

let private chunk (delta: string) (finish: string) : string =
    let finish = if finish = "" then "null" else $"\"%s{finish}\""

    """{"id":"chatcmpl-1","object":"chat.completion.chunk","model":"deepseek-chat","choices":[{"index":0,"delta":DELTA,"finish_reason":FINISH}]}"""
        .Replace("DELTA", delta)
        .Replace("FINISH", finish)

let private usage =
    """{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120,"prompt_tokens_details":{"cached_tokens":60}}}"""

let private endUsage = {
    InputTokens = 40L
    OutputTokens = 20L
    CacheReadTokens = 60L
    CacheWriteTokens = 0L
}

[<Fact>]
let ``a text stream: message_start with the estimate, one text block, usage from the usage chunk`` () =
    let events =
        run plan [
            chunk """{"role":"assistant","content":""}""" ""
            chunk """{"content":"Hel"}""" ""
            chunk """{"content":"lo"}""" ""
            chunk "{}" "stop"
            usage
            "[DONE]"
        ]

    Assert.Equal<AnthropicEvent list>(
        [
            AnthropicEvent.MessageStart("chatcmpl-1", "claude-sonnet-4-6", 42L)
            AnthropicEvent.BlockStart(0, StartedBlock.Text)
            AnthropicEvent.TextDelta(0, "Hel")
            AnthropicEvent.TextDelta(0, "lo")
            AnthropicEvent.BlockStop 0
            AnthropicEvent.MessageDelta("end_turn", endUsage)
            AnthropicEvent.MessageStop
        ],
        events
    )

[<Fact>]
let ``reasoning becomes a signed thinking block before the text and the tool call`` () =
    let events =
        run plan [
            chunk """{"reasoning_content":"Let me think"}""" ""
            chunk """{"reasoning_content":" more"}""" ""
            chunk """{"content":"Calling."}""" ""
            chunk
                """{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"short_abc","arguments":""}}]}"""
                ""
            chunk """{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]}""" ""
            chunk """{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}""" ""
            chunk "{}" "tool_calls"
            "[DONE]"
        ]

    Assert.Equal<AnthropicEvent list>(
        [
            AnthropicEvent.MessageStart("chatcmpl-1", "claude-sonnet-4-6", 42L)
            AnthropicEvent.BlockStart(0, StartedBlock.Thinking)
            AnthropicEvent.ThinkingDelta(0, "Let me think")
            AnthropicEvent.ThinkingDelta(0, " more")
            AnthropicEvent.SignatureDelta(0, AnthropicOut.ReasoningSignature)
            AnthropicEvent.BlockStop 0
            AnthropicEvent.BlockStart(1, StartedBlock.Text)
            AnthropicEvent.TextDelta(1, "Calling.")
            AnthropicEvent.BlockStop 1
            AnthropicEvent.BlockStart(2, StartedBlock.ToolUse("call_1", "mcp__a_very_long_name"))
            AnthropicEvent.InputJsonDelta(2, "{\"a\":")
            AnthropicEvent.InputJsonDelta(2, "1}")
            AnthropicEvent.BlockStop 2
            AnthropicEvent.MessageDelta(
                "tool_use",
                {
                    Usage.zero with
                        InputTokens = 42L
                        OutputTokens = 8L
                }
            )
            AnthropicEvent.MessageStop
        ],
        events
    )

[<Fact>]
let ``interleaved parallel calls are served one block at a time, each with its whole arguments`` () =
    let call index id name args =
        let head =
            if id = "" then
                ""
            else
                $"\"id\":\"%s{id}\",\"type\":\"function\","

        let name = if name = "" then "" else $"\"name\":\"%s{name}\","

        let arguments = JsonSerializer.Serialize(args: string)

        chunk
            $"{{\"tool_calls\":[{{\"index\":%d{index},%s{head}\"function\":{{%s{name}\"arguments\":%s{arguments}}}}}]}}"
            ""

    let events =
        run plan [
            call 0 "c0" "Read" "{\"path\":"
            call 1 "c1" "Bash" "{\"command\":"
            call 0 "" "" "\"a\"}"
            call 1 "" "" "\"ls\"}"
            chunk "{}" "tool_calls"
            usage
        ]

    Assert.Equal<AnthropicEvent list>(
        [
            AnthropicEvent.MessageStart("chatcmpl-1", "claude-sonnet-4-6", 42L)
            AnthropicEvent.BlockStart(0, StartedBlock.ToolUse("c0", "Read"))
            AnthropicEvent.InputJsonDelta(0, "{\"path\":")
            AnthropicEvent.InputJsonDelta(0, "\"a\"}")
            // c0 is whole: c1 starts with what it had buffered
            AnthropicEvent.BlockStop 0
            AnthropicEvent.BlockStart(1, StartedBlock.ToolUse("c1", "Bash"))
            AnthropicEvent.InputJsonDelta(1, "{\"command\":\"ls\"}")
            AnthropicEvent.BlockStop 1
            AnthropicEvent.MessageDelta("tool_use", endUsage)
            AnthropicEvent.MessageStop
        ],
        events
    )

[<Fact>]
let ``a stream that ends without finish_reason ends in an error, never message_stop`` () =
    let events = run plan [ chunk """{"content":"partial"}""" "" ]
    Assert.Equal(AnthropicEvent.TextDelta(0, "partial"), events[2])

    match List.last events with
    | AnthropicEvent.Error(ErrorType.Api, message) -> Assert.Contains("finish_reason", message)
    | other -> failwith $"expected an error event, got %A{other}"

    Assert.DoesNotContain(AnthropicEvent.MessageStop, events)
    let done' = run plan [ chunk """{"content":"partial"}""" ""; "[DONE]" ]
    Assert.True((List.last done').IsError)

[<Fact>]
let ``an error chunk first is an error event and nothing else; a finish on stop with tool calls is tool_use`` () =
    let events =
        run plan [
            """{"error":{"message":"Rate limit reached","type":"rate_limit_error","code":429}}"""
        ]

    Assert.Equal<AnthropicEvent list>([ AnthropicEvent.Error(ErrorType.RateLimit, "Rate limit reached") ], events)

    let ollama =
        run plan [
            chunk """{"tool_calls":[{"index":0,"id":"c","function":{"name":"Bash","arguments":"{}"}}]}""" "stop"
        ]

    Assert.Contains(
        AnthropicEvent.MessageDelta(
            "tool_use",
            {
                Usage.zero with
                    InputTokens = 42L
                    OutputTokens = 1L
            }
        ),
        ollama
    )

[<Fact>]
let ``writing events gives Anthropic SSE`` () =
    let sse =
        AnthropicOut.sse [
            AnthropicEvent.BlockStart(1, StartedBlock.ToolUse("t", "Bash"))
            AnthropicEvent.InputJsonDelta(1, "{\"a\"")
        ]
        |> Encoding.UTF8.GetString

    Assert.Equal(
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"Bash\",\"input\":{}}}\n\n"
        + "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\"\"}}\n\n",
        sse
    )

[<Fact>]
let ``a JSON answer becomes an Anthropic message with thinking, text, tools, stop reason and usage`` () =
    let body =
        """{"id":"chatcmpl-9","object":"chat.completion","model":"deepseek-reasoner","choices":[{"index":0,"finish_reason":"tool_calls",
            "message":{"role":"assistant","content":"Let me look.","reasoning_content":"hmm",
            "tool_calls":[{"id":"call_1","type":"function","function":{"name":"short_abc","arguments":"{\"q\":1}"}},
                          {"id":"call_2","type":"function","function":{"name":"Bash","arguments":"{not json"}}]}}],
            "usage":{"prompt_tokens":100,"completion_tokens":20,"prompt_tokens_details":{"cached_tokens":60}}}"""B

    let status, answer = ChatAnswer.ofJson plan (ReadOnlySpan body)
    Assert.Equal(200, status)
    let json = JsonDocument.Parse(answer: byte array).RootElement
    Assert.Equal("message", json.GetProperty("type").GetString())
    // the client's model, not the server's: Claude Code drops thinking from the history of an answer naming
    // another model, and the reasoning DeepSeek wants echoed would be lost (tests/E2E openai-chat)
    Assert.Equal("claude-sonnet-4-6", json.GetProperty("model").GetString())
    Assert.Equal("tool_use", json.GetProperty("stop_reason").GetString())
    let content = json.GetProperty("content").EnumerateArray() |> List.ofSeq

    Assert.Equal<string list>(
        [ "thinking"; "text"; "tool_use"; "tool_use" ],
        content |> List.map (fun b -> string (b.GetProperty("type").GetString()))
    )

    Assert.Equal(AnthropicOut.ReasoningSignature, content[0].GetProperty("signature").GetString())
    Assert.Equal("mcp__a_very_long_name", content[2].GetProperty("name").GetString())
    Assert.Equal(1, content[2].GetProperty("input").GetProperty("q").GetInt32())
    // malformed arguments are kept, not turned into an empty input
    Assert.Equal("{not json", content[3].GetProperty("input").GetProperty("_raw_arguments").GetString())
    let usage = json.GetProperty "usage"
    Assert.Equal(40, usage.GetProperty("input_tokens").GetInt32())
    Assert.Equal(60, usage.GetProperty("cache_read_input_tokens").GetInt32())
    Assert.Equal(20, usage.GetProperty("output_tokens").GetInt32())

[<Theory>]
[<InlineData(400,
             """{"error":{"message":"Invalid 'messages[1].role'","type":"invalid_request_error"}}""",
             400,
             "invalid_request_error",
             "Invalid 'messages[1].role'")>]
[<InlineData(401,
             """{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}""",
             401,
             "authentication_error",
             "Incorrect API key provided")>]
[<InlineData(429,
             """{"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded"}}""",
             429,
             "rate_limit_error",
             "Rate limit reached for requests")>]
[<InlineData(500,
             """{"error":{"message":"The server had an error","type":"server_error"}}""",
             500,
             "api_error",
             "The server had an error")>]
[<InlineData(503, "<html>Service Unavailable</html>", 529, "overloaded_error", "<html>Service Unavailable</html>")>]
[<InlineData(400,
             """{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130532 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}""",
             400,
             "invalid_request_error",
             "prompt is too long: 130532 tokens > 128000 maximum")>]
let ``OpenAI errors become Anthropic errors with the status and wording Claude Code reacts to``
    (status: int, body: string, expectedStatus: int, errorType: string, message: string)
    =
    let mapped, envelope =
        ChatAnswer.errorBody status (ReadOnlySpan(Encoding.UTF8.GetBytes body))

    Assert.Equal(expectedStatus, mapped)
    let error = JsonDocument.Parse(envelope: byte array).RootElement.GetProperty "error"
    Assert.Equal(errorType, error.GetProperty("type").GetString())
    Assert.Equal(message, error.GetProperty("message").GetString())
