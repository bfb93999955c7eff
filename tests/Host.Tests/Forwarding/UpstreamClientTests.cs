using System.Net;
using System.Net.Sockets;
using System.Text;
using CcRelay.Host.Forwarding;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Forwarding;

/// <summary>
/// The relay's upstream client (<see cref="UpstreamClient"/>: SocketsHttpHandler as the relay configures it) against a
/// scripted TCP upstream over plain HTTP/1.1: what goes on the wire, how answers are framed, when connections are
/// reused, and how failures surface — what the forwarder's classification (connect failure, invalid answer, cut
/// body) relies on.
/// </summary>
public sealed class UpstreamClientTests
{
    private const string Ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";

    private static readonly byte[] Body = Encoding.UTF8.GetBytes("""{"model":"claude-sonnet-4-5","max_tokens":1}""");

    private static HttpRequestMessage Post(Uri baseUrl, string path = "/v1/messages", byte[]? body = null) =>
        new(HttpMethod.Post, new Uri(baseUrl, path)) { Content = new UpstreamBodyContent(body ?? Body) };

    /// <summary>Answers every request on every connection with <paramref name="answer"/>, keeping connections open.</summary>
    private static RawUpstream Answering(string answer) =>
        RawUpstream.Start(async connection =>
        {
            while (await connection.ReadRequestAsync() is not null)
            {
                await connection.SendAsync(answer);
            }
        });

