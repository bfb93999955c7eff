using System.Text;
using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Tests.Infrastructure;

/// <summary>Anthropic-shaped responses for the fake upstream.</summary>
public static class Fake
{
    public static string Event(string name, string json) => $"event: {name}\ndata: {json}\n\n";

    public static string MessageStart(string model = "claude-test") =>
        Event("message_start", """{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":""" + Quote(model)
            + ""","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":9,"output_tokens":1}}}""");

    public static string TextBlock(int index, string text) =>
        Event("content_block_start", """{"type":"content_block_start","index":""" + index + ""","content_block":{"type":"text","text":""}}""")
        + Event("content_block_delta", """{"type":"content_block_delta","index":""" + index + ""","delta":{"type":"text_delta","text":""" + Quote(text) + "}}")
        + Event("content_block_stop", """{"type":"content_block_stop","index":""" + index + "}");

    public static string MessageEnd(string stopReason = "end_turn", int outputTokens = 5) =>
        Event("message_delta", """{"type":"message_delta","delta":{"stop_reason":""" + Quote(stopReason) + ""","stop_sequence":null},"usage":{"output_tokens":""" + outputTokens + "}}")
        + Event("message_stop", """{"type":"message_stop"}""");

    /// <summary>A JSON string literal; backslash escapes already in <paramref name="text"/> are kept as written.</summary>
    public static string Quote(string text) => "\"" + text + "\"";

    public static string Ping => Event("ping", """{"type":"ping"}""");

    public static async Task StartStreamAsync(HttpContext context)
    {
        context.Response.StatusCode = 200;
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        await context.Response.StartAsync();
    }

    public static async Task WriteAsync(HttpContext context, string text)
    {
        await context.Response.Body.WriteAsync(Encoding.UTF8.GetBytes(text));
        await context.Response.Body.FlushAsync();
    }

    public static Task WriteJsonAsync(HttpContext context, int status, string json)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(json);
    }

    public static string MessageJson(string text = "hello", string model = "claude-test") =>
        """{"id":"msg_1","type":"message","role":"assistant","model":""" + Quote(model) + ""","content":[{"type":"text","text":""" + Quote(text)
        + """}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":2}}""";
}
