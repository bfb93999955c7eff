module CcRelay.Core.Properties.PipelineProperties

open System
open System.Text
open System.Text.Json
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators
open CcRelay.Core.Properties.JsonEditProperties

// ---------------------------
// Generators
// ---------------------------

let private cacheControl = JObject [ "type", JString "ephemeral" ]

let private textBlock: Gen<Json> =
    gen {
        let! text = jsonText
        let! cached = Gen.elements [ false; true ]

        return
            JObject [
                "type", JString "text"
                "text", JString text
                if cached then
                    "cache_control", cacheControl
            ]
    }

/// A Messages request as clients send them, rendered with random whitespace and escapes, with other members
/// beside the known ones.
let private anthropicTree: Gen<Json> =
    gen {
        let! model = modelName
        let! maxTokens = Gen.choose (1, 64000)
        let! blocks = Gen.nonEmptyListOf textBlock |> Gen.resize 3

        let! system =
            Gen.oneof [
                Gen.constant None
                jsonText |> Gen.map (JString >> Some)
                Gen.listOf textBlock |> Gen.resize 2 |> Gen.map (JArray >> Some)
            ]

        let! tools =
            Gen.elements [
                None
                Some(JArray [ JObject [ "name", JString "get_weather"; "input_schema", JObject [] ] ])
            ]

        let! temperature = Gen.elements [ None; Some "0.3"; Some "1.5"; Some "1" ]
        let! others = topLevelMembers

        let known = [
            "model"
            "max_tokens"
            "messages"
            "system"
            "tools"
            "temperature"
            "top_p"
            "top_k"
            "tool_choice"
            "thinking"
            "stream"
        ]

        let members =
            [
                "model", JString model
                "max_tokens", JNumber(string maxTokens)
                "messages", JArray [ JObject [ "role", JString "user"; "content", JArray blocks ] ]
                match system with
                | Some s -> "system", s
                | None -> ()
                match tools with
                | Some t -> "tools", t
                | None -> ()
                match temperature with
                | Some t -> "temperature", JNumber t
                | None -> ()
            ]
            @ (others
               |> List.filter (fun (key, _) -> not (List.contains key known))
               |> List.distinctBy fst)

        let! order = Gen.shuffle members
        return JObject(List.ofArray order)
    }

let private anthropicRequest: Gen<string> = anthropicTree |> Gen.bind renderJson

let private sampling = {
    Temperature = None
    TopP = None
    TopK = None
    TemperatureMin = None
    TemperatureMax = None
    TopPMax = None
    TopKMax = None
}

/// The request-side built-in transformers that keep a valid request valid, with options.
let private validityPreserving: Gen<Transform> =
    Gen.oneof [
        Gen.choose (1, 100000)
        |> Gen.map (fun n -> Transform.MaxTokens(Some(int64 n), None))
        Gen.choose (1, 100000)
        |> Gen.map (fun n -> Transform.MaxTokens(None, Some(int64 n)))
        Gen.elements [ 0.0m; 0.5m; 1.0m ]
        |> Gen.map (fun t ->
            Transform.Sampling {
                sampling with
                    Temperature = Some t
                    TopKMax = Some 10L
            })
        Gen.constant (
            Transform.Sampling {
                sampling with
                    TemperatureMax = Some 1.0m
            }
        )
        Gen.constant Transform.StripCacheControl
        Gen.elements [ "any"; "auto"; "none" ]
        |> Gen.map (fun t -> Transform.ToolChoice(t, None, true))
        Gen.map2
            (fun edit text -> Transform.System(edit, text))
            (Gen.elements [ SystemEdit.Append; SystemEdit.Prepend; SystemEdit.Replace ])
            jsonText
        modelName |> Gen.map (fun m -> Transform.RenameModel([ "*", m ], None))
        Gen.constant (Transform.DropFields([ "metadata"; "mode" ], false))
    ]

/// A step of `transform` under its catalog name (a step's name decides where it applies).
let private step (transform: Transform) : PipelineStep = {
    Name =
        match transform with
        | Transform.MaxTokens _ -> "max_tokens"
        | Transform.Sampling _ -> "sampling"
        | Transform.StripCacheControl -> "strip_cache_control"
        | Transform.ToolChoice _ -> "tool_choice"
        | Transform.System _ -> "system"
        | Transform.RenameModel _ -> "rename_model"
        | Transform.DropFields _ -> "drop_fields"
        | Transform.ReasoningEffort _ -> "reasoning_effort"
        | Transform.ReasoningEcho _ -> "reasoning_echo"
        | Transform.GeminiSchemaClean _ -> "gemini_schema_clean"
        | Transform.RepairToolJson -> "repair_tool_json"
        | Transform.Plugin name -> "plugin:" + name
    Transform = transform
    OnError = OnError.Fail
}

