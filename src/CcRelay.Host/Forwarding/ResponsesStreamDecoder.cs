using CcRelay.Core;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// An OpenAI Responses stream read as Anthropic SSE by Core's <see cref="ResponsesStream"/> state machine: every
/// buffered byte is fed at once, the events it completes come out; an upstream that ends before its terminal event
/// ends the answer in an <c>error</c> event.
/// </summary>
internal sealed class ResponsesStreamDecoder(ResponsesAnswerPlan plan) : IAnswerDecoder
{
    private ResponsesStreamState _state = ResponsesStream.start(plan);

    public DecodeStep Decode(ReadOnlySpan<byte> buffered, bool upstreamEnded)
    {
        if (ResponsesStream.isEnded(_state))
        {
            return new DecodeStep(buffered.Length, null, true, false);
        }

        if (!buffered.IsEmpty)
        {
            (_state, var events) = ResponsesStream.feed(_state, buffered);
            return new DecodeStep(buffered.Length, AnthropicOut.sse(events), ResponsesStream.isEnded(_state), false);
        }

        if (!upstreamEnded)
        {
            return DecodeStep.More;
        }

        (_state, var ending) = ResponsesStream.finish(_state);
        return new DecodeStep(0, AnthropicOut.sse(ending), true, false);
    }
}
