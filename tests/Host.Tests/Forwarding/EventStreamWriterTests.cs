using System.Text;
using System.Text.Json.Nodes;
using CcRelay.Core;
using CcRelay.Host.Forwarding;

namespace CcRelay.Host.Tests.Forwarding;

/// <summary><see cref="EventStreamWriter.ChunkOfSseEvent"/>: one SSE event's data as a Bedrock chunk frame.</summary>
public sealed class EventStreamWriterTests
{
    /// <summary>The event JSON carried by an encoded chunk frame, checking the frame on the way.</summary>
    private static string EventOf(byte[] frame)
    {
        var read = Assert.IsType<EventStreamRead.Message>(EventStream.tryRead(frame));
        Assert.Equal(frame.Length, read.Consumed);
        Assert.Equal("chunk", EventStream.stringHeader(":event-type", read.Item1)!.Value);
        var payload = JsonNode.Parse(read.Item1.Payload)!;
        return Encoding.UTF8.GetString(Convert.FromBase64String(payload["bytes"]!.GetValue<string>()));
    }

    [Theory]
    [InlineData("event: ping\ndata: {\"type\":\"ping\"}\n\n", "{\"type\":\"ping\"}")]
    [InlineData("event: ping\r\ndata: {\"type\":\"ping\"}\r\n\r\n", "{\"type\":\"ping\"}")]
    [InlineData("event: ping\rdata:{\"type\":\"ping\"}\r\r", "{\"type\":\"ping\"}")]
    [InlineData("data: {\"type\":\ndata:  \"ping\"}\n\n", "{\"type\":\n \"ping\"}")]
    [InlineData("data: {}\n\ndata: {\"next\":1}\n\n", "{}")]
    [InlineData("data: {\"type\":\ndata\ndata: \"ping\"}\n\n", "{\"type\":\n\n\"ping\"}")]
    [InlineData("id: 1\ndata: {}\nretry: 5\ndatax: ignored\n: comment\n\n", "{}")]
    [InlineData("event: x\ndata: {}", "{}")]
    public void ChunkOfSseEvent_CarriesTheDataLines_Joined(string sse, string expected)
    {
        var frame = EventStreamWriter.ChunkOfSseEvent(Encoding.UTF8.GetBytes(sse));

        Assert.Equal(expected, EventOf(Assert.IsType<byte[]>(frame)));
    }

    [Theory]
    [InlineData(": ping\n\n")]
    [InlineData(": keep-alive\r\n\r\n")]
    [InlineData("\n")]
    [InlineData("")]
    [InlineData("event: ping\n\n")]
    [InlineData("event: ping\ndata:\n\n")]
    public void ChunkOfSseEvent_WithoutData_IsNull(string sse) =>
        Assert.Null(EventStreamWriter.ChunkOfSseEvent(Encoding.UTF8.GetBytes(sse)));

    [Fact]
    public void ChunkOfSseEvent_ReadsBackAsTheSameSse_ThroughBedrockAnswer()
    {
        const string Sse = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"h\u00e9\"}}\n\n";

        var frame = EventStreamWriter.ChunkOfSseEvent(Encoding.UTF8.GetBytes(Sse))!;

        var read = Assert.IsType<EventStreamRead.Message>(EventStream.tryRead(frame));
        var answer = Assert.IsType<BedrockFrame.Event>(BedrockAnswer.ofMessage(read.Item1));
        Assert.Equal(Sse, Encoding.UTF8.GetString(answer.Sse));
    }
}
