using System.Text;

namespace CcRelay.Host.Tests.Infrastructure;

/// <summary>Reads raw SSE events (text up to and including the blank line) from a response stream as they arrive.</summary>
public sealed class SseClientReader(Stream stream)
{
    private readonly StringBuilder _pending = new();
    private readonly byte[] _buffer = new byte[8192];

    /// <summary>The next complete event, or null at the end of the stream.</summary>
    public async Task<string?> NextAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var text = _pending.ToString();
            var end = text.IndexOf("\n\n", StringComparison.Ordinal);
            if (end >= 0)
            {
                _pending.Remove(0, end + 2);
                return text[..(end + 2)];
            }

            var read = await stream.ReadAsync(_buffer, cancellationToken);
            if (read == 0)
            {
                return null;
            }

            _pending.Append(Encoding.UTF8.GetString(_buffer, 0, read));
        }
    }

    /// <summary>All remaining events until the end of the stream.</summary>
    public async Task<List<string>> RestAsync(CancellationToken cancellationToken)
    {
        var events = new List<string>();
        while (await NextAsync(cancellationToken) is { } e)
        {
            events.Add(e);
        }

        return events;
    }
}
