using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace CcRelay.Host.Logging;

/// <summary>
/// The state of the one line per request (<see cref="Log.RequestCompleted"/>): its fields by name, as every
/// structured logger provider reads them (each value boxed only when read that way), and
/// <see cref="WriteJson"/>, which the relay's own JSON formatter takes instead: typed values written by hand
/// (<see cref="Utf8LineWriter"/>), property names encoded once, nothing boxed. Field names and order are a
/// contract (docs/observability.md).
/// </summary>
internal sealed class RequestLine : IReadOnlyList<KeyValuePair<string, object?>>
{
    /// <summary>The message template the text line follows (also given as <c>{OriginalFormat}</c>).</summary>
    public const string Template =
        "{request_id} {method} {path} -> {status} client_key_id={client_key_id} provider={provider} key_id={key_id} model={model} upstream_model={upstream_model} response_model={response_model} stream={stream} result={result} error_type={error_type} stop_reason={stop_reason} attempts={attempts} duration_ms={duration_ms} ttfb_ms={ttfb_ms} overhead_ms={overhead_ms} input_tokens={input_tokens} output_tokens={output_tokens} cache_read_tokens={cache_read_tokens} cache_write_tokens={cache_write_tokens} cost_usd={cost_usd} bytes_in={bytes_in} bytes_out={bytes_out}";

    private static readonly string[] Names =
    [
        "request_id", "method", "path", "status", "client_key_id", "provider", "key_id", "model", "upstream_model",
        "response_model", "stream", "result", "error_type", "stop_reason", "attempts", "duration_ms", "ttfb_ms",
        "overhead_ms", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd",
        "bytes_in", "bytes_out",
    ];

    /// <summary>Each field's name as it precedes its value in the JSON: <c>"request_id":</c>, <c>,"method":</c>, …</summary>
    private static readonly byte[][] NameBytes = [.. Names.Select((n, i) => Encoding.UTF8.GetBytes((i == 0 ? "\"" : ",\"") + n + "\":"))];

    private readonly RequestRecord _record;
    private readonly double _durationMs;
    private readonly double _ttfbMs;
    private readonly double _overheadMs;

    public RequestLine(RequestRecord record, double durationMs)
    {
        _record = record;
        _durationMs = Math.Round(durationMs, 2);
        _ttfbMs = Math.Round(record.TtfbMs, 2);
        _overheadMs = record.Timing.OverheadMs;
    }

    /// <summary>The text line (the template's fields in a row), as the text formatter writes it.</summary>
    public static Func<RequestLine, Exception?, string> Format { get; } = static (line, _) => line.ToString();

    /// <summary>The fields, then <c>{OriginalFormat}</c>.</summary>
    public int Count => Names.Length + 1;

    public KeyValuePair<string, object?> this[int index] =>
        index == Names.Length
            ? new KeyValuePair<string, object?>("{OriginalFormat}", Template)
            : new KeyValuePair<string, object?>(Names[index], Value(index));

    public IEnumerator<KeyValuePair<string, object?>> GetEnumerator()
    {
        for (var i = 0; i < Count; i++)
        {
            yield return this[i];
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>
    /// Writes the fields (inside an object the caller opened): strings, numbers, booleans and nulls as such,
    /// byte for byte what <see cref="Utf8JsonWriter"/> writes for them with relaxed escaping.
    /// </summary>
    public void WriteJson(ref Utf8LineWriter writer)
    {
        var r = _record;
        var usage = r.Usage;
        writer.Property(NameBytes[0], r.RequestId);
        writer.Property(NameBytes[1], r.Method);
        writer.Property(NameBytes[2], r.Path);
        writer.Property(NameBytes[3], r.Status);
        writer.Property(NameBytes[4], r.ClientKeyId);
        writer.Property(NameBytes[5], r.Provider);
        writer.Property(NameBytes[6], r.KeyId);
        writer.Property(NameBytes[7], r.Model);
        writer.Property(NameBytes[8], r.UpstreamModel);
        writer.Property(NameBytes[9], r.Answer?.Model?.Value);
        writer.Property(NameBytes[10], r.Stream);
        writer.Property(NameBytes[11], r.Result);
        writer.Property(NameBytes[12], r.ErrorType);
        writer.Property(NameBytes[13], r.Answer?.StopReason?.Value);
        writer.Property(NameBytes[14], r.Attempts);
        writer.Property(NameBytes[15], _durationMs, decimals: 2);
        writer.Property(NameBytes[16], _ttfbMs, decimals: 2);
        writer.Property(NameBytes[17], _overheadMs, decimals: 3);
        writer.Property(NameBytes[18], usage?.InputTokens);
        writer.Property(NameBytes[19], usage?.OutputTokens);
        writer.Property(NameBytes[20], usage?.CacheReadTokens);
        writer.Property(NameBytes[21], usage?.CacheWriteTokens);
        writer.Property(NameBytes[22], r.CostUsd);
        writer.Property(NameBytes[23], r.BytesIn);
        writer.Property(NameBytes[24], r.BytesOut);
    }

    /// <summary>The template with every field filled in, as the generated loggers fill it: invariant culture, nothing for null.</summary>
    public override string ToString()
    {
        var text = new StringBuilder(512);
        var from = 0;
        for (var i = 0; i < Names.Length; i++)
        {
            var hole = Template.IndexOf('{', from);
            text.Append(Template, from, hole - from);
            text.Append(Convert.ToString(Value(i), CultureInfo.InvariantCulture));
            from = Template.IndexOf('}', hole) + 1;
        }

        return text.Append(Template, from, Template.Length - from).ToString();
    }

    private object? Value(int index)
    {
        var r = _record;
        var usage = r.Usage;
        return index switch
        {
            0 => r.RequestId,
            1 => r.Method,
            2 => r.Path,
            3 => r.Status,
            4 => r.ClientKeyId,
            5 => r.Provider,
            6 => r.KeyId,
            7 => r.Model,
            8 => r.UpstreamModel,
            9 => r.Answer?.Model?.Value,
            10 => r.Stream,
            11 => r.Result,
            12 => r.ErrorType,
            13 => r.Answer?.StopReason?.Value,
            14 => r.Attempts,
            15 => _durationMs,
            16 => _ttfbMs,
            17 => _overheadMs,
            18 => usage?.InputTokens,
            19 => usage?.OutputTokens,
            20 => usage?.CacheReadTokens,
            21 => usage?.CacheWriteTokens,
            22 => r.CostUsd,
            23 => r.BytesIn,
            24 => r.BytesOut,
            _ => throw new ArgumentOutOfRangeException(nameof(index)),
        };
    }
}
