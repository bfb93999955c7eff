using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Edge;

/// <summary>
/// <c>server.limits</c> and <c>server.max_body_bytes</c> against slow and abusive clients, each bounded in time: a
/// client trickling its headers or its body is cut, a stream that outlives every limit many times over still
/// completes, a 1 GiB body is refused with bounded memory.
/// </summary>
public sealed class EdgeLimitsTests : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private FakeUpstream _upstream = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _upstream.Handler = context => Fake.WriteJsonAsync(context, 200, Fake.MessageJson());
    }

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    private Task<RelayHost> StartAsync(CcRelay.Core.ConnectionLimits limits, long maxBodyBytes = 32L * 1024 * 1024) =>
        RelayHost.StartAsync(TestConfig.Relay([TestConfig.Provider("a", _upstream.BaseUrl)], maxBodyBytes: maxBodyBytes)
            .With(edge: EdgeConfigs.Edge(limits: limits)));

    private static async Task<NetworkStream> ConnectAsync(Uri baseUrl)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(IPAddress.Loopback, baseUrl.Port);
        return new NetworkStream(socket, ownsSocket: true);
    }

    /// <summary>Reads until the server closes the connection (or resets it); returns what it sent.</summary>
    private static async Task<string> ReadToCloseAsync(NetworkStream stream, CancellationToken cancellationToken, TaskCompletionSource? firstBytes = null)
    {
        var received = new MemoryStream();
        var buffer = new byte[4096];
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer, cancellationToken)) > 0)
            {
                received.Write(buffer, 0, read);
                firstBytes?.TrySetResult();
            }
        }
        catch (IOException)
        {
            // a reset is a close too
        }

        return Encoding.ASCII.GetString(received.ToArray());
    }

    [Fact]
    public async Task Edge_Limits_HeadersSentAByteAtATime_AreCut_WhileAFastClientIsServed()
    {
        // Arrange: a 1 s header timeout; 20 slowloris connections
        await using var relay = await StartAsync(EdgeConfigs.Limits(headersMs: 1_000));
        using var bound = new CancellationTokenSource(Bound);
        var slow = new List<(NetworkStream Stream, Task<string> Closed)>();
        for (var i = 0; i < 20; i++)
        {
            var stream = await ConnectAsync(relay.BaseUrl);
            await stream.WriteAsync("POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"u8.ToArray(), bound.Token);
            slow.Add((stream, ReadToCloseAsync(stream, bound.Token)));
        }

        var started = Stopwatch.StartNew();
        var trickle = Task.Run(async () =>
        {
            // one byte of a header line every 100 ms on every connection, until each is cut
            var alive = slow.ToList();
            while (alive.Count > 0 && !bound.IsCancellationRequested)
            {
                foreach (var (stream, _) in alive.ToList())
                {
                    try
                    {
                        await stream.WriteAsync("x"u8.ToArray(), bound.Token);
                    }
                    catch (IOException)
                    {
                        alive.RemoveAll(s => s.Stream == stream);
                    }
                }

                alive.RemoveAll(s => s.Closed.IsCompleted);
                await Task.Delay(TimeSpan.FromMilliseconds(100), TimeProvider.System, bound.Token);
            }
        });

        // Act: a fast client while they trickle
        using var fast = await relay.Client.SendAsync(Requests.Messages(Requests.PlainBody), bound.Token);
        var answers = await Task.WhenAll(slow.Select(s => s.Closed)).WaitAsync(Bound);
        var elapsed = started.Elapsed;
        await trickle.WaitAsync(Bound);

        // Assert: every trickler was cut (Kestrel answers 408) within the timeout plus its 1 s heartbeat
        Assert.Equal(HttpStatusCode.OK, fast.StatusCode);
        Assert.All(answers, a => Assert.True(a.Length == 0 || a.StartsWith("HTTP/1.1 408", StringComparison.Ordinal), a));
        Assert.True(elapsed < TimeSpan.FromSeconds(10), $"slow clients were cut after {elapsed}");
        foreach (var (stream, _) in slow)
        {
            await stream.DisposeAsync();
        }
    }

    [Fact]
    public async Task Edge_Limits_ABodySentTooSlowly_IsCut()
    {
        // Arrange: at least 1000 B/s after a 2 s grace (Kestrel's shortest)
        await using var relay = await StartAsync(EdgeConfigs.Limits(minBodyRate: 1_000, graceMs: 2_000));
        using var bound = new CancellationTokenSource(Bound);
        await using var stream = await ConnectAsync(relay.BaseUrl);
        await stream.WriteAsync("POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"u8.ToArray(), bound.Token);
        var closed = ReadToCloseAsync(stream, bound.Token);

        // Act: 10 bytes every 200 ms (50 B/s)
        var started = Stopwatch.StartNew();
        while (!closed.IsCompleted && started.Elapsed < Bound)
        {
            try
            {
                await stream.WriteAsync("{\"aaaaaaa\""u8.ToArray(), bound.Token);
            }
            catch (IOException)
            {
                break;
            }

            await Task.WhenAny(closed, Task.Delay(TimeSpan.FromMilliseconds(200), TimeProvider.System, bound.Token));
        }

        var answer = await closed.WaitAsync(Bound);

        // Assert
        Assert.True(answer.Length == 0 || answer.StartsWith("HTTP/1.1 408", StringComparison.Ordinal), answer);
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(12), $"the slow body was cut after {started.Elapsed}");
    }

    [Fact]
    public async Task Edge_Limits_AStreamOutlivingEveryLimit_StillCompletes()
    {
        // Arrange: the header and keep-alive timeouts at 500 ms, the rate minimums on; the upstream streams for 6 s,
        // an event every 250 ms
        await using var relay = await StartAsync(EdgeConfigs.Limits(headersMs: 500, keepAliveMs: 500, minBodyRate: 240, minResponseRate: 240, graceMs: 2_000));
        const int Blocks = 24;
        _upstream.Handler = async context =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart());
            for (var i = 0; i < Blocks; i++)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250), TimeProvider.System, context.RequestAborted);
                await Fake.WriteAsync(context, Fake.TextBlock(i, "part" + i));
            }

            await Fake.WriteAsync(context, Fake.MessageEnd());
        };

        // Act
        var started = Stopwatch.StartNew();
        using var response = await relay.Client.SendAsync(Requests.Messages(Requests.StreamingBody), HttpCompletionOption.ResponseHeadersRead);
        var body = await response.Content.ReadAsStringAsync();

        // Assert: the whole stream, well past every limit
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(started.Elapsed > TimeSpan.FromMilliseconds(Blocks * 250), started.Elapsed.ToString());
        for (var i = 0; i < Blocks; i++)
        {
            Assert.Contains("part" + i, body, StringComparison.Ordinal);
        }

        Assert.Contains("message_stop", body, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Edge_Limits_A1GiBBody_IsRefused413_WithBoundedMemory(bool declared)
    {
        // Arrange: a 1 MiB cap; the client offers 1 GiB (declared, or chunked), 64 KiB at a time
        const long Offered = 1L << 30;
        await using var relay = await StartAsync(EdgeConfigs.Limits(), maxBodyBytes: 1L << 20);
        using var bound = new CancellationTokenSource(Bound);
        await using var stream = await ConnectAsync(relay.BaseUrl);
        var head = "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nx-api-key: k\r\n"
            + (declared ? $"Content-Length: {Offered}\r\n\r\n" : "Transfer-Encoding: chunked\r\n\r\n");
        var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head), bound.Token);
        var answered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var answer = ReadToCloseAsync(stream, bound.Token, answered);

        // Act: send until the answer arrives (or the relay stops reading)
        var chunk = new byte[64 * 1024];
        Array.Fill(chunk, (byte)'a');
        var framed = declared ? chunk : [.. Encoding.ASCII.GetBytes($"{chunk.Length:x}\r\n"), .. chunk, .. "\r\n"u8.ToArray()];
        long sent = 0;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(bound.Token);
        _ = answered.Task.ContinueWith(_ => stop.Cancel(), TaskScheduler.Default);
        var started = Stopwatch.StartNew();
        try
        {
            while (sent < Offered && !answered.Task.IsCompleted)
            {
                await stream.WriteAsync(framed, stop.Token);
                sent += chunk.Length;
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
            // the relay answered and closed, or stopped reading
        }

        stream.Socket.Shutdown(SocketShutdown.Send);
        var response = await answer.WaitAsync(Bound);
        var closedAfter = started.Elapsed;
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;

        // Assert: refused in the Anthropic envelope, long before the gigabyte; memory far below it
        Assert.StartsWith("HTTP/1.1 413", response, StringComparison.Ordinal);
        Assert.Contains("\"request_too_large\"", response, StringComparison.Ordinal);
        Assert.True(sent < Offered / 4, $"sent {sent} bytes before the refusal");
        Assert.True(allocated < 256L << 20, $"the process allocated {allocated} bytes while {sent} were offered");
        Assert.True(closedAfter < TimeSpan.FromSeconds(10), $"the connection closed after {closedAfter}");
    }
}
