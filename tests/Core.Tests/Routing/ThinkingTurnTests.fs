module CcRelay.Core.Tests.ThinkingTurnTests

open System
open System.Text
open Xunit
open CcRelay.Core

let private decide (stripAll: bool) (text: string) : string option * string list =
    let struct (body, dropped) =
        ThinkingTurn.decide stripAll (ReadOnlySpan(Encoding.UTF8.GetBytes text))

    (body |> ValueOption.map Encoding.UTF8.GetString |> ValueOption.toOption), dropped

/// A tool loop whose last assistant turn came from a translated target (the relay's signature on its reasoning).
let private crossedLoop (thinking: string) (extra: string) =
    """{"model":"claude-sonnet-4-6","thinking":"""
    + thinking
    + ","
    + extra
    + """"messages":[{"role":"user","content":"list the files"},{"role":"assistant","content":[{"type":"thinking","thinking":"Run ls.","signature":"cc-relay:reasoning:v1"},{"type":"tool_use","id":"toolu_01","name":"Bash","input":{"command":"ls"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01","content":"a.txt"}]}],"stream":true}"""

[<Fact>]
let ``crossing families inside a tool loop with thinking on turns thinking off for the attempt`` () =
    let body, dropped =
        decide true (crossedLoop """{"type":"enabled","budget_tokens":1024}""" "")

    Assert.Equal(
        Some
            """{"thinking":{"type":"disabled"},"model":"claude-sonnet-4-6","messages":[{"role":"user","content":"list the files"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_01","name":"Bash","input":{"command":"ls"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01","content":"a.txt"}]}],"stream":true}""",
        body
    )

    Assert.Equal<string list>([ "thinking" ], dropped)

[<Fact>]
let ``adaptive thinking is turned off the same way, and a clear_thinking edit goes with it while other edits stay`` () =
    let management =
        """"context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"},{"type":"clear_tool_uses_20250919"}]},"""

    let body, dropped = decide true (crossedLoop """{"type":"adaptive"}""" management)

    Assert.Equal(
        Some
            """{"thinking":{"type":"disabled"},"context_management":{"edits":[{"type":"clear_tool_uses_20250919"}]},"model":"claude-sonnet-4-6","messages":[{"role":"user","content":"list the files"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_01","name":"Bash","input":{"command":"ls"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01","content":"a.txt"}]}],"stream":true}""",
        body
    )

    Assert.Equal<string list>([ "thinking"; "context_management" ], dropped)

[<Fact>]
let ``a context_management with only the clear_thinking edit is left out whole`` () =
    let body, _ =
        decide
            true
            (crossedLoop
                """{"type":"adaptive"}"""
                """"context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]},""")

    Assert.StartsWith("""{"thinking":{"type":"disabled"},"model":""", body.Value)
    Assert.DoesNotContain("context_management", body.Value)

