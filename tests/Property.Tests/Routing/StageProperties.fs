module CcRelay.Core.Properties.StageProperties

open System
open System.Text
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators

/// The features a Claude Code-shaped request is built with, and so the stage facts `RequestFacts.inspectWithStages`
/// must read.
type private Shape = {
    Thinking: string
    WebSearch: bool
    OtherTools: int
    Marker: bool
    Tag: string
    Side: string
    Image: bool
    Compaction: bool
    /// An earlier user turn with an image (must not count: only the latest user turn does).
    EarlierImage: bool
}

let private sidePrompt (side: string) =
    match side with
    | "title" -> "Generate a concise, sentence-case title (3-7 words) that captures the main topic."
    | "bash-prefix" -> "Your task is to process Bash commands that an AI coding agent wants to run.\n<policy_spec>"
    | _ -> "You are an interactive agent.\nHelp the user."

let private shapes: Gen<Shape> =
    gen {
        let! thinking = Gen.elements [ ""; "enabled"; "adaptive"; "disabled" ]
        let! web = Gen.elements [ true; false ]
        let! others = Gen.choose (0, 3)
        let! marker = Gen.elements [ true; false ]
        let! tag = Gen.elements [ ""; "cheap,claude-haiku-4-5"; "zai/glm-4.6"; "main" ]
        let! side = Gen.elements [ ""; "title"; "bash-prefix" ]
        let! image = Gen.elements [ true; false ]
        let! compaction = Gen.elements [ true; false ]
        let! earlier = Gen.elements [ true; false ]

        return {
            Thinking = thinking
            WebSearch = web
            OtherTools = others
            Marker = marker
            Tag = tag
            Side = side
            Image = image
            Compaction = compaction
            EarlierImage = earlier
        }
    }

let private imageBlock =
    JObject [
        "type", JString "image"
        "source",
        JObject [
            "type", JString "base64"
            "media_type", JString "image/png"
            "data", JString "iVBORw0KGgo="
        ]
    ]

let private text (t: string) =
    JObject [ "type", JString "text"; "text", JString t ]

/// The request a shape describes, as a JSON tree (rendered with random whitespace and escapes).
let private build (shape: Shape) : Json =
    let attribution =
        "x-anthropic-billing-header: cc_version=2.1.197.c40; cc_entrypoint=cli;"
        + (if shape.Marker then " cc_is_subagent=true;" else "")

    let prompt =
        (if shape.Tag.Length > 0 then
             $"<CC-RELAY-MODEL>%s{shape.Tag}</CC-RELAY-MODEL>\n"
         else
             "")
        + sidePrompt shape.Side

    let tools = [
        if shape.WebSearch then
            JObject [ "type", JString "web_search_20250305"; "name", JString "web_search" ]
        for i in 1 .. shape.OtherTools do
            JObject [
                "name", JString $"Tool%d{i}"
                "input_schema",
                JObject [
                    "type", JString "object"
                    "properties", JObject [ "type", JObject [ "type", JString "image" ] ]
                ]
            ]
    ]

    let latest = [
        if shape.Image then
            imageBlock
        text (
            if shape.Compaction then
                "CRITICAL: Respond with TEXT ONLY. Do NOT call any tools.\n\nYour task is to create a detailed summary"
            else
                "go on"
        )
    ]

    JObject [
        "model", JString "claude-sonnet-4-6"
        "max_tokens", JNumber "32000"
        if shape.Thinking.Length > 0 then
            "thinking", JObject [ "type", JString shape.Thinking ]
        "system",
        JArray [
            text attribution
            text "You are Claude Code, Anthropic's official CLI for Claude."
            text prompt
        ]
        "messages",
        JArray [
            JObject [
                "role", JString "user"
                "content", JArray [ (if shape.EarlierImage then imageBlock else text "first"); text "hello" ]
            ]
            JObject [
                "role", JString "assistant"
                "content", JArray [ text "CRITICAL: Respond with TEXT ONLY. Do NOT call any tools." ]
            ]
            JObject [ "content", JArray latest; "role", JString "user" ]
        ]
        if not tools.IsEmpty then
            "tools", JArray tools
    ]

