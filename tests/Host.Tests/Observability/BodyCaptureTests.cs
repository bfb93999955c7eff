using CcRelay.Host.Forwarding;

namespace CcRelay.Host.Tests.Observability;

public sealed class BodyCaptureTests
{
    [Fact]
    public void Append_KeepsUpToTheLimit_AndCountsEverything()
    {
        using var capture = new BodyCapture(limit: 10, expectedLength: 4);

        capture.Append("0123456"u8);
        capture.Append("789abcdef"u8);

        Assert.Equal("0123456789"u8.ToArray(), capture.Span.ToArray());
        Assert.Equal(16, capture.TotalLength);
        Assert.True(capture.Truncated);
    }

    [Fact]
    public void Append_GrowsPastTheFirstBuffer()
    {
        using var capture = new BodyCapture(limit: BodyCapture.JsonAnswerLimit);
        var chunk = new byte[3000];
        Array.Fill(chunk, (byte)'x');

        for (var i = 0; i < 10; i++)
        {
            capture.Append(chunk);
        }

        Assert.Equal(30_000, capture.Span.Length);
        Assert.False(capture.Truncated);
    }
}
