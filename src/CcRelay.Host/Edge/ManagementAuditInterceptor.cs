using CcRelay.Management.V1;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace CcRelay.Host.Edge;

/// <summary>
/// Writes the management API's operator actions to the audit log: <c>SetProviderEnabled</c> (which provider, on or
/// off), <c>ReloadConfig</c> (its outcome), <c>GetConfig</c> (a read of the whole config) and refused client-key
/// changes (<c>AddClient</c>, <c>RevokeClient</c>, <c>RotateClient</c>; made ones are <c>client_key.changed</c>), each with the peer
/// address and how the call ended; and every call refused for a missing or wrong token. Runs before the token
/// check (<see cref="Management.ManagementAuthInterceptor"/>), so it sees its refusals.
/// </summary>
internal sealed class ManagementAuditInterceptor(AuditTrail audit) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        var method = MethodName(context.Method);
        try
        {
            var response = await continuation(request, context);
            if (Arguments(request, response) is { } arguments)
            {
                audit.ManagementCall(SourceOf(context), method, arguments, "ok");
            }

            return response;
        }
        catch (RpcException e)
        {
            if (e.StatusCode == StatusCode.Unauthenticated)
            {
                audit.ManagementAuthFailed(SourceOf(context), method);
            }
            else if (Arguments(request, null) is { } arguments)
            {
                audit.ManagementCall(SourceOf(context), method, arguments, "error: " + e.StatusCode);
            }

            throw;
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Unauthenticated)
        {
            audit.ManagementAuthFailed(SourceOf(context), MethodName(context.Method));
            throw;
        }
    }

    /// <summary>What an audited call named; null for a call that is not audited (the read-only views).</summary>
    private static IEnumerable<(string Key, string Value)>? Arguments(object request, object? response) =>
        (request, response) switch
        {
            (SetProviderEnabledRequest set, SetProviderEnabledResponse done) =>
                [("provider", set.Name), ("enabled", set.Enabled ? "true" : "false"), ("changed", done.Changed ? "true" : "false")],
            (SetProviderEnabledRequest set, _) => [("provider", set.Name), ("enabled", set.Enabled ? "true" : "false")],
            (ReloadConfigRequest, ReloadConfigResponse done) => [("reload", done.Outcome)],
            (ReloadConfigRequest, _) => [],
            (GetConfigRequest, _) => [],

            // a client-key change that was made is audited as client_key.changed (ClientKeyRegistry); a refused one here
            (AddClientRequest add, null) => [("client", add.Name)],
            (RevokeClientRequest revoke, null) => [("client", revoke.Name)],
            (RotateClientRequest rotate, null) => [("client", rotate.Name)],
            _ => null,
        };

    private static string MethodName(string method) => method[(method.LastIndexOf('/') + 1)..];

    private static string SourceOf(ServerCallContext context) =>
        context.GetHttpContext().Connection.RemoteIpAddress?.ToString() ?? "-";
}