// ---------------------------
// Properties
// ---------------------------

[<Fact>]
let ``a pipeline of validity-preserving transformers yields a valid request`` () =
    Check.property (
        Prop.forAll
            (Check.arb (Gen.zip anthropicRequest (Gen.listOf validityPreserving |> Gen.resize 6)))
            (fun (body, transforms) ->
                let bytes = Encoding.UTF8.GetBytes body
                Assert.True(RequestFacts.inspect (ReadOnlySpan bytes) |> Result.isOk)

                let run =
                    Pipeline.runBuiltIn (transforms |> List.map step) "anthropic" None (Pipeline.start bytes)

                Assert.Equal(None, run.Failure)
                // every step ran (none is limited to another dialect)
                Assert.DoesNotContain(run.Reports, fun r -> r.IsNotApplicable)
                Assert.True(isJson run.Body)
                Assert.True(RequestFacts.inspect (ReadOnlySpan run.Body) |> Result.isOk)
                // the input is never written into
                Assert.Equal(body, Encoding.UTF8.GetString bytes))
    )

/// Whether `small` is `large` with some bytes deleted (and nothing else changed).
let private isSubsequence (small: byte array) (large: byte array) : bool =
    let mutable i = 0

    for b in large do
        if i < small.Length && small[i] = b then
            i <- i + 1

    i = small.Length

/// The JSON tree with every `name` member removed at any depth.
let rec private without (name: string) (json: Json) : Json =
    match json with
    | JObject members ->
        JObject(
            members
            |> List.filter (fun (n, _) -> n <> name)
            |> List.map (fun (n, v) -> n, without name v)
        )
    | JArray items -> JArray(items |> List.map (without name))
    | other -> other

[<Fact>]
let ``strip_cache_control only deletes bytes, exactly the cache_control members`` () =
    let case =
        gen {
            let! tree = anthropicTree
            let! body = renderJson tree
            let! expected = renderJson (without "cache_control" tree)
            return body, expected
        }

    Check.property (
        Prop.forAll (Check.arb case) (fun (body, expected) ->
            let bytes = Encoding.UTF8.GetBytes body

            let edited =
                match Transformers.applyRequest Transform.StripCacheControl None bytes with
                | StepOutcome.Changed(edited, false) -> edited
                | StepOutcome.Unchanged -> bytes
                | other -> failwith $"%A{other}"

            Assert.True(isSubsequence edited bytes)
            use wanted = JsonDocument.Parse expected
            use got = JsonDocument.Parse edited
            Assert.True(JsonElement.DeepEquals(wanted.RootElement, got.RootElement)))
    )

/// A top-level set: every other member keeps its bytes and its place; the set member has the new value.
[<Fact>]
let ``top-level sets leave every other member's bytes as they were`` () =
    let sets =
        Gen.oneof [
            Gen.choose (1, 100000)
            |> Gen.map (fun n -> Transform.MaxTokens(None, Some(int64 n)), "max_tokens")
            Gen.constant (Transform.ToolChoice("any", None, false), "tool_choice")
            Gen.constant (
                Transform.Sampling {
                    sampling with
                        Temperature = Some 0.25m
                },
                "temperature"
            )
            modelName
            |> Gen.map (fun m -> Transform.RenameModel([], Some(m + "-x")), "model")
        ]

    Check.property (
        Prop.forAll (Check.arb (Gen.zip anthropicRequest sets)) (fun (body, (transform, name)) ->
            let bytes = Encoding.UTF8.GetBytes body

            match Transformers.applyRequest transform None bytes with
            | StepOutcome.Changed(edited, false) ->
                let before = members bytes |> List.filter (fun (n, _) -> n <> name)
                let after = members edited |> List.filter (fun (n, _) -> n <> name)
                Assert.Equal<(string * byte array) list>(before, after)
                // the bytes outside the object's members (its whitespace around) are kept too
                Assert.Equal(bytes[0], edited[0])
                Assert.Equal(bytes[bytes.Length - 1], edited[edited.Length - 1])
            | StepOutcome.Unchanged -> ()
            | other -> failwith $"%A{other}")
    )

