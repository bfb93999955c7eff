using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;

namespace CcRelay.Host.Logging;

/// <summary>
/// <c>logging.format: json</c>: one JSON object per line, for the console and the log file alike.
/// <code>
///   {"Timestamp":"2026-11-21T10:16:43.931Z","EventId":1,"LogLevel":"Information","Category":"…","Message":"…","State":{"request_id":"req_…",…}}
/// </code>
/// The shape of the framework's JSON console formatter (so existing log pipelines keep working), minus its
/// <c>{OriginalFormat}</c> entry, which repeats the message template on every line, and minus the request
/// line's <c>Message</c>, which repeats its <c>State</c>; the request line is stamped with the time its request
/// ended. Numbers, booleans and null stay JSON numbers, booleans and null; escaping is relaxed.
/// </summary>
internal sealed class JsonLineFormatter() : ConsoleFormatter(FormatterName)
{
    /// <summary>The formatter's name, for <see cref="ConsoleLoggerOptions.FormatterName"/>.</summary>
    public const string FormatterName = "ccrelay-json";

    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true };

    [ThreadStatic]
    private static (ArrayBufferWriter<byte> Bytes, Utf8JsonWriter Writer)? _buffers;

    public override void Write<TState>(in LogEntry<TState> logEntry, IExternalScopeProvider? scopeProvider, TextWriter textWriter)
    {
        var line = logEntry.State as RequestLine;
        var message = line is null ? logEntry.Formatter(logEntry.State, logEntry.Exception) : null;
        if (line is null && logEntry.Exception is null && string.IsNullOrEmpty(message))
        {
            return;
        }

        var (bytes, writer) = _buffers ??= NewBuffers();
        bytes.ResetWrittenCount();
        writer.Reset(bytes);
        writer.WriteStartObject();
        Span<char> stamp = stackalloc char[24];
#pragma warning disable RS0030 // an entry that is not a request line is stamped on the logging framework's wall clock, as the framework's own formatters do
        (line?.Timestamp ?? DateTime.UtcNow).TryFormat(stamp, out _, "yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
#pragma warning restore RS0030
        writer.WriteString("Timestamp", stamp);
        writer.WriteNumber("EventId", logEntry.EventId.Id);
        writer.WriteString("LogLevel", logEntry.LogLevel.ToString());
        writer.WriteString("Category", logEntry.Category);
        if (message is not null)
        {
            writer.WriteString("Message", message);
        }

        if (logEntry.Exception is { } exception)
        {
            writer.WriteString("Exception", exception.ToString());
        }

        if (logEntry.State is IReadOnlyList<KeyValuePair<string, object?>> state)
        {
            writer.WriteStartObject("State");
            for (var i = 0; i < state.Count; i++)
            {
                var (name, value) = state[i];
                if (name != "{OriginalFormat}")
                {
                    WriteValue(writer, name, value);
                }
            }

            writer.WriteEndObject();
        }

        writer.WriteEndObject();
        writer.Flush();

        var written = bytes.WrittenSpan;
        var chars = ArrayPool<char>.Shared.Rent(Encoding.UTF8.GetMaxCharCount(written.Length));
        textWriter.Write(chars, 0, Encoding.UTF8.GetChars(written, chars));
        ArrayPool<char>.Shared.Return(chars);
        textWriter.Write(Environment.NewLine);
        if (bytes.Capacity > 64 * 1024)
        {
            _buffers = null; // a huge line (a debug body) must not pin its buffer
        }
    }

    /// <summary>A state value: strings, booleans and numbers as such, anything else as its invariant text.</summary>
    internal static void WriteValue(Utf8JsonWriter writer, string name, object? value)
    {
        switch (value)
        {
            case null:
                writer.WriteNull(name);
                break;
            case string text:
                writer.WriteString(name, text);
                break;
            case bool flag:
                writer.WriteBoolean(name, flag);
                break;
            case int number:
                writer.WriteNumber(name, number);
                break;
            case long number:
                writer.WriteNumber(name, number);
                break;
            case double number when double.IsFinite(number):
                writer.WriteNumber(name, number);
                break;
            case decimal number:
                writer.WriteNumber(name, number);
                break;
            default:
                writer.WriteString(name, Convert.ToString(value, CultureInfo.InvariantCulture));
                break;
        }
    }

    private static (ArrayBufferWriter<byte>, Utf8JsonWriter) NewBuffers()
    {
        var bytes = new ArrayBufferWriter<byte>(4096);
        return (bytes, new Utf8JsonWriter(bytes, WriterOptions));
    }
}
