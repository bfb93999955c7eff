using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Http;

/// <summary>The request id: the client's <c>X-Request-ID</c> when it sent a sane one, else a new one.</summary>
internal static class RequestId
{
    private const int MaxLength = 128;

    public static string Assign(HttpContext context)
    {
        var incoming = context.Request.Headers["x-request-id"].ToString();
        var id = IsSane(incoming) ? incoming : New();
        context.Response.Headers["x-request-id"] = id;
        return id;
    }

    /// <summary><c>req_</c> and 32 hex digits, built in place (one string, not two).</summary>
    private static string New() =>
        string.Create(36, Guid.NewGuid(), static (span, guid) =>
        {
            "req_".CopyTo(span);
            _ = guid.TryFormat(span[4..], out _, "N");
        });

    private static bool IsSane(string value) =>
        value.Length is > 0 and <= MaxLength && value.All(c => c is > ' ' and < (char)127);
}
