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

    /// <summary>
    /// <c>req_</c> and 32 hex digits of 128 random bits, as one string.
    /// NOTE: <see cref="Random.Shared"/>, not <see cref="Guid.NewGuid"/>: an id must be unique, not
    /// unpredictable, and on Linux every new GUID is a read of <c>/dev/urandom</c> — a system call per request.
    /// </summary>
    private static string NewId()
    {
        Span<byte> bits = stackalloc byte[16];
        Random.Shared.NextBytes(bits);
        return string.Create(36, new Guid(bits), static (chars, guid) =>
        {
            "req_".CopyTo(chars);
            _ = guid.TryFormat(chars[4..], out _, "N");
        });
    }

    private static bool IsSane(string value) =>
        value.Length is > 0 and <= MaxLength && value.All(c => c is > ' ' and < (char)127);
}
