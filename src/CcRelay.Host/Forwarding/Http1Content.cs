using System.Net;

namespace CcRelay.Host.Forwarding;

/// <summary>A response body read from an <see cref="Http1Connection"/> as it arrives (never buffered unless asked).</summary>
internal sealed class Http1Content : HttpContent
{
    private Http1BodyStream? _body;

    /// <summary>Attaches the body once the head was parsed (its headers are added to this content first).</summary>
    public void Start(Http1BodyStream body) => _body = body;

    private Http1BodyStream Body => _body ?? throw new InvalidOperationException("the response head was not read yet");

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken) =>
        Body.CopyToAsync(stream, 16 * 1024, cancellationToken);

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override Stream CreateContentReadStream(CancellationToken cancellationToken) => Body;

    protected override Task<Stream> CreateContentReadStreamAsync() => Task.FromResult<Stream>(Body);

    protected override Task<Stream> CreateContentReadStreamAsync(CancellationToken cancellationToken) => Task.FromResult<Stream>(Body);

    // the length is in the headers when the upstream sent one; never computed
    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _body?.Dispose();
        }

        base.Dispose(disposing);
    }
}
