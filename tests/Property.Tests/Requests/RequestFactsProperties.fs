module CcRelay.Core.Properties.RequestFactsProperties

open System
open System.Text
open System.Text.Json
open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators

/// Structural, order-sensitive comparison of a JSON tree with what System.Text.Json read.
let rec private matches (expected: Json) (actual: JsonElement) : bool =
    match expected with
    | JNull -> actual.ValueKind = JsonValueKind.Null
    | JBool true -> actual.ValueKind = JsonValueKind.True
    | JBool false -> actual.ValueKind = JsonValueKind.False
    | JNumber n -> actual.ValueKind = JsonValueKind.Number && actual.GetRawText() = n
    | JString s -> actual.ValueKind = JsonValueKind.String && actual.GetString() = s
    | JArray items ->
        actual.ValueKind = JsonValueKind.Array
        && actual.GetArrayLength() = items.Length
        && Seq.forall2 matches items (actual.EnumerateArray())
    | JObject members ->
        actual.ValueKind = JsonValueKind.Object
        && (let properties = actual.EnumerateObject() |> List.ofSeq

            properties.Length = members.Length
            && List.forall2
                (fun (key, value) (p: JsonProperty) -> p.Name = key && matches value p.Value)
                members
                properties)

let private withTopLevelModel (model: string) (json: Json) : Json =
    match json with
    | JObject members ->
        members
        |> List.map (fun (key, value) -> if key = "model" then key, JString model else key, value)
        |> JObject
    | other -> other

let private expectedStream (json: Json) : bool =
    match json with
    | JObject members ->
        members
        |> List.filter (fun (key, _) -> key = "stream")
        |> List.tryLast
        |> Option.exists (fun (_, value) -> value = JBool true)
    | _ -> false

let private inspectBytes (body: byte array) : Result<RequestFacts, BodyError> =
    RequestFacts.inspect (ReadOnlySpan body)

let private renderedBody =
    gen {
        let! json, model = requestBody
        let! text = renderJson json
        let! newModel = modelName
        return json, model, Encoding.UTF8.GetBytes text, newModel
    }
    |> Check.arb

[<Fact>]
let ``inspect finds the top-level model and stream flag of any body`` () =
    Check.property (
        Prop.forAll renderedBody (fun (json, model, body, _) ->
            match inspectBytes body with
            | Ok facts ->
                Assert.Equal(model, facts.Model)
                Assert.Equal(expectedStream json, facts.Stream)
                // the located token is a string literal that decodes to the model
                let token =
                    body[facts.ModelTokenStart .. facts.ModelTokenStart + facts.ModelTokenLength - 1]

                Assert.Equal(model, JsonSerializer.Deserialize<string>(ReadOnlySpan token))
            | Error e -> failwith $"expected facts, got %A{e}")
    )

[<Fact>]
let ``withModel changes the model value and nothing else`` () =
    Check.quick
        500
        (Prop.forAll renderedBody (fun (json, _, body, newModel) ->
            let facts = Result.defaultWith (fun e -> failwith $"%A{e}") (inspectBytes body)
            let result = RequestFacts.withModel (ReadOnlySpan body) facts newModel

            // every byte before and after the model token is the original's
            let tailLength = body.Length - facts.ModelTokenStart - facts.ModelTokenLength
            Assert.Equal<byte array>(body[.. facts.ModelTokenStart - 1], result[.. facts.ModelTokenStart - 1])
            Assert.Equal<byte array>(body[body.Length - tailLength ..], result[result.Length - tailLength ..])

            // read by System.Text.Json, it is the original document with only the model replaced
            use doc = JsonDocument.Parse(result)
            Assert.True(matches (withTopLevelModel newModel json) doc.RootElement, Encoding.UTF8.GetString result)

            // and the relay reads the new model back at the same place
            match inspectBytes result with
            | Ok again ->
                Assert.Equal(newModel, again.Model)
                Assert.Equal(facts.ModelTokenStart, again.ModelTokenStart)
                Assert.Equal(result.Length - tailLength - facts.ModelTokenStart, again.ModelTokenLength)
                Assert.Equal(facts.Stream, again.Stream)
            | Error e -> failwith $"rewritten body refused: %A{e}"))

[<Fact>]
let ``withModel is idempotent and reversible`` () =
    Check.property (
        Prop.forAll renderedBody (fun (_, model, body, newModel) ->
            let rewrite (bytes: byte array) (m: string) =
                let facts = Result.defaultWith (fun e -> failwith $"%A{e}") (inspectBytes bytes)
                RequestFacts.withModel (ReadOnlySpan bytes) facts m

            let once = rewrite body newModel
            Assert.Equal<byte array>(once, rewrite once newModel)
            let back = rewrite once model
            use original = JsonDocument.Parse(body)
            use restored = JsonDocument.Parse(back)
            Assert.True(JsonElement.DeepEquals(original.RootElement, restored.RootElement)))
    )

