module CcRelay.Core.Tests.AffinityTests

open System
open System.Text
open Xunit
open CcRelay.Core

let private bytes (text: string) : byte array = Encoding.UTF8.GetBytes text

let private factsOf (body: byte array) : RequestFacts =
    match RequestFacts.inspect (ReadOnlySpan body) with
    | Ok facts -> facts
    | Error e -> failwith $"%A{e}"

let private conversation =
    """{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"sig1"}, {"type":"text","text":"hello"},{"type":"redacted_thinking","data":"xyz"}]},{"role":"user","content":[{"type":"text","text":"more"}]}],"stream":true}"""

[<Fact>]
let ``the conversation key comes from the session id, else from the first message`` () =
    let body = bytes conversation
    let facts = factsOf body
    let bySession = Affinity.conversationKey "session-1" (ReadOnlySpan body) facts

    Assert.Equal(
        bySession,
        Affinity.conversationKey "session-1" (ReadOnlySpan(bytes """{"model":"x","messages":[]}""")) facts
    )

    Assert.NotEqual(bySession, Affinity.conversationKey "session-2" (ReadOnlySpan body) facts)

    let byMessage = Affinity.conversationKey null (ReadOnlySpan body) facts
    Assert.NotEqual(0UL, byMessage)
    // A later turn replays the same first message.
    let later =
        bytes
            """{"model":"m","stream":false,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"x"},{"role":"user","content":"y"}]}"""

    Assert.Equal(byMessage, Affinity.conversationKey null (ReadOnlySpan later) (factsOf later))

[<Fact>]
let ``no session and no message: no key`` () =
    let body = bytes """{"model":"m"}"""
    Assert.Equal(0UL, Affinity.conversationKey null (ReadOnlySpan body) (factsOf body))

[<Fact>]
let ``a signature complaint is recognised from error.message`` () =
    let body =
        """{"type":"error","error":{"type":"invalid_request_error","message":"messages.1.content.0: Invalid `signature` in `thinking` block"}}"""

    Assert.True(Affinity.isSignatureError (ReadOnlySpan(bytes body)))

    let other =
        """{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: field required"}}"""

    Assert.False(Affinity.isSignatureError (ReadOnlySpan(bytes other)))
    Assert.False(Affinity.isSignatureError (ReadOnlySpan(bytes "<html>")))

[<Fact>]
let ``Gemini's missing thought signature is a signature complaint too`` () =
    let body =
        """{"type":"error","error":{"type":"invalid_request_error","message":"Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance."}}"""

    Assert.True(Affinity.isSignatureError (ReadOnlySpan(bytes body)))

/// Claude Code's next turn after a stream in which the relay opened its keep-alive thinking block (empty, signature
/// empty) before the upstream's signed thinking, text and tool call.
let private afterKeepAlive =
    """{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"thinking","thinking":"","signature":""},{"type":"thinking","thinking":"plan","signature":"EqQBsig+/="},{"type":"text","text":"ok"},{"type":"tool_use","id":"toolu_1","name":"Bash","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"done"}]}],"thinking":{"type":"enabled","budget_tokens":2048}}"""

[<Fact>]
let ``the request facts tell an unsigned thinking block from a signed one`` () =
    let inspect (text: string) =
        match RequestFacts.inspect (ReadOnlySpan(bytes text)) with
        | Ok facts -> facts.UnsignedThinking, facts.ThinkingSignatures
        | Error e -> failwith $"%A{e}"

    Assert.Equal((true, true), inspect afterKeepAlive)
    Assert.Equal((false, true), inspect conversation)

    Assert.Equal(
        (false, false),
        inspect """{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x","signature":""}]}]}"""
    )
