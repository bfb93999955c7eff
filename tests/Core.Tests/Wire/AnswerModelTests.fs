module CcRelay.Core.Tests.AnswerModelTests

open System
open System.Text
open Xunit
open CcRelay.Core

let private bytes (text: string) : byte array = Encoding.UTF8.GetBytes text

let private text (result: RenamedAnswer voption) : string =
    match result with
    | ValueSome renamed -> Encoding.UTF8.GetString renamed.Bytes
    | ValueNone -> failwith "expected a rename"

let private start =
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"deepseek-v3.2\",\"content\":[],\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n"

let private thinking =
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n"
    + "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"a+b/c=\\u002B\"}}\n\n"

[<Fact>]
let ``a mapped model's message_start names the client's model, the events after it as they came`` () =
    let renamed =
        AnswerModel.ofStreamStart (ReadOnlySpan(bytes (start + thinking))) "claude-sonnet-4-6"

    Assert.Equal(start.Replace("deepseek-v3.2", "claude-sonnet-4-6") + thinking, text renamed)
    Assert.Equal("deepseek-v3.2", renamed.Value.Was)

[<Fact>]
let ``pings and comments before message_start are kept; a partial event after it too`` () =
    let ping = "event: ping\ndata: {\"type\": \"ping\"}\n\n: keep\n\n"
    let partial = "event: content_block_st"

    // the new name as JSON writes it: quotes escaped, the rest raw
    Assert.Equal(
        ping + start.Replace("deepseek-v3.2", "m\u00e9/\\\"x\\\"") + partial,
        text (AnswerModel.ofStreamStart (ReadOnlySpan(bytes (ping + start + partial))) "m\u00e9/\"x\"")
    )

[<Fact>]
let ``an answer that names the client's model already, or no model, is left alone`` () =
    Assert.True((AnswerModel.ofStreamStart (ReadOnlySpan(bytes start)) "deepseek-v3.2").IsNone)

    Assert.True(
        (AnswerModel.ofStreamStart (ReadOnlySpan(bytes (start.Replace("\"model\":\"deepseek-v3.2\",", "")))) "m").IsNone
    )

    Assert.True((AnswerModel.ofJson (ReadOnlySpan(bytes """{"id":"msg_1","model":"x"}""")) "x").IsNone)
    Assert.True((AnswerModel.ofJson (ReadOnlySpan(bytes """{"id":"msg_1","content":[{"model":"x"}]}""")) "y").IsNone)

[<Fact>]
let ``a stream whose first event is not message_start is left alone`` () =
    Assert.True((AnswerModel.ofStreamStart (ReadOnlySpan(bytes (thinking + start))) "claude-sonnet-4-6").IsNone)

[<Fact>]
let ``only message.model is renamed: a model member elsewhere is not`` () =
    let decoy =
        "event: message_start\ndata: {\"model\":\"top\",\"type\":\"message_start\",\"message\":{\"content\":[{\"model\":\"inner\"}],\"meta\":{\"model\":\"deep\"},\"model\":\"target\"}}\n\n"

    Assert.Equal(
        decoy.Replace("\"target\"", "\"client\""),
        text (AnswerModel.ofStreamStart (ReadOnlySpan(bytes decoy)) "client")
    )

[<Fact>]
let ``a JSON answer's top-level model is renamed, the thinking signature byte for byte`` () =
    let answer =
        """{"id":"msg_1","type":"message","content":[{"type":"thinking","thinking":"\u00e9","signature":"a\u002Bb/="}],"model" : "glm-5","usage":{"input_tokens":3}}"""

    let renamed = AnswerModel.ofJson (ReadOnlySpan(bytes answer)) "claude-opus-4-6"
    Assert.Equal(answer.Replace("\"glm-5\"", "\"claude-opus-4-6\""), text renamed)
    Assert.Equal("glm-5", renamed.Value.Was)

[<Theory>]
[<InlineData("claude-sonnet-4-6", "e2e-reasoner", "", true)>]
[<InlineData("claude-sonnet-4-6", "claude-sonnet-4-6", "glm-5", true)>]
[<InlineData("claude-sonnet-4-6", "claude-sonnet-4-6", "claude-sonnet-4-6", false)>]
[<InlineData("claude-sonnet-4-6", "claude-sonnet-4-6", "", false)>]
[<InlineData("-", "deepseek-chat", "", false)>]
[<InlineData("", "deepseek-chat", "", false)>]
let ``renames when the attempt sent another model or the provider maps it, not for a cloud's own id``
    (requested: string, sent: string, mapped: string, expected: bool)
    =
    let mapping =
        if mapped = "" then
            Map.empty
        else
            Map.ofList [ sent, mapped ]

    Assert.Equal(expected, AnswerModel.renames requested sent mapping)
