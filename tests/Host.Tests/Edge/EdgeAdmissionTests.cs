using System.Net;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Edge;

/// <summary><c>server.max_concurrent</c> with its queue: slots, the queue, 529 with <c>retry-after</c>, slots given back.</summary>
public sealed class EdgeAdmissionTests : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private FakeUpstream _upstream = null!;

    public async Task InitializeAsync() => _upstream = await FakeUpstream.StartAsync();

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    private Task<RelayHost> StartAsync(int maxConcurrent, int queueSize, int queueTimeoutMs) =>
        RelayHost.StartAsync(TestConfig.Relay([TestConfig.Provider("a", _upstream.BaseUrl)], routing: TestConfig.Routing(maxAttempts: 1), health: TestConfig.Health(failureThreshold: 100))
            .WithMaxConcurrent(maxConcurrent)
            .With(edge: EdgeConfigs.Edge(queue: EdgeConfigs.Queue(queueSize, queueTimeoutMs))));

    private static async Task<(HttpStatusCode Status, string? RetryAfter, string Body)> SendAsync(RelayHost relay, CancellationToken cancellationToken = default)
    {
        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody), cancellationToken);
        var retryAfter = response.Headers.TryGetValues("retry-after", out var values) ? values.Single() : null;
        return (response.StatusCode, retryAfter, await response.Content.ReadAsStringAsync(cancellationToken));
    }

    [Fact]
    public async Task Edge_Admission_SlotsPlusQueueAreServed_TheRestGet529_NoneIsLost()
    {
        // Arrange: 2 slots, 1 waiting place; the upstream holds every request until released
        await using var relay = await StartAsync(maxConcurrent: 2, queueSize: 1, queueTimeoutMs: 30_000);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var twoArrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var arrived = 0;
        _upstream.Handler = async context =>
        {
            if (Interlocked.Increment(ref arrived) == 2)
            {
                twoArrived.TrySetResult();
            }

            await release.Task;
            await Fake.WriteJsonAsync(context, 200, Fake.MessageJson());
        };

        // Act: two take the slots; of three more, one waits and two are refused at once
        var holding = new[] { SendAsync(relay), SendAsync(relay) };
        await twoArrived.Task.WaitAsync(Bound);
        var more = new[] { SendAsync(relay), SendAsync(relay), SendAsync(relay) };
        var refused = new List<Task<(HttpStatusCode Status, string? RetryAfter, string Body)>>();
        while (refused.Count < 2)
        {
            var done = await Task.WhenAny(more.Except(refused)).WaitAsync(Bound);
            refused.Add(done);
        }

        release.SetResult();
        var all = await Task.WhenAll(holding.Concat(more)).WaitAsync(Bound);

        // Assert
        Assert.All(refused, r =>
        {
            Assert.Equal((HttpStatusCode)529, r.Result.Status);
            Assert.Equal("30", r.Result.RetryAfter);
            Assert.Contains("\"overloaded_error\"", r.Result.Body, StringComparison.Ordinal);
        });
        Assert.Equal(3, all.Count(r => r.Status == HttpStatusCode.OK));
        Assert.Equal(2, all.Count(r => r.Status == (HttpStatusCode)529));
        Assert.Equal(3, _upstream.Requests.Count);
        Assert.Contains("ccrelay_admission_refused_total{reason=\"queue_full\"} 2", await relay.ScrapeAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Edge_Admission_AWaitLongerThanTheQueueTimeout_Gets529()
    {
        await using var relay = await StartAsync(maxConcurrent: 1, queueSize: 1, queueTimeoutMs: 300);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _upstream.Handler = async context =>
        {
            arrived.TrySetResult();
            await release.Task;
            await Fake.WriteJsonAsync(context, 200, Fake.MessageJson());
        };

        var holder = SendAsync(relay);
        await arrived.Task.WaitAsync(Bound);
        var waiter = await SendAsync(relay).WaitAsync(Bound);
        release.SetResult();

        Assert.Equal((HttpStatusCode)529, waiter.Status);
        Assert.Equal("1", waiter.RetryAfter);
        Assert.Contains("no slot freed within 300 ms", waiter.Body, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await holder.WaitAsync(Bound)).Status);

        // the refused request has its request line too: status 529, no upstream, no model (its body was never read)
        var lines = await relay.Logs.RequestLinesAsync(2).WaitAsync(Bound);
        var refused = Assert.Single(lines, l => Equals(l.Fields["status"], 529));
        Assert.Equal("-", refused.Fields["provider"]);
        Assert.Equal("-", refused.Fields["model"]);
        Assert.Equal("/v1/messages", refused.Fields["path"]);
    }

    [Fact]
    public async Task Edge_Admission_AClientAbortGivesItsSlotBack()
    {
        // Arrange: 1 slot; the first request's upstream never answers; the second waits in the queue
        await using var relay = await StartAsync(maxConcurrent: 1, queueSize: 1, queueTimeoutMs: 30_000);
        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var calls = 0;
        _upstream.Handler = async context =>
        {
            if (Interlocked.Increment(ref calls) == 1)
            {
                first.TrySetResult();
                var gone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                using var registration = context.RequestAborted.Register(() => gone.TrySetResult());
                await gone.Task;
                return;
            }

            await Fake.WriteJsonAsync(context, 200, Fake.MessageJson());
        };
        using var abort = new CancellationTokenSource();
        var abandoned = SendAsync(relay, abort.Token);
        await first.Task.WaitAsync(Bound);

        // Act: the second queues behind the first, whose client then leaves
        var second = SendAsync(relay);
        await abort.CancelAsync();

        // Assert: the slot came back, and the queued request got it
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abandoned);
        Assert.Equal(HttpStatusCode.OK, (await second.WaitAsync(Bound)).Status);
    }

    [Fact]
    public async Task Edge_Admission_ErrorsGiveTheirSlotBack_AndReadsTakeNone()
    {
        // Arrange: a leaked slot would make the last request wait 2 s and get 529
        await using var relay = await StartAsync(maxConcurrent: 1, queueSize: 1, queueTimeoutMs: 2_000);
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 500, """{"type":"error","error":{"type":"api_error","message":"boom"}}""");

        // Act: an upstream error, a body the relay refuses, then a good request
        var upstreamError = await SendAsync(relay);
        using var bad = Requests.Messages("not json");
        using var refused = await relay.Client.SendAsync(bad);
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson());
        var good = await SendAsync(relay);

        // Assert
        Assert.NotEqual((HttpStatusCode)529, upstreamError.Status);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal(HttpStatusCode.OK, good.Status);
    }

    [Fact]
    public async Task Edge_Admission_ModelsAndHealth_TakeNoSlot()
    {
        await using var relay = await StartAsync(maxConcurrent: 1, queueSize: 0, queueTimeoutMs: 30_000);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _upstream.Handler = async context =>
        {
            arrived.TrySetResult();
            await release.Task;
            await Fake.WriteJsonAsync(context, 200, Fake.MessageJson());
        };
        var holder = SendAsync(relay);
        await arrived.Task.WaitAsync(Bound);

        using var models = await relay.Client.GetAsync("/v1/models");
        using var health = await relay.Client.GetAsync("/health");
        var refused = await SendAsync(relay);
        release.SetResult();

        Assert.Equal(HttpStatusCode.OK, models.StatusCode);
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal((HttpStatusCode)529, refused.Status);
        Assert.Equal(HttpStatusCode.OK, (await holder.WaitAsync(Bound)).Status);
    }
}
