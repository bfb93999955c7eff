using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Http;
using CcRelay.Host.Logging;
using CcRelay.Host.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;
using Microsoft.FSharp.Core;

namespace CcRelay.Host.Tests.Observability;

/// <summary>
/// The request line's faces agree: the fields any structured provider reads by name, the JSON the relay's formatter
/// writes (to the console and the log file), and the text line (the template filled in).
/// </summary>
public sealed class RequestLineTests
{
    private static RequestRecord Record(bool answered, double durationMs = 1)
    {
        var timing = new RequestTiming(TimeProvider.System, "req_1", new DefaultHttpContext().Response);
        return new RequestRecord
        {
            RequestId = "req_1",
            Method = "POST",
            Path = "/v1/messages",
            Timing = timing,
            ClientKeyId = "ab12cd34",
            Provider = "anthropic",
            KeyId = "ef56ab78",
            Model = "claude-sonnet-4-6",
            UpstreamModel = "claude-sonnet-4-6-20260101",
            Status = answered ? 200 : 502,
            Stream = true,
            Result = answered ? "ok" : "api_error",
            ErrorType = answered ? null : "api_error",
            Attempts = 2,
            TtfbMs = 12.346,
            BytesIn = 5668,
            BytesOut = 837,
            CostUsd = answered ? 0.014595m : null,
            Elapsed = TimeSpan.FromMilliseconds(durationMs),
            Answer = answered
                ? new AnswerUsage(
                    FSharpOption<string>.Some("claude-sonnet-4-6-20260101"),
                    FSharpOption<Usage>.Some(new Usage(2417, 112, 18880, 0)),
                    FSharpOption<string>.Some("end_turn"),
                    FSharpOption<string>.None)
                : null,
        };
    }

    [Fact]
    public void EffectiveModel_OfATranslatedAnswer_IsTheModelSentUpstream_NotTheClientsModelTheAnswerNames()
    {
        // Arrange: a translated answer names the client's model (Claude Code keeps thinking only then)
        var passthrough = Record(answered: true);
        passthrough.Answer = new AnswerUsage(
            FSharpOption<string>.Some("claude-sonnet-4-6"), FSharpOption<Usage>.None, FSharpOption<string>.None, FSharpOption<string>.None);
        passthrough.UpstreamModel = "deepseek-reasoner";
        var translated = Record(answered: true);
        translated.Answer = passthrough.Answer;
        translated.UpstreamModel = "deepseek-reasoner";
        translated.Translated = true;

        // Act + Assert: metrics and the request feed count a translated request under the target's model
        Assert.Equal("claude-sonnet-4-6", passthrough.EffectiveModel);
        Assert.Equal("deepseek-reasoner", translated.EffectiveModel);
    }

    private const string Category = "CcRelay.Host.Endpoints.MessagesEndpoint";

    /// <summary>The line as the relay's JSON formatter writes it (console and log file alike).</summary>
    private static string Line(RequestLine line)
    {
        using var output = new StringWriter(CultureInfo.InvariantCulture);
        var entry = new LogEntry<RequestLine>(Microsoft.Extensions.Logging.LogLevel.Information, Category, Log.RequestCompletedEvent, line, null, RequestLine.Format);
        new JsonLineFormatter().Write(entry, null, output);
        return output.ToString();
    }

