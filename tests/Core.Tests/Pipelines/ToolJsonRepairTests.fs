module CcRelay.Core.Tests.Pipelines.ToolJsonRepairTests

open System
open System.Text
open System.Text.Json
open CcRelay.Core
open Xunit

[<Theory>]
[<InlineData("""{"a":1}""", """{"a":1}""")>]
[<InlineData("""{"a":1,}""", """{"a":1}""")>]
[<InlineData("""{"a":[1,2,],}""", """{"a":[1,2]}""")>]
[<InlineData("""{"path":"/tmp/x""", """{"path":"/tmp/x"}""")>]
[<InlineData("""{"a":{"b":[1""", """{"a":{"b":[1]}}""")>]
[<InlineData("```json\n{\"a\":1}\n```", """{"a":1}""")>]
[<InlineData("""Sure! {"a":True,"b":None}""", """{"a":true,"b":null}""")>]
[<InlineData("""{"a":""", """{"a":null}""")>]
[<InlineData("""{"a":1} trailing""", """{"a":1}""")>]
[<InlineData("", "{}")>]
let ``repair mends the usual breakage`` (broken: string, repaired: string) =
    Assert.Equal(Some repaired, ToolJsonRepair.repair broken)

[<Fact>]
let ``repair gives up on what is not an object`` () =
    Assert.Equal(None, ToolJsonRepair.repair "no json here")
    Assert.Equal(None, ToolJsonRepair.repair "[1,2]")

[<Fact>]
let ``a translated answer's raw arguments are repaired`` () =
    let answer =
        """{"id":"m","type":"message","content":[{"type":"text","text":"x"},{"type":"tool_use","id":"t","name":"f","input":{"_raw_arguments":"{\"q\":\"a\","}}],"stop_reason":"tool_use"}"""

    match ToolJsonRepair.answer (ReadOnlySpan(Encoding.UTF8.GetBytes answer)) with
    | Some repaired, 1 ->
        use document = JsonDocument.Parse repaired
        let content = document.RootElement.GetProperty "content"
        let input = content[1].GetProperty "input"
        Assert.Equal("a", input.GetProperty("q").GetString())
    | other -> failwith $"%A{other}"

[<Fact>]
let ``an answer without broken tool input is left as it is`` () =
    let answer =
        """{"content":[{"type":"tool_use","id":"t","name":"f","input":{"q":1}}]}"""

    Assert.Equal((None, 0), ToolJsonRepair.answer (ReadOnlySpan(Encoding.UTF8.GetBytes answer)))

let private frame (name: string) (data: string) = $"event: %s{name}\ndata: %s{data}\n\n"

/// Feeds the frames through the stream repair and returns the SSE that comes out.
let private stream (frames: string list) : string * int =
    let state, out =
        frames
        |> List.fold
            (fun (state, out: StringBuilder) f ->
                let state, bytes =
                    ToolJsonRepair.frame state (ReadOnlySpan(Encoding.UTF8.GetBytes f))

                state, out.Append(Encoding.UTF8.GetString bytes))
            (ToolJsonRepair.start, StringBuilder())

    out.ToString(), ToolJsonRepair.repaired state

let private toolStart =
    frame
        "content_block_start"
        """{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"""

let private delta (json: string) =
    frame
        "content_block_delta"
        ("""{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"""
         + JsonSerializer.Serialize json
         + "}}")

let private stop =
    frame "content_block_stop" """{"type":"content_block_stop","index":1}"""

[<Fact>]
let ``a streamed tool input is sent whole at its block's end, repaired`` () =
    let text =
        frame
            "content_block_delta"
            """{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"""

    let out, repaired =
        stream [ text; toolStart; delta "{\"q\": \"a\""; delta ", \"n\": 1,"; stop ]

    Assert.Equal(1, repaired)

    let expected =
        text
        + toolStart
        + frame
            "content_block_delta"
            """{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\u0022q\u0022: \u0022a\u0022, \u0022n\u0022: 1}"}}"""
        + stop

    Assert.Equal(expected, out)

[<Fact>]
let ``a valid streamed tool input comes out unchanged, in one delta`` () =
    let out, repaired = stream [ toolStart; delta "{\"q\":"; delta "1}"; stop ]
    Assert.Equal(0, repaired)
    Assert.Contains("\"partial_json\":\"{\\u0022q\\u0022:1}\"", out)
    Assert.EndsWith(stop, out)

[<Fact>]
let ``frames that are not tool input pass byte for byte`` () =
    let frames = [
        frame "message_start" """{"type":"message_start","message":{}}"""
        ": comment\n\n"
        frame "ping" """{"type": "ping"}"""
    ]

    Assert.Equal((String.concat "" frames, 0), stream frames)
