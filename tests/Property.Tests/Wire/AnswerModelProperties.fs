module CcRelay.Core.Properties.AnswerModelProperties

open System
open System.Text
open System.Text.Json
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators

/// Rendered members (`"key":value`), on one line (an SSE `data:` line holds no line break; none is inside a literal).
let private membersText (members: (string * Json) list) : Gen<string list> =
    members
    |> List.map (fun (key, value) ->
        Gen.map2
            (fun k v -> k + ":" + v)
            (jsonStringLiteral key)
            (renderJson value |> Gen.map (fun v -> v.Replace("\r", " ").Replace("\n", " "))))
    |> Gen.sequenceToList

let private joinWith (separator: string) (parts: string list) : string = String.Join(separator, parts)

/// An answer around its `model` string: (text before the literal, the old model, text after it, the new model).
/// Other members (in `message` for a stream, at the top for a JSON answer) hold `model` keys of their own deeper
/// down, and a stream's top level may hold a decoy `model`.
let private around (stream: bool) : Gen<string * string * string * string> =
    gen {
        let! before = topLevelMembers
        let! after = topLevelMembers
        let! old = modelName
        let! renamed = Gen.frequency [ 4, modelName; 1, Gen.constant old ]
        let! beforeText = membersText before
        let! afterText = membersText after
        let! oldLiteral = jsonStringLiteral old
        let inner = if before.IsEmpty then "" else joinWith "," beforeText + ","
        let tail = if after.IsEmpty then "" else "," + joinWith "," afterText

        if not stream then
            return "{" + inner + "\"model\":", oldLiteral, tail + "}", renamed
        else
            let! decoy =
                Gen.elements [ ""; "\"model\":\"decoy\","; "\"model\":{\"model\":\"x\"}," ]

            let! lead =
                Gen.elements [ ""; "event: ping\ndata: {\"type\": \"ping\"}\n\n"; ": comment\n\n" ]

            let! rest =
                Gen.elements [
                    ""
                    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n"
                    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"second\"}}\n\nevent: ping\ndata: {\"ty"
                ]

            return
                lead
                + "event: message_start\ndata: {"
                + decoy
                + "\"type\":\"message_start\",\"message\":{"
                + inner
                + "\"model\":",
                oldLiteral,
                tail + "}}\n\n" + rest,
                renamed
    }

/// Checks a rename: every byte before and after the model literal as it was, the literal now the new model.
let private checkRenamed
    (pre: string)
    (literal: string)
    (post: string)
    (renamed: string)
    (result: RenamedAnswer voption)
    =
    let old = JsonSerializer.Deserialize<string>(literal)

    if old = renamed then
        Assert.True(result.IsNone, "an answer that names the model already is left alone")
    else
        let output = result.Value.Bytes
        let preBytes = Encoding.UTF8.GetBytes pre
        let postBytes = Encoding.UTF8.GetBytes post
        Assert.True(output.Length >= preBytes.Length + postBytes.Length)
        Assert.Equal<byte array>(preBytes, output[.. preBytes.Length - 1])
        Assert.Equal<byte array>(postBytes, output[output.Length - postBytes.Length ..])
        let middle = output[preBytes.Length .. output.Length - postBytes.Length - 1]
        Assert.Equal(renamed, JsonSerializer.Deserialize<string>(ReadOnlySpan middle))
        Assert.Equal(old, result.Value.Was)

[<Fact>]
let ``ofJson changes the top-level model string and no other byte`` () =
    Check.property (
        Prop.forAll (Check.arb (around false)) (fun (pre, literal, post, renamed) ->
            let input = Encoding.UTF8.GetBytes(pre + literal + post)
            checkRenamed pre literal post renamed (AnswerModel.ofJson (ReadOnlySpan input) renamed))
    )

[<Fact>]
let ``ofStreamStart changes message_start's message.model and no other byte`` () =
    Check.property (
        Prop.forAll (Check.arb (around true)) (fun (pre, literal, post, renamed) ->
            let input = Encoding.UTF8.GetBytes(pre + literal + post)
            checkRenamed pre literal post renamed (AnswerModel.ofStreamStart (ReadOnlySpan input) renamed))
    )

[<Fact>]
let ``ofStreamStart leaves a stream alone when message_start is not among its whole events`` () =
    Check.property (
        Prop.forAll (Check.arb (around true)) (fun (pre, literal, post, renamed) ->
            let whole = Encoding.UTF8.GetBytes(pre + literal + post)
            // cut anywhere before the end of message_start's blank line: the event is not whole yet
            let cut =
                Encoding.UTF8.GetByteCount(
                    pre
                    + literal
                    + post.Substring(0, post.IndexOf("}}\n\n", StringComparison.Ordinal) + 3)
                )

            Assert.True((AnswerModel.ofStreamStart (ReadOnlySpan(whole, 0, cut)) renamed).IsNone))
    )