let private expected (shape: Shape) : StageFacts = {
    Thinking = shape.Thinking
    WebSearchTool = shape.WebSearch
    HasTools = shape.WebSearch || shape.OtherTools > 0
    SubagentMarker = shape.Marker
    ModelTag = shape.Tag
    // a tag before the side prompt means the system text no longer starts with it
    SideRequest = if shape.Tag.Length > 0 then "" else shape.Side
    LatestUserImage = shape.Image
    LatestUserCompaction = shape.Compaction
}

let private rendered =
    gen {
        let! shape = shapes
        let! body = renderJson (build shape)

        let! tail =
            Gen.elements [
                ""
                "\"}"
                "]}}"
                ",\"thinking\":{\"type\":\"enabled\"}}"
                "<CC-RELAY-MODEL>x</CC-RELAY-MODEL>"
            ]

        return shape, Encoding.UTF8.GetBytes body, Encoding.UTF8.GetBytes tail
    }
    |> Check.arb

/// The stage facts of a body (`RequestFacts.inspectWithStages`); the body must be a valid request.
let private stageFacts (body: ReadOnlySpan<byte>) : StageFacts =
    match RequestFacts.inspectWithStages body with
    | Ok facts -> facts.Stage
    | Error e -> failwith (RequestFacts.describe e)

[<Fact>]
let ``inspectWithStages reads exactly the features a Claude Code-shaped request was built with, however it is written``
    ()
    =
    Check.property (Prop.forAll rendered (fun (shape, body, _) -> stageFacts (ReadOnlySpan body) = expected shape))

[<Fact>]
let ``classification never reads past the body: bytes after it change nothing, and truncations never throw`` () =
    Check.property (
        Prop.forAll rendered (fun (_, body, tail) ->
            let buffer = Array.append body tail
            let whole = RequestFacts.inspectWithStages (ReadOnlySpan body)
            let inBuffer = RequestFacts.inspectWithStages (ReadOnlySpan(buffer, 0, body.Length))

            let truncationsHold =
                [ 0; 1; body.Length / 3; body.Length / 2; body.Length - 1 ]
                |> List.forall (fun n ->
                    RequestFacts.inspectWithStages (ReadOnlySpan(buffer, 0, max 0 n)) |> ignore
                    RequestFacts.readStageFacts (ReadOnlySpan(buffer, 0, max 0 n)) |> ignore
                    true)

            whole = inBuffer && truncationsHold)
    )

/// A shape's request as a JSON serializer writes it: with System.Text.Json's default encoder (`<`, `>`, `'`,
/// `+`, `&` and every non-ASCII character as `\u` escapes: the texts must be decoded), or with the relaxed one
/// Node's JSON.stringify resembles (two-character escapes only: the raw text is exact).
let private serialized =
    gen {
        let! shape = shapes
        let! relaxed = Gen.elements [ true; false ]

        let encoder =
            if relaxed then
                Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping
            else
                Text.Encodings.Web.JavaScriptEncoder.Default

        let str (t: string) =
            System.Text.Json.JsonEncodedText.Encode(t, encoder).ToString()

        let rec write (json: Json) : string =
            match json with
            | JNull -> "null"
            | JBool b -> if b then "true" else "false"
            | JNumber n -> n
            | JString t -> "\"" + str t + "\""
            | JArray items -> "[" + String.Join(",", items |> List.map write) + "]"
            | JObject members ->
                "{"
                + String.Join(",", members |> List.map (fun (k, v) -> "\"" + str k + "\":" + write v))
                + "}"

        return shape, Encoding.UTF8.GetBytes(write (build shape))
    }
    |> Check.arb

