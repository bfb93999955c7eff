using System.Buffers;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using CcRelay.Core;
using CcRelay.Host.Http;
using CcRelay.Host.Logging;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.FSharp.Core;
using MsLogLevel = Microsoft.Extensions.Logging.LogLevel;

namespace CcRelay.Host.Bench;

/// <summary>
/// The request line, the one log line written for every request: formatted by the relay's JSON formatter (by
/// hand, <c>Utf8LineWriter</c>) against the same fields written with <see cref="Utf8JsonWriter"/> (how it was
/// written before, and the reference its bytes are tested against).
/// </summary>
[MemoryDiagnoser]
public class RequestLineBenchmarks
{
    private const string Category = "CcRelay.Host.Endpoints.MessagesEndpoint";

    private readonly ArrayBufferWriter<byte> _output = new(4096);
    private readonly Utf8JsonWriter _writer;
    private readonly RequestLineBuffer _facts = new();
    private readonly RequestLineBuffer _captured = new();
    private RequestLine _line = null!;

    public RequestLineBenchmarks() =>
        _writer = new Utf8JsonWriter(_output, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true });

    [GlobalSetup]
    public void Setup()
    {
        _line = new RequestLine(Sample.Record(), 1234.5678);
        _captured.Add(_line, DateTime.UtcNow, Category, MsLogLevel.Information, 1, position: 0);
    }

    [Benchmark(Baseline = true, Description = "Utf8JsonWriter, field by field")]
    public int Framework()
    {
        _output.ResetWrittenCount();
        _writer.Reset(_output);
        _writer.WriteStartObject();
        _writer.WriteString("Timestamp", DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture));
        _writer.WriteNumber("EventId", 1);
        _writer.WriteString("LogLevel", "Information");
        _writer.WriteString("Category", Category);
        _writer.WriteStartObject("State");
        for (var i = 0; i < _line.Count - 1; i++)
        {
            var (name, value) = _line[i];
            JsonLineFormatter.WriteValue(_writer, name, value);
        }

        _writer.WriteEndObject();
        _writer.WriteEndObject();
        _writer.Flush();
        return _output.WrittenCount;
    }

    [Benchmark(Description = "the relay's formatter (by hand)")]
    public int Relay()
    {
        var entry = new LogEntry<RequestLine>(MsLogLevel.Information, Category, Log.RequestCompletedEvent, _line, null, RequestLine.Format);
        JsonLineFormatter.WriteUtf8(entry, _output);
        return _output.WrittenCount;
    }

    /// <summary>What the log file's request line costs the request's thread: its facts copied into the batch.</summary>
    [Benchmark(Description = "log file, request thread: facts copied (RequestLineBuffer.Add)")]
    public int Capture()
    {
        _facts.Clear();
        _facts.Add(_line, DateTime.UtcNow, Category, MsLogLevel.Information, 1, position: 0);
        return _facts.Count;
    }

    /// <summary>What it costs the writer's thread: a copied line formatted.</summary>
    [Benchmark(Description = "log file, writer thread: copied facts formatted (RequestLineBuffer.WriteJson)")]
    public int FormatCaptured()
    {
        _output.ResetWrittenCount();
        _captured.WriteJson(0, _output);
        return _output.WrittenCount;
    }
}

/// <summary>A typical answered request's facts.</summary>
internal static class Sample
{
    public static RequestRecord Record()
    {
        var timing = new RequestTiming(TimeProvider.System, "req_01JD2K8Q4W3E5R6T7Y8U9I0O1P", new DefaultHttpContext().Response);
        timing.ResponseStarting();
        return new RequestRecord
        {
            RequestId = timing.RequestId,
            Method = "POST",
            Path = "/v1/messages",
            Timing = timing,
            Detailed = true,
            ClientKeyId = "k1a2b3c4",
            Provider = "anthropic",
            KeyId = "k9f8e7d6",
            Model = "claude-sonnet-4-5-20250929",
            UpstreamModel = "claude-sonnet-4-5-20250929",
            Status = 200,
            Stream = true,
            BytesIn = 18_431,
            BytesOut = 5_120,
            TtfbMs = 734.2187,
            Attempts = 1,
            Answer = new AnswerUsage(
                FSharpOption<string>.Some("claude-sonnet-4-5-20250929"),
                FSharpOption<Usage>.Some(new Usage(2417, 112, 18880, 0)),
                FSharpOption<string>.Some("end_turn"),
                FSharpOption<string>.None),
            CostUsd = 0.014595m,
        };
    }
}