[<Fact>]
let ``drop_fields leaves the other members' bytes and order`` () =
    Check.property (
        Prop.forAll (Check.arb anthropicRequest) (fun body ->
            let bytes = Encoding.UTF8.GetBytes body
            let dropped = [ "system"; "temperature" ]

            let edited =
                match Transformers.applyRequest (Transform.DropFields(dropped, false)) None bytes with
                | StepOutcome.Changed(edited, false) -> edited
                | StepOutcome.Unchanged -> bytes
                | other -> failwith $"%A{other}"

            Assert.True(isSubsequence edited bytes)

            Assert.Equal<(string * byte array) list>(
                members bytes |> List.filter (fun (n, _) -> not (List.contains n dropped)),
                members edited
            ))
    )

[<Fact>]
let ``tool JSON repair always yields an object or gives up, and keeps valid objects`` () =
    Check.property (
        Prop.forAll (Check.arb (Gen.zip (jsonValue 8 |> Gen.bind renderJson) (Gen.choose (0, 40)))) (fun (json, cut) ->
            let text =
                if cut < json.Length then
                    json.Substring(0, json.Length - cut)
                else
                    json

            match ToolJsonRepair.repair text with
            | Some repaired ->
                use document = JsonDocument.Parse repaired
                Assert.Equal(JsonValueKind.Object, document.RootElement.ValueKind)
            | None -> ()

            let valid =
                try
                    use document = JsonDocument.Parse json
                    document.RootElement.ValueKind = JsonValueKind.Object
                with :? JsonException ->
                    false

            if valid then
                Assert.Equal(Some json, ToolJsonRepair.repair json))
    )

// ---------------------------
// One scan for many steps
// ---------------------------

/// A body, or that body broken: cut short, or one byte replaced by a structural one.
let private maybeBroken: Gen<byte array> =
    gen {
        let! tree, _ = requestBody
        let! text = renderJson tree
        let bytes = Encoding.UTF8.GetBytes text
        let! at = Gen.choose (0, bytes.Length - 1)

        let! b =
            Gen.elements [
                '{'B
                '}'B
                '['B
                ']'B
                ','B
                ':'B
                '"'B
                '\\'B
                ' 'B
                '1'B
                't'B
                0xC3uy
                0x80uy
            ]

        return!
            Gen.frequency [
                3, Gen.constant bytes
                1, Gen.constant bytes[.. at - 1]
                1,
                Gen.constant (
                    let copy = Array.copy bytes
                    copy[at] <- b
                    copy
                )
            ]
    }

[<Fact>]
let ``the fast member scan gives the reader's answer, or leaves the body to it`` () =
    let wanted =
        Gen.elements [ []; [ "model" ]; [ "max_tokens"; "metadata" ]; [ "mode"; "system"; "tools" ] ]

    Check.property (
        Prop.forAll (Check.arb (Gen.zip3 maybeBroken wanted (Gen.elements [ 1; 2; 512 ]))) (fun (body, wanted, depth) ->
            let expected = JsonSpans.scanReader (ReadOnlySpan body) depth wanted
            Assert.Equal(expected, JsonSpans.scan (ReadOnlySpan body) depth wanted))
    )

/// Steps that meet each other: sets and removals of the same members, deep removals, system edits.
let private anyRequestStep: Gen<Transform> =
    Gen.frequency [
        6, validityPreserving
        1, Gen.constant (Transform.DropFields([ "max_tokens"; "temperature" ], false))
        1, Gen.constant (Transform.DropFields([ "tool_choice"; "system" ], false))
        1, Gen.constant (Transform.DropFields([ "text"; "cache_control" ], true))
        1, Gen.constant (Transform.DropFields([ "type" ], true))
        1, Gen.constant (Transform.ToolChoice("tool", Some "missing", false))
        1, Gen.constant (Transform.ReasoningEffort(4096L, 16384L))
    ]

/// The steps one after another, each over the body the previous one made: what fusing must equal.
let private oneByOne (steps: PipelineStep list) (thinking: byte array option) (body: byte array) : PipelineRun =
    steps
    |> List.fold
        (fun (run: PipelineRun) step ->
            if run.Failure.IsSome then
                run
            else
                Pipeline.record run step (Transformers.applyRequest step.Transform thinking run.Body))
        (Pipeline.start body)

