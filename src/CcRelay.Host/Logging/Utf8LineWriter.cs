using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace CcRelay.Host.Logging;

/// <summary>
/// JSON written by hand into an <see cref="IBufferWriter{T}"/>: literals, properties, strings, integers, decimals
/// and doubles, byte for byte what <see cref="Utf8JsonWriter"/> writes with relaxed escaping (tests compare the
/// two on random values). For the request line, which runs once per request: the framework writer escapes every
/// string through the encoder and formats every double with the shortest round-trip search, this one copies
/// plain ASCII as it is and writes the line's rounded milliseconds as fixed-point digits. Each write makes sure
/// of its room (one compare), so no caller has to size the line; <see cref="Flush"/> commits the bytes.
/// </summary>
internal ref struct Utf8LineWriter
{
    /// <summary>The most bytes a number this writer writes takes (a decimal: 29 digits, a sign, a point; a double's "R" form).</summary>
    private const int MaxNumberBytes = 32;

    private const double FixedLimit = 1e9;

    private static readonly JsonWriterOptions FallbackOptions = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        SkipValidation = true,
    };

    /// <summary>Printable ASCII but for <c>"</c> and <c>\</c>: what relaxed escaping leaves as it is.</summary>
    private static readonly SearchValues<char> Plain = SearchValues.Create(
        " !#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~");

    [ThreadStatic]
    private static Fallback? _fallback;

    private readonly IBufferWriter<byte> _output;
    private Span<byte> _span;
    private int _written;

    public Utf8LineWriter(IBufferWriter<byte> output)
    {
        _output = output;
        _span = output.GetSpan(1024);
    }

    /// <summary>Commits what was written to the output.</summary>
    public void Flush()
    {
        _output.Advance(_written);
        _written = 0;
        _span = default;
    }

    /// <summary>The bytes as they are (a literal that is valid JSON where it goes).</summary>
    public void Raw(scoped ReadOnlySpan<byte> bytes)
    {
        Ensure(bytes.Length);
        bytes.CopyTo(_span[_written..]);
        _written += bytes.Length;
    }

    /// <summary>A property: its name and colon as given (<c>,"name":</c>, encoded once by the caller), then the value.</summary>
    public void Property(scoped ReadOnlySpan<byte> nameAndColon, string? value)
    {
        Raw(nameAndColon);
        String(value);
    }

    /// <inheritdoc cref="Property(ReadOnlySpan{byte}, string)"/>
    public void Property(scoped ReadOnlySpan<byte> nameAndColon, long? value) => NumberOrNull(nameAndColon, value);

    /// <inheritdoc cref="Property(ReadOnlySpan{byte}, string)"/>
    public void Property(scoped ReadOnlySpan<byte> nameAndColon, decimal? value) => NumberOrNull(nameAndColon, value);

    /// <inheritdoc cref="Property(ReadOnlySpan{byte}, string)"/>
    public void Property(scoped ReadOnlySpan<byte> nameAndColon, bool value)
    {
        Raw(nameAndColon);
        Raw(value ? "true"u8 : "false"u8);
    }

    /// <summary>A property whose value is a double with at most <paramref name="decimals"/> decimals (<see cref="Number(double, int)"/>).</summary>
    public void Property(scoped ReadOnlySpan<byte> nameAndColon, double value, int decimals)
    {
        Raw(nameAndColon);
        Number(value, decimals);
    }

    /// <summary>A JSON string, or <c>null</c>.</summary>
    public void String(string? value)
    {
        if (value is null)
        {
            Raw("null"u8);
            return;
        }

        String(value.AsSpan());
    }

    /// <summary>A JSON string.</summary>
    public void String(scoped ReadOnlySpan<char> value)
    {
        if (value.ContainsAnyExcept(Plain))
        {
            // escapes, non-ASCII, unpaired surrogates: rare here (ids, names, model ids), so the framework writes them
            Raw((_fallback ??= new Fallback()).Quoted(value));
            return;
        }

        Ensure(value.Length + 2);
        _span[_written++] = (byte)'"';
        _written += Encoding.ASCII.GetBytes(value, _span[_written..]);
        _span[_written++] = (byte)'"';
    }

    /// <summary>An integer.</summary>
    public void Number(long value) => Formatted(value);

    /// <summary>A decimal as <see cref="Utf8JsonWriter"/> writes it (its own digits, trailing zeros kept).</summary>
    public void Number(decimal value) => Formatted(value);

    /// <summary>A property whose value is a number (<see cref="Formatted{T}"/>), or <c>null</c>.</summary>
    private void NumberOrNull<T>(scoped ReadOnlySpan<byte> nameAndColon, T? value)
        where T : struct, IUtf8SpanFormattable
    {
        Raw(nameAndColon);
        if (value is { } number)
        {
            Formatted(number);
        }
        else
        {
            Raw("null"u8);
        }
    }

    /// <summary>A long or a decimal in its invariant default format: at most <see cref="MaxNumberBytes"/> bytes.</summary>
    private void Formatted<T>(T value)
        where T : IUtf8SpanFormattable
    {
        Ensure(MaxNumberBytes);
        value.TryFormat(_span[_written..], out var count, default, CultureInfo.InvariantCulture);
        _written += count;
    }

    /// <summary>
    /// A double that has at most <paramref name="decimals"/> (1 to 3) decimals, as <see cref="Utf8JsonWriter"/>
    /// writes it (the shortest digits that read back the same): fixed-point digits when the value is
    /// <c>k / 10^decimals</c> exactly, the general form otherwise. A non-finite value becomes a string, as
    /// JSON has no number for it.
    /// </summary>
    public void Number(double value, int decimals)
    {
        if (!double.IsFinite(value))
        {
            String(value.ToString(CultureInfo.InvariantCulture));
            return;
        }

        Ensure(MaxNumberBytes);
        var scale = decimals switch { 1 => 10L, 2 => 100L, 3 => 1000L, _ => throw new ArgumentOutOfRangeException(nameof(decimals)) };
        var scaled = Math.Round(value * scale);
        if (Math.Abs(value) >= FixedLimit || scaled / scale != value)
        {
            value.TryFormat(_span[_written..], out var general, default, CultureInfo.InvariantCulture);
            _written += general;
            return;
        }

        // |value| < 1e9 and value is the double nearest k / scale: the shortest digits that read back as
        // value are k's, with the point put back and trailing zeros dropped (k / scale has at most
        // decimals digits after the point, and no shorter decimal lies within the double's half-ulp)
        var k = (long)Math.Abs(scaled);
        if (double.IsNegative(value))
        {
            _span[_written++] = (byte)'-';
        }

        var whole = k / scale;
        var fraction = k % scale;
        whole.TryFormat(_span[_written..], out var count, default, CultureInfo.InvariantCulture);
        _written += count;
        if (fraction == 0)
        {
            return;
        }

        _span[_written++] = (byte)'.';
        var digits = decimals;
        while (fraction % 10 == 0)
        {
            fraction /= 10;
            digits--;
        }

        for (var i = digits - 1; i >= 0; i--)
        {
            _span[_written + i] = (byte)('0' + (fraction % 10));
            fraction /= 10;
        }

        _written += digits;
    }

    /// <summary>Makes room for <paramref name="bytes"/> more bytes: commits what is written and asks the output for more.</summary>
    private void Ensure(int bytes)
    {
        if (_span.Length - _written < bytes)
        {
            _output.Advance(_written);
            _written = 0;
            _span = _output.GetSpan(Math.Max(bytes, 1024));
        }
    }

    /// <summary>The framework's writer, for the strings that need escaping (and unpaired surrogates replaced, as it does).</summary>
    private sealed class Fallback
    {
        private readonly ArrayBufferWriter<byte> _buffer = new(256);
        private readonly Utf8JsonWriter _writer;

        public Fallback() => _writer = new Utf8JsonWriter(_buffer, FallbackOptions);

        public ReadOnlySpan<byte> Quoted(scoped ReadOnlySpan<char> value)
        {
            _buffer.ResetWrittenCount();
            _writer.Reset(_buffer);
            _writer.WriteStringValue(value);
            _writer.Flush();
            return _buffer.WrittenSpan;
        }
    }
}
