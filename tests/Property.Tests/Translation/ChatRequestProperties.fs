module CcRelay.Core.Properties.ChatRequestProperties

open System
open System.Text.Json
open System.Text.Json.Nodes
open System.Text.RegularExpressions
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators

let private settings: OpenAiSettings = {
    ReasoningField = ReasoningField.ReasoningContent
    MaxTokensField = MaxTokensField.MaxTokens
    StreamUsage = true
    Thinking = ThinkingControl.ReasoningEffort
    Api = OpenAiApi.Chat
    OnDropped = DroppedPolicy.Report
    MidSystem = MidSystem.InPlace
}

let private names = [
    "Bash"
    "Read"
    "mcp__github__create_or_update_file_with_a_really_long_name_that_goes_past_sixty_four"
    "has space"
]

let private str (value: string) : JsonNode = nonNull (JsonValue.Create value)

let private fields (pairs: (string * JsonNode) list) : Collections.Generic.KeyValuePair<string, JsonNode | null> seq =
    pairs
    |> Seq.map (fun (key, value) -> Collections.Generic.KeyValuePair(key, (value: JsonNode | null)))

let private textBlock (text: string) : JsonNode =
    JsonObject(fields [ "type", str "text"; "text", str text ])

/// A Claude Code-like conversation: user and assistant turns, assistant turns with thinking (the target's own
/// or another family's), text and parallel tool calls, each answered in the next user turn (results first or
/// after text, some errors, some with images).
let internal conversation: Gen<JsonObject * string list> =
    gen {
        let! turns = Gen.choose (0, 3)
        let messages = JsonArray()
        let used = Collections.Generic.HashSet<string>()
        messages.Add(JsonObject(fields [ "role", str "user"; "content", str "start" ]))
        let mutable pending = []

        for turn in 1..turns do
            let! calls = Gen.choose (0, 3)
            let! withText = Gen.elements [ true; false ]

            let! thinking =
                Gen.elements [ None; Some AnthropicOut.ReasoningSignature; Some "EqQBAnthropic" ]

            let! text = jsonText
            let content = JsonArray()

            match thinking with
            | Some signature ->
                content.Add(
                    JsonObject(fields [ "type", str "thinking"; "thinking", str text; "signature", str signature ])
                )
            | None -> ()

            if withText || calls = 0 then
                content.Add(textBlock text)

            let ids = [ for k in 1..calls -> $"toolu_%d{turn}_%d{k}" ]

            for id in ids do
                let! name = Gen.elements names
                used.Add name |> ignore
                let input = JsonObject(fields [ "arg", str text ])

                content.Add(
                    JsonObject(
                        fields [
                            "type", str "tool_use"
                            "id", str id
                            "name", str name
                            "input", input :> JsonNode
                        ]
                    )
                )

            messages.Add(JsonObject(fields [ "role", str "assistant"; "content", content :> JsonNode ]))
            let reply = JsonArray()
            let! textFirst = Gen.elements [ true; false ]

            if textFirst then
                reply.Add(textBlock "before")

            for id in ids do
                let! isError = Gen.elements [ true; false ]
                let! withImage = Gen.elements [ true; false ]

                let result =
                    if withImage then
                        JsonArray(
                            textBlock "out",
                            JsonObject(
                                dict [
                                    "type", str "image"
                                    "source",
                                    JsonObject(
                                        dict [ "type", str "base64"; "media_type", str "image/png"; "data", str "AAAA" ]
                                    )
                                    :> JsonNode
                                ]
                            )
                        )
                        :> JsonNode
                    else
                        str "out"

                reply.Add(
                    JsonObject(
                        dict [
                            "type", str "tool_result"
                            "tool_use_id", str id
                            "is_error", JsonValue.Create isError :> JsonNode
                            "content", result
                        ]
                    )
                )

            if not textFirst || ids.IsEmpty then
                reply.Add(textBlock "after")

            messages.Add(JsonObject(fields [ "role", str "user"; "content", reply :> JsonNode ]))
            pending <- ids

        let tools = JsonArray()

        for name in used do
            tools.Add(
                JsonObject(
                    dict [
                        "name", str name
                        "input_schema", JsonObject(fields [ "type", str "object" ]) :> JsonNode
                    ]
                )
            )

        let root =
            JsonObject(
                dict [
                    "model", str "claude-sonnet-4-6"
                    "max_tokens", JsonValue.Create 1000 :> JsonNode
                    "stream", JsonValue.Create true :> JsonNode
                    "system", JsonArray(textBlock "attribution", textBlock "you are helpful") :> JsonNode
                    "thinking", JsonObject(fields [ "type", str "adaptive" ]) :> JsonNode
                    "messages", messages :> JsonNode
                    "tools", tools :> JsonNode
                ]
            )

        return root, List.ofSeq used
    }