// ---------------------------
// Refusals
// ---------------------------

let private isNotJson (result: Result<RequestFacts, BodyError>) : bool =
    match result with
    | Error(BodyError.NotJson _) -> true
    | _ -> false

[<Fact>]
let ``a truncated or garbled body is NotJson`` () =
    let broken =
        gen {
            let! json, _ = requestBody
            let! text = renderJson json
            let body = Encoding.UTF8.GetBytes text
            let lastBrace = Array.findIndexBack ((=) (byte '}')) body

            return!
                Gen.oneof [
                    Gen.choose (0, lastBrace - 1) |> Gen.map (fun cut -> body[.. cut - 1])
                    Gen.elements [ "x"; "<"; "{"; "'"; "}" ]
                    |> Gen.map (fun junk -> Array.append (Encoding.UTF8.GetBytes junk) body)
                    Gen.elements [ "x"; "{}"; "}"; ","; "\"" ]
                    |> Gen.map (fun junk -> Array.append body (Encoding.UTF8.GetBytes junk))
                    Gen.choose (0, body.Length - 1)
                    |> Gen.map (fun at -> Array.concat [ body[.. at - 1]; [| 0xFFuy |]; body[at..] ])
                ]
        }
        |> Check.arb

    Check.property (
        Prop.forAll broken (fun body -> Assert.True(isNotJson (inspectBytes body), sprintf "%A" (inspectBytes body)))
    )

[<Fact>]
let ``a JSON value that is not an object is NotAnObject`` () =
    let notAnObject =
        Gen.sized jsonValue
        |> Gen.map (fun json ->
            match json with
            | JObject members -> JArray [ JObject members ]
            | other -> other)
        |> Gen.bind renderJson
        |> Check.arb

    Check.property (
        Prop.forAll notAnObject (fun text ->
            Assert.Equal(Error BodyError.NotAnObject, inspectBytes (Encoding.UTF8.GetBytes text)))
    )

[<Fact>]
let ``an object without a top-level model is MissingModel, whatever is nested`` () =
    let noModel = topLevelMembers |> Gen.map JObject |> Gen.bind renderJson |> Check.arb

    Check.property (
        Prop.forAll noModel (fun text ->
            Assert.Equal(Error BodyError.MissingModel, inspectBytes (Encoding.UTF8.GetBytes text)))
    )

[<Fact>]
let ``a top-level model that is not a non-empty string is ModelNotString`` () =
    let badModel =
        gen {
            let! members = topLevelMembers

            let! value =
                Gen.sized jsonValue
                |> Gen.map (fun v ->
                    match v with
                    | JString _ -> JString ""
                    | other -> other)

            let! at = Gen.choose (0, members.Length)
            let before, after = List.splitAt at members
            return! renderJson (JObject(before @ [ "model", value ] @ after))
        }
        |> Check.arb

    Check.property (
        Prop.forAll badModel (fun text ->
            Assert.Equal(Error BodyError.ModelNotString, inspectBytes (Encoding.UTF8.GetBytes text)))
    )

[<Fact>]
let ``inspect answers every body with a verdict, never an exception`` () =
    let anyBytes =
        gen {
            let! json, _ = requestBody
            let! text = renderJson json
            let body = Encoding.UTF8.GetBytes text

            return!
                Gen.oneof [
                    // arbitrary bytes
                    Gen.arrayOf (Gen.choose (0, 255) |> Gen.map byte)
                    // a body with a few bytes overwritten
                    Gen.listOf (Gen.zip (Gen.choose (0, body.Length - 1)) (Gen.choose (0, 255)))
                    |> Gen.map (fun edits ->
                        let copy = Array.copy body

                        for at, value in edits do
                            copy[at] <- byte value

                        copy)
                    // a lone surrogate escape spliced into the body (often inside a string)
                    Gen.zip (Gen.choose (0, body.Length)) (Gen.elements [ "\\ud800"; "\\udfff"; "\\ud83d" ])
                    |> Gen.map (fun (at, escape) ->
                        Array.concat [ body[.. at - 1]; Encoding.UTF8.GetBytes escape; body[at..] ])
                ]
        }
        |> Check.arb

    Check.quick 1000 (Prop.forAll anyBytes (fun body -> inspectBytes body |> ignore))

// ---------------------------
// The fast path and the reader agree
// ---------------------------

