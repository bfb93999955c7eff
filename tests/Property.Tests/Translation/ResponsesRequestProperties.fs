module CcRelay.Core.Properties.ResponsesRequestProperties

open System
open System.Text.Json
open System.Text.Json.Nodes
open System.Text.RegularExpressions
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core

let private nameRule = Regex("^[A-Za-z0-9_-]{1,64}$")

/// The generated conversation with its thinking blocks' signatures replaced by reasoning envelopes, some of this
/// provider family ("target"), some of another ("other"), some left as they were (Anthropic's, Chat's).
let private withEnvelopes: Gen<JsonObject * string list> =
    gen {
        let! request, used = ChatRequestProperties.conversation
        let! choices = Gen.listOfLength 8 (Gen.elements [ "target"; "other"; "" ])
        let mutable n = 0

        for message in (nonNull request["messages"]).AsArray() do
            match (nonNull message)["content"] with
            | :? JsonArray as content ->
                for block in content do
                    let block = nonNull block

                    if (nonNull block["type"]).GetValue<string>() = "thinking" then
                        let family = choices[n % choices.Length]

                        if family <> "" then
                            block["signature"] <-
                                JsonValue.Create(ReasoningEnvelope.mint family $"rs_%d{n}" $"gAAAA%d{n}")

                        n <- n + 1
            | _ -> ()

        return request, used
    }

/// What a strict Responses server checks: known top-level fields and item types; a reasoning item (of this family
/// only) directly followed by the item it preceded; every function output answering an earlier call; names
/// OpenAI accepts; arguments that are JSON; stateless and asking for the encrypted reasoning.
let private strictlyValid (body: JsonElement) : unit =
    let allowed =
        set [
            "model"
            "instructions"
            "input"
            "max_output_tokens"
            "temperature"
            "top_p"
            "tools"
            "tool_choice"
            "parallel_tool_calls"
            "reasoning"
            "text"
            "store"
            "include"
            "stream"
            "prompt_cache_key"
        ]

    for property in body.EnumerateObject() do
        Assert.Contains(property.Name, allowed)

    Assert.Equal(JsonValueKind.False, body.GetProperty("store").ValueKind)
    Assert.True(body.GetProperty("max_output_tokens").GetInt32() >= 16)
    let items = body.GetProperty("input").EnumerateArray() |> Array.ofSeq
    let mutable calls: Set<string> = Set.empty

    for i in 0 .. items.Length - 1 do
        let item = items[i]

        match string (item.GetProperty("type").GetString()) with
        | "message" -> Assert.Contains(string (item.GetProperty("role").GetString()), [ "user"; "assistant" ])
        | "reasoning" ->
            let id = string (item.GetProperty("id").GetString())
            Assert.StartsWith("rs_", id)
            // only this family's envelopes come back; their ciphertext is the one minted with the id
            Assert.Equal("gAAAA" + id.Substring 3, string (item.GetProperty("encrypted_content").GetString()))
            Assert.True(i + 1 < items.Length, "a reasoning item needs its following item")

            Assert.Contains(
                string (items[i + 1].GetProperty("type").GetString()),
                [ "function_call"; "message"; "reasoning" ]
            )
        | "function_call" ->
            Assert.Matches(nameRule, string (item.GetProperty("name").GetString()))
            JsonDocument.Parse(string (item.GetProperty("arguments").GetString())) |> ignore
            calls <- calls.Add(string (item.GetProperty("call_id").GetString()))
        | "function_call_output" ->
            let id = string (item.GetProperty("call_id").GetString())
            Assert.True(calls.Contains id, $"function output %s{id} without a preceding call")
        | other -> failwith $"unknown item type %s{other}"

    match body.TryGetProperty "tools" with
    | true, tools ->
        for tool in tools.EnumerateArray() do
            Assert.Equal("function", tool.GetProperty("type").GetString())
            Assert.Matches(nameRule, string (tool.GetProperty("name").GetString()))
            Assert.Equal(JsonValueKind.False, tool.GetProperty("strict").ValueKind)
    | _ -> ()

[<Fact>]
let ``any Claude Code-like conversation translates to a request a strict Responses server accepts`` () =
    Check.property (
        Prop.forAll (Check.arb withEnvelopes) (fun (request, used) ->
            let bytes = Text.Encoding.UTF8.GetBytes(request.ToJsonString())

            match ResponsesRequest.translate "target" "gpt-5" true (ReadOnlySpan bytes) with
            | Ok translated ->
                let body = JsonDocument.Parse(translated.Body: byte array).RootElement
                strictlyValid body

                // the envelopes of this family all come back, none of another's
                let minted =
                    (nonNull request["messages"]).AsArray()
                    |> Seq.collect (fun m ->
                        match (nonNull m)["content"] with
                        | :? JsonArray as content -> content |> Seq.map nonNull
                        | _ -> Seq.empty)
                    |> Seq.choose (fun block ->
                        match block["signature"] with
                        | null -> None
                        | signature -> ReasoningEnvelope.tryRead (signature.GetValue<string>()))
                    |> Seq.filter (fun (_, _, family) -> family = "target")
                    |> Seq.length

                let reasoning =
                    body.GetProperty("input").EnumerateArray()
                    |> Seq.filter (fun i -> i.GetProperty("type").GetString() = "reasoning")
                    |> Seq.length

                Assert.Equal(minted, reasoning)

                for name in used do
                    let target = ToolName.forTarget name

                    let restored =
                        translated.ToolNames |> Map.tryFind target |> Option.defaultValue target

                    Assert.Equal(name, restored)
            | Error e -> failwith e)
    )
