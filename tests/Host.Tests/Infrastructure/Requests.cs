using System.Net.Http.Headers;
using System.Text;

namespace CcRelay.Host.Tests.Infrastructure;

/// <summary>Request bodies and messages for the relay.</summary>
public static class Requests
{
    public const string StreamingBody =
        """{"model":"claude-sonnet-4-6","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}""";

    public const string PlainBody =
        """{"model":"claude-sonnet-4-6","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}""";

    public static HttpRequestMessage Messages(string body, string path = "/v1/messages?beta=true", string? apiKey = "sk-ant-client")
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new ByteArrayContent(Encoding.UTF8.GetBytes(body)),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.TryAddWithoutValidation("anthropic-version", "2023-06-01");
        if (apiKey is not null)
        {
            request.Headers.TryAddWithoutValidation("x-api-key", apiKey);
        }

        return request;
    }
}
