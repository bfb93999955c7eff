using System.Net;
using System.Net.Sockets;
using System.Text;
using CcRelay.Host.Tests.Infrastructure;
using CcRelay.Host.Tests.Metrics;
using Microsoft.AspNetCore.Http;

namespace CcRelay.Host.Tests;

/// <summary>
/// A client that goes away while the relay is writing its answer (an interrupted or killed client) has left: the
/// request is <c>client_aborted</c> and its attempt abandoned, never the upstream's timeout or failure. The relay's
/// write can fail before ASP.NET Core flags <c>RequestAborted</c> (Kestrel completes the response pipe at once and
/// cancels the token later, on the thread pool). These tests reset the connection while the relay is inside a
/// write, so which of the two the relay sees first is a race; the outcome must not depend on it.
/// </summary>
public sealed class ClientDisconnectTests : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    // More than the client's (small) receive buffer and the relay's socket send buffer (tcp_wmem's maximum, 4 MiB
    // by default) hold together: the relay cannot finish writing it to a client that stops reading.
    private const int LargeBytes = 16 * 1024 * 1024;

    // What the client reads before it leaves: more than the headers and message_start, so the relay is inside its
    // write of the large part (SSE events are written whole, so the large event is one write).
    private const int ReadBeforeLeaving = 128 * 1024;

    private FakeUpstream _upstream = null!;
    private RelayHost _relay = null!;
    private TaskCompletionSource _upstreamSawAbort = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _relay = await RelayHost.StartAsync(TestConfig.Relay([TestConfig.Provider("fake", _upstream.BaseUrl, keys: ["k"])]));
        _upstreamSawAbort = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public async Task DisposeAsync()
    {
        await _relay.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    [Fact]
    public async Task Stream_ClientResetsDuringAWrite_ClientAborted_AttemptAbandoned()
    {
        // Arrange: message_start, then one 16 MiB event; the upstream then waits for the relay to let go
        var large = Fake.Event("content_block_delta", """{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""" + Fake.Quote(new string('x', LargeBytes)) + "}}");
        _upstream.Handler = context => AnswerUntilTheRelayLeavesAsync(context, async () =>
        {
            await Fake.StartStreamAsync(context);
            await Fake.WriteAsync(context, Fake.MessageStart() + Fake.Event("content_block_start", """{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}""") + large);
        });

        // Act
        await ReadThenResetAsync(Requests.StreamingBody);

        // Assert
        await AssertClientAbortedAsync();
        Assert.DoesNotContain(_relay.Logs.Lines, l => l.EventId == 3); // StreamBroken: the upstream was not to blame
    }

    [Fact]
    public async Task Json_ClientResetsDuringTheCopy_ClientAborted_AttemptAbandoned()
    {
        // Arrange: a 16 MiB JSON answer; the upstream then waits for the relay to let go
        _upstream.Handler = context => AnswerUntilTheRelayLeavesAsync(context, () =>
        {
            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/json";
            return Fake.WriteAsync(context, Fake.MessageJson(new string('x', LargeBytes)));
        });

        // Act
        await ReadThenResetAsync(Requests.PlainBody);

        // Assert
        await AssertClientAbortedAsync();
    }

    /// <summary>Runs <paramref name="answer"/> (which stops, or fails, once the relay goes away), then waits for the relay to let go.</summary>
    private async Task AnswerUntilTheRelayLeavesAsync(HttpContext context, Func<Task> answer)
    {
        try
        {
            await answer();
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
            // the relay went away while the answer was being written
        }

        try
        {
            await Task.Delay(Timeout.InfiniteTimeSpan, TimeProvider.System, context.RequestAborted);
        }
        catch (OperationCanceledException)
        {
            _upstreamSawAbort.SetResult();
        }
    }

    /// <summary>
    /// Sends the request on a raw socket with a small receive buffer, reads <see cref="ReadBeforeLeaving"/> bytes,
    /// then closes with a reset (linger 0), as a killed client does.
    /// </summary>
    private async Task ReadThenResetAsync(string body)
    {
        using var timeout = new CancellationTokenSource(Bound);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, _relay.BaseUrl.Port), timeout.Token);
        var content = Encoding.UTF8.GetBytes(body);
        var head = "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nanthropic-version: 2023-06-01\r\n"
            + $"x-api-key: sk-ant-client\r\nContent-Length: {content.Length}\r\n\r\n";
        await socket.SendAsync(Encoding.ASCII.GetBytes(head).Concat(content).ToArray(), SocketFlags.None, timeout.Token);

        var buffer = new byte[8192];
        var received = 0;
        while (received < ReadBeforeLeaving)
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
            Assert.True(read > 0, $"the relay closed the connection after {received} bytes");
            if (received == 0)
            {
                Assert.StartsWith("HTTP/1.1 200 ", Encoding.ASCII.GetString(buffer, 0, read));
            }

            received += read;
        }

        socket.LingerState = new LingerOption(true, 0);
        socket.Close();
    }

    private async Task AssertClientAbortedAsync()
    {
        var line = (await _relay.Logs.RequestLinesAsync()).Single();
        var metrics = PrometheusTextParser.Parse(await _relay.ScrapeAsync());

        Assert.Equal("client_aborted", line.Fields["result"]);
        Assert.Equal(1, metrics.Value("ccrelay_upstream_attempts_total", ("provider", "fake"), ("outcome", "abandoned")));
        Assert.False(metrics.Has("ccrelay_upstream_attempts_total", ("provider", "fake"), ("outcome", "failure")));
        Assert.False(metrics.Has("ccrelay_upstream_attempts_total", ("provider", "fake"), ("outcome", "success")));
        await _upstreamSawAbort.Task.WaitAsync(Bound); // and the upstream request was cancelled
    }
}