let private nameRule = Regex("^[A-Za-z0-9_-]{1,64}$")

/// What a strict Chat Completions server checks: known roles, the system message first, an assistant turn's
/// tool calls answered by tool messages right after it (each id once), tool names OpenAI accepts,
/// arguments that are JSON, known top-level fields only.
let private strictlyValidWith (systemAnywhere: bool) (body: JsonElement) : unit =
    let allowed =
        set [
            "model"
            "messages"
            "max_tokens"
            "max_completion_tokens"
            "temperature"
            "top_p"
            "stop"
            "user"
            "tools"
            "tool_choice"
            "parallel_tool_calls"
            "reasoning_effort"
            "thinking"
            "response_format"
            "stream"
            "stream_options"
        ]

    for property in body.EnumerateObject() do
        Assert.Contains(property.Name, allowed)

    Assert.False(String.IsNullOrEmpty(body.GetProperty("model").GetString()))
    let mutable waiting: Set<string> = Set.empty
    let mutable first = true

    for message in body.GetProperty("messages").EnumerateArray() do
        let role = string (message.GetProperty("role").GetString())

        if role <> "tool" then
            Assert.True(waiting.IsEmpty, $"tool calls %A{waiting} were not answered before a %s{role} message")

        match role with
        | "system" -> Assert.True(first || systemAnywhere, "system must come first")
        | "user" -> ()
        | "assistant" ->
            match message.TryGetProperty "tool_calls" with
            | true, calls ->
                for call in calls.EnumerateArray() do
                    let func = call.GetProperty "function"
                    Assert.Matches(nameRule, string (func.GetProperty("name").GetString()))
                    JsonDocument.Parse(string (func.GetProperty("arguments").GetString())) |> ignore
                    waiting <- waiting.Add(string (call.GetProperty("id").GetString()))
            | _ -> Assert.Equal(JsonValueKind.String, message.GetProperty("content").ValueKind)
        | "tool" ->
            let id = string (message.GetProperty("tool_call_id").GetString())
            Assert.True(waiting.Contains id, $"tool message %s{id} without a preceding tool call")
            waiting <- waiting.Remove id
            Assert.Equal(JsonValueKind.String, message.GetProperty("content").ValueKind)
        | other -> failwith $"unknown role %s{other}"

        first <- false

    match body.TryGetProperty "tools" with
    | true, tools ->
        for tool in tools.EnumerateArray() do
            Assert.Matches(nameRule, string (tool.GetProperty("function").GetProperty("name").GetString()))
    | _ -> ()

let private strictlyValid = strictlyValidWith false

[<Fact>]
let ``any Claude Code-like conversation translates to a request a strict Chat Completions server accepts`` () =
    Check.property (
        Prop.forAll (Check.arb conversation) (fun (request, used) ->
            let bytes = Text.Encoding.UTF8.GetBytes(request.ToJsonString())

            match ChatRequest.translate settings "target" true (ReadOnlySpan bytes) with
            | Ok translated ->
                let body = JsonDocument.Parse(translated.Body: byte array).RootElement
                strictlyValid body

                // every tool name the target will call back with maps to the client's name
                for name in used do
                    let target = ToolName.forTarget name

                    let restored =
                        translated.ToolNames |> Map.tryFind target |> Option.defaultValue target

                    Assert.Equal(name, restored)
            | Error e -> failwith e)
    )

/// A conversation with mid-conversation system messages (`{role: "system"}`) after some of its user turns (never
/// between a tool call and its results), their texts in order.
let private withMidSystem: Gen<JsonObject * string list> =
    gen {
        let! request, _ = conversation
        let messages = (nonNull request["messages"]).AsArray()

        let slots = [
            for i in 0 .. messages.Count - 1 do
                let role = (nonNull messages[i]).["role"]

                if (nonNull role).GetValue<string>() = "user" then
                    i + 1
        ]

        let! chosen = Gen.subListOf slots
        let! asBlocks = Gen.listOfLength chosen.Length (Gen.elements [ true; false ])
        let texts = chosen |> List.mapi (fun k _ -> $"system note %d{k}")

        // from the last slot back, so that earlier slots keep their index
        for slot, text, blocks in List.zip3 chosen texts asBlocks |> List.rev do
            let content: JsonNode =
                if blocks then
                    JsonArray(textBlock text) :> JsonNode
                else
                    str text

            messages.Insert(slot, JsonObject(fields [ "role", str "system"; "content", content ]))

        return request, texts
    }