[<Fact>]
let ``the one fast pass answers for serialized requests, with the reader's stage facts`` () =
    Check.property (
        Prop.forAll serialized (fun (shape, body) ->
            match RequestFacts.tryFastWith true (ReadOnlySpan body) with
            | ValueSome facts ->
                facts.Stage = RequestFacts.readStageFacts (ReadOnlySpan body)
                && facts.Stage = expected shape
            | ValueNone -> false)
    )

[<Fact>]
let ``whenever the fast pass answers, its stage facts are the reader's, however the body is written`` () =
    Check.property (
        Prop.forAll rendered (fun (_, body, _) ->
            match RequestFacts.tryFastWith true (ReadOnlySpan body) with
            | ValueSome facts -> facts.Stage = RequestFacts.readStageFacts (ReadOnlySpan body)
            | ValueNone -> true)
    )

[<Fact>]
let ``with or without the stage facts, the request's other facts are the same`` () =
    Check.property (
        Prop.forAll rendered (fun (_, body, _) ->
            let plain = RequestFacts.inspect (ReadOnlySpan body)
            let staged = RequestFacts.inspectWithStages (ReadOnlySpan body)

            plain = (staged |> Result.map (fun f -> { f with Stage = RequestFacts.noStages })))
    )

let private decisionInputs =
    gen {
        let! shape = shapes
        let! tokens = Gen.choose (0, 200_000)
        let! maxTokens = Gen.elements [ 0; 1; 64; 32000 ]
        let! model = Gen.elements [ "claude-sonnet-4-6"; "claude-haiku-4-5"; "glm-4.6" ]
        let! agent = Gen.elements [ ""; "a1b2" ]
        let! betas = Gen.elements [ ""; "claude-code-20250219,effort-2025-11-24" ]
        let! ua = Gen.elements [ ""; "claude-cli/2.1.197 (external, cli)" ]
        let! configured = Gen.subListOf (Stage.all |> List.map snd)
        let! threshold = Gen.choose (1, 150_000)
        return shape, tokens, maxTokens, model, agent, betas, ua, configured, threshold
    }
    |> Check.arb

[<Fact>]
let ``precedence is total and stable: the first matching configured stage wins, default when none`` () =
    Check.property (
        Prop.forAll decisionInputs (fun (shape, tokens, maxTokens, model, agent, betas, ua, configured, threshold) ->
            let facts: RequestFacts = {
                Model = model
                ModelTokenStart = 0
                ModelTokenLength = 0
                Stream = true
                MaxTokens = maxTokens
                EstimatedInputTokens = tokens
                ThinkingSignatures = false
                UnsignedThinking = false
                FirstMessageStart = -1
                FirstMessageLength = 0
                Stage = RequestFacts.noStages
            }

            let stage = { expected shape with ModelTag = "" }
            let headers = Stages.headersOf agent betas ua ""

            let provider =
                Config.defaultProvider "p" ProviderType.AnthropicCompatible (Uri "https://p.example.test")

            let config = {
                Config.defaults with
                    Providers = [ provider ]
                    Routing = {
                        Config.defaultRouting with
                            Stages = {
                                Config.defaultStages with
                                    LongContextThreshold = threshold
                                    Routes = configured |> List.map (fun s -> s, [ { Provider = "p"; Model = None } ])
                            }
                    }
            }

            let matching = Stages.matching threshold facts stage headers
            let order = Stage.all |> List.map snd
            let ranks = matching |> List.map (fun (s, _) -> List.findIndex ((=) s) order)
            let decision = Stages.decide config facts stage headers

            let expectedStage =
                matching
                |> List.tryFind (fun (s, _) -> List.contains s configured)
                |> Option.map fst
                |> Option.defaultValue Stage.Default

            // total: default always matches, last; stable: precedence order, no stage twice, same answer twice
            fst (List.last matching) = Stage.Default
            && ranks = List.sort ranks
            && List.distinct ranks = ranks
            && decision.Stage = expectedStage
            && decision = Stages.decide config facts stage headers
            && (decision.Targets.IsEmpty = not (List.contains decision.Stage configured)))
    )
