using System.Text;
using CcRelay.Core;
using CcRelay.Host.Forwarding;
using CcRelay.Host.Tests.Interop;

namespace CcRelay.Host.Tests.Forwarding;

/// <summary>
/// <see cref="EventStreamSseStream"/> over smithy-encoded Bedrock answers (tests/Interop/eventstream.mjs),
/// delivered a few bytes at a time: the exact SSE, the end after an error, and how damage surfaces.
/// </summary>
public sealed class EventStreamSseStreamTests
{
    /// <summary>An upstream that hands out 1..7 bytes per read (seeded), then the end.</summary>
    private sealed class TrickleStream(byte[] data, int seed) : Stream
    {
        private readonly Random _random = new(seed);
        private int _position;

        public bool Disposed { get; private set; }

        public int Reads { get; private set; }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(Span<byte> buffer)
        {
            Reads++;
            var count = Math.Min(Math.Min(buffer.Length, _random.Next(1, 8)), data.Length - _position);
            data.AsSpan(_position, count).CopyTo(buffer);
            _position += count;
            return count;
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await Task.Yield();
            return Read(buffer.Span);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            Disposed = true;
            base.Dispose(disposing);
        }
    }

    /// <summary>An upstream that gives <paramref name="first"/> on its first read and then never answers.</summary>
    private sealed class StallingStream(byte[] first) : Stream
    {
        private bool _given;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (!_given)
            {
                _given = true;
                first.CopyTo(buffer);
                return first.Length;
            }

            await Task.Delay(Timeout.InfiniteTimeSpan, TimeProvider.System, cancellationToken);
            return 0;
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>Reads to the end with reads of <paramref name="readSize"/> bytes; returns the text so far and the failure.</summary>
    private static async Task<(string Sse, Exception? Failure)> ReadAllAsync(Stream stream, int readSize)
    {
        var output = new MemoryStream();
        var buffer = new byte[readSize];
        try
        {
            int count;
            while ((count = await stream.ReadAsync(buffer)) > 0)
            {
                output.Write(buffer, 0, count);
            }

            return (Encoding.UTF8.GetString(output.ToArray()), null);
        }
        catch (IOException e)
        {
            return (Encoding.UTF8.GetString(output.ToArray()), e);
        }
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 7)]
    [InlineData(3, 64)]
    [InlineData(4, 4096)]
    public async Task SmithyStream_TrickledIn_YieldsExactlyTheSse(int seed, int readSize)
    {
        var frames = await SmithyEventStream.EncodeAsync(BedrockStreams.Answer());
        var upstream = new TrickleStream(frames, seed);

        await using (var stream = new EventStreamSseStream(upstream))
        {
            var (sse, failure) = await ReadAllAsync(stream, readSize);

            Assert.Null(failure);
            Assert.Equal(BedrockStreams.Sse(BedrockStreams.Events), sse);
            Assert.Equal(0, await stream.ReadAsync(new byte[16])); // stays at the end
        }

        Assert.True(upstream.Disposed);
    }

    [Fact]
    public async Task SmithyStream_SynchronousReads_YieldTheSameSse()
    {
        var frames = await SmithyEventStream.EncodeAsync(BedrockStreams.Answer());
        using var stream = new EventStreamSseStream(new TrickleStream(frames, 5));
        using var reader = new StreamReader(stream, Encoding.UTF8);

        Assert.Equal(BedrockStreams.Sse(BedrockStreams.Events), reader.ReadToEnd());
    }

    [Fact]
    public async Task ExceptionFrame_YieldsTheErrorEvent_ThenEnds_WithoutReadingFurther()
    {
        var frames = await SmithyEventStream.EncodeAsync(
            BedrockStreams.Chunk(BedrockStreams.Events[0]),
            BedrockStreams.Exception("modelStreamErrorException", "Model stream failed"),
            BedrockStreams.Chunk(BedrockStreams.Events[1]));
        await using var stream = new EventStreamSseStream(new TrickleStream(frames, 6));

        var (sse, failure) = await ReadAllAsync(stream, 100);

        Assert.Null(failure);
        Assert.Equal(
            BedrockStreams.Sse(BedrockStreams.Events.Take(1))
            + Encoding.UTF8.GetString(ErrorEnvelope.toSseEvent(ErrorType.Api, "Model stream failed")),
            sse);
    }

    [Fact]
    public async Task UpstreamEndingInsideAFrame_Throws_AfterTheWholeEvents()
    {
        var frames = await SmithyEventStream.EncodeAsync(BedrockStreams.Answer());
        await using var stream = new EventStreamSseStream(new TrickleStream(frames[..^5], 7));

        var (sse, failure) = await ReadAllAsync(stream, 50);

        var error = Assert.IsType<IOException>(failure);
        Assert.Equal("AWS event stream ended inside a frame", error.Message);
        Assert.Equal(BedrockStreams.Sse(BedrockStreams.Events[..^1]), sse);
        await Assert.ThrowsAsync<IOException>(async () => _ = await stream.ReadAsync(new byte[16]));
    }

    [Fact]
    public async Task CorruptFrame_Throws_AfterTheEventsBeforeIt()
    {
        var frames = await SmithyEventStream.EncodeAsync(BedrockStreams.Answer());
        var firstLength = ((EventStreamRead.Message)EventStream.tryRead(frames)).Consumed;
        frames[firstLength + 20] ^= 0x40; // a header byte of the second frame

        await using var stream = new EventStreamSseStream(new TrickleStream(frames, 8));
        var (sse, failure) = await ReadAllAsync(stream, 4096);

        var error = Assert.IsType<IOException>(failure);
        Assert.Equal("corrupt AWS event stream: message CRC mismatch", error.Message);
        Assert.Equal(BedrockStreams.Sse(BedrockStreams.Events.Take(1)), sse);
    }

    [Fact]
    public async Task EmptyUpstream_IsAnEmptyStream()
    {
        await using var stream = new EventStreamSseStream(new TrickleStream([], 9));

        Assert.Equal(0, await stream.ReadAsync(new byte[16]));
    }

    [Fact]
    public async Task AWholeEvent_IsReturned_WithoutWaitingForMoreUpstreamData()
    {
        var frames = await SmithyEventStream.EncodeAsync(BedrockStreams.Chunk(BedrockStreams.Events[0]), BedrockStreams.Chunk(BedrockStreams.Events[1]));
        var firstLength = ((EventStreamRead.Message)EventStream.tryRead(frames)).Consumed;
        // upstream delivers the first frame and half of the second, then stalls
        await using var stream = new EventStreamSseStream(new StallingStream(frames[..(firstLength + 10)]));
        var buffer = new byte[4096];

        // a zero-byte read says an event is ready, and the read returns it
        await stream.ReadAsync(Memory<byte>.Empty).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        var count = await stream.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(BedrockStreams.Sse(BedrockStreams.Events.Take(1)), Encoding.UTF8.GetString(buffer, 0, count));
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => _ = await stream.ReadAsync(buffer, cancel.Token));
    }
}
