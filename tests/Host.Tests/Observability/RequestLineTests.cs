using System.Buffers;
using System.Globalization;
using System.Text.Json;
using CcRelay.Core;
using CcRelay.Host.Http;
using CcRelay.Host.Logging;
using Microsoft.AspNetCore.Http;
using Microsoft.FSharp.Core;

namespace CcRelay.Host.Tests.Observability;

/// <summary>
/// The request line's two faces agree: the fields any structured provider reads by name, the typed JSON the relay's
/// formatter writes, and the text line (the template filled in the way <c>LoggerMessage</c> fills it).
/// </summary>
public sealed class RequestLineTests
{
    private static RequestRecord Record(bool answered)
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
            Answer = answered
                ? new AnswerUsage(
                    FSharpOption<string>.Some("claude-sonnet-4-6-20260101"),
                    FSharpOption<Usage>.Some(new Usage(2417, 112, 18880, 0)),
                    FSharpOption<string>.Some("end_turn"),
                    FSharpOption<string>.None)
                : null,
        };
    }

    private static Dictionary<string, JsonElement> Json(RequestLine line)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            line.WriteJson(writer);
            writer.WriteEndObject();
        }

        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        return document.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.Clone());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void TheJsonHasEveryNamedFieldInOrder_WithTheSameValues(bool answered)
    {
        // Arrange
        var line = new RequestLine(Record(answered), 123.456);

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
        var line = new RequestLine(Record(answered: true), 1);

        // Act
        var names = line.Select(f => f.Key).ToList();

        // Assert
        Assert.Equal(
            ["request_id", "method", "path", "status", "client_key_id", "provider", "key_id", "model", "upstream_model",
             "response_model", "stream", "result", "error_type", "stop_reason", "attempts", "duration_ms", "ttfb_ms",
             "overhead_ms", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd",
             "bytes_in", "bytes_out", "{OriginalFormat}"],
            names);
        Assert.Equal(RequestLine.Template, line[^1].Value);
        Assert.Equal(names.Count, line.Count);
    }

    [Fact]
    public void TheTextLine_FillsTheTemplate_WithNullsLeftEmptyAsTheGeneratedLoggersLeaveThem()
    {
        // Arrange
        var line = new RequestLine(Record(answered: false), 7.891);

        // Act
        var text = line.ToString();

        // Assert
        Assert.Equal(
            "req_1 POST /v1/messages -> 502 client_key_id=ab12cd34 provider=anthropic key_id=ef56ab78 model=claude-sonnet-4-6 "
            + "upstream_model=claude-sonnet-4-6-20260101 response_model= stream=True result=api_error error_type=api_error "
            + "stop_reason= attempts=2 duration_ms=7.89 ttfb_ms=12.35 overhead_ms=-1 input_tokens= output_tokens= "
            + "cache_read_tokens= cache_write_tokens= cost_usd= bytes_in=5668 bytes_out=837",
            text);
    }
}
