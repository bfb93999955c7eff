using CcRelay.Core;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// A Bedrock <c>application/vnd.amazon.eventstream</c> answer, one message at a time, through
/// <see cref="BedrockAnswer.ofMessage"/>: an event's SSE, nothing for skipped frames, an error event that ends it.
/// </summary>
internal sealed class BedrockEventStreamDecoder : IAnswerDecoder
{
    public DecodeStep Decode(ReadOnlySpan<byte> buffered, bool upstreamEnded)
    {
        switch (EventStream.tryRead(buffered))
        {
            case EventStreamRead.Message message:
                return BedrockAnswer.ofMessage(message.Item1) switch
                {
                    BedrockFrame.Event frame => new DecodeStep(message.Consumed, frame.Sse, false, false),
                    BedrockFrame.Error frame => new DecodeStep(message.Consumed, frame.Sse, true, false),
                    _ => new DecodeStep(message.Consumed, null, false, false), // keep-alives, other event types
                };
            case EventStreamRead.Corrupt corrupt:
                throw new IOException("corrupt AWS event stream: " + corrupt.Reason);
            default:
                // NeedMore
                if (!upstreamEnded)
                {
                    return DecodeStep.More;
                }

                return buffered.IsEmpty
                    ? new DecodeStep(0, null, true, false)
                    : throw new IOException("AWS event stream ended inside a frame");
        }
    }
}