    [Fact]
    public async Task Request_HeadAndBody_OnTheWire_AsTheUpstreamExpects()
    {
        await using var upstream = Answering(Ok);
        using var invoker = UpstreamClient.Create();
        using var request = Post(upstream.BaseUrl, "/v1/messages?beta=true");
        request.Headers.TryAddWithoutValidation("anthropic-version", "2023-06-01");
        request.Headers.TryAddWithoutValidation("anthropic-beta", ["a-1", "b-2"]);
        request.Headers.TryAddWithoutValidation("x-api-key", "upstream-key");
        request.Content!.Headers.TryAddWithoutValidation("Content-Type", "application/json");

        using var response = await invoker.SendAsync(request, CancellationToken.None);

        var seen = Assert.Single(upstream.Requests);
        Assert.Equal("POST /v1/messages?beta=true HTTP/1.1", seen.RequestLine);
        Assert.Equal(
            [
                $"Host: 127.0.0.1:{upstream.BaseUrl.Port}",
                "anthropic-version: 2023-06-01",
                "anthropic-beta: a-1, b-2",
                "x-api-key: upstream-key",
                "Content-Type: application/json",
                $"Content-Length: {Body.Length}",
            ],
            seen.FieldLines);
        Assert.Equal(Body, seen.Body);
        Assert.True(((UpstreamBodyContent)request.Content).Sent);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("{}", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ExplicitHost_WinsOverTheEndpoints()
    {
        await using var upstream = Answering(Ok);
        using var invoker = UpstreamClient.Create();
        using var request = Post(upstream.BaseUrl);
        request.Headers.Host = "gateway.internal";

        using var response = await invoker.SendAsync(request, CancellationToken.None);

        Assert.Equal("Host: gateway.internal", Assert.Single(upstream.Requests).FieldLines[0]);
    }

    [Fact]
    public async Task LargeBody_IsSentWhole()
    {
        await using var upstream = Answering(Ok);
        using var invoker = UpstreamClient.Create();
        var large = Encoding.ASCII.GetBytes(new string('x', 300_000));

        using var response = await invoker.SendAsync(Post(upstream.BaseUrl, body: large), CancellationToken.None);

        Assert.Equal(large, Assert.Single(upstream.Requests).Body);
    }

    [Fact]
    public async Task ResponseHead_StatusAndFields_KeepTheirNamesAndValues()
    {
        await using var upstream = Answering(
            "HTTP/1.1 529 Overloaded\r\nrequest-id: req_1\r\nx-Custom-Case:  spaced value \r\nretry-after: 7\r\n"
            + "Content-Type: application/json\r\nContent-Length: 5\r\n\r\n[1,2]");
        using var invoker = UpstreamClient.Create();

        using var response = await invoker.SendAsync(Post(upstream.BaseUrl), CancellationToken.None);

        Assert.Equal((HttpStatusCode)529, response.StatusCode);
        Assert.Equal("req_1", response.Headers.GetValues("request-id").Single());
        Assert.Contains(response.Headers.NonValidated, header => header.Key == "x-Custom-Case" && header.Value.ToString() == "spaced value");
        Assert.Equal("7", response.Headers.NonValidated["retry-after"].ToString());
        Assert.Equal(5, response.Content.Headers.ContentLength);
        Assert.Equal("application/json", response.Content.Headers.NonValidated["Content-Type"].ToString());
        Assert.Equal("[1,2]", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task LargeResponseHead_UpToTheLimit_IsRead()
    {
        // 100 KB of fields: the read buffer grows past its first 4 KB, and the body behind the head is intact
        var fields = string.Concat(Enumerable.Range(0, 1000).Select(i => $"x-field-{i:D4}: {new string('v', 80)}\r\n"));
        await using var upstream = Answering($"HTTP/1.1 200 OK\r\n{fields}Content-Length: 2\r\n\r\n{{}}");
        using var invoker = UpstreamClient.Create();

        using var response = await invoker.SendAsync(Post(upstream.BaseUrl), CancellationToken.None);

        Assert.Equal(new string('v', 80), response.Headers.NonValidated["x-field-0999"].ToString());
        Assert.Equal("{}", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ResponseHead_OverTheLimit_IsRefused()
    {
        var fields = string.Concat(Enumerable.Range(0, 3000).Select(i => $"x-field-{i:D4}: {new string('v', 100)}\r\n"));
        await using var upstream = Answering($"HTTP/1.1 200 OK\r\n{fields}\r\n");
        using var invoker = UpstreamClient.Create();

        var error = await Assert.ThrowsAsync<HttpRequestException>(() => invoker.SendAsync(Post(upstream.BaseUrl), CancellationToken.None));

        Assert.Equal(HttpRequestError.ConfigurationLimitExceeded, error.HttpRequestError);
    }

    [Fact]
    public async Task Connection_IsReused_ForTheNextRequests()
    {
        await using var upstream = Answering(Ok);
        using var invoker = UpstreamClient.Create();

        for (var i = 0; i < 3; i++)
        {
            using var response = await invoker.SendAsync(Post(upstream.BaseUrl), CancellationToken.None);
            Assert.Equal("{}", await response.Content.ReadAsStringAsync());
        }

        Assert.Equal(1, upstream.Connections);
        Assert.Equal(3, upstream.Requests.Count);
    }

    [Fact]
    public async Task ChunkedBody_ReadsBackWhole_AndTheConnectionCarriesTheNextRequest()
    {
        // chunk framing split across writes at awkward places: inside a size, between CR and LF, inside trailers
        await using var upstream = RawUpstream.Start(async connection =>
        {
            while (await connection.ReadRequestAsync() is not null)
            {
                await connection.SendAsync("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n1");
                await connection.SendAsync("6\r\nevent: ping\ndata: {}\n\n\r");
                await connection.SendAsync("\n5;ext=1\r\nhello\r\n0\r\nx-trailer: ");
                await connection.SendAsync("1\r\n\r\n");
            }
        });
        using var invoker = UpstreamClient.Create();

        for (var i = 0; i < 2; i++)
        {
            using var response = await invoker.SendAsync(Post(upstream.BaseUrl), CancellationToken.None);
            Assert.Equal("event: ping\ndata: {}\n\nhello", await response.Content.ReadAsStringAsync());
        }

        Assert.Equal(1, upstream.Connections);
    }

    [Fact]
    public async Task ZeroByteRead_WaitsForTheNextChunk_WithoutConsumingIt()
    {
        var more = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = RawUpstream.Start(async connection =>
        {
            await connection.ReadRequestAsync();
            await connection.SendAsync("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n");
            await more.Task;
            await connection.SendAsync("6\r\nsecond\r\n0\r\n\r\n");
        });
        try
        {
            using var invoker = UpstreamClient.Create();
            using var response = await invoker.SendAsync(Post(upstream.BaseUrl), CancellationToken.None);
            var body = await response.Content.ReadAsStreamAsync();
            var buffer = new byte[64];
            Assert.Equal("first", Encoding.ASCII.GetString(buffer, 0, await body.ReadAsync(buffer)));

            // the CRLF after "first" is framing, not data: the zero-byte read consumes it and waits on
            var waiting = body.ReadAsync(Memory<byte>.Empty).AsTask();
            Assert.False(waiting.IsCompleted);
            more.SetResult();

            Assert.Equal(0, await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.Equal("second", Encoding.ASCII.GetString(buffer, 0, await body.ReadAsync(buffer)));
            Assert.Equal(0, await body.ReadAsync(buffer));
        }
        finally
        {
            more.TrySetResult(); // the upstream's script ends either way
        }
    }

    [Fact]
    public async Task BodyUntilClose_IsReadToTheEnd_AndTheConnectionIsNotReused()
    {
        await using var upstream = RawUpstream.Start(async connection =>
        {
            if (await connection.ReadRequestAsync() is not null)
            {
                await connection.SendAsync("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":");
                await connection.SendAsync("1}");
                connection.Close();
            }
        });
        using var invoker = UpstreamClient.Create();

        for (var i = 0; i < 2; i++)
        {
            using var response = await invoker.SendAsync(Post(upstream.BaseUrl), CancellationToken.None);
            Assert.Equal("{\"a\":1}", await response.Content.ReadAsStringAsync());
        }

        Assert.Equal(2, upstream.Connections);
    }

    [Fact]
    public async Task ConnectionClose_Answer_IsNotReused()
    {
        await using var upstream = Answering("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}");
        using var invoker = UpstreamClient.Create();

        for (var i = 0; i < 2; i++)
        {
            using var response = await invoker.SendAsync(Post(upstream.BaseUrl), CancellationToken.None);
            Assert.Equal("{}", await response.Content.ReadAsStringAsync());
        }

        Assert.Equal(2, upstream.Connections);
    }

    [Fact]
    public async Task IdleConnection_ClosedByTheUpstream_IsReplaced_AndTheRequestAnsweredOnce()
    {
        // the first connection answers once, announces keep-alive, then closes: the next request finds it dead.
        // The second request waits for that close (its FIN on the wire): a pooled connection is checked before
        // reuse, and a close that has not happened yet cannot be seen (a POST sent into it is not retried).
        var firstClosed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = RawUpstream.Start(async connection =>
        {
            if (await connection.ReadRequestAsync() is not null)
            {
                await connection.SendAsync(Ok);
            }

            if (connection.Index == 1)
            {
                connection.Close();
                firstClosed.TrySetResult();
                return;
            }

            while (await connection.ReadRequestAsync() is not null)
            {
                await connection.SendAsync(Ok);
            }
        });
        using var invoker = UpstreamClient.Create();
        using (var first = await invoker.SendAsync(Post(upstream.BaseUrl), CancellationToken.None))
        {
            Assert.Equal("{}", await first.Content.ReadAsStringAsync());
        }

        await firstClosed.Task.WaitAsync(TimeSpan.FromSeconds(10));
        using var second = await invoker.SendAsync(Post(upstream.BaseUrl), CancellationToken.None);

        Assert.Equal("{}", await second.Content.ReadAsStringAsync());
        Assert.Equal(2, upstream.Connections);
        Assert.Equal(2, upstream.Requests.Count);
    }

    [Fact]
    public async Task InterimAnswers_AreSkipped()
    {
        await using var upstream = Answering("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + Ok);
        using var invoker = UpstreamClient.Create();

        using var response = await invoker.SendAsync(Post(upstream.BaseUrl), CancellationToken.None);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.False(response.Headers.Contains("Link"));
        Assert.Equal("{}", await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("SSH-2.0-OpenSSH_9.2\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nbad header line\r\n\r\n")]
    public async Task InvalidAnswer_IsAnInvalidResponseError(string answer)
    {
        await using var upstream = Answering(answer);
        using var invoker = UpstreamClient.Create();

        var error = await Assert.ThrowsAsync<HttpRequestException>(() => invoker.SendAsync(Post(upstream.BaseUrl), CancellationToken.None));

        Assert.Equal(HttpRequestError.InvalidResponse, error.HttpRequestError);
    }

    [Fact]
    public async Task ClosedBeforeAnswering_OnAFreshConnection_IsResponseEnded_AndNotRetried()
    {
        await using var upstream = RawUpstream.Start(async connection =>
        {
            await connection.ReadRequestAsync();
            connection.Close();
        });
        using var invoker = UpstreamClient.Create();

        var error = await Assert.ThrowsAsync<HttpRequestException>(() => invoker.SendAsync(Post(upstream.BaseUrl), CancellationToken.None));

        Assert.Equal(HttpRequestError.ResponseEnded, error.HttpRequestError);
        Assert.Equal(1, upstream.Connections);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"cut\":")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"cut\":")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")]
    public async Task BodyCutShort_IsAnIOException_NotACleanEnd(string answer)
    {
        await using var upstream = RawUpstream.Start(async connection =>
        {
            await connection.ReadRequestAsync();
            await connection.SendAsync(answer);
            connection.Close();
        });
        using var invoker = UpstreamClient.Create();
        using var response = await invoker.SendAsync(Post(upstream.BaseUrl), CancellationToken.None);

        var body = await response.Content.ReadAsStreamAsync();

        var error = await Assert.ThrowsAsync<HttpIOException>(() => body.CopyToAsync(Stream.Null));

        Assert.Equal(HttpRequestError.ResponseEnded, error.HttpRequestError);
    }

    [Fact]
    public async Task BrokenChunkFraming_IsAnInvalidResponseIOException()
    {
        await using var upstream = Answering("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        using var invoker = UpstreamClient.Create();
        using var response = await invoker.SendAsync(Post(upstream.BaseUrl), CancellationToken.None);

        var body = await response.Content.ReadAsStreamAsync();

        var error = await Assert.ThrowsAsync<HttpIOException>(() => body.CopyToAsync(Stream.Null));

        Assert.Equal(HttpRequestError.InvalidResponse, error.HttpRequestError);
    }

    [Fact]
    public async Task HalfReadBody_Disposed_ClosesTheConnection()
    {
        var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = RawUpstream.Start(async connection =>
        {
            await connection.ReadRequestAsync();
            await connection.SendAsync("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345");
            await connection.WaitForCloseAsync();
            closed.TrySetResult();
        });
        using var invoker = UpstreamClient.Create();
        var response = await invoker.SendAsync(Post(upstream.BaseUrl), CancellationToken.None);
        var stream = await response.Content.ReadAsStreamAsync();
        Assert.Equal(5, await stream.ReadAsync(new byte[10]));

        response.Dispose();

        await closed.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Cancelled_WhileWaitingForTheHead_ThrowsOperationCanceled_AndClosesTheConnection()
    {
        var received = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = RawUpstream.Start(async connection =>
        {
            await connection.ReadRequestAsync();
            received.TrySetResult();
            await connection.WaitForCloseAsync();
            closed.TrySetResult();
        });
        using var invoker = UpstreamClient.Create();
        using var cancel = new CancellationTokenSource();

        var sending = invoker.SendAsync(Post(upstream.BaseUrl), cancel.Token);
        await received.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sending);
        await closed.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task NothingListening_IsAConnectionError()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        using var invoker = UpstreamClient.Create();

        var error = await Assert.ThrowsAsync<HttpRequestException>(() => invoker.SendAsync(Post(new Uri($"http://127.0.0.1:{port}")), CancellationToken.None));

        Assert.Equal(HttpRequestError.ConnectionError, error.HttpRequestError);
    }

    [Fact]
    public async Task LineBreakInAHeader_IsRefused_BeforeAnythingIsSent()
    {
        // SocketsHttpHandler alone would write "x-injected: a" and "x-api-key: stolen" as two field lines
        await using var upstream = Answering(Ok);
        using var invoker = UpstreamClient.Create();
        using var request = Post(upstream.BaseUrl);
        request.Headers.TryAddWithoutValidation("x-injected", "a\r\nx-api-key: stolen");

        var error = await Assert.ThrowsAsync<HttpRequestException>(() => invoker.SendAsync(request, CancellationToken.None));

        Assert.Contains("x-injected", error.Message);
        Assert.Empty(upstream.Requests);
    }

    [Fact]
    public async Task NulInAContentHeader_IsRefused_BeforeAnythingIsSent()
    {
        await using var upstream = Answering(Ok);
        using var invoker = UpstreamClient.Create();
        using var request = Post(upstream.BaseUrl);
        request.Content!.Headers.TryAddWithoutValidation("Content-Type", "application/json\0x");

        await Assert.ThrowsAsync<HttpRequestException>(() => invoker.SendAsync(request, CancellationToken.None));

        Assert.Empty(upstream.Requests);
    }

    [Fact]
    public async Task Relay_InvalidUpstreamAnswer_Is502ApiError()
    {
        await using var upstream = Answering("garbage\r\n\r\n");
        await using var relay = await RelayHost.StartAsync(TestConfig.Relay([TestConfig.Provider("raw", upstream.BaseUrl, keys: ["k"])]));

        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Contains("\"type\":\"api_error\"", await response.Content.ReadAsStringAsync());
    }
}
