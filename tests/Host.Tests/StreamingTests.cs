using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests;

public sealed class StreamingTests : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(15);
    private FakeUpstream _upstream = null!;
    private RelayHost _relay = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _relay = await RelayHost.StartAsync(TestConfig.Relay([TestConfig.Provider("fake", _upstream.BaseUrl, keys: ["upstream-key"])]));
    }

    public async Task DisposeAsync()
    {
        await _relay.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    [Fact]
    public async Task Stream_FirstEventReachesClient_BeforeUpstreamSendsSecond()
    {
        // Arrange: the upstream sends event 1, then waits until the test says go.
        var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var secondSent = false;
        _upstream.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart());
            await go.Task.WaitAsync(Bound);
            secondSent = true;
            await Fake.WriteAsync(context, Fake.TextBlock(0, "hi") + Fake.MessageEnd());
        };
        using var timeout = new CancellationTokenSource(Bound);

        // Act
        using var response = await _relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody), HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        var reader = new SseClientReader(await response.Content.ReadAsStreamAsync(timeout.Token));
        var first = await reader.NextAsync(timeout.Token);

        // Assert: event 1 arrived while the upstream still held event 2
        Assert.False(secondSent);
        Assert.StartsWith("event: message_start\n", first);
        go.SetResult();
        var rest = await reader.RestAsync(timeout.Token);
        Assert.Equal("event: message_stop\n", rest[^1][..20]);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("no", response.Headers.GetValues("X-Accel-Buffering").Single());
    }

    [Fact]
    public async Task Stream_IsRelayedByteForByte_PingsAndCommentsIncluded()
    {
        var body = ": keep-alive comment\n\n" + Fake.MessageStart() + Fake.Ping + Fake.TextBlock(0, "h\\u00e9llo") + Fake.MessageEnd();
        _upstream.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, body);
        };

        using var response = await _relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody));
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(body, text);
    }

    [Fact]
    public async Task Stream_ClientAborts_UpstreamIsCancelled()
    {
        // Arrange: the upstream sends one event and then waits for the relay to go away
        var upstreamSawAbort = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _upstream.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart());
            try
            {
                await Task.Delay(Timeout.InfiniteTimeSpan, TimeProvider.System, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                upstreamSawAbort.SetResult();
            }
        };
        using var timeout = new CancellationTokenSource(Bound);
        var response = await _relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody), HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        var reader = new SseClientReader(await response.Content.ReadAsStreamAsync(timeout.Token));
        Assert.NotNull(await reader.NextAsync(timeout.Token));

        // Act: the client disconnects mid-stream
        response.Dispose();

        // Assert
        await upstreamSawAbort.Task.WaitAsync(Bound);
    }

    [Fact]
    public async Task Stream_UpstreamResetsAfterFirstEvent_ClientGetsSseErrorEvent()
    {
        // Arrange: the upstream resets the connection once the client has event 1. (Resetting at once
        // would race: a TCP reset discards bytes the relay has not read yet.)
        var clientHasFirst = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _upstream.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart());
            await clientHasFirst.Task.WaitAsync(Bound);
            context.Abort();
        };
        using var timeout = new CancellationTokenSource(Bound);

        // Act
        using var response = await _relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody), HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        var reader = new SseClientReader(await response.Content.ReadAsStreamAsync(timeout.Token));
        var first = await reader.NextAsync(timeout.Token);
        clientHasFirst.SetResult();
        var rest = await reader.RestAsync(timeout.Token);

        // Assert: the stream does not end cleanly; it ends with an api_error event
        Assert.StartsWith("event: message_start\n", first);
        var error = Assert.Single(rest);
        Assert.StartsWith("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\"", error);
    }

    [Fact]
    public async Task Stream_UpstreamResetsAfterMessageStop_EndsCleanly_NothingAppended()
    {
        // Arrange: a whole answer, then a reset instead of a clean close (once the client has message_stop)
        var clientHasStop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _upstream.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart() + Fake.TextBlock(0, "whole") + Fake.MessageEnd());
            await clientHasStop.Task.WaitAsync(Bound);
            context.Abort();
        };
        using var timeout = new CancellationTokenSource(Bound);

        // Act
        using var response = await _relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody), HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        var reader = new SseClientReader(await response.Content.ReadAsStreamAsync(timeout.Token));
        var events = new List<string>();
        while (await reader.NextAsync(timeout.Token) is { } e)
        {
            events.Add(e);
            if (e.StartsWith("event: message_stop\n", StringComparison.Ordinal))
            {
                break;
            }
        }

        clientHasStop.SetResult();
        var rest = await reader.RestAsync(timeout.Token);

        // Assert: the answer was whole, so the reset loses nothing: no error event, a successful request
        Assert.StartsWith("event: message_stop\n", events[^1]);
        Assert.Empty(rest);
        Assert.Equal("ok", (await _relay.Logs.RequestLinesAsync()).Single().Fields["result"]);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Stream_UpstreamEndsCleanlyButEarly_ClientGetsSseErrorEvent(bool midEvent)
    {
        _upstream.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart() + (midEvent ? "event: content_block_start\ndata: {\"type\":" : Fake.TextBlock(0, "partial")));
        };

        using var response = await _relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody));
        var text = await response.Content.ReadAsStringAsync();

        Assert.DoesNotContain("event: message_stop", text);
        Assert.EndsWith("\n\n", text);
        Assert.Contains("event: error\n", text);
        Assert.DoesNotContain("{\"type\":event", text); // the partial event was dropped, not glued to the error
    }

    [Fact]
    public async Task Stream_UpstreamErrorEventAfterContent_IsPassedThroughWithoutAddingAnother()
    {
        var error = Fake.Event("error", """{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}""");
        _upstream.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart() + Fake.TextBlock(0, "x") + error);
        };

        using var response = await _relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody));
        var text = await response.Content.ReadAsStringAsync();

        Assert.EndsWith(error, text);
        Assert.Single(text.Split("event: error\n")[1..]);
        Assert.Equal("upstream_error_event", (await _relay.Logs.RequestLinesAsync()).Single().Fields["result"]);
    }

    [Fact]
    public async Task Stream_EventLargerThanReadBuffer_IsRelayedWhole()
    {
        var big = new string('x', 100_000);
        var body = Fake.MessageStart() + Fake.TextBlock(0, big) + Fake.MessageEnd();
        _upstream.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, body);
        };

        using var response = await _relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody));

        Assert.Equal(body, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Stream_EventsSplitAcrossUpstreamWrites_EachReachesClientWholeAndInOrder()
    {
        // Arrange: every upstream write ends in the middle of the next event (the relay must keep that tail,
        // send only whole events, and join the tail with the next write); the next write waits until the
        // client has the last whole event, so each write is surely a read of its own.
        var body = Fake.MessageStart()
            + string.Concat(Enumerable.Range(0, 4).Select(i => Fake.TextBlock(i, new string((char)('a' + i), 700 * (i + 1)))))
            + Fake.MessageEnd();
        var events = body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e + "\n\n").ToArray();
        var received = Enumerable.Range(0, events.Length).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
        _upstream.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            var tail = "";
            for (var i = 0; i < events.Length; i++)
            {
                // this event (minus what the last write already sent) and the first part of the next one
                var next = i + 1 < events.Length ? events[i + 1][..(events[i + 1].Length / 2)] : "";
                await Fake.WriteAsync(context, events[i][tail.Length..] + next);
                tail = next;
                await received[i].Task.WaitAsync(Bound);
            }
        };
        using var timeout = new CancellationTokenSource(Bound);

        // Act
        using var response = await _relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody), HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        var reader = new SseClientReader(await response.Content.ReadAsStreamAsync(timeout.Token));
        var got = new List<string>();
        for (var i = 0; i < events.Length; i++)
        {
            got.Add(await reader.NextAsync(timeout.Token) ?? "");
            received[i].SetResult();
        }

        // Assert: whole events, in order, nothing added
        Assert.Equal(events, got);
        Assert.Empty(await reader.RestAsync(timeout.Token));
    }

    [Theory]
    [InlineData(true)] // message_stop: the stream is whole
    [InlineData(false)] // the upstream closes before message_stop: the relay appends an error event
    public async Task Stream_ClientSeesTheEndOfTheStream_BeforeTheRelayHasAccountedForIt(bool whole)
    {
        // Arrange: the response body's debug line, which the relay logs on the request's thread once the stream is
        // relayed (before the usage settles the key, before the request is queued for its metrics and request
        // line), waits (bounded) until the client has read the stream to its end
        await using var relay = await RelayHost.StartAsync(
            TestConfig.Relay([TestConfig.Provider("fake", _upstream.BaseUrl, keys: ["upstream-key"])])
                .With(logging: TestConfig.Logging(CcRelay.Core.LogLevel.Debug, debugAll: true)));
        _upstream.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart() + (whole ? Fake.TextBlock(0, "hi") + Fake.MessageEnd() : ""));
        };
        var clientHasTheEnd = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var lineWaitedForTheClient = relay.Logs.HoldLineUntil(43, clientHasTheEnd.Task);
        using var timeout = new CancellationTokenSource(Bound);

        // Act: read the chunked stream to its last chunk
        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody), HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        var text = await response.Content.ReadAsStringAsync(timeout.Token);
        clientHasTheEnd.SetResult();

        // Assert: the client had the end of its stream while the relay's thread was still at its debug line
        Assert.True(response.Headers.TransferEncodingChunked);
        Assert.EndsWith(whole ? Fake.MessageEnd() : "}}\n\n", text);
        Assert.Equal(whole, !text.Contains("event: error\n", StringComparison.Ordinal));
        Assert.True(await lineWaitedForTheClient.WaitAsync(Bound), "the client saw the end of its stream only after the relay's thread moved on");
        var line = Assert.Single(await relay.Logs.RequestLinesAsync());
        Assert.Equal(whole ? "ok" : "stream_error", line.Fields["result"]);
    }
}
