using System.Buffers;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// A bounded copy of an answer's first bytes, in a pooled buffer: JSON answers keep up to 1 MiB so that their
/// <c>usage</c> can be read after they were relayed; debug logging keeps up to <c>max_body_log_size</c>.
/// Bytes past the limit are counted, not kept. Dispose returns the buffer.
/// </summary>
internal sealed class BodyCapture : IDisposable
{
    /// <summary>How much of a JSON answer is kept for its usage (usage sits at the end of the body).</summary>
    public const int JsonAnswerLimit = 1024 * 1024;

    private readonly int _limit;
    private byte[]? _buffer;
    private int _length;

    public BodyCapture(int limit, long? expectedLength = null)
    {
        _limit = Math.Max(0, limit);
        var initial = (int)Math.Clamp(expectedLength ?? 4096, 256, Math.Max(256, _limit));
        _buffer = ArrayPool<byte>.Shared.Rent(initial);
    }

    /// <summary>Every byte offered, kept or not.</summary>
    public long TotalLength { get; private set; }

    /// <summary>Whether bytes were left out.</summary>
    public bool Truncated => TotalLength > _length;

    public ReadOnlySpan<byte> Span => _buffer is null ? default : _buffer.AsSpan(0, _length);

    public void Append(ReadOnlySpan<byte> bytes)
    {
        TotalLength += bytes.Length;
        var take = Math.Min(bytes.Length, _limit - _length);
        if (take <= 0 || _buffer is null)
        {
            return;
        }

        if (_length + take > _buffer.Length)
        {
            var bigger = ArrayPool<byte>.Shared.Rent(Math.Min(_limit, Math.Max(_buffer.Length * 2, _length + take)));
            _buffer.AsSpan(0, _length).CopyTo(bigger);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = bigger;
        }

        bytes[..take].CopyTo(_buffer.AsSpan(_length));
        _length += take;
    }

    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, null);
        if (buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
