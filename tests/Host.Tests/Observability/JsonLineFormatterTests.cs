using System.Globalization;
using System.Text;
using CcRelay.Host.Logging;

namespace CcRelay.Host.Tests.Observability;

public sealed class JsonLineFormatterTests
{
    [Theory]
    [InlineData("0001-01-01T00:00:00.0000000Z")]
    [InlineData("2026-11-21T09:05:03.0070000Z")]
    [InlineData("2026-12-31T23:59:59.9999999Z")]
    [InlineData("9999-12-31T23:59:59.9990000Z")]
    public void Timestamp_MatchesTheFormatString(string instant)
    {
        var utc = DateTime.Parse(instant, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal);

        AssertSameAsFormatString(utc);
    }

    [Fact]
    public void Timestamp_MatchesTheFormatString_ForRandomInstants()
    {
        var random = new Random(20261121);
        for (var i = 0; i < 10_000; i++)
        {
            AssertSameAsFormatString(new DateTime(random.NextInt64(DateTime.MinValue.Ticks, DateTime.MaxValue.Ticks), DateTimeKind.Utc));
        }
    }

    private static void AssertSameAsFormatString(DateTime utc)
    {
        Span<byte> stamp = stackalloc byte[24];

        var written = Encoding.ASCII.GetString(JsonLineFormatter.Timestamp(utc, stamp));

        Assert.Equal(utc.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture), written);
    }
}
