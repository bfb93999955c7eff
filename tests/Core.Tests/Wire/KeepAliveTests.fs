module CcRelay.Core.Tests.KeepAliveTests

open System.Text
open Xunit
open CcRelay.Core

let private text (bytes: byte array) : string = Encoding.UTF8.GetString bytes

let private sse (events: AnthropicEvent list) : byte array = AnthropicOut.sse events

let private started =
    KeepAlive.pass (KeepAlive.start KeepAliveMode.Events) (sse [ AnthropicEvent.MessageStart("msg_1", "m", 3L) ])
    |> fst

[<Fact>]
let ``before message_start a silence gets a ping: nothing else is valid yet`` () =
    let _, sent = KeepAlive.silence (KeepAlive.start KeepAliveMode.Events)
    Assert.Equal("event: ping\ndata: {\"type\": \"ping\"}\n\n", text sent)

[<Fact>]
let ``an open thinking or text block gets an empty delta of its kind`` () =
    let thinking, _ =
        KeepAlive.pass started (sse [ AnthropicEvent.BlockStart(0, StartedBlock.Thinking) ])

    Assert.Equal(
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"\"}}\n\n",
        text (snd (KeepAlive.silence thinking))
    )

    let text', _ =
        KeepAlive.pass thinking (sse [ AnthropicEvent.BlockStop 0; AnthropicEvent.BlockStart(1, StartedBlock.Text) ])

    Assert.Equal(
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"\"}}\n\n",
        text (snd (KeepAlive.silence text'))
    )

[<Fact>]
let ``an open tool_use block gets a ping: an empty input_json_delta is not sent`` () =
    let tool, _ =
        KeepAlive.pass started (sse [ AnthropicEvent.BlockStart(0, StartedBlock.ToolUse("toolu_1", "Bash")) ])

    Assert.Equal<byte array>(KeepAlive.ping, snd (KeepAlive.silence tool))

[<Fact>]
let ``with no block open the relay opens its own empty thinking block, closes it before the next block and shifts that block's index``
    ()
    =
    let afterSilence, opened = KeepAlive.silence started

    Assert.Equal(
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n"
        + "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"\"}}\n\n",
        text opened
    )

    let _, relayed =
        KeepAlive.pass
            afterSilence
            (sse [
                AnthropicEvent.BlockStart(0, StartedBlock.Text)
                AnthropicEvent.TextDelta(0, "hi")
                AnthropicEvent.BlockStop 0
                AnthropicEvent.MessageDelta("end_turn", Usage.zero)
            ])

    let expected =
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
        + text (
            sse [
                AnthropicEvent.BlockStart(1, StartedBlock.Text)
                AnthropicEvent.TextDelta(1, "hi")
                AnthropicEvent.BlockStop 1
                AnthropicEvent.MessageDelta("end_turn", Usage.zero)
            ]
        )

    Assert.Equal(expected, text relayed)

[<Fact>]
let ``a stream that needs no edit is passed as the same array`` () =
    let bytes =
        sse [
            AnthropicEvent.BlockStart(0, StartedBlock.Text)
            AnthropicEvent.TextDelta(0, "x")
        ]

    Assert.Same(bytes, snd (KeepAlive.pass started bytes))

[<Fact>]
let ``pings mode never sends anything but pings`` () =
    let state =
        KeepAlive.pass (KeepAlive.start KeepAliveMode.Pings) (sse [ AnthropicEvent.MessageStart("msg_1", "m", 3L) ])
        |> fst

    Assert.Equal<byte array>(KeepAlive.ping, snd (KeepAlive.silence state))
