using CcRelay.Core;
using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Http;

/// <summary>Writes the relay's own errors in the Anthropic envelope.</summary>
internal static class ErrorResponse
{
    public static Task WriteAsync(HttpContext context, ErrorType errorType, string message, int? status = null)
    {
        var response = context.Response;
        response.StatusCode = status ?? ErrorEnvelope.status(errorType);
        response.ContentType = "application/json";
        var body = ErrorEnvelope.toJson(errorType, message);
        response.ContentLength = body.Length;
        return response.Body.WriteAsync(body, context.RequestAborted).AsTask();
    }

    public static Task MethodNotAllowedAsync(HttpContext context, string allow)
    {
        context.Response.Headers.Allow = allow;
        return WriteAsync(
            context,
            ErrorType.MethodNotAllowed,
            $"method {context.Request.Method} is not allowed on {context.Request.Path}; allowed: {allow}");
    }
}
