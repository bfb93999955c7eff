using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Http;

/// <summary>The request id: the client's <c>X-Request-ID</c> when it sent a sane one, else a new one.</summary>
internal static class RequestId
{
    private const int MaxLength = 128;

    public static string Assign(HttpContext context)
    {
        var incoming = context.Request.Headers["x-request-id"].ToString();
        var id = IsSane(incoming) ? incoming : "req_" + Guid.NewGuid().ToString("N");
        context.Response.Headers["x-request-id"] = id;
        return id;
    }

    private static bool IsSane(string value) =>
        value.Length is > 0 and <= MaxLength && value.All(c => c is > ' ' and < (char)127);
}
