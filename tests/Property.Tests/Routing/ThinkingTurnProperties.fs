module CcRelay.Core.Properties.ThinkingTurnProperties

open System
open System.Text
open System.Text.Json
open System.Text.Json.Nodes
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core

/// Who signed a thinking block in a generated history.
type Signer =
    /// The Anthropic-shaped target (its family minted the block).
    | Target
    /// The relay, carrying a translated target's reasoning (Chat Completions, Gemini, Responses envelopes).
    | RelayChat
    | RelayGemini
    | RelayResponses
    /// Nobody: the relay's keep-alive block.
    | Unsigned
    /// Another Anthropic-shaped family (DeepSeek's own signatures, say): only the pinned family can tell.
    | Foreign

let private signature signer =
    match signer with
    | Target -> "EqQBtarget=="
    | RelayChat -> AnthropicOut.ReasoningSignature
    | RelayGemini -> "cc-relay:gemini:v1:Q2lw"
    | RelayResponses -> "ccrelay-rs1:eyJpZCI6InJzXzEifQ"
    | Unsigned -> ""
    | Foreign -> "deepseek-sig-1"

/// One step of an assistant turn: its thinking blocks (signers; `true`: redacted), whether it has text, and whether it
/// ends in a tool call (then a tool result follows, with a reminder text or not).
type Step = {
    Thinking: (Signer * bool) list
    Text: bool
    Tool: bool
    Reminder: bool
}

type History = {
    Turns: Step list list
    /// The conversation ends inside the last turn's tool loop (else the user's new message follows it).
    InLoop: bool
    ThinkingType: string option
    ClearThinking: bool
    ClearToolUses: bool
}

let private signerGen =
    Gen.elements [ Target; RelayChat; RelayGemini; RelayResponses; Unsigned; Foreign ]

let private stepGen (last: bool) =
    gen {
        let! thinking =
            Gen.listOfLength <!> Gen.choose (0, 2)
            <*> Gen.constant (Gen.zip signerGen (Gen.elements [ false; false; true ]))
            |> Gen.bind id

        let! text = Gen.elements [ true; false ]

        let! tool =
            if last then
                Gen.constant true
            else
                Gen.elements [ true; false ]

        let! reminder = Gen.elements [ true; false ]

        return {
            Thinking = thinking
            Text = text || not tool
            Tool = tool
            Reminder = reminder
        }
    }

let private turnGen =
    gen {
        let! steps = Gen.choose (1, 3)
        let! loop = Gen.listOfLength (steps - 1) (stepGen true)
        let! last = stepGen false
        return loop @ [ last ]
    }

let private historyGen =
    gen {
        let! turns = Gen.choose (1, 3)
        let! turns = Gen.listOfLength turns turnGen
        let! inLoop = Gen.elements [ true; false ]

        let! thinkingType =
            Gen.elements [ Some "enabled"; Some "adaptive"; Some "disabled"; None ]

        let! clearThinking = Gen.elements [ true; false ]
        let! clearToolUses = Gen.elements [ true; false ]

        return {
            Turns = turns
            InLoop = inLoop
            ThinkingType = thinkingType
            ClearThinking = clearThinking && thinkingType.IsSome && thinkingType <> Some "disabled"
            ClearToolUses = clearToolUses
        }
    }

/// The request Claude Code would send for a history (the last step of the last turn ends in a tool call when
/// `InLoop`).
let private node (json: string) : JsonNode =
    match JsonNode.Parse json with
    | null -> failwith "null JSON"
    | n -> n

