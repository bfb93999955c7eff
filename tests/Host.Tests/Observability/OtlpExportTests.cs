using System.Collections.Concurrent;
using System.Net;
using System.Text;
using CcRelay.Host.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Tests.Observability;

/// <summary>OTLP/HTTP export (<c>otel.enabled</c>, <c>protocol: http/protobuf</c>) into an in-process collector stub.</summary>
[Collection(TracingCollection.Name)]
public sealed class OtlpExportTests : IAsyncLifetime
{
    private readonly ConcurrentQueue<(string Path, string ContentType, byte[] Body)> _received = new();
    private WebApplication _collector = null!;
    private FakeUpstream _upstream = null!;

    private Uri CollectorUrl => new(_collector.Urls.First());

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson(model: "claude-sonnet-4-6"));

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        _collector = builder.Build();
        _collector.MapPost("/v1/{signal}", async (HttpContext context) =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            _received.Enqueue((context.Request.Path.Value!, context.Request.ContentType ?? "", body.ToArray()));
            context.Response.ContentType = "application/x-protobuf";
        });
        await _collector.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _collector.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private static bool Holds(byte[] body, string text) => body.AsSpan().IndexOf(Encoding.UTF8.GetBytes(text)) >= 0;

    [Fact]
    public async Task Enabled_ExportsSpansAndMetrics_AsOtlpProtobuf()
    {
        // Arrange
        var config = TestConfig.Relay([TestConfig.Provider("fake", _upstream.BaseUrl, keys: ["k"])])
            .With(otel: TestConfig.Otel(enabled: true, endpoint: CollectorUrl));
        var relay = await RelayHost.StartAsync(config);

        // Act: one request, then stop the relay, which flushes the exporters
        using (var response = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody)))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        await relay.Logs.RequestLinesAsync();
        await relay.DisposeAsync();

        // Assert: spans with their names and GenAI attributes, and the relay's metrics, under the service name
        var traces = _received.Where(r => r.Path == "/v1/traces").ToList();
        Assert.NotEmpty(traces);
        Assert.All(traces, t => Assert.Equal("application/x-protobuf", t.ContentType));
        var spans = traces.SelectMany(t => t.Body).ToArray();
        Assert.True(Holds(spans, "POST /v1/messages"));
        Assert.True(Holds(spans, "chat claude-sonnet-4-6"));
        Assert.True(Holds(spans, "gen_ai.request.model"));
        Assert.True(Holds(spans, "gen_ai.usage.output_tokens"));
        Assert.True(Holds(spans, "cc-relay-test"));

        var metrics = _received.Where(r => r.Path == "/v1/metrics").SelectMany(r => r.Body).ToArray();
        Assert.True(Holds(metrics, "ccrelay_requests"));
        Assert.True(Holds(metrics, "ccrelay_tokens"));
    }

    [Fact]
    public async Task Stop_ExportsTheRequestsTheAccountingThreadHasNotReachedYet()
    {
        // Arrange: the accounting thread would wait forever; only the stop accounts for the request
        var config = TestConfig.Relay([TestConfig.Provider("fake", _upstream.BaseUrl, keys: ["k"])])
            .With(otel: TestConfig.Otel(enabled: true, endpoint: CollectorUrl));
        var relay = await RelayHost.StartAsync(config, accountingInterval: Timeout.InfiniteTimeSpan);
        using (var response = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody)))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // Act
        await relay.DisposeAsync();

        // Assert: counted before the meter provider's last export
        Assert.Single(relay.Logs.Lines, l => l.EventId == 1);
        var metrics = _received.Where(r => r.Path == "/v1/metrics").SelectMany(r => r.Body).ToArray();
        Assert.True(Holds(metrics, "ccrelay_requests"));
        Assert.True(Holds(metrics, "ccrelay_request_duration_seconds"));
    }
}
