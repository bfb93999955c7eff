using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using CcRelay.Host.Logging;

namespace CcRelay.Host.Tests.Observability;

/// <summary>
/// The hand-written JSON of the request line writes, value for value, the bytes <see cref="Utf8JsonWriter"/>
/// writes with relaxed escaping (the framework writer is the reference: log pipelines parsed its output before).
/// </summary>
public sealed class Utf8LineWriterTests
{
    private static readonly JsonWriterOptions Relaxed = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true };

    /// <summary>ASCII (printable, controls, quote, backslash, DEL), Latin-1, BMP, line separators, surrogate pairs, lone surrogates.</summary>
    private static readonly string[] Pieces =
    [
        "a", "Z", "0", " ", "-", "_", "/", ".", ":", "\"", "\\", "\n", "\r", "\t", "\0", "\u001f", "\u007f", "<", ">", "&", "'", "+", "`",
        "é", "ß", "\u00a0", "€", "日本", "\u2028", "\u2029", "\ufeff", "\ufffd", "😀", "𝄞", "\ud800", "\udc00", "\udbff\ud800",
    ];

    private static string Reference(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, Relaxed))
        {
            write(writer);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private delegate void Write(ref Utf8LineWriter writer);

    private static string Written(Write write)
    {
        var output = new ArrayBufferWriter<byte>();
        var writer = new Utf8LineWriter(output);
        write(ref writer);
        writer.Flush();
        return Encoding.UTF8.GetString(output.WrittenSpan);
    }

    private static string RandomString(Random random)
    {
        var text = new StringBuilder();
        var parts = random.Next(0, 12);
        for (var i = 0; i < parts; i++)
        {
            // mostly plain ASCII, as ids and model names are; sometimes anything
            text.Append(random.Next(4) == 0 ? Pieces[random.Next(Pieces.Length)] : ((char)random.Next(0x20, 0x7f)).ToString());
        }

        return text.ToString();
    }

    [Fact]
    public void EveryAsciiChar_IsWrittenAsTheFrameworkWritesIt()
    {
        for (var c = 0; c < 128; c++)
        {
            var value = $"x{(char)c}y";

            Assert.Equal(Reference(w => w.WriteStringValue(value)), Written((ref w) => w.String(value)));
        }
    }

    [Fact]
    public void RandomStrings_AreWrittenAsTheFrameworkWritesThem()
    {
        var random = new Random(20261121);
        for (var i = 0; i < 20_000; i++)
        {
            var value = RandomString(random);

            Assert.Equal(Reference(w => w.WriteStringValue(value)), Written((ref w) => w.String(value)));
        }
    }

    [Fact]
    public void LongValues_AndManyWrites_GrowPastTheFirstBuffer_WithNothingLost()
    {
        var ascii = new string('a', 5_000);
        var escaped = string.Concat(Enumerable.Repeat("é\"\n", 2_000));

        var written = Written((ref w) =>
        {
            w.Raw("["u8);
            for (var i = 0; i < 300; i++)
            {
                w.Number((long)i);
                w.Raw(","u8);
            }

            w.String(ascii);
            w.Raw(","u8);
            w.String(escaped);
            w.Raw("]"u8);
        });

        var expected = "[" + string.Concat(Enumerable.Range(0, 300).Select(i => i + ",")) + Reference(w => w.WriteStringValue(ascii))
            + "," + Reference(w => w.WriteStringValue(escaped)) + "]";
        Assert.Equal(expected, written);
    }

    [Fact]
    public void Null_IsNull() => Assert.Equal("null", Written((ref w) => w.String(null)));

    [Theory]
    [InlineData(1.23, 2, "1.23")]
    [InlineData(12.3, 2, "12.3")]
    [InlineData(1000.0, 3, "1000")]
    [InlineData(0.005, 3, "0.005")]
    [InlineData(-1.0, 2, "-1")]
    [InlineData(-0.0, 2, "-0")]
    [InlineData(999999999.99, 2, "999999999.99")]
    [InlineData(1e9, 2, "1000000000")]
    [InlineData(1e16, 2, "10000000000000000")]
    [InlineData(1.5e300, 2, "1.5E+300")]
    [InlineData(0.1234, 3, "0.1234")]
    public void Doubles_Examples(double value, int decimals, string expected)
    {
        Assert.Equal(expected, Written((ref w) => w.Number(value, decimals)));
        Assert.Equal(expected, Reference(w => w.WriteNumberValue(value)));
    }

    [Fact]
    public void RoundedDoubles_AreWrittenAsTheFrameworkWritesThem_AndAnyOtherDoubleToo()
    {
        var random = new Random(7);
        for (var i = 0; i < 100_000; i++)
        {
            var decimals = random.Next(1, 4);
            var magnitude = Math.Pow(10, random.Next(-6, 18));
            var raw = (random.NextDouble() - 0.2) * magnitude;
            // mostly values rounded as the request line rounds them (the fixed-point path), sometimes not (the general one)
            var value = random.Next(5) == 0 ? raw : Math.Round(raw, decimals);

            Assert.Equal(Reference(w => w.WriteNumberValue(value)), Written((ref w) => w.Number(value, decimals)));
        }
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(double.NegativeInfinity)]
    public void NonFiniteDoubles_AreStrings(double value) =>
        Assert.Equal($"\"{value.ToString(CultureInfo.InvariantCulture)}\"", Written((ref w) => w.Number(value, 2)));

    [Fact]
    public void IntegersAndDecimals_AreWrittenAsTheFrameworkWritesThem()
    {
        var random = new Random(11);
        long[] edges = [0, -1, long.MinValue, long.MaxValue, int.MaxValue];
        foreach (var value in edges.Concat(Enumerable.Range(0, 10_000).Select(_ => random.NextInt64(long.MinValue, long.MaxValue) >> random.Next(64))))
        {
            Assert.Equal(Reference(w => w.WriteNumberValue(value)), Written((ref w) => w.Number(value)));
        }

        decimal[] decimalEdges = [0m, 0.000546m, 1.50m, -0.1m, decimal.MaxValue, decimal.MinValue, 0.0000000000000000000000000001m];
        foreach (var value in decimalEdges.Concat(Enumerable.Range(0, 10_000).Select(_ => new decimal(random.Next(), random.Next(), random.Next(), random.Next(2) == 0, (byte)random.Next(29)))))
        {
            Assert.Equal(Reference(w => w.WriteNumberValue(value)), Written((ref w) => w.Number(value)));
        }
    }
}