let private render (h: History) : string =
    let messages = JsonArray()
    let mutable tool = 0

    let user (content: JsonNode) =
        let m = JsonObject()
        m["role"] <- JsonValue.Create "user"
        m["content"] <- content
        messages.Add m

    user (node "\"start\"")

    h.Turns
    |> List.iteri (fun t steps ->
        let lastTurn = t = h.Turns.Length - 1

        steps
        |> List.iteri (fun s step ->
            let lastStep = s = steps.Length - 1
            let toolCall = step.Tool && not (lastStep && not (lastTurn && h.InLoop))
            let toolCall = toolCall || lastTurn && lastStep && h.InLoop
            let content = JsonArray()

            for signer, redacted in step.Thinking do
                if redacted then
                    content.Add(node ($"""{{"type":"redacted_thinking","data":"{signature signer}"}}"""))
                else
                    content.Add(
                        node ($"""{{"type":"thinking","thinking":"step {s}","signature":"{signature signer}"}}""")
                    )

            if step.Text || not toolCall then
                content.Add(node ($"""{{"type":"text","text":"turn {t} step {s}"}}"""))

            if toolCall then
                tool <- tool + 1

                content.Add(
                    node ($"""{{"type":"tool_use","id":"toolu_{tool}","name":"Bash","input":{{"n":{tool}}}}}""")
                )

            let m = JsonObject()
            m["role"] <- JsonValue.Create "assistant"
            m["content"] <- content
            messages.Add m

            if toolCall then
                let result = JsonArray()
                result.Add(node ($"""{{"type":"tool_result","tool_use_id":"toolu_{tool}","content":"ok"}}"""))

                if step.Reminder then
                    result.Add(node ("""{"type":"text","text":"<system-reminder>r</system-reminder>"}"""))

                user result)

        if not (lastTurn && h.InLoop) then
            user (node $"\"next {t}\""))

    let body = JsonObject()
    body["model"] <- JsonValue.Create "claude-sonnet-4-6"
    body["max_tokens"] <- JsonValue.Create 4096

    match h.ThinkingType with
    | Some "enabled" -> body["thinking"] <- node ("""{"type":"enabled","budget_tokens":1024}""")
    | Some other -> body["thinking"] <- node ($"""{{"type":"{other}"}}""")
    | None -> ()

    if h.ClearThinking || h.ClearToolUses then
        let edits = JsonArray()

        if h.ClearThinking then
            edits.Add(node ("""{"type":"clear_thinking_20251015","keep":"all"}"""))

        if h.ClearToolUses then
            edits.Add(node ("""{"type":"clear_tool_uses_20250919"}"""))

        let management = JsonObject()
        management["edits"] <- edits
        body["context_management"] <- management

    body["messages"] <- messages
    body["stream"] <- JsonValue.Create true
    body.ToJsonString()

/// Anthropic's rules for a replayed conversation, as strict as its API (its wordings): None when it accepts the body.
let anthropicRefusal (body: JsonElement) : string option =
    let messages = body.GetProperty("messages").EnumerateArray() |> Seq.toArray

    let thinkingOn =
        match body.TryGetProperty "thinking" with
        | true, t ->
            t.GetProperty("type").GetString() = "enabled"
            || t.GetProperty("type").GetString() = "adaptive"
        | _ -> false

    let blocks (m: JsonElement) =
        match m.GetProperty("content").ValueKind with
        | JsonValueKind.Array -> m.GetProperty("content").EnumerateArray() |> Seq.toArray
        | _ -> [||]

    let typeOf (b: JsonElement) =
        string (b.GetProperty("type").GetString())

    let isThinking (b: JsonElement) =
        typeOf b = "thinking" || typeOf b = "redacted_thinking"

    let problems = ResizeArray<string>()

    messages
    |> Array.iteri (fun i m ->
        blocks m
        |> Array.iteri (fun j b ->
            let proof =
                match typeOf b with
                | "thinking" -> Some(string (b.GetProperty("signature").GetString()))
                | "redacted_thinking" -> Some(string (b.GetProperty("data").GetString()))
                | _ -> None

            match proof with
            | Some p when not (p.StartsWith("EqQB", StringComparison.Ordinal)) ->
                problems.Add $"messages.%d{i}.content.%d{j}: Invalid `signature` in `thinking` block"
            | _ -> ())

        let content = blocks m

        if content |> Array.exists isThinking && not (isThinking content[0]) then
            problems.Add
                $"messages.%d{i}.content.0: If an assistant message contains any thinking blocks, the first block must be thinking or redacted_thinking. Found %s{typeOf content[0]}.")

    let newTurn =
        messages
        |> Array.tryFindIndexBack (fun m ->
            m.GetProperty("role").GetString() = "user"
            && not (blocks m |> Array.exists (fun b -> typeOf b = "tool_result")))
        |> Option.defaultValue -1

    let firstAssistant =
        messages
        |> Array.indexed
        |> Array.tryFind (fun (i, m) -> i > newTurn && m.GetProperty("role").GetString() = "assistant")

    match firstAssistant with
    | Some(i, m) when thinkingOn ->
        let content = blocks m

        if content.Length = 0 || not (isThinking content[0]) then
            let found = if content.Length = 0 then "text" else typeOf content[0]

            problems.Add
                $"messages.%d{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `%s{found}`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`."
    | _ -> ()

    if not thinkingOn then
        let last = messages[messages.Length - 1]

        if
            last.GetProperty("role").GetString() = "assistant"
            && blocks last |> Array.exists isThinking
        then
            problems.Add
                $"messages.%d{messages.Length - 1}.content.0: When thinking is disabled, an `assistant` message in the final position cannot contain `thinking`."

        match body.TryGetProperty "context_management" with
        | true, cm when
            cm.GetProperty("edits").EnumerateArray()
            |> Seq.exists (fun e -> typeOf(e).StartsWith("clear_thinking", StringComparison.Ordinal))
            ->
            problems.Add
                "context_management: clear_thinking_20251015 strategy requires `thinking` to be enabled or adaptive"
        | _ -> ()

    Seq.tryHead problems

