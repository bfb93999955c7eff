using System.Text;

namespace CcRelay.Bench.FakeUpstream;

/// <summary>Pre-encoded response bytes; built once at start-up.</summary>
internal sealed class CannedResponses
{
    /// <summary>The non-streaming Anthropic Message (same body nginx serves as the JSON upstream).</summary>
    public const string MessageJson =
        "{\"id\":\"msg_01BenchFakeUpstream000000001\",\"type\":\"message\",\"role\":\"assistant\"," +
        "\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[{\"type\":\"text\",\"text\":" +
        "\"I read src/CcRelay.Core/Routing.fs. The planner orders attempts by strategy, then filters providers whose " +
        "circuit is open and keys without capacity. The failing test expects the fallback provider to be tried after a " +
        "529 from the primary; the current code stops after the first retryable failure because the attempt list is " +
        "truncated when the key pool reports zero capacity. I will change the filter so that an empty pool skips the " +
        "provider instead of ending the plan, and add a property test for it.\"}],\"stop_reason\":\"end_turn\"," +
        "\"stop_sequence\":null,\"usage\":{\"input_tokens\":2417,\"cache_creation_input_tokens\":0," +
        "\"cache_read_input_tokens\":18880,\"output_tokens\":112,\"service_tier\":\"standard\"}}";

    public CannedResponses()
    {
        var body = Encoding.UTF8.GetBytes(MessageJson);
        Message = Encoding.ASCII.GetBytes(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nrequest-id: req_bench_fake\r\n" +
            $"anthropic-organization-id: bench\r\nContent-Length: {body.Length}\r\n\r\n").Concat(body).ToArray();

        var count = Encoding.UTF8.GetBytes("{\"input_tokens\":2417}");
        CountTokens = Encoding.ASCII.GetBytes(
            $"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {count.Length}\r\n\r\n").Concat(count).ToArray();

        var notFound = Encoding.UTF8.GetBytes("{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":\"not found\"}}");
        NotFound = Encoding.ASCII.GetBytes(
            $"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {notFound.Length}\r\n\r\n").Concat(notFound).ToArray();

        SseHead = Encoding.ASCII.GetBytes(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n" +
            "request-id: req_bench_fake_stream\r\nanthropic-organization-id: bench\r\nTransfer-Encoding: chunked\r\n\r\n");
    }

    public byte[] Message { get; }

    /// <summary>Bedrock InvokeModelWithResponseStream's head: an AWS event stream, chunked.</summary>
    public byte[] EventStreamHead { get; } = Encoding.ASCII.GetBytes(
        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\nx-amzn-RequestId: bench-fake-request\r\n" +
        "X-Amzn-Bedrock-Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");

    /// <summary>Bedrock CountTokens' answer.</summary>
    public byte[] BedrockCountTokens { get; } = Json("200 OK", "{\"inputTokens\":2417}", "");

    /// <summary>What Bedrock answers a request whose signature does not match.</summary>
    public byte[] InvalidSignature { get; } = Json(
        "403 Forbidden",
        "{\"message\":\"The request signature we calculated does not match the signature you provided.\"}",
        "x-amzn-ErrorType: InvalidSignatureException:http://internal.amazon.com/coral/com.amazon.coral.service/\r\n");

    /// <summary>What Vertex AI answers a request without a valid bearer token.</summary>
    public byte[] Unauthenticated { get; } = Json(
        "401 Unauthorized",
        "{\"error\":{\"code\":401,\"message\":\"Request had invalid authentication credentials.\",\"status\":\"UNAUTHENTICATED\"}}",
        "");

    private static byte[] Json(string status, string json, string extraHeaders)
    {
        var body = Encoding.UTF8.GetBytes(json);
        return Encoding.ASCII.GetBytes(
            $"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extraHeaders}Content-Length: {body.Length}\r\n\r\n")
            .Concat(body).ToArray();
    }

    public byte[] CountTokens { get; }

    public byte[] NotFound { get; }

    public byte[] SseHead { get; }

    /// <summary>The zero-length chunk that ends a chunked body.</summary>
    public static ReadOnlySpan<byte> LastChunk => "0\r\n\r\n"u8;
}
