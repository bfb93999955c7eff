using System.Buffers;
using System.IO.Pipelines;
using CcRelay.Core;
using CcRelay.Host.Forwarding;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace CcRelay.Host.Endpoints;

/// <summary>
/// The response body of a Bedrock-shaped route: whatever the relay's pipeline writes (Anthropic SSE, a Message, a
/// token count, an Anthropic error envelope) leaves in Bedrock's shape. It decides once, when the answer starts:
/// <code>
///   status ≥ 400       buffered; at the end {"message"} + x-amzn-ErrorType (Ingress.bedrockError)
///   count-tokens 200   buffered; at the end {"inputTokens":N}
///   text/event-stream  application/vnd.amazon.eventstream: each complete SSE event, as it is flushed, becomes a
///                      chunk frame (pings dropped); an error event becomes an exception frame and ends the stream
///   anything else      passed through (the non-streaming Message JSON)
/// </code>
/// Installed as the request's <see cref="IHttpResponseBodyFeature"/> for the pipeline's run (as response
/// compression does); <see cref="FinishAsync"/> writes what is buffered before the original feature is put back.
/// </summary>
internal sealed class BedrockAnswerBody(HttpContext context, IHttpResponseBodyFeature inner, bool countTokens) : PipeWriter, IHttpResponseBodyFeature
{
    private enum Mode
    {
        Undecided,
        PassThrough,
        Buffer,
        EventStream,
        Ended,
        Finished,
    }

    private readonly ArrayBufferWriter<byte> _pending = new(1024);
    private Mode _mode;
    private Stream? _stream;

    public Stream Stream => _stream ??= AsStream(leaveOpen: true);

    public PipeWriter Writer => this;

    public void DisableBuffering() => inner.DisableBuffering();

    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        Decide();
        return _mode == Mode.Buffer ? Task.CompletedTask : inner.StartAsync(cancellationToken);
    }

    public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("the relay sends no files");

    public async Task CompleteAsync()
    {
        await FinishAsync();
        await inner.CompleteAsync();
    }

    public override void Advance(int bytes) => _pending.Advance(bytes);

    public override Memory<byte> GetMemory(int sizeHint = 0) => _pending.GetMemory(sizeHint);

    public override Span<byte> GetSpan(int sizeHint = 0) => _pending.GetSpan(sizeHint);

    public override void CancelPendingFlush() => inner.Writer.CancelPendingFlush();

    public override void Complete(Exception? exception = null)
    {
        // the response is completed by FinishAsync / CompleteAsync, never by a writer of the body
    }

    public override async ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        Decide();
        switch (_mode)
        {
            case Mode.Buffer:
                return default;
            case Mode.Ended or Mode.Finished:
                _pending.Clear();
                return default;
            case Mode.PassThrough:
                inner.Writer.Write(_pending.WrittenSpan);
                _pending.Clear();
                return await inner.Writer.FlushAsync(cancellationToken);
            default:
                ConvertEvents();
                return await inner.Writer.FlushAsync(cancellationToken);
        }
    }

    /// <summary>Writes what is buffered in its Bedrock shape (once); the pipeline is over.</summary>
    public async Task FinishAsync()
    {
        Decide();
        var mode = _mode;
        _mode = Mode.Finished;
        switch (mode)
        {
            case Mode.Buffer when !context.Response.HasStarted:
                await WriteBufferedAsync();
                break;
            case Mode.PassThrough when _pending.WrittenCount > 0:
                inner.Writer.Write(_pending.WrittenSpan);
                await inner.Writer.FlushAsync();
                break;
        }

        _pending.Clear();
    }

    /// <summary>Chooses how the answer is shaped, from its status and Content-Type, when it first starts or flushes.</summary>
    private void Decide()
    {
        if (_mode != Mode.Undecided)
        {
            return;
        }

        var response = context.Response;
        if (response.StatusCode >= 400 || countTokens)
        {
            _mode = Mode.Buffer;
        }
        else if (response.ContentType?.StartsWith("text/event-stream", StringComparison.OrdinalIgnoreCase) == true)
        {
            _mode = Mode.EventStream;
            response.ContentType = "application/vnd.amazon.eventstream";
            response.ContentLength = null;
            response.Headers["X-Amzn-Bedrock-Content-Type"] = "application/json";
        }
        else
        {
            _mode = Mode.PassThrough;
        }
    }

    /// <summary>Each complete SSE event pending becomes a frame on the client's stream; a partial one waits.</summary>
    private void ConvertEvents()
    {
        var pending = _pending.WrittenSpan;
        var at = 0;
        while (_mode == Mode.EventStream)
        {
            var end = Sse.findEventEnd(pending[at..]);
            if (end < 0)
            {
                break;
            }

            var sseEvent = pending.Slice(at, end);
            at += end;
            var frame = Ingress.frameOfSseEvent(sseEvent);
            if (frame is IngressFrame.Exception failed)
            {
                inner.Writer.Write(EventStream.encode(BedrockAnswer.exceptionOf(failed.ErrorType, failed.Message)));
                _mode = Mode.Ended; // the exception frame is the stream's last
            }
            else if (frame.IsChunk && EventStreamWriter.ChunkOfSseEvent(sseEvent) is { } chunk)
            {
                inner.Writer.Write(chunk);
            }
        }

        var rest = _mode == Mode.EventStream ? pending[at..].ToArray() : [];
        _pending.Clear();
        _pending.Write(rest);
    }

    private async Task WriteBufferedAsync()
    {
        var response = context.Response;
        byte[] body;
        if (response.StatusCode >= 400)
        {
            var (status, errorName, errorBody) = Ingress.bedrockError(response.StatusCode, _pending.WrittenSpan);
            response.StatusCode = status;
            response.Headers["x-amzn-ErrorType"] = errorName;
            body = errorBody;
        }
        else
        {
            body = Ingress.bedrockCountTokensAnswer(_pending.WrittenSpan) is { } answer ? answer.Value : _pending.WrittenSpan.ToArray();
        }

        response.ContentType = "application/json";
        response.ContentLength = body.Length;
        await inner.Writer.WriteAsync(body);
    }
}
