using System.Net;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// The request body for one upstream attempt, over memory the relay owns (a pooled buffer). It records when
/// the handler has finished sending it, so the buffer can go back to the pool while a long stream is still
/// being relayed (an 85 KB Claude Code body would otherwise be pinned for minutes per open stream).
/// </summary>
internal sealed class UpstreamBodyContent(ReadOnlyMemory<byte> body) : HttpContent
{
    private ReadOnlyMemory<byte> _body = body;
    private int _sent;

    /// <summary>True once the whole body was written to the upstream connection.</summary>
    public bool Sent => Volatile.Read(ref _sent) == 1;

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        await stream.WriteAsync(_body, cancellationToken);
        Volatile.Write(ref _sent, 1);
    }

    /// <summary>
    /// Drops the reference to the body (a model-patched copy would otherwise live as long as the stream).
    /// Only after the response headers arrived: before that, the handler may still need to (re)send it.
    /// </summary>
    public void Forget() => _body = default;

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override bool TryComputeLength(out long length)
    {
        length = _body.Length;
        return true;
    }
}
