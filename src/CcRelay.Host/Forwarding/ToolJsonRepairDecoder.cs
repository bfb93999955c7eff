using CcRelay.Core;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// The <c>repair_tool_json</c> response transformer on an Anthropic SSE stream (passed through, or one a translation
/// produced): whole events go through <see cref="ToolJsonRepair.frame"/>, which holds each <c>tool_use</c> block's
/// <c>input_json_delta</c> fragments back and sends them as one (repaired) delta at the block's end.
/// </summary>
internal sealed class ToolJsonRepairDecoder : IAnswerDecoder
{
    private ToolJsonStream _state = ToolJsonRepair.start;

    /// <summary>How many tool inputs were repaired so far.</summary>
    public int Repaired => ToolJsonRepair.repaired(_state);

    public DecodeStep Decode(ReadOnlySpan<byte> buffered, bool upstreamEnded)
    {
        var end = Sse.findEventEnd(buffered);
        if (end >= 0)
        {
            (_state, var output) = ToolJsonRepair.frame(_state, buffered[..end]);
            return new DecodeStep(end, output, false, false);
        }

        if (!upstreamEnded)
        {
            return DecodeStep.More;
        }

        // the upstream ended: an unterminated last event goes out as it came (the relay judges the truncation)
        return new DecodeStep(buffered.Length, buffered.IsEmpty ? null : buffered.ToArray(), true, false);
    }
}
