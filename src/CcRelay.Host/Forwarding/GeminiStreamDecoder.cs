using CcRelay.Core;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// A Gemini <c>streamGenerateContent?alt=sse</c> stream read as Anthropic SSE by Core's <see cref="GeminiStream"/> state
/// machine: every buffered byte is fed at once (the SSE parser keeps a partial event), the events it completes come
/// out; the upstream's end finishes the answer, in an <c>error</c> event when it had not finished.
/// </summary>
internal sealed class GeminiStreamDecoder(GeminiAnswerPlan plan) : IAnswerDecoder
{
    private GeminiStreamState _state = GeminiStream.start(plan);

    public DecodeStep Decode(ReadOnlySpan<byte> buffered, bool upstreamEnded)
    {
        if (GeminiStream.isEnded(_state))
        {
            return new DecodeStep(buffered.Length, null, true, false);
        }

        if (!buffered.IsEmpty)
        {
            (_state, var events) = GeminiStream.feed(_state, buffered);
            return new DecodeStep(buffered.Length, AnthropicOut.sse(events), GeminiStream.isEnded(_state), false);
        }

        if (!upstreamEnded)
        {
            return DecodeStep.More;
        }

        (_state, var ending) = GeminiStream.finish(_state);
        return new DecodeStep(0, AnthropicOut.sse(ending), true, false);
    }
}
