using CcRelay.Core;
using CcRelay.Host.Http;
using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Endpoints;

/// <summary><c>GET /v1/models</c> and <c>GET /v1/models/{id}</c>, in Anthropic's shape, from the configured providers.</summary>
internal sealed class ModelsEndpoint(RelayState state)
{
    public async Task ListAsync(HttpContext context)
    {
        var snapshot = state.Current;
        if (!await ClientAuth.AuthorizeAsync(context, snapshot))
        {
            return;
        }

        var query = context.Request.Query;
        var page = snapshot.Catalogue.Page(Optional(query["limit"]), Optional(query["after_id"]), Optional(query["before_id"]));
        if (page.IsError)
        {
            _ = await ErrorResponse.WriteAsync(context, ErrorType.InvalidRequest, page.ErrorValue);
            return;
        }

        await WriteJsonAsync(context, Models.pageJson(page.ResultValue));
    }

    public async Task GetAsync(HttpContext context, string id)
    {
        var snapshot = state.Current;
        if (!await ClientAuth.AuthorizeAsync(context, snapshot))
        {
            return;
        }

        if (snapshot.Catalogue.Find(id) is not { } model)
        {
            _ = await ErrorResponse.WriteAsync(context, ErrorType.NotFound, $"model: {id} is not served by any enabled provider");
            return;
        }

        await WriteJsonAsync(context, Models.modelJson(model));
    }

    private static string? Optional(Microsoft.Extensions.Primitives.StringValues value) =>
        value.Count == 0 ? null : value.ToString();

    private static Task WriteJsonAsync(HttpContext context, byte[] json)
    {
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = json.Length;
        return context.Response.Body.WriteAsync(json, context.RequestAborted).AsTask();
    }
}
