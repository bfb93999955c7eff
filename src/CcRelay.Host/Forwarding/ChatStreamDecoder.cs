using CcRelay.Core;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// An OpenAI Chat Completions stream read as Anthropic SSE by Core's <see cref="ChatStream"/> state machine: every
/// buffered byte is fed at once (the SSE parser keeps a partial event), the events it completes come out; the
/// upstream's end finishes the answer, in an <c>error</c> event when it had not finished.
/// </summary>
internal sealed class ChatStreamDecoder(ChatAnswerPlan plan) : IAnswerDecoder
{
    private ChatStreamState _state = ChatStream.start(plan);

    public DecodeStep Decode(ReadOnlySpan<byte> buffered, bool upstreamEnded)
    {
        if (ChatStream.isEnded(_state))
        {
            return new DecodeStep(buffered.Length, null, true, false);
        }

        if (!buffered.IsEmpty)
        {
            (_state, var events) = ChatStream.feed(_state, buffered);
            return new DecodeStep(buffered.Length, AnthropicOut.sse(events), ChatStream.isEnded(_state), false);
        }

        if (!upstreamEnded)
        {
            return DecodeStep.More;
        }

        (_state, var ending) = ChatStream.finish(_state);
        return new DecodeStep(0, AnthropicOut.sse(ending), true, false);
    }
}