[<Fact>]
let ``mid-conversation system messages: in place, as system-reminders or reported, never silently lost`` () =
    Check.property (
        Prop.forAll
            (Check.arb (Gen.zip withMidSystem (Gen.elements [ MidSystem.InPlace; MidSystem.AsUser; MidSystem.Drop ])))
            (fun ((request, texts), mode) ->
                let bytes = Text.Encoding.UTF8.GetBytes(request.ToJsonString())

                match ChatRequest.translate { settings with MidSystem = mode } "target" true (ReadOnlySpan bytes) with
                | Ok translated ->
                    let body = JsonDocument.Parse(translated.Body: byte array).RootElement
                    strictlyValidWith (mode = MidSystem.InPlace) body

                    let contents role =
                        body.GetProperty("messages").EnumerateArray()
                        |> Seq.filter (fun m -> m.GetProperty("role").GetString() = role)
                        |> Seq.map (fun m -> m.GetProperty "content")
                        |> Seq.filter (fun c -> c.ValueKind = JsonValueKind.String)
                        |> Seq.map (fun c -> string (c.GetString()))
                        |> List.ofSeq

                    let reminders =
                        contents "user"
                        |> List.filter (fun c -> c.StartsWith("<system-reminder>", StringComparison.Ordinal))

                    match mode with
                    | MidSystem.InPlace ->
                        Assert.Equal<string list>("attribution\nyou are helpful" :: texts, contents "system")
                        Assert.Empty reminders
                    | MidSystem.AsUser ->
                        Assert.Equal<string list>(
                            texts |> List.map (fun t -> "<system-reminder>\n" + t + "\n</system-reminder>"),
                            reminders
                        )
                    | MidSystem.Drop -> Assert.Empty reminders

                    if mode <> MidSystem.InPlace then
                        Assert.Equal(1, (contents "system").Length)

                    Assert.Equal(
                        (mode = MidSystem.Drop && not texts.IsEmpty),
                        List.contains "system_message" translated.Dropped
                    )
                | Error e -> failwith e)
    )

/// Any `reasoning_echo` settings (`echo`, `fill_missing`).
let private echoFixups: Gen<TranslationFixups> =
    gen {
        let! echo = Gen.elements [ true; false ]
        let! fill = Gen.elements [ true; false ]

        return {
            TranslationFixups.defaults with
                EchoReasoning = echo
                FillMissingReasoning = fill
        }
    }

/// The assistant messages of a translated body.
let private assistants (body: JsonElement) : JsonElement list =
    body.GetProperty("messages").EnumerateArray()
    |> Seq.filter (fun m -> m.GetProperty("role").GetString() = "assistant")
    |> List.ofSeq

[<Fact>]
let ``reasoning_echo: the defaults are the translation as it was; echo off never gives reasoning back; fill_missing off never invents it``
    ()
    =
    Check.property (
        Prop.forAll (Check.arb (Gen.zip conversation echoFixups)) (fun ((request, _), fixups) ->
            let bytes = Text.Encoding.UTF8.GetBytes(request.ToJsonString())

            let plain =
                match ChatRequest.translate settings "target" true (ReadOnlySpan bytes) with
                | Ok translated -> translated.Body
                | Error e -> failwith e

            match
                ChatRequest.translateWith TranslationFixups.defaults settings "target" (ReadOnlySpan bytes),
                ChatRequest.translateWith fixups settings "target" (ReadOnlySpan bytes)
            with
            | Ok defaults, Ok tuned ->
                Assert.Equal<byte array>(plain, defaults.Body)
                let body = JsonDocument.Parse(tuned.Body: byte array).RootElement
                strictlyValid body

                for message in assistants body do
                    let calls = message.TryGetProperty "tool_calls" |> fst

                    match message.TryGetProperty "reasoning_content" with
                    | true, reasoning ->
                        // echo off: at most the empty placeholder, and only on a tool-call turn with fill_missing
                        if not fixups.EchoReasoning then
                            Assert.Equal("", reasoning.GetString())
                            Assert.True(calls && fixups.FillMissingReasoning)
                    | _ ->
                        // fill_missing on: a tool-call turn always carries it (DeepSeek, Kimi refuse it missing)
                        Assert.False(calls && fixups.FillMissingReasoning)
            | Error e, _
            | _, Error e -> failwith e)
    )
