module CcRelay.Core.Tests.GeminiAnswerTests

open System
open System.Text
open System.Text.Json
open Xunit
open CcRelay.Core

let private plan: GeminiAnswerPlan = {
    Model = "claude-sonnet-4-6"
    EstimatedInputTokens = 123
    ToolNames = Map.ofList [ "mcp__fs_read_file_1a2b3c4d", "mcp__fs/read file" ]
}

let private sse (chunks: string list) : byte array =
    chunks
    |> List.map (fun c -> "data: " + c + "\r\n\r\n")
    |> String.concat ""
    |> Encoding.UTF8.GetBytes

/// Feeds the chunks and ends the upstream: every event, in order.
let private run (chunks: string list) : AnthropicEvent list =
    let state, events =
        GeminiStream.feed (GeminiStream.start plan) (ReadOnlySpan(sse chunks))

    let _, ending = GeminiStream.finish state
    events @ ending

let private usage =
    """"usageMetadata":{"promptTokenCount":9120,"candidatesTokenCount":31,"thoughtsTokenCount":212,"cachedContentTokenCount":8192,"totalTokenCount":9363}"""

[<Fact>]
let ``a thinking, calling stream: message_start at once, thinking then a signed call, tool_use stop, real usage`` () =
    let events =
        run [
            """{"candidates":[{"content":{"role":"model","parts":[{"text":"Let me check","thought":true}]},"index":0}],"responseId":"r1","modelVersion":"gemini-3-pro"}"""
            """{"candidates":[{"content":{"role":"model","parts":[{"text":" the file.","thought":true}]},"index":0}]}"""
            """{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"Read","args":{"file_path":"a.ts"}},"thoughtSignature":"CiQB"}]},"index":0}]}"""
            """{"candidates":[{"content":{"role":"model","parts":[{"text":""}]},"finishReason":"STOP","index":0}],"""
            + usage
            + "}"
        ]

    match events with
    | [ AnthropicEvent.MessageStart(id, model, 123L)
        AnthropicEvent.BlockStart(0, StartedBlock.Thinking)
        AnthropicEvent.ThinkingDelta(0, "Let me check")
        AnthropicEvent.ThinkingDelta(0, " the file.")
        AnthropicEvent.SignatureDelta(0, thoughtSignature)
        AnthropicEvent.BlockStop 0
        AnthropicEvent.BlockStart(1, StartedBlock.Thinking)
        AnthropicEvent.SignatureDelta(1, callSignature)
        AnthropicEvent.BlockStop 1
        AnthropicEvent.BlockStart(2, StartedBlock.ToolUse(toolId, "Read"))
        AnthropicEvent.InputJsonDelta(2, args)
        AnthropicEvent.BlockStop 2
        AnthropicEvent.MessageDelta("tool_use", finalUsage)
        AnthropicEvent.MessageStop ] ->
        Assert.StartsWith("msg_", id)
        // the client's model, not modelVersion: Claude Code drops thinking (and the thought signatures in it) from
        // the history of an answer naming another model (tests/E2E gemini)
        Assert.Equal("claude-sonnet-4-6", model)
        Assert.Equal(GeminiWire.SignaturePrefix, thoughtSignature)
        Assert.Equal(GeminiWire.SignaturePrefix + "CiQB", callSignature)
        Assert.Equal(Some("Read", None, 0), GeminiWire.tryParseToolId toolId)
        Assert.Equal("""{"file_path":"a.ts"}""", args)
        Assert.Equal(928L, finalUsage.InputTokens)
        Assert.Equal(8192L, finalUsage.CacheReadTokens)
        Assert.Equal(243L, finalUsage.OutputTokens)
    | other -> failwithf "unexpected events: %A" other

[<Fact>]
let ``text with the signature on its last part: the signature rides in a block after the text`` () =
    let events =
        run [
            """{"candidates":[{"content":{"role":"model","parts":[{"text":"Hel"}]}}]}"""
            """{"candidates":[{"content":{"role":"model","parts":[{"text":"lo","thoughtSignature":"S9"}]},"finishReason":"STOP"}]}"""
        ]

    Assert.Contains(AnthropicEvent.SignatureDelta(1, GeminiWire.SignaturePrefix + "S9"), events)

    Assert.Equal(
        AnthropicEvent.MessageDelta(
            "end_turn",
            {
                Usage.zero with
                    InputTokens = 123L
                    OutputTokens = 2L
            }
        ),
        events[events.Length - 2]
    )

[<Fact>]
let ``parallel calls: one tool_use block each, ids unique, renamed functions restored`` () =
    let events =
        run [
            """{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"Read","args":{"p":"a"}},"thoughtSignature":"S"},{"functionCall":{"name":"mcp__fs_read_file_1a2b3c4d","args":{"p":"b"}}}]},"finishReason":"STOP"}],"""
            + usage
            + "}"
        ]

    let tools =
        events
        |> List.choose (fun e ->
            match e with
            | AnthropicEvent.BlockStart(_, StartedBlock.ToolUse(id, name)) -> Some(id, name)
            | _ -> None)

    Assert.Equal(2, tools.Length)
    Assert.Equal("mcp__fs/read file", snd tools[1])
    Assert.NotEqual<string>(fst tools[0], fst tools[1])

[<Theory>]
[<InlineData("MAX_TOKENS", "max_tokens")>]
[<InlineData("SAFETY", "refusal")>]
[<InlineData("RECITATION", "refusal")>]
[<InlineData("MALFORMED_FUNCTION_CALL", "end_turn")>]
[<InlineData("SOMETHING_NEW", "end_turn")>]
let ``finish reasons map to stop reasons`` (finish: string, stop: string) =
    Assert.Equal(stop, GeminiAnswer.stopReason finish false)

