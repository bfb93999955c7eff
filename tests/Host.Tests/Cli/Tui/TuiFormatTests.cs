using CcRelay.Cli.Tui;

namespace CcRelay.Host.Tests.Cli.Tui;

/// <summary>The dashboard's number formats and text fitting.</summary>
public sealed class TuiFormatTests
{
    [Theory]
    [InlineData(0, "0")]
    [InlineData(0.04, "<0.1")]
    [InlineData(0.4, "0.4")]
    [InlineData(12.34, "12.3")]
    [InlineData(123.4, "123")]
    [InlineData(1234, "1.2k")]
    public void Rate_IsShort(double perSecond, string expected) => Assert.Equal(expected, TuiFormat.Rate(perSecond));

    [Theory]
    [InlineData(-1, "-")]
    [InlineData(0, "0ms")]
    [InlineData(850, "850ms")]
    [InlineData(1200, "1.2s")]
    [InlineData(45_000, "45s")]
    [InlineData(125_000, "2m05s")]
    [InlineData(3_720_000, "1h02m")]
    public void Millis_PicksItsUnit(double ms, string expected) => Assert.Equal(expected, TuiFormat.Millis(ms));

    [Theory]
    [InlineData(-1, "-")]
    [InlineData(999, "999")]
    [InlineData(1234, "1.2k")]
    [InlineData(34_567, "35k")]
    [InlineData(999_999, "1.0M")]
    [InlineData(1_234_567, "1.2M")]
    [InlineData(5_000_000_000, "5.0G")]
    public void Count_ScalesByThousands(long value, string expected) => Assert.Equal(expected, TuiFormat.Count(value));

    [Theory]
    [InlineData(-1, "-")]
    [InlineData(0, "$0")]
    [InlineData(0.0004, "<$0.001")]
    [InlineData(0.004, "$0.004")]
    [InlineData(0.12, "$0.12")]
    [InlineData(12.3, "$12.30")]
    [InlineData(1234, "$1.2k")]
    public void Cost_InDollars(double usd, string expected) => Assert.Equal(expected, TuiFormat.Cost(usd));

    [Theory]
    [InlineData(0, "0%")]
    [InlineData(0.004, "0.4%")]
    [InlineData(0.12, "12%")]
    [InlineData(1, "100%")]
    [InlineData(2, "100%")]
    public void Percent_IsClamped(double ratio, string expected) => Assert.Equal(expected, TuiFormat.Percent(ratio));

    [Theory]
    [InlineData(0, 4, "░░░░")]
    [InlineData(1, 4, "████")]
    [InlineData(0.5, 4, "██░░")]
    [InlineData(0.3125, 4, "█▎░░")]
    [InlineData(0.01, 4, "▏░░░")]
    [InlineData(-3, 4, "░░░░")]
    public void Bar_FillsInEighths_AndANearlySpentPoolIsNotDrawnEmpty(double ratio, int width, string expected)
    {
        var bar = TuiFormat.Bar(ratio, width);

        Assert.Equal(expected, bar);
        Assert.Equal(width, bar.Length);
    }

    [Fact]
    public void Clock_IsTheLocalTimeOfDay() =>
        Assert.Equal("08:30:05", TuiFormat.Clock(new DateTimeOffset(2026, 12, 7, 8, 30, 5, TimeSpan.Zero).ToUnixTimeMilliseconds(), TimeZoneInfo.Utc));

    [Theory]
    [InlineData("abcdef", 4, "abc…")]
    [InlineData("abc", 4, "abc")]
    [InlineData("abc", 1, "…")]
    [InlineData("abc", 0, "")]
    public void Fit_CutsWithAnEllipsis(string text, int width, string expected) => Assert.Equal(expected, TuiText.Fit(text, width));

    [Fact]
    public void Fit_ReplacesControlCharacters_SoAnUpstreamStringCannotMoveTheCursor() =>
        Assert.Equal("ab?[2J?x", TuiText.Fit("ab\u001b[2J\nx", 20));

    [Fact]
    public void Clip_CutsAndPadsSpansToExactlyTheWidth()
    {
        var line = TuiText.Clip([new Span("hello ", Tone.Good), new Span("world", Tone.Bad)], 8);
        var padded = TuiText.Clip([new Span("hi", Tone.Good)], 5);

        Assert.Equal("hello w…", line.Text);
        Assert.Equal([Tone.Good, Tone.Bad], line.Spans.Select(s => s.Tone));
        Assert.Equal("hi   ", padded.Text);
    }

    [Fact]
    public void Wrap_BreaksAtWords() =>
        Assert.Equal(["error: at", "providers[1…", "(3:5)"], TuiText.Wrap("error: at providers[1].base_url (3:5)", 12));
}
