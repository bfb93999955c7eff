using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Tests.Infrastructure;

/// <summary>One request as the fake upstream received it.</summary>
public sealed record UpstreamRequest(string Method, string PathAndQuery, IReadOnlyDictionary<string, string> Headers, byte[] Body)
{
    /// <summary>The request target exactly as it came on the wire (no unescaping): what a SigV4 signature covers.</summary>
    public string RawTarget { get; init; } = "";

    public string? Header(string name) => Headers.TryGetValue(name.ToLowerInvariant(), out var v) ? v : null;
}

/// <summary>
/// A programmable Anthropic-shaped upstream on a real Kestrel server at 127.0.0.1:0. Each test sets
/// <see cref="Handler"/>; every request is recorded (headers and exact body bytes) before it runs.
/// </summary>
public sealed class FakeUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<UpstreamRequest> _requests = new();

    private FakeUpstream(WebApplication app) => _app = app;

    public Func<HttpContext, Task> Handler { get; set; } = context => Fake.WriteJsonAsync(context, 200, "{}");

    public IReadOnlyList<UpstreamRequest> Requests => [.. _requests];

    /// <summary>The request a handler is answering (safe under concurrent requests, unlike <c>Requests[^1]</c>).</summary>
    public static UpstreamRequest Current(HttpContext context) => (UpstreamRequest)context.Items[typeof(UpstreamRequest)]!;

    public Uri BaseUrl { get; private set; } = new("http://127.0.0.1/");

    /// <summary>Starts the fake; with a <paramref name="certificate"/> it serves https (HTTP/1.1 and HTTP/2).</summary>
    public static async Task<FakeUpstream> StartAsync(X509Certificate2? certificate = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, listen =>
        {
            if (certificate is not null)
            {
                listen.UseHttps(certificate);
            }
        }));
        var app = builder.Build();
        var upstream = new FakeUpstream(app);
        app.Run(upstream.HandleAsync);
        await app.StartAsync();
        upstream.BaseUrl = new Uri(app.Urls.First());
        return upstream;
    }

    private async Task HandleAsync(HttpContext context)
    {
        using var body = new MemoryStream();
        await context.Request.Body.CopyToAsync(body);
        var headers = context.Request.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString());
        var request = new UpstreamRequest(
            context.Request.Method,
            context.Request.Path.Value + context.Request.QueryString.Value,
            headers,
            body.ToArray())
        {
            RawTarget = context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestFeature>()?.RawTarget ?? "",
        };
        _requests.Enqueue(request);
        context.Items[typeof(UpstreamRequest)] = request;
        await Handler(context);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