[<Fact>]
let ``a stream cut before its finishReason ends in an error event, never cleanly`` () =
    let events =
        run [ """{"candidates":[{"content":{"role":"model","parts":[{"text":"Hel"}]}}]}""" ]

    match List.last events with
    | AnthropicEvent.Error(ErrorType.Api, _) -> ()
    | other -> failwithf "expected an error, got %A" other

    Assert.DoesNotContain(AnthropicEvent.MessageStop, events)

[<Fact>]
let ``an error chunk mid-stream ends in an error event of the mapped type`` () =
    let events =
        run [
            """{"candidates":[{"content":{"role":"model","parts":[{"text":"Hel"}]}}]}"""
            """{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"""
        ]

    Assert.Equal(AnthropicEvent.Error(ErrorType.Overloaded, "The model is overloaded."), List.last events)

[<Fact>]
let ``a JSON answer is an Anthropic message`` () =
    let status, body =
        GeminiStream.ofJson
            plan
            (ReadOnlySpan(
                Encoding.UTF8.GetBytes(
                    """{"candidates":[{"content":{"role":"model","parts":[{"text":"Hi"},{"functionCall":{"id":"c1","name":"Read","args":{"x":1}},"thoughtSignature":"Z"}]},"finishReason":"STOP"}],"""
                    + usage
                    + "}"
                )
            ))

    Assert.Equal(200, status)
    let message = JsonDocument.Parse(body: byte array).RootElement
    Assert.Equal("tool_use", message.GetProperty("stop_reason").GetString())
    let content = message.GetProperty "content"
    Assert.Equal("Hi", content[0].GetProperty("text").GetString())
    Assert.Equal(GeminiWire.SignaturePrefix + "Z", content[1].GetProperty("signature").GetString())
    let id = content[2].GetProperty("id").GetString() |> string
    Assert.Equal(Some("Read", Some "c1", 0), GeminiWire.tryParseToolId id)
    Assert.Equal(1, content[2].GetProperty("input").GetProperty("x").GetInt32())
    Assert.Equal(928, message.GetProperty("usage").GetProperty("input_tokens").GetInt32())

[<Theory>]
[<InlineData(429, "RESOURCE_EXHAUSTED", 429, "rate_limit_error")>]
[<InlineData(503, "UNAVAILABLE", 529, "overloaded_error")>]
[<InlineData(500, "INTERNAL", 500, "api_error")>]
[<InlineData(404, "NOT_FOUND", 404, "not_found_error")>]
[<InlineData(403, "PERMISSION_DENIED", 403, "permission_error")>]
[<InlineData(504, "DEADLINE_EXCEEDED", 504, "timeout_error")>]
let ``Google errors map to Anthropic status and type`` (status: int, google: string, expected: int, errorType: string) =
    let body =
        $"""{{"error":{{"code":%d{status},"message":"nope","status":"%s{google}"}}}}"""

    let mapped, envelope =
        GeminiAnswer.errorBody status (ReadOnlySpan(Encoding.UTF8.GetBytes body))

    Assert.Equal(expected, mapped)
    let error = JsonDocument.Parse(envelope: byte array).RootElement.GetProperty "error"
    Assert.Equal(errorType, error.GetProperty("type").GetString())
    Assert.Equal("nope", error.GetProperty("message").GetString())

[<Fact>]
let ``an invalid API key is an authentication error; an overflow is worded for compaction; retryDelay is read`` () =
    let auth, _ =
        GeminiAnswer.errorBody
            400
            (ReadOnlySpan(
                """{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"""B
            ))

    Assert.Equal(401, auth)

    let status, envelope =
        GeminiAnswer.errorBody
            400
            (ReadOnlySpan(
                """{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"""B
            ))

    Assert.Equal(400, status)

    Assert.Equal(
        "prompt is too long: 1200000 tokens > 1048576 maximum",
        JsonDocument.Parse(envelope: byte array).RootElement.GetProperty("error").GetProperty("message").GetString()
    )

    Assert.Equal(
        Some 38,
        GeminiAnswer.retryAfterSeconds (
            ReadOnlySpan(
                """{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37.2s"}]}}"""B
            )
        )
    )

[<Fact>]
let ``countTokens' total is the input_tokens`` () =
    Assert.Equal(
        Some """{"input_tokens":31}""",
        GeminiAnswer.countTokens (ReadOnlySpan("""{"totalTokens":31,"promptTokensDetails":[]}"""B))
        |> Option.map Encoding.UTF8.GetString
    )

[<Fact>]
let ``tool ids round-trip names with any characters`` () =
    let id = GeminiWire.toolId "mcp__x/y z_é" (Some "a_b") "ff00" 3
    Assert.Matches("^[a-zA-Z0-9_-]+$", id)
    Assert.Equal(Some("mcp__x/y z_é", Some "a_b", 3), GeminiWire.tryParseToolId id)
    Assert.Equal(None, GeminiWire.tryParseToolId "toolu_01ABC")

[<Fact>]
let ``a blocked prompt (no candidates, promptFeedback.blockReason) ends as a refusal`` () =
    let events =
        run [
            """{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":12,"totalTokenCount":12}}"""
        ]

    match events with
    | [ AnthropicEvent.MessageStart _; AnthropicEvent.MessageDelta("refusal", usage); AnthropicEvent.MessageStop ] ->
        Assert.Equal(12L, usage.InputTokens)
    | other -> failwithf "unexpected events: %A" other
