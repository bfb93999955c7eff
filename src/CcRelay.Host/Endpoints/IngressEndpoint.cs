using CcRelay.Core;
using CcRelay.Host.Http;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.FSharp.Core;

namespace CcRelay.Host.Endpoints;

/// <summary>
/// The relay as Claude Code's Bedrock or Vertex AI endpoint (<c>CLAUDE_CODE_USE_BEDROCK</c> /
/// <c>CLAUDE_CODE_USE_VERTEX</c> with the base URL at the relay): the cloud-shaped routes run the same pipeline as
/// <c>/v1/messages</c> (<see cref="MessagesEndpoint"/>), their body converted by Core's <see cref="Ingress"/>, so any
/// configured provider serves them. Bedrock routes answer in Bedrock's shape (<see cref="BedrockAnswerBody"/>);
/// Vertex's model answers are Anthropic's own, so those go out unchanged. The inference-profile look-ups Claude
/// Code makes at start-up are answered here, from the configured models, behind the relay's own auth.
/// </summary>
internal sealed class IngressEndpoint(RelayState state, MessagesEndpoint messages)
{
    /// <summary>The region the relay's synthetic ARNs name (Claude Code reads only their last segment).</summary>
    private const string Region = "us-east-1";

    /// <summary>Bedrock routes: <c>/model/…</c> and <c>/inference-profiles[/…]</c>.</summary>
    public async Task BedrockAsync(HttpContext context)
    {
        var route = Ingress.route(RawPath(context));
        var countTokens = route is { Value: IngressRoute.BedrockCountTokens };
        var original = context.Features.GetRequiredFeature<IHttpResponseBodyFeature>();
        var body = new BedrockAnswerBody(context, original, countTokens);
        context.Features.Set<IHttpResponseBodyFeature>(body);
        try
        {
            switch (route?.Value)
            {
                case null:
                    _ = await ErrorResponse.WriteAsync(context, ErrorType.NotFound, $"no Bedrock operation at {context.Request.Path}");
                    break;
                case IngressRoute.BedrockInvoke or IngressRoute.BedrockCountTokens:
                    await messages.HandleAsync(context, route.Value);
                    break;
                default:
                    await InferenceProfileAsync(context, route.Value);
                    break;
            }

            await body.FinishAsync();
        }
        finally
        {
            context.Features.Set(original);
        }
    }

    /// <summary>Vertex routes: <c>/v1/projects/{p}/locations/{l}/publishers/anthropic/models/{m}:rawPredict|:streamRawPredict</c>.</summary>
    public async Task VertexAsync(HttpContext context)
    {
        var route = Ingress.route(RawPath(context))?.Value;
        if (route is null || !(route.IsVertexPredict || route.IsVertexCountTokens))
        {
            _ = await ErrorResponse.WriteAsync(context, ErrorType.NotFound, $"no Vertex AI operation at {context.Request.Path}");
            return;
        }

        await messages.HandleAsync(context, route);
    }

    /// <summary>
    /// A converted request's headers for the pipeline: the body's <c>anthropic_beta</c> values merged into
    /// <c>anthropic-beta</c>, an <c>anthropic-version</c> when the client sent none, and Bedrock's accept headers
    /// replaced by Anthropic's (the upstream answers SSE or JSON; the relay reframes it).
    /// </summary>
    public static void PrepareHeaders(HttpRequest request, Microsoft.FSharp.Collections.FSharpList<string> bodyBetas)
    {
        var headers = request.Headers;
        var betas = Ingress.mergeBetas(headers["anthropic-beta"].Where(v => v is not null).Select(v => v!), bodyBetas);
        if (!betas.IsEmpty)
        {
            headers["anthropic-beta"] = string.Join(",", betas);
        }

        if (string.IsNullOrEmpty(headers["anthropic-version"]))
        {
            headers["anthropic-version"] = "2023-06-01";
        }

        headers.Remove("x-amzn-bedrock-accept");
        headers.Accept = "application/json";
    }

    private async Task InferenceProfileAsync(HttpContext context, IngressRoute route)
    {
        var snapshot = state.Current;
        if (!await ClientAuth.AuthorizeAsync(context, snapshot))
        {
            return;
        }

        var json = route is IngressRoute.GetInferenceProfile get
            ? Ingress.inferenceProfile(Region, get.Id)
            : Ingress.inferenceProfiles(
                Region,
                // the providers' own models only: `provider,model` switch ids are no Bedrock model names
                Microsoft.FSharp.Collections.ListModule.OfSeq(Models.plain(snapshot.Config).Select(m => m.Id)),
                context.Request.Query["nextToken"] is { Count: > 0 } token ? FSharpOption<string>.Some(token.ToString()) : FSharpOption<string>.None);
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = json.Length;
        await context.Response.Body.WriteAsync(json, context.RequestAborted);
    }

    /// <summary>
    /// The request's path as the client sent it (percent-escapes intact: an ARN's <c>%2F</c> must not split a
    /// segment), without the PathBase the relay may be mounted under.
    /// </summary>
    private static string RawPath(HttpContext context)
    {
        var raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
        if (string.IsNullOrEmpty(raw) || raw[0] != '/')
        {
            return context.Request.Path.Value ?? "/";
        }

        var pathBase = context.Request.PathBase.Value;
        return !string.IsNullOrEmpty(pathBase) && raw.StartsWith(pathBase, StringComparison.OrdinalIgnoreCase) ? raw[pathBase.Length..] : raw;
    }
}
