using System.Collections.Concurrent;
using System.Diagnostics;
using CcRelay.Host.Observability;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Observability;

/// <summary>
/// Tracing tests register process-wide listeners (or assert there are none), so they run alone, after the
/// parallel tests.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TracingCollection
{
    public const string Name = "Tracing";
}

/// <summary>The <c>CcRelay</c> spans, their attributes, and W3C trace context upstream (on and off).</summary>
[Collection(TracingCollection.Name)]
public sealed class TracingTests : IAsyncLifetime
{
    private readonly ConcurrentQueue<Activity> _stopped = new();
    private FakeUpstream _upstream = null!;
    private ActivityListener? _listener;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _upstream.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart("claude-sonnet-4-6-20250929") + Fake.TextBlock(0, "hi") + Fake.MessageEnd(outputTokens: 5));
        };
    }

    public async Task DisposeAsync()
    {
        _listener?.Dispose();
        await _upstream.DisposeAsync();
    }

    private void Listen()
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == RelayTracing.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = _stopped.Enqueue,
        };
        ActivitySource.AddActivityListener(_listener);
    }

    private async Task<RelayHost> StartRelayAsync(bool propagate) =>
        await RelayHost.StartAsync(TestConfig.Relay([TestConfig.Provider("fake", _upstream.BaseUrl, keys: ["k"])])
            .With(otel: TestConfig.Otel(propagate: propagate)));

    private static async Task SendAsync(RelayHost relay, string requestId, string? traceparent = null)
    {
        var request = Requests.Messages(Requests.StreamingBody);
        request.Headers.TryAddWithoutValidation("x-request-id", requestId);
        if (traceparent is not null)
        {
            request.Headers.TryAddWithoutValidation("traceparent", traceparent);
        }

        using var response = await relay.Client.SendAsync(request);
        _ = await response.Content.ReadAsByteArrayAsync();

        // the spans end before the completion line is written
        _ = await relay.Logs.WaitForAsync(l => l.EventId == 1 && (string?)l.Fields["request_id"] == requestId);
    }

    private (Activity Request, Activity Attempt) SpansOf(string requestId)
    {
        var request = _stopped.Single(a => (string?)a.GetTagItem("cc_relay.request_id") == requestId);
        var attempt = _stopped.Single(a => a.ParentSpanId == request.SpanId);
        return (request, attempt);
    }

    [Fact]
    public async Task Spans_ForTheRequestAndTheAttempt_CarryHttpAndGenAiAttributes()
    {
        Listen();
        await using var relay = await StartRelayAsync(propagate: false);

        await SendAsync(relay, "trace-attrs");
        var (request, attempt) = SpansOf("trace-attrs");

        Assert.Equal("POST /v1/messages", request.DisplayName);
        Assert.Equal(ActivityKind.Server, request.Kind);
        Assert.Equal(200, request.GetTagItem("http.response.status_code"));
        Assert.Equal("claude-sonnet-4-6", request.GetTagItem("gen_ai.request.model"));
        Assert.Equal("claude-sonnet-4-6-20250929", request.GetTagItem("gen_ai.response.model"));
        Assert.Equal(9L, request.GetTagItem("gen_ai.usage.input_tokens"));
        Assert.Equal(5L, request.GetTagItem("gen_ai.usage.output_tokens"));
        Assert.Equal("fake", request.GetTagItem("cc_relay.provider"));
        Assert.Equal(ActivityStatusCode.Unset, request.Status);

        Assert.Equal("chat claude-sonnet-4-6", attempt.DisplayName);
        Assert.Equal(ActivityKind.Client, attempt.Kind);
        Assert.Equal(request.TraceId, attempt.TraceId);
        Assert.Equal("chat", attempt.GetTagItem("gen_ai.operation.name"));
        Assert.Equal("anthropic_compatible", attempt.GetTagItem("gen_ai.system"));
        Assert.Equal("claude-sonnet-4-6", attempt.GetTagItem("gen_ai.request.model"));
        Assert.Equal("claude-sonnet-4-6-20250929", attempt.GetTagItem("gen_ai.response.model"));
        Assert.Equal(_upstream.BaseUrl.Host, attempt.GetTagItem("server.address"));
        Assert.Equal(_upstream.BaseUrl.Port, attempt.GetTagItem("server.port"));
        Assert.Equal(200, attempt.GetTagItem("http.response.status_code"));
        Assert.Equal(9L, attempt.GetTagItem("gen_ai.usage.input_tokens"));
        Assert.Equal(5L, attempt.GetTagItem("gen_ai.usage.output_tokens"));
        Assert.Equal(new[] { "end_turn" }, attempt.GetTagItem("gen_ai.response.finish_reasons"));
    }

    [Fact]
    public async Task UpstreamFailure_MarksBothSpansAsErrors()
    {
        Listen();
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay([TestConfig.Provider("dead", new Uri("http://127.0.0.1:1"), keys: ["k"])]));

        await SendAsync(relay, "trace-error");
        var request = _stopped.Single(a => (string?)a.GetTagItem("cc_relay.request_id") == "trace-error");

        // failover retries the dead provider: one span per attempt, each an error
        var attempts = _stopped.Where(a => a.ParentSpanId == request.SpanId).ToList();
        Assert.Equal(ActivityStatusCode.Error, request.Status);
        Assert.Equal("api_error", request.GetTagItem("error.type"));
        Assert.Equal(502, request.GetTagItem("http.response.status_code"));
        Assert.Equal(attempts.Count, request.GetTagItem("cc_relay.attempts"));
        Assert.NotEmpty(attempts);
        Assert.All(attempts, attempt =>
        {
            Assert.Equal(ActivityStatusCode.Error, attempt.Status);
            Assert.Null(attempt.GetTagItem("http.response.status_code"));
            Assert.Equal("api_error", attempt.GetTagItem("error.type"));
        });
    }

    [Fact]
    public async Task PropagationOff_SendsNoTraceparentUpstream()
    {
        Listen();
        await using var relay = await StartRelayAsync(propagate: false);

        await SendAsync(relay, "trace-off");

        Assert.Null(_upstream.Requests.Single().Header("traceparent"));
    }

    [Fact]
    public async Task PropagationOn_SendsTheAttemptSpanAsParent_InTheCallersTrace()
    {
        Listen();
        await using var relay = await StartRelayAsync(propagate: true);
        var callerTrace = ActivityTraceId.CreateRandom();
        var callerSpan = ActivitySpanId.CreateRandom();

        await SendAsync(relay, "trace-on", $"00-{callerTrace}-{callerSpan}-01");
        var (request, attempt) = SpansOf("trace-on");
        var sent = _upstream.Requests.Single().Header("traceparent");

        Assert.Equal(callerTrace, request.TraceId);
        Assert.Equal(callerSpan, request.ParentSpanId);
        Assert.Equal($"00-{callerTrace}-{attempt.SpanId}-01", sent);
    }

    [Fact]
    public async Task WithoutListeners_NoSpanExists_AndNothingIsPropagated()
    {
        // nothing listens to CcRelay (the OTLP exporter is off, this collection runs alone)
        await using var relay = await StartRelayAsync(propagate: true);

        await SendAsync(relay, "trace-none");

        Assert.False(RelayTracing.Source.HasListeners());
        Assert.Null(_upstream.Requests.Single().Header("traceparent"));
    }
}
