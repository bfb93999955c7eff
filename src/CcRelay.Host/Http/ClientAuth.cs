using CcRelay.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace CcRelay.Host.Http;

/// <summary>Applies the Core auth decision to routes that relay nothing (models).</summary>
internal static class ClientAuth
{
    public static async Task<bool> AuthorizeAsync(HttpContext context, RelaySnapshot snapshot)
    {
        // client keys (clients[]) pass here too; their limits apply to relayed requests only
        var now = (context.RequestServices?.GetService<TimeProvider>() ?? TimeProvider.System).GetUtcNow();
        var verdict = ClientKeys.authenticateWith(
            snapshot.ClientKeyIndex,
            snapshot.Auth,
            now,
            context.Request.Headers["x-api-key"].ToString(),
            context.Request.Headers.Authorization.ToString());
        if (context.RequestServices?.GetService<Shared.SharedStateService>() is { } shared)
        {
            verdict = shared.Check(verdict);
        }

        if (verdict is ClientVerdict.Refused refused)
        {
            _ = await ErrorResponse.WriteAsync(context, ErrorType.Authentication, refused.Reason);
            return false;
        }

        return true;
    }
}
