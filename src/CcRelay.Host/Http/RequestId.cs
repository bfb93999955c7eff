using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Http;

/// <summary>The request id: the client's <c>X-Request-ID</c> when it sent a sane one, else a new one.</summary>
internal static class RequestId
{
    private const int MaxLength = 128;

    public static string Assign(HttpContext context)
    {
        var incoming = context.Request.Headers["x-request-id"].ToString();
        var id = IsSane(incoming) ? incoming : NewId();
        context.Response.Headers["x-request-id"] = id;
        return id;
    }

    /// <summary><c>req_</c> and 32 hex digits of a new GUID, as one string.</summary>
    private static string NewId() =>
        string.Create(36, Guid.NewGuid(), static (chars, guid) =>
        {
            "req_".CopyTo(chars);
            _ = guid.TryFormat(chars[4..], out _, "N");
        });

    private static bool IsSane(string value) =>
        value.Length is > 0 and <= MaxLength && value.All(c => c is > ' ' and < (char)127);
}
