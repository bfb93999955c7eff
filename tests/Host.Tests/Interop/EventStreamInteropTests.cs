using System.Text;
using System.Text.Json.Nodes;
using CcRelay.Core;
using CcRelay.Host.Forwarding;
using Microsoft.FSharp.Collections;

namespace CcRelay.Host.Tests.Interop;

/// <summary>
/// The relay's event-stream code (<see cref="EventStream"/>, <see cref="BedrockAnswer"/>,
/// <see cref="EventStreamWriter"/>) against the AWS SDK for JavaScript's codec: what smithy encodes we read,
/// what we encode smithy reads.
/// </summary>
public sealed class EventStreamInteropTests
{
    private static readonly Guid SomeUuid = new("01234567-89ab-cdef-0123-456789abcdef");

    /// <summary>Every header type, with values at the edges, as our type and as smithy's JSON.</summary>
    private static readonly (string Name, EventStreamHeaderValue Ours, string Type, JsonNode Smithy)[] AllTypes =
    [
        ("t", EventStreamHeaderValue.NewBool(true), "boolean", JsonValue.Create(true)),
        ("f", EventStreamHeaderValue.NewBool(false), "boolean", JsonValue.Create(false)),
        ("byte", EventStreamHeaderValue.NewByte(-128), "byte", JsonValue.Create(-128)),
        ("short", EventStreamHeaderValue.NewShort(short.MaxValue), "short", JsonValue.Create(32767)),
        ("int", EventStreamHeaderValue.NewInt(int.MinValue), "integer", JsonValue.Create(int.MinValue)),
        ("long", EventStreamHeaderValue.NewLong(long.MinValue), "long", JsonValue.Create("-9223372036854775808")),
        ("long2", EventStreamHeaderValue.NewLong(9007199254740993), "long", JsonValue.Create("9007199254740993")),
        ("bin", EventStreamHeaderValue.NewBytes([0, 1, 254, 255]), "binary", JsonValue.Create("AAH+/w==")),
        ("empty", EventStreamHeaderValue.NewBytes([]), "binary", JsonValue.Create("")),
        ("str", EventStreamHeaderValue.NewString("héllo “wörld” 🌍"), "string", JsonValue.Create("héllo “wörld” 🌍")),
        ("ts", EventStreamHeaderValue.NewTimestamp(1700000000123), "timestamp", JsonValue.Create(1700000000123)),
        ("uuid", EventStreamHeaderValue.NewUuid(SomeUuid), "uuid", JsonValue.Create("01234567-89ab-cdef-0123-456789abcdef")),
    ];

    private static EventStreamMessage Message(IEnumerable<(string Name, EventStreamHeaderValue Value)> headers, byte[] payload) =>
        new(ListModule.OfSeq(headers.Select(h => Tuple.Create(h.Name, h.Value))), payload);

    private static List<EventStreamMessage> ReadAll(byte[] frames)
    {
        var messages = new List<EventStreamMessage>();
        var offset = 0;
        while (offset < frames.Length)
        {
            var read = EventStream.tryRead(frames.AsSpan(offset));
            var message = Assert.IsType<EventStreamRead.Message>(read);
            messages.Add(message.Item1);
            offset += message.Consumed;
        }

        return messages;
    }

    private static string SseOf(IEnumerable<EventStreamMessage> messages)
    {
        var sse = new StringBuilder();
        foreach (var message in messages)
        {
            switch (BedrockAnswer.ofMessage(message))
            {
                case BedrockFrame.Event frame:
                    sse.Append(Encoding.UTF8.GetString(frame.Sse));
                    break;
                case BedrockFrame.Error frame:
                    sse.Append(Encoding.UTF8.GetString(frame.Sse));
                    break;
            }
        }

        return sse.ToString();
    }

    [Fact]
    public async Task SmithyEncoded_EveryHeaderType_DecodesToTheSameValues()
    {
        var frames = await SmithyEventStream.EncodeAsync(new SmithyMessage(
            [.. AllTypes.Select(h => new SmithyHeader(h.Name, h.Type, h.Smithy))],
            Encoding.UTF8.GetBytes("payload")));

        var message = Assert.Single(ReadAll(frames));
        Assert.Equal(AllTypes.Select(h => Tuple.Create(h.Name, h.Ours)), message.Headers);
        Assert.Equal("payload"u8.ToArray(), message.Payload);
    }

