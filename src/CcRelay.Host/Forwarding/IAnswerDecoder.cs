namespace CcRelay.Host.Forwarding;

/// <summary>
/// Turns an upstream answer in another framing into Anthropic SSE, step by step, for <see cref="EventStreamSseStream"/>:
/// each call reads from the bytes buffered so far and says what it consumed and what SSE comes out.
/// </summary>
internal interface IAnswerDecoder
{
    /// <summary>
    /// Decodes from <paramref name="buffered"/> (unconsumed upstream bytes). <paramref name="upstreamEnded"/>: no more
    /// bytes will come. Throws <see cref="IOException"/> when the answer is corrupt or cut inside a frame.
    /// </summary>
    DecodeStep Decode(ReadOnlySpan<byte> buffered, bool upstreamEnded);
}
