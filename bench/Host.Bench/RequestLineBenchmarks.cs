using System.Globalization;
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
/// The request line, the one log line written for every request, as the relay's JSON formatter writes it (to the
/// console, and on the log file's sink thread into the file's writer).
/// </summary>
[MemoryDiagnoser]
public class RequestLineBenchmarks
{
    private const string Category = "CcRelay.Host.Endpoints.MessagesEndpoint";

    private readonly JsonLineFormatter _formatter = new();
    private readonly StringWriter _output = new(CultureInfo.InvariantCulture);
    private RequestLine _line = null!;

    [GlobalSetup]
    public void Setup() => _line = new RequestLine(Sample.Record());

    [Benchmark(Description = "the relay's JSON formatter")]
    public int Relay()
    {
        _output.GetStringBuilder().Clear();
        var entry = new LogEntry<RequestLine>(MsLogLevel.Information, Category, Log.RequestCompletedEvent, _line, null, RequestLine.Format);
        _formatter.Write(entry, null, _output);
        return _output.GetStringBuilder().Length;
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
            Elapsed = TimeSpan.FromMilliseconds(1234.5678),
        };
    }
}