[<Fact>]
let ``a user message with a tool result and text (Claude Code's reminders) still continues the tool loop`` () =
    let text =
        (crossedLoop """{"type":"adaptive"}""" "")
            .Replace(
                """"content":"a.txt"}]}""",
                """"content":"a.txt"},{"type":"text","text":"<system-reminder>x</system-reminder>"}]}"""
            )

    let body, dropped = decide true text
    Assert.Contains(""""thinking":{"type":"disabled"}""", body.Value)
    Assert.Equal<string list>([ "thinking" ], dropped)

[<Fact>]
let ``crossing families after the user's new message keeps thinking on and reports the blocks left out`` () =
    let text =
        """{"thinking":{"type":"adaptive"},"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"cc-relay:gemini:v1:abc"},{"type":"text","text":"hello"}]},{"role":"user","content":[{"type":"text","text":"more"}]}]}"""

    let body, dropped = decide true text

    Assert.Equal(
        Some
            """{"thinking":{"type":"adaptive"},"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"text","text":"hello"}]},{"role":"user","content":[{"type":"text","text":"more"}]}]}""",
        body
    )

    Assert.Equal<string list>([ "thinking_blocks" ], dropped)

[<Fact>]
let ``in the pinned family a signed final turn is kept byte for byte and only relay-signed reasoning of earlier turns goes``
    ()
    =
    let text =
        """{"thinking":{"type":"enabled","budget_tokens":2048},"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"thinking","thinking":"x","signature":"ccrelay-rs1:eyJ"},{"type":"text","text":"ok"}]},{"role":"user","content":"b"},{"role":"assistant","content":[{"type":"thinking","thinking":"","signature":""},{"type":"thinking","thinking":"y","signature":"EqQBsig"},{"type":"tool_use","id":"t1","name":"Bash","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"r"}]}]}"""

    let body, dropped = decide false text

    Assert.Equal(
        Some
            """{"thinking":{"type":"enabled","budget_tokens":2048},"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"text","text":"ok"}]},{"role":"user","content":"b"},{"role":"assistant","content":[{"type":"thinking","thinking":"y","signature":"EqQBsig"},{"type":"tool_use","id":"t1","name":"Bash","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"r"}]}]}""",
        body
    )

    Assert.Equal<string list>([ "thinking_blocks" ], dropped)

[<Fact>]
let ``the relay's own unsigned keep-alive block goes without being reported`` () =
    let text =
        """{"thinking":{"type":"adaptive"},"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"thinking","thinking":"","signature":""},{"type":"thinking","thinking":"y","signature":"EqQBsig"},{"type":"tool_use","id":"t1","name":"Bash","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"r"}]}]}"""

    let body, dropped = decide false text
    Assert.Equal(Some(text.Replace("""{"type":"thinking","thinking":"","signature":""},""", "")), body)
    Assert.Empty dropped

[<Fact>]
let ``a final turn that starts with a translated target's reasoning turns thinking off even in the pinned family`` () =
    let body, dropped =
        decide false (crossedLoop """{"type":"enabled","budget_tokens":1024}""" "")

    Assert.Contains(""""thinking":{"type":"disabled"}""", body.Value)
    Assert.DoesNotContain("cc-relay:reasoning", body.Value)
    Assert.Equal<string list>([ "thinking" ], dropped)

[<Fact>]
let ``the first message of a multi-step tool loop decides, not the last`` () =
    // Anthropic's interleaved thinking: a later step may have no thinking block; the turn's first step has it
    let text =
        """{"thinking":{"type":"adaptive"},"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"thinking","thinking":"","signature":""},{"type":"thinking","thinking":"y","signature":"EqQBsig"},{"type":"tool_use","id":"t1","name":"Bash","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"r"}]},{"role":"assistant","content":[{"type":"tool_use","id":"t2","name":"Bash","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t2","content":"r"}]}]}"""

    let body, _ = decide false text
    Assert.Contains(""""thinking":{"type":"adaptive"}""", body.Value)

[<Fact>]
let ``with thinking off in the request only the blocks go`` () =
    let body, dropped = decide true (crossedLoop """{"type":"disabled"}""" "")
    Assert.StartsWith("""{"model":"claude-sonnet-4-6","thinking":{"type":"disabled"},"messages":""", body.Value)
    Assert.DoesNotContain("cc-relay:reasoning", body.Value)
    Assert.Equal<string list>([ "thinking_blocks" ], dropped)

[<Fact>]
let ``a body without thinking blocks is left alone`` () =
    let body, dropped =
        decide false """{"thinking":{"type":"adaptive"},"messages":[{"role":"user","content":"a"}]}"""

    Assert.Equal(None, body)
    Assert.Empty dropped

[<Fact>]
let ``carry adds what was left out to the plan's dropped features`` () =
    let provider =
        Config.defaultProvider "anthropic" ProviderType.Anthropic (Uri "https://api.anthropic.com")

    let facts =
        match RequestFacts.inspect (ReadOnlySpan(Encoding.UTF8.GetBytes(crossedLoop """{"type":"adaptive"}""" ""))) with
        | Ok facts -> facts
        | Error e -> failwith $"%A{e}"

    let plan = Dialect.plan provider ValueNone facts "/v1/messages" [] []

    let struct (planned, body) =
        ThinkingTurn.carry plan true (ReadOnlySpan(Encoding.UTF8.GetBytes(crossedLoop """{"type":"adaptive"}""" "")))

    Assert.True body.IsSome
    Assert.Equal<string list>([ "thinking" ], planned.DroppedFeatures)

[<Fact>]
let ``RequestFacts flags the relay's signatures as thinking no Anthropic-shaped upstream can verify, and still as signed``
    ()
    =
    let facts (text: string) =
        match RequestFacts.inspect (ReadOnlySpan(Encoding.UTF8.GetBytes text)) with
        | Ok facts -> facts.ThinkingSignatures, facts.UnsignedThinking
        | Error e -> failwith $"%A{e}"

    let body (signature: string) =
        """{"model":"m","messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"""
        + "\""
        + signature
        + "\""
        + """},{"type":"text","text":"x"}]},{"role":"user","content":"b"}]}"""

    Assert.Equal((true, true), facts (body AnthropicOut.ReasoningSignature))
    Assert.Equal((true, true), facts (body "cc-relay:gemini:v1:abc"))
    Assert.Equal((true, true), facts (body "ccrelay-rs1:eyJ"))
    Assert.Equal((true, false), facts (body "EqQBsig"))
    Assert.Equal((false, true), facts (body ""))
