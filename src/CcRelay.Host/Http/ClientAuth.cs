using CcRelay.Core;
using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Http;

/// <summary>Applies the Core auth decision to routes that relay nothing (models).</summary>
internal static class ClientAuth
{
    public static async Task<bool> AuthorizeAsync(HttpContext context, RelaySnapshot snapshot)
    {
        var verdict = Core.Auth.authenticate(
            snapshot.Auth,
            context.Request.Headers["x-api-key"].ToString(),
            context.Request.Headers.Authorization.ToString());
        if (verdict is AuthVerdict.Denied denied)
        {
            _ = await ErrorResponse.WriteAsync(context, ErrorType.Authentication, denied.Reason);
            return false;
        }

        return true;
    }
}
