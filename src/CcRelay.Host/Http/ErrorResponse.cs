using CcRelay.Core;
using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Http;

/// <summary>Writes the relay's own errors in the Anthropic envelope.</summary>
internal static class ErrorResponse
{
    /// <summary>Writes the envelope; returns the number of body bytes written.</summary>
    public static async Task<int> WriteAsync(HttpContext context, ErrorType errorType, string message, int? status = null)
    {
        var response = context.Response;
        response.StatusCode = status ?? ErrorEnvelope.status(errorType);
        response.ContentType = "application/json";
        var body = ErrorEnvelope.toJson(errorType, message);
        response.ContentLength = body.Length;
        await response.Body.WriteAsync(body, context.RequestAborted);
        return body.Length;
    }

    public static Task<int> MethodNotAllowedAsync(HttpContext context, string allow)
    {
        context.Response.Headers.Allow = allow;
        return WriteAsync(
            context,
            ErrorType.MethodNotAllowed,
            $"method {context.Request.Method} is not allowed on {context.Request.Path}; allowed: {allow}");
    }
}
