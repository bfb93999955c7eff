using System.Collections.Concurrent;
using System.Net;
using CcRelay.Core;
using CcRelay.Host.Management;
using CcRelay.Host.Tests.Infrastructure;
using CcRelay.Management.V1;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.FSharp.Core;
using Xunit.Abstractions;

namespace CcRelay.Host.Tests.Management;

/// <summary>
/// The management streams under traffic (issue 19 §4), bounded in time and count: <c>WatchRequests</c> and
/// <c>WatchStats</c> keep up with 500 requests a second (every request streamed, none lost), and a reader that
/// never reads neither slows the relay nor grows without bound: its buffer drops the oldest messages, and the
/// loss is said in the stream (<c>dropped_before</c>) when it reads again, while another reader loses nothing.
/// The achieved rate is printed with the load average (a measurement, not asserted: bench/ measures speed).
/// </summary>
public sealed class StreamLoadTests(ITestOutputHelper output) : TwoUpstreamTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(120);

    private static RelayConfig Config(FakeUpstream a) =>
        TestConfig.Relay([TestConfig.Provider("a", a.BaseUrl)])
            .With(grpc: new GrpcConfig(true, new ListenAddress("127.0.0.1", 0), FSharpOption<string>.None, FSharpOption<ListenAddress>.None));

    /// <summary>
    /// Sends <paramref name="count"/> requests from <paramref name="workers"/> concurrent clients, request i due at
    /// i ÷ <paramref name="rate"/> s (0: as fast as they go); returns the request ids and how long it took.
    /// </summary>
    private static async Task<(HashSet<string> Ids, TimeSpan Took)> SendAsync(RelayHost relay, int count, int rate, int workers, CancellationToken cancel)
    {
        var ids = new ConcurrentBag<string>();
        var next = -1;
        var clock = TimeProvider.System;
        var started = clock.GetTimestamp();
        await Task.WhenAll(Enumerable.Range(0, workers).Select(async _ =>
        {
            for (var i = Interlocked.Increment(ref next); i < count; i = Interlocked.Increment(ref next))
            {
                if (rate > 0 && TimeSpan.FromSeconds((double)i / rate) - clock.GetElapsedTime(started) is { Ticks: > 0 } due)
                {
                    await Task.Delay(due, clock, cancel); // the load's schedule (500/s), not a wait for an event
                }

                using var response = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody), cancel);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                ids.Add(response.Headers.GetValues("x-cc-relay-request-id").Single());
            }
        }));
        return ([.. ids], clock.GetElapsedTime(started));
    }

    /// <summary>Reads a WatchRequests stream until <paramref name="count"/> requests are accounted for (streamed or reported lost).</summary>
    private static async Task<(HashSet<string> Seen, long Dropped)> ReadAsync(AsyncServerStreamingCall<CompletedRequest> call, int count, CancellationToken cancel)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var dropped = 0L;
        while (seen.Count + dropped < count && await call.ResponseStream.MoveNext(cancel))
        {
            dropped += call.ResponseStream.Current.DroppedBefore;
            seen.Add(call.ResponseStream.Current.RequestId);
        }

        return (seen, dropped);
    }

    private static string Load() =>
        File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "?";

    [Fact]
    public async Task WatchRequests_AndWatchStats_KeepUpWith500RequestsASecond_EveryRequestStreamed_NoneLost()
    {
        // Arrange
        const int Count = 1000;
        A.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-a"));
        await using var relay = await RelayHost.StartAsync(Config(A));
        using var channel = GrpcChannel.ForAddress(relay.Addresses[^1]);
        var client = new RelayManagement.RelayManagementClient(channel);
        using var cancel = new CancellationTokenSource(Bound);
        using var watch = client.WatchRequests(new WatchRequestsRequest(), cancellationToken: cancel.Token);
        await watch.ResponseHeadersAsync; // subscribed
        var reading = ReadAsync(watch, Count, cancel.Token);

        // Act: 1000 requests at 500 a second
        var (ids, took) = await SendAsync(relay, Count, rate: 500, workers: 32, cancel.Token);
        var (seen, dropped) = await reading;
        using var stats = client.WatchStats(new WatchStatsRequest { IntervalMs = 100 }, cancellationToken: cancel.Token);
        Assert.True(await stats.ResponseStream.MoveNext(cancel.Token));
        output.WriteLine($"{Count} requests in {took.TotalSeconds:0.00} s = {Count / took.TotalSeconds:0} req/s (load average {Load()})");

        // Assert: every request streamed once, none lost; the statistics count every one
        Assert.Equal(Count, ids.Count);
        Assert.Equal(0, dropped);
        Assert.Equal(ids.Order(), seen.Order());
        Assert.Equal(Count, stats.ResponseStream.Current.Totals.Requests);
        Assert.Equal(Count, stats.ResponseStream.Current.Providers.Single(p => p.Name == "a").Requests);
    }

    [Fact]
    public async Task AReaderThatNeverReads_DoesNotHoldUpTheRelay_ItsBufferDropsTheOldest_AndTheLossIsSaidInTheStream()
    {
        // Arrange: the other reader subscribes with the usual buffer (4096), the slow one with a small buffer (64),
        // so a short run overflows it; each on a connection of its own
        const int Count = 2000;
        A.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson("from-a"));
        await using var relay = await RelayHost.StartAsync(Config(A));
        using var slowChannel = GrpcChannel.ForAddress(relay.Addresses[^1]);
        using var fastChannel = GrpcChannel.ForAddress(relay.Addresses[^1]);
        using var cancel = new CancellationTokenSource(Bound);
        using var fast = new RelayManagement.RelayManagementClient(fastChannel).WatchRequests(new WatchRequestsRequest(), cancellationToken: cancel.Token);
        await fast.ResponseHeadersAsync; // subscribed
        relay.Services.GetRequiredService<RequestFeed>().SubscriberCapacity = 64;
        using var slow = new RelayManagement.RelayManagementClient(slowChannel).WatchRequests(new WatchRequestsRequest(), cancellationToken: cancel.Token);
        await slow.ResponseHeadersAsync;
        var fastReading = ReadAsync(fast, Count, cancel.Token);

        // Act: 2000 requests as fast as 16 clients go, while the slow reader reads nothing
        var (ids, took) = await SendAsync(relay, Count, rate: 0, workers: 16, cancel.Token);
        var (fastSeen, fastDropped) = await fastReading;
        output.WriteLine($"{Count} requests in {took.TotalSeconds:0.00} s = {Count / took.TotalSeconds:0} req/s with a reader that never reads (load average {Load()})");

        // ... then the slow reader reads what is left
        var (slowSeen, slowDropped) = await ReadAsync(slow, Count, cancel.Token);

        // Assert: every request answered; the other reader lost nothing; the slow one lost the oldest, and was told
        Assert.Equal(Count, ids.Count);
        Assert.Equal(0, fastDropped);
        Assert.Equal(ids.Order(), fastSeen.Order());
        Assert.True(slowDropped > 0, "the slow reader's buffer overflowed");
        Assert.Equal(Count, slowSeen.Count + slowDropped);
        Assert.Subset(ids, slowSeen);
        output.WriteLine($"the slow reader got {slowSeen.Count} and was told it lost {slowDropped}");
    }
}
