namespace CcRelay.Host.Forwarding;

/// <summary>What one <see cref="IAnswerDecoder.Decode"/> call did.</summary>
/// <param name="Consumed">Upstream bytes used up.</param>
/// <param name="Sse">Anthropic SSE bytes to send (null or empty: nothing yet).</param>
/// <param name="Done">The answer is over after <paramref name="Sse"/> (its end, or an error event).</param>
/// <param name="NeedMore">Nothing can be decoded until more upstream bytes arrive.</param>
internal readonly record struct DecodeStep(int Consumed, byte[]? Sse, bool Done, bool NeedMore)
{
    public static DecodeStep More => new(0, null, false, true);
}
