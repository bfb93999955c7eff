using Grpc.Core;
using Grpc.Core.Interceptors;

namespace CcRelay.Host.Management;

/// <summary>
/// Checks <c>grpc.auth_token</c> on every call (every method, health and reflection included) before its
/// handler runs: the <c>authorization: Bearer &lt;token&gt;</c> metadata, compared in constant time
/// (<see cref="Core.Management.authorize"/>); else UNAUTHENTICATED. No token configured: every call passes.
/// </summary>
internal sealed class ManagementAuthInterceptor(RelayState state) : Interceptor
{
    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context);
        return continuation(request, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context);
        return continuation(request, responseStream, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context);
        return continuation(requestStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context);
        return continuation(requestStream, responseStream, context);
    }

    private void Authorize(ServerCallContext context)
    {
        // the running token: grpc.* changes need a restart, so a reload never changes it
        var token = state.Current.Config.Grpc.AuthToken;
        if (!Core.Management.authorize(token, context.RequestHeaders.GetValue("authorization")))
        {
            throw new RpcException(new Grpc.Core.Status(StatusCode.Unauthenticated, "the management API needs authorization: Bearer <grpc.auth_token>"));
        }
    }
}