    [Fact]
    public async Task OurEncoding_EveryHeaderType_SmithyDecodesToTheSameValues()
    {
        var payload = Enumerable.Range(0, 5000).Select(i => (byte)i).ToArray();
        var frames = EventStream.encode(Message(AllTypes.Select(h => (h.Name, h.Ours)), payload));

        var message = Assert.Single(await SmithyEventStream.DecodeAsync(frames));
        Assert.Equal(
            AllTypes.Select(h => SmithyEventStream.Show(new SmithyHeader(h.Name, h.Type, h.Smithy))),
            message.Headers.Select(SmithyEventStream.Show));
        Assert.Equal(payload, message.Payload);
    }

    [Fact]
    public async Task SmithyEncoded_BedrockAnswer_DecodesToTheAnthropicSse()
    {
        var frames = await SmithyEventStream.EncodeAsync(BedrockStreams.Answer());

        var messages = ReadAll(frames);

        Assert.Equal(BedrockStreams.Events.Length + 1, messages.Count);
        Assert.Equal(BedrockStreams.Sse(BedrockStreams.Events), SseOf(messages));
    }

    [Fact]
    public async Task SmithyEncoded_ExceptionFrame_IsTheMappedErrorEvent()
    {
        var frames = await SmithyEventStream.EncodeAsync(
            BedrockStreams.Chunk(BedrockStreams.Events[0]),
            BedrockStreams.Exception("throttlingException", "Too many tokens, please wait before trying again."));

        var messages = ReadAll(frames);

        var error = Assert.IsType<BedrockFrame.Error>(BedrockAnswer.ofMessage(messages[1]));
        Assert.Equal(429, error.Status);
        Assert.Equal(ErrorType.RateLimit, error.ErrorType);
        Assert.Equal("Too many tokens, please wait before trying again.", error.Message);
        Assert.Equal(
            BedrockStreams.Sse(BedrockStreams.Events.Take(1))
            + "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"Too many tokens, please wait before trying again.\"}}\n\n",
            SseOf(messages));
    }

    [Fact]
    public async Task ChunkOfSseEvent_SmithyDecodes_TheChunkBedrockClientsRead()
    {
        var frames = BedrockStreams.Events
            .Select(e => $"event: {JsonNode.Parse(e)!["type"]}\r\ndata: {e}\r\n\r\n")
            .Select(sse => EventStreamWriter.ChunkOfSseEvent(Encoding.UTF8.GetBytes(sse))!)
            .SelectMany(frame => frame)
            .ToArray();

        var messages = await SmithyEventStream.DecodeAsync(frames);

        Assert.Equal(BedrockStreams.Events.Length, messages.Count);
        foreach (var (message, expected) in messages.Zip(BedrockStreams.Events))
        {
            Assert.Equal(
                [":event-type:string=\"chunk\"", ":content-type:string=\"application/json\"", ":message-type:string=\"event\""],
                message.Headers.Select(SmithyEventStream.Show));
            var payload = JsonNode.Parse(message.Payload)!.AsObject();
            Assert.Equal(["bytes"], payload.Select(p => p.Key));
            Assert.Equal(expected, Encoding.UTF8.GetString(Convert.FromBase64String(payload["bytes"]!.GetValue<string>())));
        }
    }

    [Fact]
    public async Task ExceptionOf_SmithyDecodes_TheExceptionFrame()
    {
        var frame = EventStream.encode(BedrockAnswer.exceptionOf(ErrorType.Overloaded, "Overloaded \"now\""));

        var message = Assert.Single(await SmithyEventStream.DecodeAsync(frame));

        Assert.Equal(
            [":exception-type:string=\"serviceUnavailableException\"", ":content-type:string=\"application/json\"", ":message-type:string=\"exception\""],
            message.Headers.Select(SmithyEventStream.Show));
        Assert.Equal("Overloaded \"now\"", JsonNode.Parse(message.Payload)!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task OurEncoding_RoundTripsThroughSmithy_ByteForByte()
    {
        var ours = BedrockStreams.Events
            .Select(e => EventStream.encode(BedrockAnswer.chunkOfEvent(Encoding.UTF8.GetBytes(e))))
            .SelectMany(frame => frame)
            .ToArray();

        var decoded = await SmithyEventStream.DecodeAsync(ours);
        var reencoded = await SmithyEventStream.EncodeAsync([.. decoded]);

        Assert.Equal(ours, reencoded);
    }
}