let private histories = Check.arb historyGen

let private hasForeign (h: History) =
    h.Turns
    |> List.exists (List.exists (fun s -> s.Thinking |> List.exists (fun (signer, _) -> signer = Foreign)))

let private planned (stripAll: bool) (text: string) : string * string list =
    let struct (body, dropped) =
        ThinkingTurn.decide stripAll (ReadOnlySpan(Encoding.UTF8.GetBytes text))

    (match body with
     | ValueSome b -> Encoding.UTF8.GetString b
     | ValueNone -> text),
    dropped

/// The content blocks that are not thinking, in order, as raw JSON: what the model must still see.
let private conversation (text: string) =
    use doc = JsonDocument.Parse text

    doc.RootElement.GetProperty("messages").EnumerateArray()
    |> Seq.collect (fun m ->
        match m.GetProperty("content").ValueKind with
        | JsonValueKind.Array ->
            m.GetProperty("content").EnumerateArray()
            |> Seq.filter (fun b ->
                let t = string (b.GetProperty("type").GetString())
                t <> "thinking" && t <> "redacted_thinking")
            |> Seq.map _.GetRawText()
        | _ -> Seq.singleton (m.GetProperty("content").GetRawText()))
    |> Seq.toList

[<Fact>]
let ``crossing families: any mix of signed and unsigned thinking plans a body Anthropic accepts`` () =
    Check.property (
        Prop.forAll histories (fun h ->
            let text = render h
            let body, dropped = planned true text
            use doc = JsonDocument.Parse body
            let refusal = anthropicRefusal doc.RootElement

            let turnedOff =
                doc.RootElement.TryGetProperty("thinking")
                |> fun (has, t) ->
                    has
                    && t.GetProperty("type").GetString() = "disabled"
                    && h.ThinkingType <> Some "disabled"

            let failures = [
                if refusal.IsSome then
                    $"refused: %A{refusal}"
                if conversation body <> conversation text then
                    "the text and tool calls changed"
                if turnedOff <> List.contains "thinking" dropped then
                    "turning thinking off is not reported as it happened"
            ]

            failures.IsEmpty |> Prop.label $"%A{failures}\n%s{body}")
    )

[<Fact>]
let ``in the pinned family: any mix without another family's signatures plans a body Anthropic accepts, thinking kept when the turn carries it``
    ()
    =
    Check.property (
        Prop.forAll histories (fun h ->
            let text = render h
            let body, _ = planned false text
            use doc = JsonDocument.Parse body
            let refusal = anthropicRefusal doc.RootElement

            let firstStepSigned =
                h.InLoop
                && (match List.last h.Turns |> List.head |> _.Thinking with
                    | (Target, _) :: _ -> true
                    | _ -> false)

            let stillOn =
                match doc.RootElement.TryGetProperty "thinking" with
                | true, t ->
                    t.GetProperty("type").GetString() = "enabled"
                    || t.GetProperty("type").GetString() = "adaptive"
                | _ -> false

            let on = h.ThinkingType = Some "enabled" || h.ThinkingType = Some "adaptive"

            let failures = [
                if refusal.IsSome then
                    $"refused: %A{refusal}"
                if conversation body <> conversation text then
                    "the text and tool calls changed"
                if on && firstStepSigned && not stillOn then
                    "thinking was turned off though the turn starts with the target's own"
            ]

            (hasForeign h || failures.IsEmpty) |> Prop.label $"%A{failures}\n%s{body}")
    )

[<Fact>]
let ``the strict validator refuses what the relay used to send: all thinking stripped from a tool loop with thinking on``
    ()
    =
    let text =
        """{"thinking":{"type":"adaptive"},"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"cc-relay:reasoning:v1"},{"type":"tool_use","id":"t1","name":"Bash","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"r"}]}]}"""

    // what the relay sent before ThinkingTurn.carry: the same body with every thinking block taken out
    let old =
        text.Replace("""{"type":"thinking","thinking":"t","signature":"cc-relay:reasoning:v1"},""", "")

    use doc = JsonDocument.Parse old
    Assert.StartsWith("messages.1.content.0.type: Expected `thinking`", (anthropicRefusal doc.RootElement).Value)