    private static Dictionary<string, JsonElement> Json(RequestLine line)
    {
        using var document = JsonDocument.Parse(Line(line));
        return document.RootElement.GetProperty("State").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.Clone());
    }

    [Fact]
    public void JsonLine_IsStampedWithTheTimeItsRequestEnded_HoweverLaterItIsWritten()
    {
        // Arrange: a request that ended in 2020
        var record = Record(answered: true);
        record.EndedAt = new DateTime(2020, 1, 2, 3, 4, 5, 678, DateTimeKind.Utc);

        // Act
        using var document = JsonDocument.Parse(Line(new RequestLine(record)));

        // Assert
        Assert.Equal("2020-01-02T03:04:05.678Z", document.RootElement.GetProperty("Timestamp").GetString());
    }

    /// <summary>
    /// The line as <see cref="Utf8JsonWriter"/> writes it with relaxed escaping, field by field: the reference the
    /// line must equal byte for byte (what the relay wrote before, and what log pipelines parse).
    /// </summary>
    private static string ReferenceLine(RequestLine line, string timestamp)
    {
        var output = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(output, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true }))
        {
            writer.WriteStartObject();
            writer.WriteString("Timestamp", timestamp);
            writer.WriteNumber("EventId", 1);
            writer.WriteString("LogLevel", "Information");
            writer.WriteString("Category", Category);
            writer.WriteStartObject("State");
            foreach (var (name, value) in line.Where(f => f.Key != "{OriginalFormat}"))
            {
                JsonLineFormatter.WriteValue(writer, name, value);
            }

            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(output.WrittenSpan) + Environment.NewLine;
    }

    /// <summary>A request line with random values: strings that need escaping, nulls, huge and negative numbers.</summary>
    private static RequestLine RandomLine(Random random)
    {
        string[] texts = ["", "-", "anthropic", "claude-sonnet-4-6", "/v1/messages?beta=true", "modèle \"x\"", "tab\there", "😀", "\ud800", "a\u2028b"];
        string Text() => random.Next(3) == 0 ? texts[random.Next(texts.Length)] : new string((char)random.Next(0x20, 0x7f), random.Next(1, 40));
        double Millis() => random.Next(8) switch
        {
            0 => -1,
            1 => random.NextDouble() * 1e12,
            _ => random.NextDouble() * Math.Pow(10, random.Next(0, 6)),
        };

        var answered = random.Next(3) != 0;
        var record = new RequestRecord
        {
            RequestId = Text(),
            Method = random.Next(2) == 0 ? "POST" : Text(),
            Path = Text(),
            Timing = new RequestTiming(TimeProvider.System, "req_1", new DefaultHttpContext().Response),
        };
        record.ClientKeyId = Text();
        record.Provider = Text();
        record.KeyId = Text();
        record.Model = Text();
        record.UpstreamModel = Text();
        record.Status = random.Next(100, 600);
        record.Stream = random.Next(2) == 0;
        record.Result = Text();
        record.ErrorType = random.Next(2) == 0 ? null : Text();
        record.Attempts = random.Next(0, 9);
        record.TtfbMs = Millis();
        record.BytesIn = random.NextInt64(0, long.MaxValue) >> random.Next(64);
        record.BytesOut = random.NextInt64(0, long.MaxValue) >> random.Next(64);
        record.CostUsd = random.Next(3) == 0 ? null : new decimal(random.Next(), random.Next(8), 0, false, (byte)random.Next(29));
        record.Elapsed = TimeSpan.FromMilliseconds(Millis());
        if (answered)
        {
            record.Answer = new AnswerUsage(
                random.Next(4) == 0 ? FSharpOption<string>.None : FSharpOption<string>.Some(Text()),
                random.Next(4) == 0 ? FSharpOption<Usage>.None : FSharpOption<Usage>.Some(new Usage(random.NextInt64(1_000_000), random.NextInt64(100_000), random.NextInt64(1_000_000), random.NextInt64(100_000))),
                random.Next(4) == 0 ? FSharpOption<string>.None : FSharpOption<string>.Some(Text()),
                FSharpOption<string>.None);
        }

        return new RequestLine(record);
    }

    [Fact]
    public void TheJsonLine_IsByteForByteWhatTheFrameworkWriterWrites_ForRandomRecords()
    {
        var random = new Random(20261121);
        for (var i = 0; i < 2_000; i++)
        {
            var line = RandomLine(random);

            var written = Line(line);
            var timestamp = JsonDocument.Parse(written).RootElement.GetProperty("Timestamp").GetString()!;

            Assert.Equal(ReferenceLine(line, timestamp), written);
        }
    }

    /// <summary>
    /// The log file formats its lines on its sink's thread, and is switched between files while lines are queued:
    /// each file must hold its lines, in the order logged, each in the file that was in force when it was logged,
    /// none lost or written twice, request lines byte for byte as the formatter writes them.
    /// </summary>
    [Fact]
    public void TheLogFile_WritesEveryLineOnce_InTheOrderLogged_EachToTheFileInForce()
    {
        // Arrange: a log file writing JSON to one of two files, switched while lines are waiting to be written
        var dir = Directory.CreateTempSubdirectory("cc-relay-requestline-").FullName;
        try
        {
            string[] paths = [Path.Combine(dir, "a.log"), Path.Combine(dir, "b.log")];
            LoggingConfig To(int file) => TestConfig.Logging(format: LogFormat.Json, output: paths[file]);
            var loggingSwitch = new LoggingSwitch(To(0));
            using var services = new ServiceCollection()
                .AddLogging(b => b.AddConsole().AddConsoleFormatter<JsonLineFormatter, ConsoleFormatterOptions>())
                .BuildServiceProvider();
            using var provider = new LogFile(loggingSwitch, services.GetServices<ConsoleFormatter>());
            var logger = provider.CreateLogger(Category);
            var random = new Random(20261122);
            var expected = new List<(RequestLine? Line, string? Message)>[] { [], [] };
            var file = 0;
            var before = TimeProvider.System.GetUtcNow().UtcDateTime;

            // Act: request lines among other lines, in runs, with the file switched now and then
            for (var i = 0; i < 3_000; i++)
            {
                if (random.Next(50) == 0)
                {
                    file = 1 - file;
                    loggingSwitch.Apply(To(file));
                }

                if (random.Next(4) == 0)
                {
                    var message = $"other line {i}";
                    logger.LogWarning("other line {Number}", i);
                    expected[file].Add((null, message));
                }
                else
                {
                    var line = RandomLine(random);
                    logger.Log(Microsoft.Extensions.Logging.LogLevel.Information, Log.RequestCompletedEvent, line, null, RequestLine.Format);
                    expected[file].Add((line, null));
                }
            }

            provider.Flush();
            var after = TimeProvider.System.GetUtcNow().UtcDateTime;

            // Assert: each file holds its lines in order; request lines byte for byte
            for (var f = 0; f < 2; f++)
            {
                var lines = File.ReadAllText(paths[f]).Split(Environment.NewLine)[..^1];
                Assert.Equal(expected[f].Count, lines.Length);
                for (var i = 0; i < lines.Length; i++)
                {
                    var root = JsonDocument.Parse(lines[i]).RootElement;
                    var timestamp = root.GetProperty("Timestamp").GetString()!;
                    var stamped = DateTime.Parse(timestamp, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal);
                    Assert.InRange(stamped, before.AddMilliseconds(-1), after);
                    var (line, message) = expected[f][i];
                    if (line is not null)
                    {
                        Assert.Equal(ReferenceLine(line, timestamp), lines[i] + Environment.NewLine);
                    }
                    else
                    {
                        Assert.Equal(message, root.GetProperty("Message").GetString());
                    }
                }
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void TheJsonHasEveryNamedFieldInOrder_WithTheSameValues(bool answered)
    {
        // Arrange
        var line = new RequestLine(Record(answered, 123.456));

        // Act
        var json = Json(line);
        var fields = line.Where(f => f.Key != "{OriginalFormat}").ToList();

        // Assert: same names, same order, same values (numbers as numbers, null as null)
        Assert.Equal(fields.Select(f => f.Key), json.Keys);
        foreach (var (name, value) in fields)
        {
            var element = json[name];
            switch (value)
            {
                case null:
                    Assert.Equal(JsonValueKind.Null, element.ValueKind);
                    break;
                case string text:
                    Assert.Equal(text, element.GetString());
                    break;
                case bool flag:
                    Assert.Equal(flag, element.GetBoolean());
                    break;
                default:
                    Assert.Equal(Convert.ToDecimal(value, CultureInfo.InvariantCulture), element.GetDecimal());
                    break;
            }
        }
    }

    [Fact]
    public void TheFieldsAreTheDocumentedOnes_AndTheTemplateComesLast()
    {
        // Arrange
        var line = new RequestLine(Record(answered: true));

        // Act
        var names = line.Select(f => f.Key).ToList();

        // Assert
        Assert.Equal(
            ["request_id", "method", "path", "status", "client_key_id", "provider", "key_id", "model", "upstream_model",
             "response_model", "stream", "result", "error_type", "stop_reason", "attempts", "duration_ms", "ttfb_ms",
             "overhead_ms", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd",
             "bytes_in", "bytes_out", "dropped", "stage", "stage_reason", "client", "local", "{OriginalFormat}"],
            names);
        Assert.Equal(RequestLine.Template, line[^1].Value);
        Assert.Equal(names.Count, line.Count);
    }

    [Fact]
    public void TheTextLine_FillsTheTemplate_WithNullsLeftEmptyAsTheGeneratedLoggersLeaveThem()
    {
        // Arrange
        var line = new RequestLine(Record(answered: false, 7.891));

        // Act
        var text = line.ToString();

        // Assert
        Assert.Equal(
            "req_1 POST /v1/messages -> 502 client_key_id=ab12cd34 provider=anthropic key_id=ef56ab78 model=claude-sonnet-4-6 "
            + "upstream_model=claude-sonnet-4-6-20260101 response_model= stream=True result=api_error error_type=api_error "
            + "stop_reason= attempts=2 duration_ms=7.89 ttfb_ms=12.35 overhead_ms=-1 input_tokens= output_tokens= "
            + "cache_read_tokens= cache_write_tokens= cost_usd= bytes_in=5668 bytes_out=837 dropped= stage=- stage_reason=- client=- local=",
            text);
    }
}