/// `messages` as Claude Code sends them: turns whose `content` holds text, tool and thinking blocks, the
/// thinking ones signed (or with `data`) or not, with keys in any order and random extras.
let private messagesValue: FsCheck.Gen<Json> =
    let block =
        gen {
            let! kind =
                Gen.elements [ "thinking"; "redacted_thinking"; "text"; "tool_use"; "thinkingX"; "" ]

            let! signature = Gen.elements [ None; Some ""; Some "sig-EqWb"; Some "c2lnbmF0dXJl" ]
            let! signatureKey = Gen.elements [ "signature"; "data"; "signatures" ]
            let! extra = Gen.sized jsonValue |> Gen.resize 4

            let members =
                [ "type", JString kind; "text", extra ]
                @ (match signature with
                   | Some s -> [ signatureKey, JString s ]
                   | None -> [])

            let! shuffled = Gen.shuffle (Array.ofList members)
            return JObject(List.ofArray shuffled)
        }

    let turn =
        gen {
            let! role = Gen.elements [ "user"; "assistant" ]
            let! blocks = Gen.listOf block |> Gen.resize 3
            let! asText = Gen.frequency [ 4, Gen.constant false; 1, Gen.constant true ]
            let content = if asText then JString "plain text turn" else JArray blocks
            return JObject [ "role", JString role; "content", content ]
        }

    Gen.listOf turn |> Gen.resize 4 |> Gen.map JArray

/// A request with `messages` among its other members, the model and sometimes `max_tokens` and `stream`.
let private claudeCodeBody: FsCheck.Gen<byte array> =
    gen {
        let! json, _ = requestBody
        let! messages = messagesValue

        let! maxTokens =
            Gen.elements [ None; Some "32000"; Some "0"; Some "-5"; Some "1.5"; Some "99999999999" ]

        let members =
            match json with
            | JObject members -> members
            | other -> [ "x", other ]

        let extras =
            [ "messages", messages ]
            @ (match maxTokens with
               | Some n -> [ "max_tokens", JNumber n ]
               | None -> [])

        let! at = Gen.choose (0, members.Length)
        let before, after = List.splitAt at members
        let! text = renderJson (JObject(before @ extras @ after))
        return Encoding.UTF8.GetBytes text
    }

/// A Claude-Code-like body, or one broken in one of the ways a client or a network can break it.
let private anyRequestBytes: FsCheck.Gen<byte array> =
    gen {
        let! body = claudeCodeBody

        return!
            Gen.frequency [
                3, Gen.constant body
                1, Gen.choose (0, body.Length - 1) |> Gen.map (fun cut -> body[.. cut - 1])
                1,
                Gen.zip (Gen.choose (0, body.Length - 1)) (Gen.elements ("{}[]\",:\\ 0-etrufalsn\u0001x".ToCharArray()))
                |> Gen.map (fun (at, c) ->
                    let copy = Array.copy body
                    copy[at] <- byte c
                    copy)
                1,
                Gen.zip
                    (Gen.choose (0, body.Length))
                    (Gen.elements [ "\\ud800"; "\\u00"; "\\x"; ","; "]"; "}"; " 01"; "1." ])
                |> Gen.map (fun (at, junk) -> Array.concat [ body[.. at - 1]; Encoding.UTF8.GetBytes junk; body[at..] ])
            ]
    }

[<Fact>]
let ``inspect gives exactly what the reader gives, for any body`` () =
    Check.quick
        1000
        (Prop.forAll (Check.arb anyRequestBytes) (fun body ->
            Assert.Equal(RequestFacts.inspectWithReader (ReadOnlySpan body), inspectBytes body)))

[<Fact>]
let ``the fast path answers only with the reader's facts`` () =
    Check.quick
        1000
        (Prop.forAll (Check.arb anyRequestBytes) (fun body ->
            match RequestFacts.tryFast (ReadOnlySpan body) with
            | ValueSome facts -> Assert.Equal(Ok facts, RequestFacts.inspectWithReader (ReadOnlySpan body))
            | ValueNone -> ()))

/// The reference for `inspectWithStages`: the reader's facts, then the reader's stage facts in a pass of their own.
let private readerWithStages (body: byte array) : Result<RequestFacts, BodyError> =
    RequestFacts.inspectWithReader (ReadOnlySpan body)
    |> Result.map (fun facts -> {
        facts with
            Stage = RequestFacts.readStageFacts (ReadOnlySpan body)
    })

[<Fact>]
let ``with the stage facts, the one pass gives exactly what the reader's two passes give, for any body`` () =
    Check.quick
        1000
        (Prop.forAll (Check.arb anyRequestBytes) (fun body ->
            Assert.Equal(readerWithStages body, RequestFacts.inspectWithStages (ReadOnlySpan body))

            match RequestFacts.tryFastWith true (ReadOnlySpan body) with
            | ValueSome facts -> Assert.Equal(Ok facts, readerWithStages body)
            | ValueNone -> ()))
