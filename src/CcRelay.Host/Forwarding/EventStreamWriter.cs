using System.Buffers;
using CcRelay.Core;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// Writes Anthropic SSE as the AWS event stream Bedrock clients read (protocols.md §2.6), for the relay acting
/// as a Bedrock endpoint.
/// </summary>
internal static class EventStreamWriter
{
    /// <summary>
    /// The encoded <c>chunk</c> frame carrying the data of one complete SSE event (<c>event: x\ndata: {…}\n\n</c>;
    /// several <c>data:</c> lines join with <c>\n</c>, as an SSE client would; CRLF, CR and LF all end lines).
    /// The data bytes go into the frame as they are; anything after the event's blank line is ignored. Null for an event with no data (a comment such as
    /// <c>: ping</c>, a blank line), which an SSE client would not dispatch either.
    /// </summary>
    public static byte[]? ChunkOfSseEvent(ReadOnlySpan<byte> sseEvent)
    {
        // one data line (the usual case) is framed straight from the input; more are joined into a copy
        ReadOnlySpan<byte> first = [];
        var lines = 0;
        ArrayBufferWriter<byte>? joined = null;
        var rest = sseEvent;
        while (!rest.IsEmpty)
        {
            var end = rest.IndexOfAny((byte)'\r', (byte)'\n');
            var line = end < 0 ? rest : rest[..end];
            rest = end < 0
                ? []
                : rest[(rest[end] == '\r' && end + 1 < rest.Length && rest[end + 1] == '\n' ? end + 2 : end + 1)..];

            if (line.IsEmpty)
            {
                break; // the blank line that ends the event
            }

            if (!line.StartsWith("data"u8) || (line.Length > 4 && line[4] != ':'))
            {
                continue; // event:, id:, retry:, comments, and fields that only start with "data"
            }

            var value = line.Length > 4 ? line[5..] : [];
            if (!value.IsEmpty && value[0] == ' ')
            {
                value = value[1..];
            }

            if (lines++ == 0)
            {
                first = value;
                continue;
            }

            if (joined is null)
            {
                joined = new ArrayBufferWriter<byte>(sseEvent.Length);
                joined.Write(first);
            }

            joined.Write("\n"u8);
            joined.Write(value);
        }

        var data = joined is null ? first : joined.WrittenSpan;
        return data.IsEmpty ? null : EventStream.encode(BedrockAnswer.chunkOfEvent(data));
    }
}
