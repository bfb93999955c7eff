using System.Collections;
using System.Globalization;
using System.Text;
using CcRelay.Host.Http;

namespace CcRelay.Host.Logging;

/// <summary>
/// The state of the one line per request (<see cref="Log.RequestCompleted"/>): its fields by name, as every
/// structured logger provider reads them (each value boxed only when read), and the time its request ended, which
/// the JSON line shows. Field names and order are a contract (docs/observability.md).
/// </summary>
internal sealed class RequestLine(RequestRecord record) : IReadOnlyList<KeyValuePair<string, object?>>
{
    /// <summary>The message template the text line follows (also given as <c>{OriginalFormat}</c>).</summary>
    public const string Template =
        "{request_id} {method} {path} -> {status} client_key_id={client_key_id} provider={provider} key_id={key_id} model={model} upstream_model={upstream_model} response_model={response_model} stream={stream} result={result} error_type={error_type} stop_reason={stop_reason} attempts={attempts} duration_ms={duration_ms} ttfb_ms={ttfb_ms} overhead_ms={overhead_ms} input_tokens={input_tokens} output_tokens={output_tokens} cache_read_tokens={cache_read_tokens} cache_write_tokens={cache_write_tokens} cost_usd={cost_usd} bytes_in={bytes_in} bytes_out={bytes_out} dropped={dropped} stage={stage} stage_reason={stage_reason} client={client} local={local}";

    private static readonly string[] Names =
    [
        "request_id", "method", "path", "status", "client_key_id", "provider", "key_id", "model", "upstream_model",
        "response_model", "stream", "result", "error_type", "stop_reason", "attempts", "duration_ms", "ttfb_ms",
        "overhead_ms", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd",
        "bytes_in", "bytes_out", "dropped", "stage", "stage_reason", "client", "local",
    ];

    /// <summary>The line's time (UTC): when its request ended, else when the line was made.</summary>
#pragma warning disable RS0030 // a line with no request end is stamped on the logging framework's wall clock, as every other log entry is
    public DateTime Timestamp { get; } = record.EndedAt == default ? DateTime.UtcNow : record.EndedAt;
#pragma warning restore RS0030

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

    /// <summary>The template with every field filled in: invariant culture, nothing for null.</summary>
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
        var r = record;
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
            9 => r.ResponseModel,
            10 => r.Stream,
            11 => r.Result,
            12 => r.ErrorType,
            13 => r.Answer?.StopReason?.Value,
            14 => r.Attempts,
            15 => Math.Round(r.Elapsed.TotalMilliseconds, 2),
            16 => Math.Round(r.TtfbMs, 2),
            17 => r.Timing.OverheadMs,
            18 => usage?.InputTokens,
            19 => usage?.OutputTokens,
            20 => usage?.CacheReadTokens,
            21 => usage?.CacheWriteTokens,
            22 => r.CostUsd,
            23 => r.BytesIn,
            24 => r.BytesOut,
            25 => r.Dropped,
            26 => r.Stage,
            27 => r.StageReason,
            28 => r.Client,
            29 => r.Local,
            _ => throw new ArgumentOutOfRangeException(nameof(index)),
        };
    }
}