[<Fact>]
let ``fused steps give exactly what the steps give one after another`` () =
    let thinking =
        Gen.elements [
            None
            Some(Encoding.UTF8.GetBytes """{"type":"enabled","budget_tokens":2000}""")
            Some(Encoding.UTF8.GetBytes """{"type":"adaptive"}""")
        ]

    let case =
        Gen.zip3 anthropicRequest (Gen.listOf anyRequestStep |> Gen.resize 5) thinking

    Check.property (
        Prop.forAll (Check.arb case) (fun (body, transforms, thinking) ->
            let bytes = Encoding.UTF8.GetBytes body
            let steps = transforms |> List.map step
            let expected = oneByOne steps thinking bytes
            let run = Pipeline.runBuiltIn steps "openai" thinking (Pipeline.start bytes)
            Assert.DoesNotContain(expected.Reports, fun r -> r.IsNotApplicable)
            Assert.Equal<byte array>(expected.Body, run.Body)
            Assert.Equal(expected.Changed, run.Changed)
            Assert.Equal<StepReport list>(expected.Reports, run.Reports)
            Assert.Equal(expected.Failure, run.Failure)

            // when fusing answers, each outcome is the step's own, the final body on every edit
            match Transformers.applyFused transforms thinking bytes with
            | Some outcomes ->
                Assert.Equal(transforms.Length, outcomes.Length)

                for outcome, report in List.zip outcomes expected.Reports do
                    match outcome, report with
                    | StepOutcome.Changed(edited, false), StepReport.Applied(_, false) ->
                        Assert.Equal<byte array>(expected.Body, edited)
                    | StepOutcome.Unchanged, StepReport.Unchanged _ -> ()
                    | other -> failwith $"%A{other}"
            | None -> ()
            // the input is never written into
            Assert.Equal(body, Encoding.UTF8.GetString bytes))
    )

// ---------------------------
// The wanted-members scan against the full one
// ---------------------------

/// A request with some of its members (and cache_control markers) repeated: duplicate keys at the top level and
/// inside blocks.
let private duplicated: Gen<string> =
    gen {
        let! tree = anthropicTree

        let! twice =
            match tree with
            | JObject members ->
                gen {
                    let! extra = Gen.subListOf members
                    let! order = Gen.shuffle (members @ extra @ [ "cache_control", cacheControl ])
                    return JObject(List.ofArray order)
                }
            | other -> Gen.constant other

        return! renderJson twice
    }

/// Bodies for the scans: requests as clients send them, with duplicates, any JSON objects, broken ones.
let private scanBodies: Gen<byte array> =
    Gen.frequency [
        2, anthropicRequest |> Gen.map Encoding.UTF8.GetBytes
        2, duplicated |> Gen.map Encoding.UTF8.GetBytes
        2, maybeBroken
    ]

[<Fact>]
let ``the wanted-members scan lists each object's wanted members, their neighbours, its first and last`` () =
    let wanted =
        Gen.elements [
            [ "max_tokens"; "cache_control"; "metadata" ]
            [ "cache_control" ]
            [ "model" ]
            [ "type"; "text" ]
            [ "max_tokens"; "metadata"; "mode"; "system"; "tools" ]
            [ "temperature"; "top_p"; "top_k"; "tools"; "tool_choice" ]
        ]

    Check.property (
        Prop.forAll (Check.arb (Gen.zip3 scanBodies wanted (Gen.elements [ 1; 2; 512 ]))) (fun (body, wanted, depth) ->
            let kept (members: JsonMember list) =
                let all = Array.ofList members

                let named i =
                    i >= 0 && i < all.Length && all[i].Name <> ""

                all
                |> Array.indexed
                |> Array.filter (fun (i, _) ->
                    i = 0 || i = all.Length - 1 || named i || named (i - 1) || named (i + 1))
                |> Array.map snd
                |> List.ofArray

            let expected =
                JsonSpans.scan (ReadOnlySpan body) depth wanted
                |> Result.map (fun (objects, openAt, closeAt) -> List.map kept objects, openAt, closeAt)

            let actual = JsonSpans.scanWanted (ReadOnlySpan body) depth wanted
            Assert.True((expected = actual), $"expected %A{expected}\nactual %A{actual}"))
    )

[<Fact>]
let ``steps over the wanted-members scan edit exactly as over the full scan`` () =
    let thinking =
        Gen.elements [
            None
            Some(Encoding.UTF8.GetBytes """{"type":"enabled","budget_tokens":2000}""")
        ]

    let case = Gen.zip3 scanBodies (Gen.listOf anyRequestStep |> Gen.resize 5) thinking

    Check.property (
        Prop.forAll (Check.arb case) (fun (bytes, transforms, thinking) ->
            let expected = Transformers.applyFusedWith true transforms thinking bytes
            let actual = Transformers.applyFusedWith false transforms thinking bytes
            Assert.True((expected = actual), $"fused: expected %A{expected}\nactual %A{actual}")

            for transform in transforms do
                let expected = Transformers.applyRequestWith true transform thinking bytes
                let actual = Transformers.applyRequestWith false transform thinking bytes
                Assert.True((expected = actual), $"%A{transform}: expected %A{expected}\nactual %A{actual}"))
    )
